"""The live bytes of one step over its execution order, compacted to one point per op.

The allocation records of a traced step, in the order ``step_memory.running_peak``
reads them (by time, allocations before frees at equal times), summed as they
come: each run of consecutive records of one op becomes one ``LiveStep``
holding the largest running sum within the run, so the timeline's maximum is
the step's measured transient peak. A timeline longer than ``MAX_POINTS``
is thinned by keeping the largest point of each bucket of neighbours (the
peak survives). This is what the HTML report draws as the memory curve.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from tfprofscale.profiling.memory.step_memory import Allocation
from tfprofscale.records import LiveStep

MAX_POINTS = 4000


def live_timeline(allocations: Iterable[Allocation], layer_of: Callable[[str], str | None],
                  max_points: int = MAX_POINTS) -> list[LiveStep]:
    """One LiveStep per run of consecutive records of one op, at most ``max_points`` of them."""
    ordered = sorted(allocations, key=lambda a: (a.micros, a.bytes < 0))
    points: list[tuple[str, int]] = []
    total = 0
    for allocation in ordered:
        total += allocation.bytes
        if points and points[-1][0] == allocation.op:
            points[-1] = (allocation.op, max(points[-1][1], total))
        else:
            points.append((allocation.op, total))
    return [LiveStep(op, layer_of(op), live) for op, live in _thinned(points, max_points)]


def _thinned(points: list[tuple[str, int]], max_points: int) -> list[tuple[str, int]]:
    """The largest point of each of ``max_points`` equal buckets (all points when they fit)."""
    if len(points) <= max_points:
        return points
    size = math.ceil(len(points) / max_points)
    return [max(points[start:start + size], key=lambda point: point[1]) for start in range(0, len(points), size)]
