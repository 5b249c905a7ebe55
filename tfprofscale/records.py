"""Typed records passed between the pipeline stages.

Each stage (loading, tracing, graph_stats, analytic, runtime, report) takes
and returns these plain dataclasses, so a stage can be tested and replaced
alone. Counting conventions: ``flops`` counts a multiply-add as 2 operations
(TensorFlow's profiler does the same), ``macs`` counts it as 1. ``None``
always means "not known / no formula", never zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerCost:
    """Hand-formula cost of one layer for one forward pass of the whole batch.

    ``flops``/``macs`` are None when the layer type has no formula
    (``supported`` is then False). ``terms`` splits ``flops`` into named
    parts (``multiply_adds``, ``bias_adds``, ``activations``,
    ``comparisons``, ``padded_taps`` ...) and ``geometry`` keeps the numbers
    the formulas were computed from (kernel, channels, output size, batch,
    stride, padding), so that other conventions can be evaluated later.
    """

    layer_type: str
    supported: bool
    flops: int | None
    macs: int | None
    params: int
    output_elements: int
    activation_bytes: int
    receptive_field: int | None = None
    jump: int | None = None
    terms: dict[str, int] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a traced model, with the batch size fixed in its shapes.

    ``scope`` is the graph name scope the layer's ops were created under
    (Keras uniquifies scopes inside ``tf.function``, so it is recorded at
    call time, not guessed from the name). ``inbound`` names the layers
    whose outputs feed this one. ``layer`` is the Keras layer object, or
    None for a name-scope group of a plain ``tf.function``. A layer of a
    nested model is named by its path (``mobilenetv2_1.00_96/Conv1``);
    ``parent`` is the path of the enclosing model or composite layer (None
    at the top) and ``depth`` its nesting level (0 at the top).
    """

    name: str
    type: str
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    scope: str | None = None
    inbound: tuple[str, ...] = ()
    layer: Any = field(default=None, repr=False, compare=False)
    parent: str | None = None
    depth: int = 0


@dataclass(frozen=True)
class LiveTensor:
    """A tensor live at the memory peak: its name, the op and layer that made it, its size."""

    tensor: str
    op: str
    layer: str | None
    bytes: int


@dataclass
class MemoryRecord:
    """Memory of one inference step, measured and estimated, in bytes.

    ``measured_peak_bytes`` is the in-step transient peak from the
    allocation records of one traced step; ``weights_bytes`` and
    ``input_bytes`` are resident around it. ``allocator_*`` are the
    process-wide allocator's figures, None where it keeps no statistics.
    ``missing`` says in one line why the measured figures are absent.
    ``space_peaks`` is the measured transient peak per memory space
    (``host``, and ``device`` for a GPU's allocator). ``measured_terms``
    splits weights + input + transient peak into the terms of the estimate
    (``parameters``, ``input``, ``activations``, ``workspace``).
    ``memory_trace`` is the ``--memory-trace`` run's trace folder, or why it did not run.
    ``kernel_scratch`` is each Conv2D and Dense layer's oneDNN scratch, probed alone (the estimate's workspace).
    """

    measured_peak_bytes: int | None = None
    weights_bytes: int | None = None
    input_bytes: int | None = None
    estimated_peak_bytes: int | None = None
    tf_estimated_peak_bytes: int | None = None
    allocator_peak_bytes: int | None = None
    allocator_resident_bytes: int | None = None
    peak_op: str | None = None
    peak_layer: str | None = None
    live_at_peak: list[LiveTensor] = field(default_factory=list)
    estimate_terms: dict[str, int] = field(default_factory=dict)
    missing: str | None = None
    space_peaks: dict[str, int] = field(default_factory=dict)
    measured_terms: dict[str, int] = field(default_factory=dict)
    estimated_peak_layer: str | None = None
    memory_trace: str | None = None
    kernel_scratch: dict[str, int] = field(default_factory=dict)
    ledger: dict[str, Any] | None = None  # --train: the train-step ledger (Ledger.as_dict())


# -- the training step (issue 15): backward costs, optimizer state, the memory ledger, batch limits ----


@dataclass(frozen=True)
class BackwardCost:
    """Hand-formula cost of one layer's backward pass for the whole batch, in flops.

    ``input_grad_flops`` is dL/dX (0 when no upstream layer needs it: the first
    layer, or one whose input comes from untrainable layers only);
    ``weight_grad_flops`` is dL/dW for every trainable weight (0 for a layer
    without trainable weights). Either is None when the layer type has no
    backward formula (``supported`` False), never 0. ``terms`` splits both
    (``input_grad_*``/``weight_grad_*`` names), ``note`` says which convention
    or why unsupported.
    """

    layer_type: str
    supported: bool
    input_grad_flops: int | None
    weight_grad_flops: int | None
    terms: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    @property
    def flops(self) -> int | None:
        """Both gradients, or None if either is unknown."""
        if self.input_grad_flops is None or self.weight_grad_flops is None:
            return None
        return self.input_grad_flops + self.weight_grad_flops


@dataclass(frozen=True)
class OptimizerSpec:
    """What an optimizer keeps and does per trainable parameter element.

    ``slots_per_variable`` counts the arrays of a variable's shape it keeps
    (Adam: momentum and velocity = 2; amsgrad, EMA and a gradient accumulator
    one more each); ``slot_names`` names them. ``update_flops_per_element`` is
    the arithmetic of one ``apply`` per parameter element, read off Keras 3's
    ``update_step`` (SGD 2, momentum 4, Adam 12 ...). ``scalar_variables`` are
    the optimizer's own scalars (``iterations``, ``learning_rate``) kept once.
    """

    name: str
    slots_per_variable: int
    update_flops_per_element: int
    slot_names: tuple[str, ...] = ()
    scalar_variables: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class LedgerLine:
    """One term of the train-step memory ledger: estimated, and measured where the records tell (else None)."""

    term: str
    estimated_bytes: int
    measured_bytes: int | None = None
    note: str = ""


@dataclass(frozen=True)
class Ledger:
    """Train-step memory, term by term (weights, gradients, optimizer slots, saved activations,
    temporaries, input and labels). ``total_measured_bytes`` is the measured peak of the step
    (resident + transient), when known; the measured lines need not add up to it."""

    lines: tuple[LedgerLine, ...]
    total_measured_bytes: int | None = None

    @property
    def total_estimated_bytes(self) -> int:
        return sum(line.estimated_bytes for line in self.lines)

    def line(self, term: str) -> LedgerLine:
        """The line of ``term``; KeyError if absent."""
        for line in self.lines:
            if line.term == term:
                return line
        raise KeyError(term)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{lines: [{term, estimated_bytes, measured_bytes, note}], total_*}``."""
        return {"lines": [vars(line).copy() for line in self.lines],
                "total_estimated_bytes": self.total_estimated_bytes,
                "total_measured_bytes": self.total_measured_bytes}


@dataclass(frozen=True)
class MaxBatch:
    """The largest batch whose measured peak fits ``budget_bytes``, and the next batch's peak that does not.

    ``estimated_peak_bytes`` is the affine fit's peak at ``batch_size``;
    ``next_batch_measured_peak_bytes`` is None only when ``batch_size`` is the
    search's upper limit. ``measured`` keeps every (batch, peak) measured.
    """

    budget_bytes: int
    batch_size: int
    estimated_peak_bytes: int
    measured_peak_bytes: int
    next_batch_measured_peak_bytes: int | None
    measured: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AccumulationPlan:
    """Reach ``target_batch`` by accumulating gradients over ``steps`` micro-batches of ``micro_batch``.

    ``extra_bytes``: the accumulators (one per trainable variable at its dtype;
    0 when one step suffices); ``step_time_ms``: one micro-batch step as
    measured, so the target batch costs ``steps * step_time_ms``; FLOPs per
    example are unchanged. ``micro_peak_bytes`` is the measured peak at the
    micro-batch plus the accumulators.
    """

    target_batch: int
    micro_batch: int
    steps: int
    extra_bytes: int
    step_time_ms: float | None
    micro_peak_bytes: int | None = None

    @property
    def target_step_time_ms(self) -> float | None:
        return None if self.step_time_ms is None else self.steps * self.step_time_ms
