"""The train step's peak memory, estimated by walking the step in execution order (issue 15).

The ledger (``ledger.estimate_ledger``) sums its terms as if all were live at
once. The peak is smaller: TensorFlow applies each variable's update as soon
as its gradient is ready, and frees each saved activation after the last
gradient op that reads it. This module walks the step:

- resident all along: weights, optimizer slots, the fed input and labels;
- forward, layer by layer: the activations the backward will read
  (``ledger``'s gradient rules) accumulate; an output nobody's gradient reads
  lives until its last forward consumer;
- backward, in reverse layer order, one moment per layer that takes part
  (it has trainable weights or an input that needs a gradient): live are the
  saved activations not yet consumed, the gradient buffers pending (dL/d
  output of this layer, those of tensors still waiting for their producer,
  e.g. a residual shortcut's), the layer's new dL/d input, its weight
  gradients, the optimizer's update temporaries of its largest variable and,
  for a layer whose input gradient reads its kernel, a copy of that kernel
  (below). After the moment: dL/d output is freed, dL/d input joins the
  producer's gradient (summed in place when it already has one), the weight
  gradients are freed (their update has run), the saved tensors whose last
  reader this layer was are freed;
- a convolution's forward moment adds its kernel scratch (oneDNN's
  scratchpad, ``estimate.ONEDNN_CONV_SCRATCH_BYTES``); the records show no
  scratch for the backward convolutions.

Element-wise layers whose input and output have one shape (activations,
dropout, ``Add`` ...) and views write their dL/d input into dL/d output's
buffer (TensorFlow's buffer forwarding: ``ReluGrad``, ``Mul``, the identity
gradient of ``AddV2``), so they add no buffer; ``Add`` hands the same buffer
to each input. Every other layer allocates its dL/d input.

Update temporaries (``UPDATE_TEMPORARIES``), in parameter-sized buffers
besides the gradient, read off Keras 3's ``update_step`` with buffer
forwarding: SGD ``v -= g * lr`` writes ``g * lr`` into ``g`` (0); momentum
``m = m * mu - g * lr`` needs ``m * mu`` next to ``g`` (1); Adam ``m += (g -
m)(1 - b1)`` needs ``g - m`` next to ``g``, and ``v -= m alpha / (sqrt(u) +
eps)`` needs ``m alpha`` next to ``sqrt(u) + eps`` after ``g`` is freed (1).

Copy on write: a Dense or convolution kernel is read once in the forward and
that value is kept for the layer's dL/d input (``MatMul``/``Conv2DBackpropInput``
read the kernel). Its update needs only the weight gradient; when it runs
before dL/d input has read the old value, ``AssignSubVariableOp`` copies the
variable (the old buffer is still referenced). Which runs first is a race
between two ready ops; the estimate counts the copy at the layer's moment
(the safe side). The update's last step writes the new value next to one
working buffer, so a layer's update holds at most ``1 + max(temporaries,
copy)`` parameter-sized buffers: the copy and Adam's temporaries are not
counted together.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from tfprofscale.formulas.backward import layers_needing_input_grad
from tfprofscale.profiling.memory.estimate import (
    CONVOLUTION_TYPES,
    ONEDNN_CONV_SCRATCH_BYTES,
)
from tfprofscale.profiling.memory.ledger import (
    _KERNEL_LAYERS,
    DROPOUTS,
    ONEDNN_POOL_WORKSPACE,
    VIEWS,
    _compute_bytes,
    _internal_elements,
    _saved_tensors,
    _tensor_sources,
    estimate_ledger,
    variable_bytes,
)
from tfprofscale.records import LayerCost, LayerInfo, Ledger, OptimizerSpec, TrainPeak

FORWARD, BACKWARD = "forward", "backward"
#: The transient terms of a moment, in the order they are reported.
PEAK_TERMS = ("saved activations", "forward outputs", "activation gradients", "weight gradients",
              "update temporaries", "variable copies", "kernel scratch")
#: Layers whose dL/d input is written into dL/d output's buffer (same shape, element-wise gradient).
GRADIENT_IN_PLACE = frozenset({"Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Add", "Subtract", "Average",
                               "GaussianNoise"}) | DROPOUTS | VIEWS
#: Parameter-sized buffers an update keeps besides the gradient (module docstring), by optimizer class.
UPDATE_TEMPORARIES = {"SGD": 0, "Adam": 1, "AdamW": 1}
#: SGD with momentum (one slot) needs ``m * mu`` next to ``g``.
MOMENTUM_UPDATE_TEMPORARIES = 1
#: Any other optimizer: at least one (its update reads a slot and the gradient into a new tensor); not verified.
DEFAULT_UPDATE_TEMPORARIES = 1


def update_temporaries(optimizer_spec: OptimizerSpec) -> int:
    """Parameter-sized buffers one variable's update keeps besides its gradient (module docstring)."""
    name = optimizer_spec.name.removeprefix("LossScaleOptimizer(").rstrip(")")
    if name == "SGD" and optimizer_spec.slots_per_variable:
        return MOMENTUM_UPDATE_TEMPORARIES
    return UPDATE_TEMPORARIES.get(name, DEFAULT_UPDATE_TEMPORARIES)


def estimate_train_ledger(layers: Sequence[LayerInfo], costs: Sequence[LayerCost], optimizer_spec: OptimizerSpec,
                          batch_size: int, policy: str | None = None, *, input_bytes: int | None = None,
                          label_bytes: int = 0) -> Ledger:
    """``estimate_ledger`` (same arguments) with the step's peak filled in (``Ledger.peak``)."""
    ledger = estimate_ledger(layers, costs, optimizer_spec, batch_size, policy, input_bytes=input_bytes,
                             label_bytes=label_bytes)
    return with_peak(ledger, estimate_train_peak(ledger, layers, costs, optimizer_spec, policy))


def with_peak(ledger: Ledger, peak: TrainPeak) -> Ledger:
    """``ledger`` carrying ``peak`` (its other fields kept)."""
    return dataclasses.replace(ledger, peak=peak)


def estimate_train_peak(ledger: Ledger, layers: Sequence[LayerInfo], costs: Sequence[LayerCost],
                        optimizer_spec: OptimizerSpec, policy: str | None = None) -> TrainPeak:
    """The step's estimated peak: resident lines of ``ledger`` + the largest moment of the walk (module docstring)."""
    resident = sum(ledger.line(term).estimated_bytes for term in ("weights", "optimizer slots", "input and labels"))
    walk = _Walk(layers, costs, optimizer_spec, policy)
    moments = walk.forward() + walk.backward()
    phase, layer, live = max(moments, key=lambda moment: sum(moment[2].values()), default=(FORWARD, None, {}))
    live = {term: live.get(term, 0) for term in PEAK_TERMS}
    return TrainPeak(estimated_peak_bytes=resident + sum(live.values()), phase=phase, layer=layer,
                     resident_bytes=resident, live=live)


class _Walk:
    """The step's tensors, walked forward then backward; each moment is (phase, layer, {term: bytes})."""

    def __init__(self, layers: Sequence[LayerInfo], costs: Sequence[LayerCost], optimizer_spec: OptimizerSpec,
                 policy: str | None) -> None:
        self.layers = list(layers)
        self.index = {info.name: i for i, info in enumerate(self.layers)}
        self.policy = policy
        self.source = _tensor_sources(self.layers)
        self.fed = {info.name for info in self.layers if info.type == "InputLayer"}
        self.needs_input_grad = layers_needing_input_grad(self.layers)
        self.extra_update = update_temporaries(optimizer_spec)
        self.saved = self._saved(costs)               # key -> (bytes, owner index, last reader index)
        self.consumers = self._consumers()

    # -- what the backward keeps -------------------------------------------------------------------
    def _saved(self, costs: Sequence[LayerCost]) -> dict[tuple[str, ...], tuple[int, int, int]]:
        saved: dict[tuple[str, ...], tuple[int, int, int]] = {}
        for i, (info, cost) in enumerate(zip(self.layers, costs, strict=True)):
            size = _compute_bytes(info, self.policy)
            kept = [(key, elements * size) for key, elements in _saved_tensors(info, self.source)]
            kept += [(("internal", info.name), _internal_elements(info, cost) * size)]
            if info.type in DROPOUTS:
                kept.append((("mask", info.name), math.prod(info.output_shape)))
            if info.type in ONEDNN_POOL_WORKSPACE:
                kept.append((("workspace", info.name), math.prod(info.output_shape)))
            for key, size_bytes in kept:
                if size_bytes <= 0 or key[0] == "output" and key[1] in self.fed:
                    continue
                owner = self.index.get(key[1], i) if key[0] == "output" else i
                previous = saved.get(key, (0, owner, i))
                saved[key] = (max(previous[0], size_bytes), owner, min(previous[2], i))
        return saved

    def _consumers(self) -> dict[str, list[int]]:
        consumers: dict[str, list[int]] = {info.name: [] for info in self.layers}
        for i, info in enumerate(self.layers):
            for name in info.inbound:
                consumers.setdefault(self.source.get(name, name), []).append(i)
        return consumers

    def _output_bytes(self, info: LayerInfo) -> int:
        return math.prod(info.output_shape) * _compute_bytes(info, self.policy)

    @staticmethod
    def kernel_scratch(info: LayerInfo) -> int:
        """The scratch the layer's forward kernel allocates while it runs: oneDNN's convolution scratchpad
        (the backward convolutions allocate none in the records)."""
        return ONEDNN_CONV_SCRATCH_BYTES if info.type in CONVOLUTION_TYPES else 0

    # -- forward -----------------------------------------------------------------------------------
    def forward(self) -> list[tuple[str, str, dict[str, int]]]:
        """One moment per layer: saved tensors made so far + outputs no gradient reads, still to be consumed."""
        saved_keys = {key[1] for key in self.saved if key[0] == "output"}
        moments = []
        for i, info in enumerate(self.layers):
            saved = sum(size for size, owner, _ in self.saved.values() if owner <= i)
            transient = sum(self._output_bytes(other) for j, other in enumerate(self.layers[:i + 1])
                            if self._holds_unsaved_output(j, other, saved_keys)
                            and max(self.consumers.get(other.name) or [j], default=j) >= i)
            moments.append((FORWARD, info.name, {"saved activations": saved, "forward outputs": transient,
                                                 "kernel scratch": self.kernel_scratch(info)}))
        return moments

    def _holds_unsaved_output(self, j: int, info: LayerInfo, saved_keys: set[str]) -> bool:
        return (info.type not in VIEWS and info.name not in saved_keys and info.name not in self.fed
                and self.source.get(info.name) == info.name)

    # -- backward ----------------------------------------------------------------------------------
    def backward(self) -> list[tuple[str, str, dict[str, int]]]:
        """One moment per layer taking part in the backward, in reverse order (module docstring)."""
        saved = dict(self.saved)
        # the loss seeds dL/d output of every model output (a layer no other layer reads)
        read = {name for info in self.layers for name in info.inbound}
        gradients: dict[str, int] = {self.source.get(info.name, info.name): self._output_bytes(info)
                                     for info in self.layers if info.name not in read | self.fed}
        moments = []
        for i in reversed(range(len(self.layers))):
            info = self.layers[i]
            if info.name not in gradients or self.source.get(info.name) != info.name:
                continue  # no gradient reaches it, or a view (its gradient is its source's)
            d_output = gradients.pop(info.name)
            d_inputs = self._input_gradients(info)
            weights = [variable_bytes(v) for v in getattr(info.layer, "trainable_weights", None) or []]
            largest, copy = max(weights, default=0), self._kernel_copy(info)
            # the largest variable's update works in (1 + temporaries) buffers; its last step writes the
            # new value (a copy, when the old one is still read) next to one buffer: at most 1 + max(...)
            live = {"saved activations": sum(size for size, _, _ in saved.values()),
                    "activation gradients": sum(gradients.values()) + d_output + sum(d_inputs.values()),
                    "weight gradients": sum(weights),
                    "update temporaries": self.extra_update * largest if self.extra_update * largest >= copy else 0,
                    "variable copies": copy if copy > self.extra_update * largest else 0}
            moments.append((BACKWARD, info.name, live))
            self._pass_on(info, d_output, d_inputs, gradients)
            saved = {key: value for key, value in saved.items() if value[2] != i}
        return moments

    def _input_gradients(self, info: LayerInfo) -> dict[str, int]:
        """New dL/d input buffers of the layer, per inbound tensor (none when written in place)."""
        if not self.needs_input_grad.get(info.name) or info.type in GRADIENT_IN_PLACE:
            return {}
        size = _compute_bytes(info, self.policy)
        return {self.source.get(name, name): math.prod(shape) * size
                for name, shape in zip(info.inbound, info.input_shapes) if name not in self.fed}

    def _pass_on(self, info: LayerInfo, d_output: int, d_inputs: dict[str, int], gradients: dict[str, int]) -> None:
        """dL/d input joins each producer's gradient (summed in place: the larger buffer stays)."""
        if not self.needs_input_grad.get(info.name):
            return
        if info.type in GRADIENT_IN_PLACE:
            # one buffer handed to every input: counted once, under the input whose producer runs its
            # backward last (the earliest in execution order), which holds it longest
            inbound = sorted({self.source.get(name, name) for name in info.inbound} - self.fed,
                             key=lambda name: self.index.get(name, -1))
            d_inputs = {name: (d_output if k == 0 else 0) for k, name in enumerate(inbound)}
        for name, size in d_inputs.items():
            gradients[name] = max(gradients.get(name, 0), size)

    def _kernel_copy(self, info: LayerInfo) -> int:
        """A kernel the input gradient reads, copied by its update when that runs first (module docstring)."""
        if info.type not in _KERNEL_LAYERS or not self.needs_input_grad.get(info.name):
            return 0
        kernels = [variable_bytes(v) for v in getattr(info.layer, "trainable_weights", None) or [] if len(v.shape) > 1]
        return max(kernels, default=0)

