"""Time of ops whose inside the trace does not show: compiled calls and recurrent loops.

- Keras runs ``Conv2D(groups>1)`` as a ``StatefulPartitionedCall`` of an
  XLA-compiled function: its work (``convolution.1``) never appears as a
  TensorFlow op. The call op's asynchronous start event stands for it (read
  in ``kernel_trace.async_call_events``); its own time is the call op's time.
- A ``While`` loop (a Keras RNN) on CPU: the body's element-wise kernels are
  "inexpensive" ops the profiler does not record, and the While op itself has
  no event. The executor does record each iteration it processes
  (``ExecutorState::Process`` with ``iter_num`` >= 1: only a loop frame has
  iterations past 0). The loop's event here spans those iterations, between
  the end of the kernels that feed the While op and the start of those that
  read it; its own time is that span minus the kernels that ran inside it
  (its traced body kernels and anything else), as for a call op.

``TIME_SOURCES`` names how an op's time was obtained; the table's footer
prints the ones a report uses.
"""
from __future__ import annotations

from typing import Any

from tfprofscale.profiling.graph.graph_stats import GraphStats
from tfprofscale.profiling.runtime.kernel_trace import (CALL_KERNEL_TYPES, KernelEvent, StepWindow,
                                                        kernel_events, step_windows)

LOOP_KERNEL_TYPES = frozenset({"While", "StatelessWhile"})
ITERATION_EVENT = "ExecutorState::Process"

TIME_SOURCES = {
    "kernel": "its kernel's self time in the trace",
    "compiled call": "the call op's own time (an XLA-compiled function: its inside is not in the trace)",
    "loop iterations": ("the While loop's iterations in the trace, minus the body kernels traced inside them "
                        "(the body's element-wise kernels are not recorded on CPU)"),
}


def time_source(kernel_type: str | None) -> str | None:
    """How a kernel of this type was timed (a key of ``TIME_SOURCES``); None for no kernel."""
    if kernel_type is None:
        return None
    if kernel_type in CALL_KERNEL_TYPES:
        return "compiled call"
    if kernel_type in LOOP_KERNEL_TYPES:
        return "loop iterations"
    return "kernel"


def loop_events(events: list[dict[str, Any]], stats: GraphStats) -> list[KernelEvent]:
    """One event per traced step for each top-level While op that ran: the span of its iterations."""
    loops = [op for op in stats.ops if op.type in LOOP_KERNEL_TYPES and not op.site and op.runs]
    if not loops:
        return []
    kernels = kernel_events(events)
    iterations = _iteration_intervals(events)
    consumers = {op.name: [other.name for other in stats.ops if op.name in other.inputs] for op in loops}
    found = []
    for window in step_windows(events):
        in_step = [k for k in kernels if window.start_us <= k.start_us < window.start_us + window.duration_us]
        for loop in loops:
            event = _loop_event(loop.name, loop.type, set(loop.inputs), set(consumers[loop.name]), in_step,
                                iterations, window)
            if event is not None:
                found.append(event)
    return found


def _iteration_intervals(events: list[dict[str, Any]]) -> list[tuple[tuple[Any, Any], float, float]]:
    """(lane, start, end) of every executor event that processed a loop iteration past the first."""
    intervals = []
    for event in events:
        args = event.get("args") or {}
        if event.get("name") == ITERATION_EVENT and str(args.get("iter_num", "0")) not in ("", "0"):
            start = float(event.get("ts", 0.0))
            intervals.append(((event.get("pid"), event.get("tid")), start, start + float(event.get("dur", 0.0))))
    return intervals


def _loop_event(name: str, kernel_type: str, producers: set[str], consumers: set[str], in_step: list[KernelEvent],
                iterations: list[tuple[tuple[Any, Any], float, float]], window: StepWindow) -> KernelEvent | None:
    """The loop's span in one step: its iterations between its inputs' last kernel and its outputs' first."""
    begin = max([k.end_us for k in in_step if k.name in producers], default=window.start_us)
    end = min([k.start_us for k in in_step if k.name in consumers and k.start_us >= begin],
              default=window.start_us + window.duration_us)
    inside = [(lane, start, stop) for lane, start, stop in iterations if begin <= start and stop <= end]
    if not inside:
        return None
    first = begin if any(k.name in producers for k in in_step) else min(start for _, start, _ in inside)
    last = max(stop for _, _, stop in inside)
    return KernelEvent(name, kernel_type, ("loop", name), first, last - first)
