"""Time of nested functions that run as one asynchronous kernel (XLA-compiled calls).

Keras runs ``Conv2D(groups>1)`` as a ``StatefulPartitionedCall`` of an
XLA-compiled function. TensorFlow does not inline it: the executor starts
it as an asynchronous kernel, and its work (``convolution.1`` in the
compiled module) never appears in xprof's ``framework_op_stats``. The trace
viewer has it: an ``ExecutorState::ProcessAsync::Start`` event naming the
call op, which encloses the compiled module's execution. Its duration is
that call op's time, attributed like any kernel to the layer owning the op.
"""
from __future__ import annotations

from collections import defaultdict

from tfprofscale.profiling.runtime.kernel_trace import read_trace_events
from tfprofscale.records import KernelTime

ASYNC_START_EVENT = "ExecutorState::ProcessAsync::Start"
CALL_KERNEL_TYPES = frozenset({"PartitionedCall", "StatefulPartitionedCall"})


def call_op_times(trace_dir: str | None, trace_steps: int) -> list[KernelTime]:
    """Per-step time and occurrences of every asynchronously run call op in the trace."""
    if not trace_dir or trace_steps < 1:
        return []

    return call_op_times_from_events(read_trace_events(trace_dir), trace_steps)


def call_op_times_from_events(events: list[dict], trace_steps: int) -> list[KernelTime]:
    """The call ops' times from Chrome trace events (as the trace viewer gives them)."""
    total_us: dict[tuple[str, str], float] = defaultdict(float)
    count: dict[tuple[str, str], int] = defaultdict(int)
    for event in events:
        args = event.get("args") or {}
        if event.get("name") != ASYNC_START_EVENT or args.get("kernel_type") not in CALL_KERNEL_TYPES:
            continue
        key = (args["name"], args["kernel_type"])
        total_us[key] += float(event.get("dur", 0.0))
        count[key] += 1
    return [KernelTime(name=name, kernel_type=kernel_type, time_us=total_us[(name, kernel_type)] / trace_steps,
                       occurrences=count[(name, kernel_type)] / trace_steps)
            for name, kernel_type in total_us]
