"""Per-layer time and share as per-step medians of the traced kernels, rolled up through nesting.

A layer's own time (``self_time_us``) is the median over traced steps of the
sum of the self times of the kernels charged to it in each step (one slow
step does not move it, as it would a mean). A composite layer's time (a
block with sublayers) is its own time plus its sublayers' times, so a
parent's share is exactly the sum of its children's shares (plus its own
ops'). The share's denominator is the sum of every row's own time and of the
kernels no layer claims: the shares of the rows without sublayers, with the
parents' own shares, add to 100%. (The median over steps of all kernels'
per-step total, ``kernel_time_us`` in the totals, can be larger: a median of
sums is not a sum of medians, and on a busy machine each step has some
kernel slowed.) Kernels that run at the same time each count, so shares
compare kernel work, not wall time; the trace's busy time (the union of
kernel intervals) and concurrency are in the totals.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from tfprofscale.profiling.runtime.kernel_trace import median_of_sums

if TYPE_CHECKING:
    from tfprofscale.records import KernelTime, LayerRow, OpRow

SHARE_DEFINITION = ("Share: the layer's time over the sum of all layers' own times (and kernels in no layer), each "
                    "the median over traced steps of its kernels' per-step self time; a composite layer's time and "
                    "share include its sublayers' (its FLOPs columns are its own ops')")


def median_time_us(names: list[str], kernels: dict[str, "KernelTime"]) -> float | None:
    """Median over steps of the per-step summed self time of the named kernels (None: none of them ran)."""
    return median_of_sums([list(kernels[name].per_step_us) for name in names
                           if name in kernels and kernels[name].per_step_us])


def apply_step_medians(rows: list["LayerRow"], kernels: list["KernelTime"], unattributed_us: float = 0.0) -> None:
    """Set each traced layer's own time to the per-step median of its kernels, then roll up times and shares."""
    by_name = {kernel.name: kernel for kernel in kernels}
    for row in rows:
        time_us = median_time_us(row.timed_ops, by_name)
        if time_us is not None:
            row.self_time_us = time_us
        elif row.ops and not row.time_us:  # no per-step series and nothing seen: unknown, not 0
            row.time_us = None
    roll_up_nested_times(rows, unattributed_us)


def roll_up_nested_times(rows: list["LayerRow"], unattributed_us: float = 0.0) -> None:
    """Each row's time = its own + its sublayers' times; share = time over all own times + ``unattributed_us``."""
    for row in rows:
        if row.self_time_us is None:
            row.self_time_us = row.time_us
    children: dict[str, list["LayerRow"]] = {}
    for row in rows:
        if row.parent is not None:
            children.setdefault(row.parent, []).append(row)
    for row in sorted(rows, key=lambda r: -r.depth):  # the deepest first: children are final before parents
        parts = [row.self_time_us] + [child.time_us for child in children.get(row.name, [])]
        known = [part for part in parts if part is not None]
        row.time_us = sum(known) if known else None
        counted = row.graph_flops if row.graph_flops is not None else row.analytic_flops
        own = row.self_time_us
        row.achieved_gflops = counted / (own * 1e3) if counted and own else None
    total_us = sum(row.self_time_us for row in rows if row.self_time_us is not None) + unattributed_us
    for row in rows:
        row.time_share = row.time_us / total_us if total_us and row.time_us is not None else None


def unattributed_time_us(ops: list["OpRow"], kernels: list["KernelTime"]) -> float | None:
    """Per-step median of the kernels no layer claims (0.0 when every kernel has a layer)."""
    names = [op.name for op in ops if op.layer is None and op.time_us is not None]
    return median_time_us(names, {kernel.name: kernel for kernel in kernels}) or 0.0
