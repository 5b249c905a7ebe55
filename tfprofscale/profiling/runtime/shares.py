"""Per-layer time and share as per-step medians of the traced kernels.

A layer's time is the median over traced steps of the sum of its kernels'
self times in each step (one slow step does not move it, as it would a
mean). Its share is that time over the sum of the same statistic for every
top-level layer and for the kernels no layer claims, so shares add to 100%.
(The median over steps of all kernels' per-step total, ``kernel_time_us`` in
the totals, can be larger: a median of sums is not a sum of medians, and on
a busy machine each step has some kernel slowed.) Kernels that run at the
same time each count, so shares compare kernel work, not wall time; the
trace's busy time (the union of kernel intervals) and concurrency are in the
totals.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from tfprofscale.profiling.runtime.kernel_trace import median_of_sums

if TYPE_CHECKING:
    from tfprofscale.records import KernelTime, LayerRow, OpRow

SHARE_DEFINITION = ("Share: the layer's time over the sum of all layers' times (and kernels in no layer), each "
                    "the median over traced steps of its kernels' per-step self time")


def median_time_us(names: list[str], kernels: dict[str, "KernelTime"]) -> float | None:
    """Median over steps of the per-step summed self time of the named kernels (None: none of them ran)."""
    return median_of_sums([list(kernels[name].per_step_us) for name in names
                           if name in kernels and kernels[name].per_step_us])


def apply_step_medians(rows: list["LayerRow"], kernels: list["KernelTime"], unattributed_us: float = 0.0) -> None:
    """Set each traced layer's time to the per-step median of its kernels, and its share against the same.

    The share's denominator sums the top-level rows (``depth`` 0: a nested
    model's row already holds its inner layers) and ``unattributed_us``.
    """
    by_name = {kernel.name: kernel for kernel in kernels}
    for row in rows:
        time_us = median_time_us(row.ops, by_name)
        if time_us is None:
            continue
        row.time_us = time_us
        counted = row.graph_flops if row.graph_flops is not None else row.analytic_flops
        row.achieved_gflops = counted / (time_us * 1e3) if counted and time_us else None
    total_us = sum(row.time_us for row in rows if row.depth == 0 and row.time_us is not None) + unattributed_us
    for row in rows:
        row.time_share = row.time_us / total_us if total_us and row.time_us is not None else None


def unattributed_time_us(ops: list["OpRow"], kernels: list["KernelTime"]) -> float | None:
    """Per-step median of the kernels no layer claims (0.0 when every kernel has a layer)."""
    names = [op.name for op in ops if op.layer is None and op.time_us is not None]
    return median_time_us(names, {kernel.name: kernel for kernel in kernels}) or 0.0
