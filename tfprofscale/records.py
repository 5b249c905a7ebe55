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
    live_timeline: list[LiveStep] = field(default_factory=list)
