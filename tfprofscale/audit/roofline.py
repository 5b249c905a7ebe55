"""The roofline: each timed kernel against the fastest time the machine allows it.

A kernel doing ``flops`` FLOPs and moving ``bytes_moved`` bytes cannot take
less than ``max(flops / peak FLOP/s, (bytes_moved - cache) / peak bytes/s +
min(bytes_moved, cache) / cache bytes/s)`` where ``cache`` is the last-level
cache size: at most that much can be served from cache, at the measured
cache read speed (never taken below the streaming one; free when the peaks
carry no cache measurement), the rest at the memory bandwidth. The bound is named for its larger term: ``compute``,
``memory``, or ``cache-resident`` (all its data fits in the cache and reading
it from there takes longer than its arithmetic). A kernel measured at 0 us
is not judged (no flag). A kernel measured faster than its bound did less work than was
counted: the FLOPs (or bytes) attributed to it are wrong. As the peaks are
measured (a matmul, a sum), not the hardware's, tuned kernels can beat them
a little (oneDNN convolutions ran up to 1.19x the matmul's FLOP/s here): a
kernel is flagged when it beats its bound by more than ``FLAG_MARGIN``.

FLOPs of a kernel: the graph FLOPs of its own op plus those of the ops fused
into it (oneDNN's ``_MklNativeFusedConv2D`` runs Conv2D + BiasAdd + Relu), for
the runs the trace recorded (a loop body's op runs once per iteration, and on
CPU the profiler records only some of them).

Bytes moved, estimated per layer (``layer_bytes_moved``): every input
element read once, every output element written once and every parameter
read once, at the layer's dtype size (activation bytes / output elements).
The input size comes from the formula's geometry (conv, pooling, dense,
batch norm ...); a layer without it has no estimate (None). Caches and
re-reads are ignored, so this is the least traffic, which keeps the bound a
lower bound. A kernel gets its layer's bytes when it is the layer's only
computing kernel; otherwise its bytes are unknown and only the compute bound
applies.

The machine's peaks and traits come from ``profiling.runtime.machine_peaks``
(measured once and cached there, with the conditions they were measured under).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tfprofscale.profiling.runtime.machine_peaks import MachinePeaks, MachineTraits
from tfprofscale.profiling.runtime.measurement_checks import FASTER_THAN_PEAK

if TYPE_CHECKING:
    from tfprofscale.records import LayerRow, OpRow, Report

FLAG_MARGIN = 1.5

@dataclass(frozen=True)
class OpBound:
    """One timed kernel on the roofline.

    ``share_of_bound`` is roofline time / measured time: 1.0 means the
    kernel ran at the roof, 0.1 at a tenth of it. ``flagged``: measured
    more than ``FLAG_MARGIN`` times faster than its bound, so its counted
    work is too large.
    """

    name: str
    kernel: str | None
    layer: str | None
    flops: int
    bytes_moved: int | None
    arithmetic_intensity: float | None
    roofline_time_us: float
    bound: str
    measured_us: float
    share_of_bound: float | None
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Text-report lines: one, plus a warning when flagged."""
        moved = f"{self.bytes_moved:,} B" if self.bytes_moved is not None else "bytes unknown"
        intensity = (f", {self.arithmetic_intensity:.1f} FLOP/B" if self.arithmetic_intensity is not None else "")
        lines = [f"{self.name} [{self.kernel}]: {self.flops:,} FLOPs, {moved}{intensity}; "
                 f"bound {self.roofline_time_us:.1f} us ({self.bound}), measured {self.measured_us:.1f} us"
                 + (f", {self.share_of_bound:.0%} of the roofline" if self.share_of_bound is not None else "")]
        if self.flagged and self.share_of_bound is not None:
            lines.append(f"  FLAGGED: {self.name} ran {self.share_of_bound:.1f}x faster than the machine's measured "
                         f"peak allows ({self.measured_us:.1f} us measured, {self.roofline_time_us:.1f} us at the "
                         f"peak): {FASTER_THAN_PEAK}")
        return lines


def layer_input_elements(row: "LayerRow") -> int | None:
    """Elements the layer reads as input, from its formula's geometry; None if not known."""
    g = row.geometry
    if "in_h" in g and "batch" in g:
        channels = g.get("in_channels", g.get("channels"))
        return g["batch"] * g["in_h"] * g["in_w"] * channels if channels is not None else None
    if "rows" in g and "in_features" in g:
        return g["rows"] * g["in_features"]
    if "elements" in g:
        return g["elements"]
    return None


def layer_dtype_bytes(row: "LayerRow") -> int:
    """Bytes per element: activation bytes over output elements (4 when the layer allocates nothing)."""
    elements = math.prod(row.output_shape) if row.output_shape else 0
    if row.activation_bytes and elements:
        return max(1, round(row.activation_bytes / elements))
    return 4


def layer_bytes_moved(row: "LayerRow") -> int | None:
    """Input read + output written + parameters read, in bytes; None without an input size."""
    inputs = layer_input_elements(row)
    if inputs is None:
        return None
    return (inputs + row.params) * layer_dtype_bytes(row) + row.activation_bytes


def roofline_ops(report: "Report", peaks: MachinePeaks) -> list[OpBound]:
    """Every kernel that ran with counted FLOPs, against its roofline bound."""
    rows_by_name = {op.name: op for op in report.ops}
    counted = [(op, _kernel_flops(op, rows_by_name)) for op in report.ops if _ran_as_kernel(op)]
    counted = [(op, flops) for op, flops in counted if flops > 0]
    bytes_by_layer = _bytes_per_single_kernel_layer(report, [op for op, _ in counted])
    return [_bound(op, flops, bytes_by_layer.get(op.layer), peaks) for op, flops in counted]


def _ran_as_kernel(op: "OpRow") -> bool:
    return op.fused_into is None and op.time_us is not None and bool(op.occurrences)


def _kernel_flops(op: "OpRow", rows_by_name: dict[str, "OpRow"]) -> int:
    """The FLOPs of the runs the kernel's time covers: a loop body's op counts every iteration, but the
    profiler may record fewer of its runs (``occurrences`` < ``executions``): only those are held to the bound."""
    own = [op.graph_flops] + [rows_by_name[name].graph_flops for name in op.fused_ops if name in rows_by_name]
    flops = sum(flops for flops in own if flops is not None)
    if op.executions and op.occurrences and op.occurrences < op.executions:
        return round(flops * op.occurrences / op.executions)
    return flops


def _bytes_per_single_kernel_layer(report: "Report", kernels: list["OpRow"]) -> dict[str, int]:
    kernels_per_layer: dict[str | None, int] = {}
    for op in kernels:
        kernels_per_layer[op.layer] = kernels_per_layer.get(op.layer, 0) + 1
    estimates = {row.name: layer_bytes_moved(row) for row in report.layers}
    return {name: moved for name, moved in estimates.items()
            if moved is not None and kernels_per_layer.get(name) == 1}


def _bound(op: "OpRow", flops: int, bytes_moved: int | None, peaks: MachinePeaks) -> OpBound:
    compute_us = flops / peaks.flops_per_s * 1e6
    memory_us, resident = _data_us(bytes_moved, peaks)
    bound_us = max(compute_us, memory_us or 0.0)
    measured_us = float(op.time_us)
    data_bound = "cache-resident" if resident else "memory"
    return OpBound(
        name=op.name, kernel=op.kernel, layer=op.layer, flops=flops, bytes_moved=bytes_moved,
        arithmetic_intensity=flops / bytes_moved if bytes_moved else None,
        roofline_time_us=bound_us,
        bound=data_bound if memory_us is not None and memory_us > compute_us else "compute",
        measured_us=measured_us,
        share_of_bound=bound_us / measured_us if measured_us > 0 else None,
        flagged=measured_us > 0 and measured_us * FLAG_MARGIN < bound_us,
    )


def _data_us(bytes_moved: int | None, peaks: MachinePeaks) -> tuple[float | None, bool]:
    """The least time to read ``bytes_moved`` (cache first, the rest from memory), and whether all fit in cache."""
    if bytes_moved is None:
        return None, False
    from_memory = max(0, bytes_moved - (peaks.cache_bytes or 0))
    measured = getattr(peaks, "cache_bytes_per_s", None)
    from_cache_s = (bytes_moved - from_memory) / max(measured, peaks.bytes_per_s) if measured else 0.0
    return (from_memory / peaks.bytes_per_s + from_cache_s) * 1e6, from_memory == 0


def layer_features(row: "LayerRow", traits: MachineTraits) -> dict[str, float]:
    """The work of one layer, measured against the machine (unknown counts add nothing).

    ``blocked_flops`` round the channel (last) dimension up to the vector
    width; ``bytes_beyond_l2`` / ``_l3`` are the bytes moved past each cache size.
    """
    flops = float((row.graph_flops if row.graph_flops is not None else row.analytic_flops) or 0)
    elements = math.prod(row.output_shape) if row.output_shape else 0
    channels = row.output_shape[-1] if len(row.output_shape) >= 2 and row.output_shape[-1] > 0 else 1
    blocks = math.ceil(channels / traits.vector_floats) * traits.vector_floats
    moved = float(layer_bytes_moved(row) or 0)
    return {"flops": flops, "blocked_flops": flops * blocks / channels, "bytes_moved": moved,
            "bytes_beyond_l2": max(0.0, moved - traits.l2_bytes) if traits.l2_bytes else 0.0,
            "bytes_beyond_l3": max(0.0, moved - traits.l3_bytes) if traits.l3_bytes else 0.0,
            "output_elements": float(elements), "output_positions": float(elements // channels), "layers": 1.0}
