"""Records of a training step: backward costs, optimizer state, the memory ledger, batch limits."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
class TrainPeak:
    """The train step's peak memory estimated by walking the step in execution order
    (``profiling/memory/train_peak.py``): ``resident_bytes`` (weights, optimizer slots, input and
    labels) + the transient ``live`` terms at the largest moment, which is ``phase`` (``forward`` or
    ``backward``) at ``layer``."""

    estimated_peak_bytes: int
    phase: str
    layer: str | None
    resident_bytes: int
    live: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MeasuredTrainPeak:
    """The transient peak of one traced train step's allocation records (``train_peak_measured``).

    ``transient_peak_bytes`` counts a variable's copy-on-write buffer as live only until the layer's
    gradient op that still read the old value has run (the old buffer's free is not in the records);
    ``records_peak_bytes`` is the plain running sum, where every copy stays live to the end.
    ``phase`` and ``op`` name the allocation at the peak; ``live`` splits it by phase."""

    transient_peak_bytes: int
    records_peak_bytes: int
    phase: str
    op: str
    variable_copy_bytes: int
    live: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Ledger:
    """Train-step memory, term by term (weights, gradients, optimizer slots, saved activations,
    temporaries, input and labels). ``total_measured_bytes`` is the measured peak of the step
    (resident + transient), when known; the measured lines need not add up to it. ``peak`` is the
    liveness-aware estimate of the step's peak (None unless computed: ``estimate_train_ledger``)."""

    lines: tuple[LedgerLine, ...]
    total_measured_bytes: int | None = None
    peak: TrainPeak | None = None

    @property
    def estimated_peak_bytes(self) -> int | None:
        """The walk's peak (``peak.estimated_peak_bytes``), or None when not computed."""
        return self.peak.estimated_peak_bytes if self.peak else None

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
        """JSON-ready: ``{lines: [{term, estimated_bytes, measured_bytes, note}], total_*, estimated_peak_bytes,
        peak: {estimated_peak_bytes, phase, layer, resident_bytes, live} or None}``."""
        return {"lines": [vars(line).copy() for line in self.lines],
                "total_estimated_bytes": self.total_estimated_bytes,
                "total_measured_bytes": self.total_measured_bytes,
                "estimated_peak_bytes": self.estimated_peak_bytes,
                "peak": None if self.peak is None else {**vars(self.peak), "live": dict(self.peak.live)}}


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
