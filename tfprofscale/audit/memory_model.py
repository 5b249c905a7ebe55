"""Document 002's memory model against the allocator's peak.

The memory an inference step needs is three parts (document 002):
parameters, intermediate data and workspace. Intermediate data is the peak
of the activations *live at the same time* over the execution order, not
their sum: a layer's output lives from the step that writes it to the step
of its last consumer (a model output to the end), and a view (Flatten,
Reshape, Dropout: 0 bytes) keeps the buffer it views alive. For a chain that
is the largest input + output pair. The workspace is document 003's
"memory for convolutions": the im2col matrix of convolution lowering,
(N * Hout * Wout) x (Kh * Kw * Cin), an upper bound, live only while its
layer runs.

What the allocator shows (measured on TensorFlow 2.21, CPU, oneDNN on): the
peak of ``tf.config.experimental.get_memory_info('CPU:0')`` only includes
allocations of at least ``ALLOCATOR_TRACKING_THRESHOLD_BYTES`` (262,144 B:
262,140 B never shows, 262,144 B shows as 262,144) and rounds each one up to
``ALLOCATOR_ROUNDING_BYTES`` (262,148 B shows as 262,400). Smaller tensors
go to oneDNN's small-allocation path, which the statistics do not count.
Larger ones come from a pooling (BFC) allocator that may serve a request
with a whole free chunk of up to twice its size: a batch-16 Conv2D whose
only output is 3,211,264 B raised the peak by 4,194,304 B. With oneDNN off
the CPU allocator keeps no statistics at all. The model is therefore also
evaluated as the allocator would see it ("tracked"), and what it leaves
over is named, not hidden.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

ALLOCATOR_TRACKING_THRESHOLD_BYTES = 262_144
ALLOCATOR_ROUNDING_BYTES = 256
PARAMETER_DTYPE_BYTES = 4  # Keras keeps variables in float32, also under mixed precision


@dataclass(frozen=True)
class Buffer:
    """One layer's output, the layers it reads, and the workspace it needs while it runs."""

    name: str
    bytes: int
    inbound: tuple[str, ...] = ()
    workspace_bytes: int = 0


@dataclass(frozen=True)
class LivePeak:
    """The largest live set over the execution order: its bytes, the layer running, what is live."""

    bytes: int
    layer: str | None
    live: tuple[str, ...]


@dataclass(frozen=True)
class MemoryEstimate:
    """Parameters + peak of live activations + workspace, in full and as the allocator sees it.

    ``total_bytes`` = parameters + the largest (live activations + running
    layer's workspace); ``tracked_*`` are the same sums counting only what
    the allocator's statistics show (``tracked_size``), with and without the
    workspace bound; ``tracked_resident_bytes`` is what should be resident
    before a step (parameters and the input), as the allocator sees it.
    """

    parameter_bytes: int
    parameter_tensor_bytes: tuple[int, ...]
    activation_peak_bytes: int
    activation_sum_bytes: int
    workspace_max_bytes: int
    total_bytes: int
    peak_layer: str | None
    live_at_peak: tuple[str, ...]
    input_bytes: int
    tracked_total_bytes: int
    tracked_unrounded_bytes: int
    tracked_without_workspace_bytes: int
    tracked_resident_bytes: int
    chain_assumed: bool


@dataclass(frozen=True)
class MemoryCause:
    """One named part of (allocator peak - estimate), in bytes."""

    cause: str
    bytes: int


@dataclass
class MemoryAudit:
    """The estimate against the allocator peak.

    ``error_bytes`` = peak - estimate, ``relative_error`` = error / peak;
    ``causes`` add up to ``error_bytes``.
    """

    estimate: MemoryEstimate
    peak_bytes: int | None
    resident_bytes: int | None
    error_bytes: int | None
    relative_error: float | None
    causes: list[MemoryCause] = field(default_factory=list)
    note: str | None = None


def tracked_size(nbytes: int) -> int:
    """What the allocator's statistics show for one allocation of ``nbytes``."""
    if nbytes < ALLOCATOR_TRACKING_THRESHOLD_BYTES:
        return 0
    return math.ceil(nbytes / ALLOCATOR_ROUNDING_BYTES) * ALLOCATOR_ROUNDING_BYTES


def peak_live(buffers: Sequence[Buffer], size: Callable[[int], int] = lambda n: n) -> LivePeak:
    """Largest (live outputs + running layer's workspace) over the execution order.

    ``size`` maps bytes to what is counted (e.g. ``tracked_size``).
    """
    first, last = _lifetimes(buffers)
    best = LivePeak(0, None, ())
    for step, running in enumerate(buffers):
        live = tuple(name for name in first if first[name] <= step <= last[name])
        total = sum(size(buffers[first[name]].bytes) for name in live) + size(running.workspace_bytes)
        if total > best.bytes or best.layer is None:
            best = LivePeak(total, running.name, live)
    return best


def _lifetimes(buffers: Sequence[Buffer]) -> tuple[dict[str, int], dict[str, int]]:
    """First and last step of each storage (a view's output shares the storage of its input)."""
    index = {buffer.name: step for step, buffer in enumerate(buffers)}
    owner: dict[str, str] = {}
    for buffer in buffers:
        viewed = buffer.inbound[0] if buffer.bytes == 0 and buffer.inbound else None
        owner[buffer.name] = owner[viewed] if viewed in owner else buffer.name
    first = {name: index[name] for name in set(owner.values())}
    last = dict(first)
    consumed = set()
    for step, buffer in enumerate(buffers):
        for source in buffer.inbound:
            if source in owner:
                last[owner[source]] = max(last[owner[source]], step)
                consumed.add(source)
    for buffer in buffers:
        if buffer.name not in consumed:
            last[owner[buffer.name]] = len(buffers) - 1
    return first, last


def im2col_workspace_bytes(layer_type: str, geometry: dict[str, Any], dtype_bytes: int) -> int:
    """Bytes of the lowered input matrix (N*Hout*Wout) x (Kh*Kw*Cin) of a convolution; 0 otherwise.

    A 1x1 convolution with stride 1 is already a matrix product: no lowering.
    """
    if layer_type not in ("Conv2D", "DepthwiseConv2D") or "kernel_h" not in geometry:
        return 0
    g = geometry
    if g["kernel_h"] * g["kernel_w"] == 1 and g["stride_h"] == g["stride_w"] == 1:
        return 0
    rows = g["batch"] * g["out_h"] * g["out_w"]
    return rows * g["kernel_h"] * g["kernel_w"] * g["in_channels"] * dtype_bytes


def parameter_tensors(layer_type: str, geometry: dict[str, Any], params: int) -> list[int]:
    """Element counts of a layer's variables (kernel, bias ...), as separate allocations."""
    g = geometry
    if layer_type == "Conv2D" and "kernel_h" in g:
        kernel = g["kernel_h"] * g["kernel_w"] * (g["in_channels"] // g["groups"]) * g["out_channels"]
        return _with_bias(kernel, g["out_channels"], g["use_bias"])
    if layer_type == "DepthwiseConv2D" and "kernel_h" in g:
        return _with_bias(g["kernel_h"] * g["kernel_w"] * g["out_channels"], g["out_channels"], g["use_bias"])
    if layer_type == "Dense" and "in_features" in g:
        return _with_bias(g["in_features"] * g["out_features"], g["out_features"], g["use_bias"])
    if layer_type == "BatchNormalization" and g.get("channels"):
        return [g["channels"]] * (params // g["channels"])
    return [params] if params else []


def _with_bias(kernel: int, bias: int, use_bias: bool) -> list[int]:
    return [kernel, bias] if use_bias else [kernel]


def estimate_memory(report: Any) -> MemoryEstimate:
    """The three-part estimate of one profile Report (its layers in execution order).

    Uses each layer's ``inbound`` names when the report carries them, else
    assumes a chain (each layer reads the one before).
    """
    dtype_bytes = _activation_dtype_bytes(report.layers)
    chain_assumed = not any(getattr(row, "inbound", None) for row in report.layers)
    buffers = [_buffer(row, report.layers[i - 1].name if i else None, dtype_bytes)
               for i, row in enumerate(report.layers)]
    tensors = tuple(n * PARAMETER_DTYPE_BYTES for row in report.layers
                    for n in parameter_tensors(row.type, row.geometry, row.params))
    without_workspace = [Buffer(b.name, b.bytes, b.inbound) for b in buffers]
    full, tracked = peak_live(buffers), peak_live(buffers, tracked_size)
    unrounded = peak_live(buffers, lambda n: n if n >= ALLOCATOR_TRACKING_THRESHOLD_BYTES else 0)
    input_bytes = sum(b.bytes for b, row in zip(buffers, report.layers) if row.type == "InputLayer")
    tracked_parameters = sum(tracked_size(n) for n in tensors)
    return MemoryEstimate(
        parameter_bytes=sum(tensors), parameter_tensor_bytes=tensors,
        activation_peak_bytes=peak_live(without_workspace).bytes,
        activation_sum_bytes=sum(b.bytes for b in buffers),
        workspace_max_bytes=max((b.workspace_bytes for b in buffers), default=0),
        total_bytes=sum(tensors) + full.bytes, peak_layer=full.layer, live_at_peak=full.live,
        input_bytes=input_bytes,
        tracked_total_bytes=tracked_parameters + tracked.bytes,
        tracked_unrounded_bytes=sum(n for n in tensors if n >= ALLOCATOR_TRACKING_THRESHOLD_BYTES) + unrounded.bytes,
        tracked_without_workspace_bytes=tracked_parameters + peak_live(without_workspace, tracked_size).bytes,
        tracked_resident_bytes=tracked_parameters + tracked_size(input_bytes),
        chain_assumed=chain_assumed,
    )


def _buffer(row: Any, previous: str | None, dtype_bytes: int) -> Buffer:
    inbound = tuple(getattr(row, "inbound", None) or ())
    if not inbound and previous is not None and row.type != "InputLayer":
        inbound = (previous,)
    return Buffer(row.name, row.activation_bytes, inbound,
                  im2col_workspace_bytes(row.type, row.geometry, dtype_bytes))


def _activation_dtype_bytes(rows: Sequence[Any]) -> int:
    for row in rows:
        elements = math.prod(row.output_shape) if row.output_shape else 0
        if row.activation_bytes and elements:
            return row.activation_bytes // elements
    return 4


def audit_memory(report: Any) -> MemoryAudit:
    """The estimate against the report's allocator peak, the error split into named causes."""
    estimate = estimate_memory(report)
    peak, resident = report.totals.peak_bytes, report.totals.resident_bytes
    if peak is None:
        return MemoryAudit(estimate, None, resident, None, None, note=(
            "no allocator statistics: on CPU TensorFlow keeps them only with oneDNN on "
            "(TF_ENABLE_ONEDNN_OPTS=1); nothing to compare with"))
    error = peak - estimate.total_bytes
    return MemoryAudit(estimate, peak, resident, error, error / peak if peak else None,
                       causes=[c for c in memory_causes(estimate, peak, resident) if c.bytes])


def memory_causes(estimate: MemoryEstimate, peak_bytes: int, resident_bytes: int | None) -> list[MemoryCause]:
    """Named parts that add up exactly to ``peak_bytes - estimate.total_bytes``."""
    threshold = estimate.tracked_unrounded_bytes - estimate.total_bytes
    rounding = estimate.tracked_total_bytes - estimate.tracked_unrounded_bytes
    workspace_floor = estimate.tracked_without_workspace_bytes
    reached = min(max(peak_bytes, workspace_floor), estimate.tracked_total_bytes)
    workspace = reached - estimate.tracked_total_bytes
    rest = peak_bytes - reached
    causes = [
        MemoryCause(f"tensors under the allocator's {ALLOCATOR_TRACKING_THRESHOLD_BYTES:,} B tracking "
                    "threshold are not in its statistics", threshold),
        MemoryCause(f"allocations rounded up to {ALLOCATOR_ROUNDING_BYTES} B", rounding),
        MemoryCause("im2col workspace bound not seen by the allocator (oneDNN convolutions build no im2col "
                    "matrix; a peak above the no-workspace estimate may be scratchpad or pooling)", workspace),
    ]
    return causes + _rest_causes(rest, estimate, resident_bytes)


def _rest_causes(rest: int, estimate: MemoryEstimate, resident_bytes: int | None) -> list[MemoryCause]:
    """What neither the threshold nor the workspace explains, split at the start of the step."""
    transient = rest
    causes = []
    if resident_bytes is not None:
        held = resident_bytes - estimate.tracked_resident_bytes
        label = ("buffers TensorFlow holds before the step beyond the parameters and the input" if held > 0
                 else "parameters or input not resident in the allocator before the step")
        causes.append(MemoryCause(label, held))
        transient -= held
    label = ("not in the model, during the step: allocator pooling (a request served by a whole free "
             "chunk of up to twice its size) or tensors kept for fused kernels and oneDNN scratchpads"
             if transient > 0 else
             "fewer bytes live than modelled: outputs written into their dead input's buffer "
             "(buffer forwarding) or freed earlier")
    return causes + [MemoryCause(label, transient)]
