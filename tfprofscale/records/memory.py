"""Records of one step's memory: the tensors live at the peak and the measured and estimated figures."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LiveTensor:
    """A tensor live at the memory peak: its name, the op and layer that made it, its size."""

    tensor: str
    op: str
    layer: str | None
    bytes: int


@dataclass(frozen=True)
class LiveStep:
    """One point of the step's live-bytes timeline: after the op's allocation records, the in-step live bytes.

    ``live_bytes`` is the largest running sum over that op's consecutive records (so the timeline's
    maximum is the measured transient peak); ``layer`` is the layer the op belongs to, None if none.
    """

    op: str
    layer: str | None
    live_bytes: int


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

    Every figure's scope is in its name: ``in_step_*`` is what the step
    allocates on top of the resident weights and fed input (activations,
    layer internals, workspace); ``total_*`` is weights + input + that.
    ``measured_peak_bytes`` (= ``in_step_measured_peak_bytes``) and
    ``estimated_peak_bytes`` (= ``total_estimated_peak_bytes``, a different
    scope) are the old names, kept for one version.
    ``live_timeline`` is the measured live bytes over the step in execution order (``LiveStep`` per op,
    see ``profiling.memory.live_timeline``), empty when the step was not measured.
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
    in_step_measured_peak_bytes: int | None = None
    in_step_estimated_peak_bytes: int | None = None
    total_measured_peak_bytes: int | None = None
    total_estimated_peak_bytes: int | None = None
    ledger: dict[str, Any] | None = None  # --train: the train-step ledger (Ledger.as_dict())
    live_timeline: list[LiveStep] = field(default_factory=list)
