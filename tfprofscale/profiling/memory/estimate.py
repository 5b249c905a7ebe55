"""The memory an inference step needs, estimated from the layers and held against the measurement.

Estimate = parameters + the fed input + the peak, over the execution order,
of the activations live at the same time + the workspace the running layer's
kernels allocate (document 002's parameters, intermediate data and
workspace), each a named term:

- a layer's output lives from its step to the step of its last consumer (a
  model output to the end of the step);
- views (Flatten, Reshape, Dropout at inference) allocate nothing and keep
  the buffer they view alive; a ZeroPadding2D read only by Conv2D layers is
  fused into them (oneDNN's PadWithConv2D; not into a DepthwiseConv2D) and
  allocates nothing either;
- element-wise layers (activations, inference BatchNormalization, Add ...)
  write into their input's buffer when they are its last reader (TensorFlow's
  buffer forwarding), else into a new one;
- oneDNN's workspaces: a convolution's or a matrix product's scratch is what
  oneDNN allocates for it run alone (``profiling.workspace_probe``, recorded
  per layer in the report); without a probe, for a convolution ``ONEDNN_CONV_SCRATCH_BYTES`` (its jit kernels'
  scratchpad on an AVX2 CPU, TensorFlow 2.21) plus, for a single-channel
  input with a kernel larger than 1x1 (oneDNN's gemm path), one image's
  im2col matrix per intra-op thread, a rough bound. MaxPooling2D writes a
  1 B/output element workspace, freed when it finishes.

Composite layers and what a layer holds inside: when the report's rows
carry the traced graph's buffers (``graph_spans``, set at profile time by
``profiling.memory.graph_liveness``), the estimate follows the graph's ops
instead of the layers' output shapes: the peak over the step of the buffers
live at once, each charged to the layer whose op wrote it, split into
``activations`` (buffers another layer reads) and ``layer internals`` (what
the layer at the peak holds inside: an attention layer's query, key, value
and score tensors), plus that layer's workspace. A block of sublayers
writes only its own ops' buffers (a residual sum), its sublayers the rest,
so nothing is counted twice. Rows without those facts (older reports) are
estimated from their output shapes, as before.

Not modelled: the tensors inside a recurrent layer's While loop (named in
``unmodelled``, and in the audit's note).

The measurement (``report.memory``) carries the same terms measured, so the
audit explains measured minus estimated term by term.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

PARAMETER_DTYPE_BYTES = 4  # Keras keeps variables in float32, also under mixed precision
ONEDNN_CONV_SCRATCH_BYTES = 12_336
MAXPOOL_WORKSPACE_BYTES_PER_ELEMENT = 1
ALLOCATOR_TRACKING_THRESHOLD_BYTES = 262_144
ALLOCATOR_ROUNDING_BYTES = 256

VIEW_TYPES = frozenset({"Flatten", "Reshape", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                        "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity"})
FORWARDING_TYPES = frozenset({"Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "BatchNormalization", "Add",
                              "Multiply", "Subtract", "Maximum", "Minimum", "Rescaling"})
RECURRENT_TYPES = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D",
                             "ConvLSTM3D"})  # a While loop whose per-step tensors the estimate does not model
CONVOLUTION_TYPES = frozenset({"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D",
                               "Conv2DTranspose"})
TERMS = ("parameters", "input", "activations", "layer internals", "convolution scratch", "im2col", "matmul scratch",
         "max-pool workspace")
INTERNALS_TERM = "layer internals"
WORKSPACE_TERMS = ("convolution scratch", "im2col", "matmul scratch", "max-pool workspace")


@dataclass(frozen=True)
class Buffer:
    """One layer's output (0 bytes for a view), the layers it reads, and its workspace while it runs."""

    name: str
    bytes: int
    inbound: tuple[str, ...] = ()
    workspace: dict[str, int] = field(default_factory=dict)
    kind: str = "new"  # "new", "view", "forward" (may write into its input) or "input" (fed, resident)


@dataclass(frozen=True)
class LivePeak:
    """The largest transient set over the execution order: its bytes, split into terms; the layer running."""

    bytes: int
    layer: str | None
    live: tuple[str, ...]
    activation_bytes: int
    workspace: dict[str, int]


@dataclass(frozen=True)
class MemoryEstimate:
    """The estimate in named terms (``TERMS``), their total, where the peak is and what is live at it."""

    terms: dict[str, int]
    total_bytes: int
    peak_layer: str | None
    live_at_peak: tuple[str, ...]
    activation_sum_bytes: int
    chain_assumed: bool
    unmodelled: tuple[str, ...] = ()

    @property
    def parameter_bytes(self) -> int:
        """Bytes of the parameters (float32)."""
        return self.terms["parameters"]

    @property
    def workspace_bytes(self) -> int:
        """Workspace of the layer running at the peak."""
        return sum(self.terms[t] for t in WORKSPACE_TERMS)


@dataclass(frozen=True)
class MemoryCause:
    """One named part of (measured - estimate), in bytes."""

    cause: str
    bytes: int


@dataclass
class MemoryAudit:
    """The estimate against the measured peak (weights + input + in-step transient peak).

    ``error_bytes`` = measured - estimate, ``relative_error`` = error / measured;
    ``causes`` (term by term) add up to ``error_bytes``.
    """

    estimate: MemoryEstimate
    peak_bytes: int | None
    error_bytes: int | None
    relative_error: float | None
    causes: list[MemoryCause] = field(default_factory=list)
    allocator_peak_bytes: int | None = None
    note: str | None = None


def tracked_size(nbytes: int) -> int:
    """What the process-wide CPU allocator's statistics show for one allocation (oneDNN on, no BFC)."""
    if nbytes < ALLOCATOR_TRACKING_THRESHOLD_BYTES:
        return 0
    return math.ceil(nbytes / ALLOCATOR_ROUNDING_BYTES) * ALLOCATOR_ROUNDING_BYTES


def peak_live(buffers: Sequence[Buffer]) -> LivePeak:
    """Largest (live outputs + running layer's workspace) over the execution order, fed inputs excluded."""
    owner, first, last = storages(buffers)
    sizes = {name: buffers[first[name]].bytes for name in first}
    best = LivePeak(-1, None, (), 0, {})
    for step, running in enumerate(buffers):
        live = tuple(name for name in first if first[name] <= step <= last[name] and sizes[name])
        activations = sum(sizes[name] for name in live)
        total = activations + sum(running.workspace.values())
        if total > best.bytes:
            best = LivePeak(total, running.name, live, activations, dict(running.workspace))
    return best if best.layer is not None else LivePeak(0, None, (), 0, {})


def storages(buffers: Sequence[Buffer]) -> tuple[dict[str, str], dict[str, int], dict[str, int]]:
    """Which storage each layer's output is in, and each transient storage's first and last step."""
    consumers = _consumers(buffers)
    end = len(buffers) - 1
    owner: dict[str, str] = {}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for step, buffer in enumerate(buffers):
        reused = _reused_storage(buffer, step, owner, first, consumers, buffers)
        if buffer.kind == "input" or buffer.kind == "view" and reused is None:
            owner[buffer.name] = buffer.name  # resident (fed) or a view of it: not transient
            continue
        owner[buffer.name] = reused or buffer.name
        if reused is None:
            first[buffer.name] = last[buffer.name] = step
        last[owner[buffer.name]] = max(last[owner[buffer.name]], max(consumers.get(buffer.name, [end])))
    return owner, first, last


def _consumers(buffers: Sequence[Buffer]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for step, buffer in enumerate(buffers):
        for source in buffer.inbound:
            found.setdefault(source, []).append(step)
    return found


def _reused_storage(buffer: Buffer, step: int, owner: dict[str, str], first: dict[str, int],
                    consumers: dict[str, list[int]], buffers: Sequence[Buffer]) -> str | None:
    """The input storage this layer writes into: always for a view, for a forwarding layer if it dies here."""
    sources = [source for source in buffer.inbound if owner.get(source) in first]
    if buffer.kind == "view" and sources:
        return owner[sources[0]]
    if buffer.kind != "forward":
        return None
    for source in sources:
        storage = owner[source]
        readers = [s for name, o in owner.items() if o == storage for s in consumers.get(name, [len(buffers)])]
        if max(readers) <= step and buffers[first[storage]].bytes == buffer.bytes:
            return storage
    return None


def layer_buffers(rows: Sequence[Any], threads: int | None = None,
                  probed_scratch: dict[str, int] | None = None) -> list[Buffer]:
    """One Buffer per report row (in execution order), with its kind and oneDNN workspaces.

    Without ``inbound`` names in the report the layers are taken as a chain.
    ``probed_scratch`` ({layer: bytes}, measured on each convolution alone)
    replaces the modelled convolution scratch and im2col where given.
    """
    probed_scratch = probed_scratch or {}
    threads = threads or os.cpu_count() or 1
    chain = not any(getattr(row, "inbound", None) for row in rows)
    inbound = [tuple(getattr(row, "inbound", None) or ()) for row in rows]
    if chain:
        inbound = [(rows[i - 1].name,) if i and row.type != "InputLayer" else () for i, row in enumerate(rows)]
    readers: dict[str, list[str]] = {}
    for row, sources in zip(rows, inbound):
        for source in sources:
            readers.setdefault(source, []).append(row.type)
    return [Buffer(row.name, row.activation_bytes, sources, workspace(row, threads, probed_scratch.get(row.name)),
                   _kind(row, readers.get(row.name, [])))
            for row, sources in zip(rows, inbound)]


def _kind(row: Any, reader_types: list[str]) -> str:
    if row.type == "InputLayer":
        return "input"
    if row.type in VIEW_TYPES:
        return "view"
    if row.type == "ZeroPadding2D" and reader_types and all(t == "Conv2D" for t in reader_types):
        return "view"  # fused into its Conv2D (oneDNN PadWithConv2D): no buffer of its own
    return "forward" if row.type in FORWARDING_TYPES else "new"


def workspace(row: Any, threads: int, probed_scratch: int | None = None) -> dict[str, int]:
    """The named workspaces oneDNN allocates while ``row``'s layer runs, in bytes."""
    found = {}
    if probed_scratch is not None:
        found["matmul scratch" if row.type == "Dense" else "convolution scratch"] = probed_scratch
    elif row.type in CONVOLUTION_TYPES:
        found["convolution scratch"] = ONEDNN_CONV_SCRATCH_BYTES
        found["im2col"] = gemm_im2col_bytes(row.geometry, threads)
    if row.type == "MaxPooling2D":
        found["max-pool workspace"] = math.prod(row.output_shape) * MAXPOOL_WORKSPACE_BYTES_PER_ELEMENT
    return {name: size for name, size in found.items() if size}


def gemm_im2col_bytes(geometry: dict[str, Any], threads: int, dtype_bytes: int = 4) -> int:
    """One image's lowered input (Hout*Wout) x (Kh*Kw*Cin) per thread, for oneDNN's gemm path (Cin = 1, k > 1)."""
    g = geometry
    if g.get("in_channels") != 1 or g.get("kernel_h", 1) * g.get("kernel_w", 1) == 1:
        return 0
    return threads * g["out_h"] * g["out_w"] * g["kernel_h"] * g["kernel_w"] * dtype_bytes


def estimate_memory(report: Any, threads: int | None = None) -> MemoryEstimate:
    """Parameters + input + peak live activations + workspace at the peak, for a Report's layers."""
    probed = getattr(getattr(report, "memory", None), "kernel_scratch", None)
    rows = report.layers
    if rows and all(getattr(row, "graph_spans", None) is not None or row.type == "InputLayer" for row in rows):
        peak = graph_span_peak(rows, threads or os.cpu_count() or 1, probed or {})
        fed = sum(row.activation_bytes for row in rows if row.type == "InputLayer")
        written = sum(span[2] for row in rows for span in (getattr(row, "graph_spans", None) or []))
    else:
        buffers = layer_buffers(rows, threads, probed)
        peak = peak_live(buffers)
        fed = sum(b.bytes for b in buffers if b.kind == "input")
        written = sum(b.bytes for b in buffers if b.kind != "input")
    terms = {
        "parameters": sum(row.params for row in report.layers) * PARAMETER_DTYPE_BYTES,
        "input": fed or _fed_input_bytes(report),
        "activations": peak.activation_bytes,
        INTERNALS_TERM: peak.workspace.get(INTERNALS_TERM, 0),
        **{name: peak.workspace.get(name, 0) for name in WORKSPACE_TERMS},
    }
    return MemoryEstimate(terms, sum(terms.values()), peak.layer, peak.live, written,
                          chain_assumed=not any(getattr(row, "inbound", None) for row in report.layers),
                          unmodelled=tuple(row.name for row in report.layers if row.type in RECURRENT_TYPES))


def graph_span_peak(rows: Sequence[Any], threads: int, probed_scratch: dict[str, int]) -> LivePeak:
    """The largest sum of the graph's buffers live at one step, with the workspace of the layer writing then."""
    spans = [(row, *span) for row in rows for span in (getattr(row, "graph_spans", None) or [])]
    best = LivePeak(0, None, (), 0, {})
    for running, start, _, _, _ in spans:
        live = [(row, size, handed_on) for row, first, last, size, handed_on in spans if first <= start <= last]
        activations = sum(size for _, size, handed_on in live if handed_on)
        internals = sum(size for _, size, handed_on in live if not handed_on)
        space = dict(workspace(running, threads, probed_scratch.get(running.name)), **{INTERNALS_TERM: internals})
        total = activations + sum(space.values())
        if total > best.bytes:
            names = tuple(dict.fromkeys(row.name for row, _, _ in live))
            best = LivePeak(total, running.name, names, activations, space)
    return best


def _fed_input_bytes(report: Any) -> int:
    """The fed inputs' bytes the report's memory record states (a plain tf.function has no InputLayer)."""
    return getattr(getattr(report, "memory", None), "input_bytes", None) or 0


def audit_memory(report: Any) -> MemoryAudit:
    """The estimate against the measured peak, the difference split term by term."""
    estimate = estimate_memory(report)
    record = getattr(report, "memory", None)
    allocator = getattr(record, "allocator_peak_bytes", None)
    measured = report.totals.peak_bytes if record is not None else None
    if measured is None:
        why = getattr(record, "missing", None) or "the report has no measured memory (profiled before it was measured)"
        return MemoryAudit(estimate, None, None, None, allocator_peak_bytes=allocator, note=why)
    error = measured - estimate.total_bytes
    note = (f"not modelled: the per-step tensors of the recurrent layers {', '.join(estimate.unmodelled)} "
            "(a While loop's gates and state)" if estimate.unmodelled else None)
    return MemoryAudit(estimate, measured, error, error / measured if measured else None,
                       causes=memory_causes(estimate, record), allocator_peak_bytes=allocator, note=note)


def memory_causes(estimate: MemoryEstimate, record: Any) -> list[MemoryCause]:
    """Measured minus estimated, term by term; they add up to (measured total - estimate)."""
    measured = getattr(record, "measured_terms", None) or {}
    rows = [("parameters", "weights held as constants vs parameters (float32): shape constants, and identical "
                           "constants (untrained initial values) merged by TensorFlow's graph optimizer"),
            ("input", "fed input"),
            ("activations", "activations live at the peak"),
            ("workspace", "kernel workspaces at the peak (convolution and matmul scratch, im2col, max-pool workspace)")]
    estimated = dict(estimate.terms, workspace=estimate.workspace_bytes,
                     activations=estimate.terms["activations"] + estimate.terms.get(INTERNALS_TERM, 0))
    causes = [MemoryCause(label, measured[term] - estimated[term]) for term, label in rows if term in measured]
    total = (record.weights_bytes or 0) + (record.input_bytes or 0) + (record.measured_peak_bytes or 0)
    rest = total - estimate.total_bytes - sum(c.bytes for c in causes)
    if rest:
        causes.append(MemoryCause("not split into terms (the measurement carries no per-term figures)", rest))
    return [c for c in causes if c.bytes]


def set_scoped_figures(record: Any, estimate: MemoryEstimate) -> None:
    """The memory record's figures named by scope (in-step, total; measured, estimated), and the old names."""
    record.estimated_peak_bytes = estimate.total_bytes
    record.total_estimated_peak_bytes = estimate.total_bytes
    record.in_step_estimated_peak_bytes = estimate.total_bytes - estimate.terms["parameters"] - estimate.terms["input"]
    record.in_step_measured_peak_bytes = record.measured_peak_bytes
    record.total_measured_peak_bytes = (None if record.measured_peak_bytes is None else
                                        (record.weights_bytes or 0) + (record.input_bytes or 0)
                                        + record.measured_peak_bytes)
