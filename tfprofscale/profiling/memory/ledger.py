"""The train-step memory ledger: weights, gradients, optimizer slots, saved activations, temporaries, input
and labels, estimated from the layers and, where the allocation records tell, measured.

Estimated (document 003's train-time memory):

- ``weights``: every variable once, at its own dtype (float32 master weights
  under mixed precision);
- ``gradients``: one per trainable variable, at the variable's dtype;
- ``optimizer slots``: the spec's slots per trainable variable at its dtype,
  plus the optimizer's scalars (``iterations`` int64, the others float32);
- ``saved activations``: the forward tensors the backward pass reads, by
  TensorFlow's gradient rules (``pywrap_gradient_exclusions.cc``: MatMul and
  Conv2D keep their inputs, BiasAdd and Add nothing, Relu, Sigmoid, Tanh,
  Softmax, Elu keep their outputs, MaxPool both), each tensor once, at the
  layer's compute dtype (float16 under ``mixed_float16``); under mixed
  precision the compute-dtype copies of kernels that MatMul/Conv2D keep too;
  the fed input is not counted here (it is the input line);
- ``temporaries``: the largest pair of gradient buffers alive while one layer's
  backward runs (dL/d output + dL/d input, at the compute dtype);
- ``input and labels``: the fed batch.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from typing import Any, Sequence

from tfprofscale.profiling.memory.estimate import MAXPOOL_WORKSPACE_BYTES_PER_ELEMENT
from tfprofscale.profiling.memory.step_memory import Allocation
from tfprofscale.records import LayerCost, LayerInfo, Ledger, LedgerLine, OptimizerSpec

TERMS = ("weights", "gradients", "optimizer slots", "saved activations", "temporaries", "input and labels")

_DTYPE_BYTES = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2,
                "int8": 1, "uint8": 1, "bool": 1}
_MIXED_POLICIES = {"mixed_float16": 2, "mixed_bfloat16": 2}

#: Layers that keep their input(s) for the backward pass (their MatMul, Conv2D, Mul, Gather, moments read it).
KEEPS_INPUTS = frozenset({
    "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
    "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "BatchNormalization",
    "LayerNormalization", "GroupNormalization", "Multiply", "Dot", "Maximum", "Minimum", "PReLU", "LeakyReLU",
    "MultiHeadAttention", "GroupedQueryAttention", "Attention", "LSTM", "GRU", "SimpleRNN", "Bidirectional",
    # MaxPoolGrad and Max's gradient read the input as well as the output
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"})
#: Layers that keep their output (Relu, Sigmoid, Tanh, Softmax, Elu gradients read y); MaxPool keeps both.
KEEPS_OUTPUT = frozenset({"ReLU", "Softmax", "ELU", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
                          "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"})
#: Layers whose output is a view of their input (no buffer of their own).
VIEWS = frozenset({"Flatten", "Reshape", "InputLayer", "Identity", "GaussianNoise", "ActivityRegularization"})
#: Training-mode dropout keeps its boolean keep-mask: one byte per element.
DROPOUTS = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "AlphaDropout",
                      "GaussianDropout"})
#: oneDNN's max pooling writes a workspace (1 B per output element) that MaxPoolGrad reads: kept too.
ONEDNN_POOL_WORKSPACE = frozenset({"MaxPooling2D", "MaxPooling3D"})
_KERNEL_LAYERS = KEEPS_INPUTS - KEEPS_OUTPUT - {"BatchNormalization", "LayerNormalization", "GroupNormalization",
                                                "Multiply", "Dot", "Maximum", "Minimum", "LeakyReLU"}


def dtype_bytes(dtype: Any) -> int:
    """Bytes per element of a dtype given by name or object (``float32``, ``tf.float16``, ``'int64'``)."""
    name = getattr(dtype, "name", None) or str(dtype)
    if name not in _DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}")
    return _DTYPE_BYTES[name]


def model_variables(layers: Sequence[LayerInfo]) -> list[Any]:
    """Every variable of the layers' Keras objects, once (nested layers share them with their parents)."""
    seen: dict[int, Any] = {}
    for info in layers:
        for variable in getattr(info.layer, "weights", None) or []:
            seen.setdefault(id(variable), variable)
    return list(seen.values())


def variable_bytes(variable: Any) -> int:
    return math.prod(int(d) for d in variable.shape) * dtype_bytes(variable.dtype)


def trainable_totals(layers: Sequence[LayerInfo]) -> tuple[int, int]:
    """(elements, bytes) of the trainable variables: the update's size, and what a gradient accumulator
    (``accumulation_plan``'s ``accumulator_bytes``) adds."""
    trainable = [v for v in model_variables(layers) if v.trainable]
    return sum(math.prod(int(d) for d in v.shape) for v in trainable), sum(variable_bytes(v) for v in trainable)


def estimate_ledger(layers: Sequence[LayerInfo], costs: Sequence[LayerCost], optimizer_spec: OptimizerSpec,
                    batch_size: int, policy: str | None = None, *, input_bytes: int | None = None,
                    label_bytes: int = 0) -> Ledger:
    """The estimated ledger of one training step of the model made of ``layers`` (batch fixed in their shapes).

    ``policy``: a Keras dtype policy name; ``mixed_float16``/``mixed_bfloat16`` price activations at 2
    bytes, otherwise each layer's compute dtype is used. ``input_bytes`` defaults to the InputLayer
    rows' outputs (else the inputs of the layers fed by nothing) at float32.
    """
    variables = model_variables(layers)
    trainable = [v for v in variables if v.trainable]
    weights = sum(variable_bytes(v) for v in variables)
    gradients = sum(variable_bytes(v) for v in trainable)
    scalars = 8 + 4 * max(optimizer_spec.scalar_variables - 1, 0) if optimizer_spec.scalar_variables else 0
    slots = optimizer_spec.slots_per_variable * gradients + scalars
    saved, kernel_copies = _saved_activation_bytes(layers, costs, policy)
    fed = _input_bytes(layers) if input_bytes is None else input_bytes
    lines = (
        LedgerLine("weights", weights, note=f"{len(variables)} variables ({len(trainable)} trainable), own dtypes"),
        LedgerLine("gradients", gradients, note="one per trainable variable, at its dtype"),
        LedgerLine("optimizer slots", slots,
                   note=f"{optimizer_spec.name}: {optimizer_spec.slots_per_variable} per variable "
                        f"({', '.join(optimizer_spec.slot_names) or 'none'}) + {scalars} B of scalars"),
        LedgerLine("saved activations", saved,
                   note="forward tensors read by gradient ops, each once, at the compute dtype"
                        + (f"; includes {kernel_copies} B of compute-dtype kernel copies" if kernel_copies else "")),
        LedgerLine("temporaries", _temporaries(layers, policy),
                   note="largest dL/d output + dL/d input pair of one layer's backward"),
        LedgerLine("input and labels", fed + label_bytes,
                   note=f"batch {batch_size}: input {fed} B, labels {label_bytes} B"),
    )
    return Ledger(lines)


def _compute_bytes(info: LayerInfo, policy: str | None) -> int:
    if policy in _MIXED_POLICIES:
        return _MIXED_POLICIES[policy]
    return dtype_bytes(getattr(info.layer, "compute_dtype", None) or "float32")


def _saved_activation_bytes(layers: Sequence[LayerInfo], costs: Sequence[LayerCost],
                            policy: str | None) -> tuple[int, int]:
    """(saved tensor bytes, of which compute-dtype kernel copies) by the gradient rules, each tensor once."""
    source = _tensor_sources(layers)
    inputs = {info.name for info in layers if info.type == "InputLayer"}
    saved: dict[tuple[str, ...], int] = {}
    kernel_copies = 0
    for info, cost in zip(layers, costs, strict=True):
        size = _compute_bytes(info, policy)
        for key, elements in _saved_tensors(info, source):
            if key[0] == "output" and key[1] in inputs:
                continue  # the fed input: its own line
            saved[key] = max(saved.get(key, 0), elements * size)
        internal = _internal_elements(info, cost)
        if internal:
            saved[("internal", info.name)] = internal * size
        if info.type in DROPOUTS:
            saved[("mask", info.name)] = math.prod(info.output_shape)  # a bool per element
        if info.type in ONEDNN_POOL_WORKSPACE:
            saved[("workspace", info.name)] = math.prod(info.output_shape) * MAXPOOL_WORKSPACE_BYTES_PER_ELEMENT
        if info.type in _KERNEL_LAYERS and size < 4:
            kernel_copies += sum(math.prod(int(d) for d in v.shape) * size
                                 for v in getattr(info.layer, "trainable_weights", []) if len(v.shape) > 1)
    return sum(saved.values()) + kernel_copies, kernel_copies


def _tensor_sources(layers: Sequence[LayerInfo]) -> dict[str, str]:
    """Per layer name, the layer whose buffer its output is (itself, or what a view views)."""
    source: dict[str, str] = {}
    for info in layers:
        viewed = info.type in VIEWS and len(info.inbound) == 1
        source[info.name] = source.get(info.inbound[0], info.inbound[0]) if viewed else info.name
    return source


def _saved_tensors(info: LayerInfo, source: dict[str, str]) -> list[tuple[tuple[str, ...], int]]:
    """(tensor key, elements) of the layer's inputs and output its gradient reads; a key names the buffer's owner."""
    kept = []
    if info.type in KEEPS_OUTPUT or _nonlinear(info):
        kept.append((("output", source.get(info.name, info.name)), math.prod(info.output_shape)))
    if info.type in KEEPS_INPUTS:
        kept += _input_tensors(info, source)
    return kept


def _internal_elements(info: LayerInfo, cost: LayerCost) -> int:
    """Tensors made inside a layer that its gradient reads: a recurrent layer's per-step gate activations
    and states (gates + 2 per state element and step); attention's projected Q, K, V, softmax scores and
    attended values, and for MultiHeadAttention the unscaled logits too."""
    g = cost.geometry
    if info.type in ("LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D") and "steps" in g:
        return g["steps"] * g["batch"] * g["state_elements"] * (g["gates"] + 2)
    if info.type in ("MultiHeadAttention", "GroupedQueryAttention") and "score_elements" in g:
        positions = {name: math.prod(g[f"{name}_shape"][:-1]) for name in ("query", "key", "value")}
        # MultiHeadAttention's default path (Keras' TF ``dot_product_attention``) scales the logits by
        # ``tf.multiply(logits, scale)`` with the scale a tensor: Mul's gradient reads both inputs, so the
        # unscaled logits are kept beside the softmax output
        scores = g["score_elements"] * (2 if info.type == "MultiHeadAttention" else 1)
        return (scores + g["heads"] * (positions["query"] * (g["key_dim"] + g["value_dim"])
                                                    + positions["key"] * g["key_dim"]
                                                    + positions["value"] * g["value_dim"]))
    return 0


def _input_tensors(info: LayerInfo, source: dict[str, str]) -> list[tuple[tuple[str, ...], int]]:
    if len(info.inbound) == len(info.input_shapes):
        return [(("output", source.get(name, name)), math.prod(shape))
                for name, shape in zip(info.inbound, info.input_shapes)]
    return [(("input", info.name, str(i)), math.prod(shape)) for i, shape in enumerate(info.input_shapes)]


def _nonlinear(info: LayerInfo) -> bool:
    """A layer applying a nonlinear activation keeps its output or pre-activation (output-sized)."""
    activation = getattr(info.layer, "activation", None)
    return activation is not None and getattr(activation, "__name__", "linear") != "linear"


def _temporaries(layers: Sequence[LayerInfo], policy: str | None) -> int:
    pairs = [(math.prod(info.output_shape) + sum(math.prod(s) for s in info.input_shapes)) * _compute_bytes(info, policy)
             for info in layers if info.type not in VIEWS and info.input_shapes]
    return max(pairs, default=0)


def _input_bytes(layers: Sequence[LayerInfo]) -> int:
    fed = [info.output_shape for info in layers if info.type == "InputLayer"]
    if not fed:
        fed = [shape for info in layers if not info.inbound for shape in info.input_shapes]
    return sum(math.prod(shape) * 4 for shape in fed)


# -- measured: the allocation records of one traced train step -----------------------------------------

FORWARD, BACKWARD, OPTIMIZER = "forward", "backward", "optimizer"
#: Keras 3 optimizers name their scope after the class in snake case (``adam``, ``sgd_1``, ``rm_sprop``, ``adam_w``).
OPTIMIZER_SCOPE = re.compile(r"^(sgd|adam|adam_w|adamax|nadam|rm_sprop|adagrad|adadelta|lion|ftrl|lamb|adafactor"
                             r"|loss_scale_optimizer)(_\d+)?/")


def op_phase(op_name: str, optimizer_scope: re.Pattern[str] = OPTIMIZER_SCOPE) -> str:
    """``backward`` for gradient ops (``gradient_tape/...``), ``optimizer`` for ops under the optimizer's
    scope, ``forward`` for the rest (the model and the loss)."""
    if op_name.startswith("gradient_tape/") or "/gradient_tape/" in op_name:
        return BACKWARD
    return OPTIMIZER if optimizer_scope.match(op_name) else FORWARD


def measured_ledger_terms(ledger: Ledger, allocations: Sequence[Allocation],
                          total_measured_bytes: int | None = None,
                          optimizer_scope: re.Pattern[str] = OPTIMIZER_SCOPE) -> Ledger:
    """``ledger`` with measured bytes filled in where one traced train step's allocation records tell.

    The records (``step_memory.Allocation``, one step, one memory space) see
    the step's transient tensors only: variables (weights, slots) and the fed
    batch are not in them, so those lines stay None. Measured:

    - ``saved activations``: forward tensors (not kernel temporaries) live when
      the model's forward ends (its last allocation under the model's scope):
      what the forward leaves for the backward;
    - ``gradients``: gradient-op tensors (dL/dX and dL/dW buffers) live at the
      step's transient peak -- TensorFlow applies a variable's update as soon
      as its gradient is ready, so the weight gradients are never all live at once;
    - ``temporaries``: kernel temporaries and optimizer-op tensors live at the peak.
    """
    ordered = sorted(allocations, key=lambda a: (a.micros, a.bytes < 0))
    phases = [op_phase(a.op, optimizer_scope) for a in ordered]
    if BACKWARD not in phases:
        return dataclasses.replace(ledger, total_measured_bytes=total_measured_bytes)
    forward_end = _model_forward_end(ordered, phases)
    peak_end = _peak_index(ordered) + 1
    measured = {"saved activations": _live_bytes(ordered[:forward_end], phases, {FORWARD}),
                "gradients": _live_bytes(ordered[:peak_end], phases, {BACKWARD}),
                "temporaries": _live_bytes(ordered[:peak_end], phases, {OPTIMIZER}, temporaries=True)}
    lines = tuple(LedgerLine(line.term, line.estimated_bytes, measured.get(line.term, line.measured_bytes), line.note)
                  for line in ledger.lines)
    return dataclasses.replace(ledger, lines=lines, total_measured_bytes=total_measured_bytes)


def _model_forward_end(ordered: Sequence[Allocation], phases: Sequence[str]) -> int:
    """One past the last allocation of the model's own forward ops: those under the name scope most
    forward ops share (``cnn_1/``), not the loss. Every gradient op that reads an activation waits for
    the loss, so what the forward leaves live then is what the backward keeps (gradient ops that only
    read shapes may run earlier, and are not forward)."""
    scopes = Counter(a.op.split("/", 1)[0] for a, phase in zip(ordered, phases) if phase == FORWARD and "/" in a.op)
    if not scopes:
        return 0
    model_scope = scopes.most_common(1)[0][0] + "/"
    return 1 + max(i for i, (a, phase) in enumerate(zip(ordered, phases))
                   if phase == FORWARD and a.op.startswith(model_scope) and a.bytes > 0)


def _peak_index(ordered: Sequence[Allocation]) -> int:
    total, best, index = 0, 0, 0
    for i, allocation in enumerate(ordered):
        total += allocation.bytes
        if total > best:
            best, index = total, i
    return index


def _live_bytes(prefix: Sequence[Allocation], phases: Sequence[str], wanted: set[str],
                temporaries: bool = False) -> int:
    """Bytes allocated in ``prefix`` by ops of the ``wanted`` phases and not freed in it; kernel
    temporaries (of any phase) count only when ``temporaries`` is set, and then always."""
    open_: dict[tuple[str, str, int], int] = {}
    for allocation, phase in zip(prefix, phases):
        if not _counted(allocation, phase, wanted, temporaries):
            continue
        key = (allocation.op, allocation.allocator, abs(allocation.bytes))
        open_[key] = open_.get(key, 0) + (1 if allocation.bytes > 0 else -1)
    return sum(size * max(count, 0) for (_, _, size), count in open_.items())


def _counted(allocation: Allocation, phase: str, wanted: set[str], temporaries: bool) -> bool:
    if allocation.tensor.endswith(" (temporary)"):
        return temporaries
    return phase in wanted
