"""Per-step kernel times from a profiler trace: self times, busy time, concurrency.

The trace is read through xprof's ``trace_viewer`` converter (Chrome trace
events, times in microseconds). A step is the window of a step marker
(``tf.profiler.experimental.Trace("infer", step_num=i)``: an event named
``infer i`` with a ``step_num`` argument). A kernel is a TensorFlow op event:
on CPU an event on a host thread whose ``long_name`` argument is
``op_name:KernelType``; on GPU an event on a ``/device:GPU`` process whose
``tf_op`` argument names the op (that path is unrun here: no GPU). A call op
the executor runs asynchronously (Keras' XLA-compiled ``Conv2D(groups>1)``)
has no such event: its ``ExecutorState::ProcessAsync::Start`` event, which
encloses the compiled module's run, stands for it (``async_call_events``).

Per step:

- a kernel's *self time* is its duration minus that of the kernels nested
  directly inside it on the same thread (a function-call op and its body);
- *busy time* is the length of the union of all kernel intervals (clipped to
  the step), so kernels that run at the same time count once: busy <= step;
- *concurrency* is the sum of self times over busy time (1 = one kernel at a
  time, 2 = on average two at once).

Per-kernel and per-step figures are kept per step, so that callers take the
median over steps (one slow step does not move it, unlike a mean).
"""
from __future__ import annotations

import glob
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

import numpy as np

from tfprofscale.quiet import native_stderr_captured

# Kernels that run a function body: their body's kernels run on other threads and are counted on their own.
FUNCTION_CALL_TYPES = frozenset({"PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile",
                                 "If", "StatelessIf", "Case", "StatelessCase"})
CALL_KERNEL_TYPES = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
ASYNC_START_EVENT = "ExecutorState::ProcessAsync::Start"


@dataclass(frozen=True)
class KernelEvent:
    """One kernel execution: op name, kernel type, where and when (microseconds)."""

    name: str
    kernel_type: str
    lane: tuple[Any, Any]
    start_us: float
    duration_us: float

    @property
    def end_us(self) -> float:
        """When it finished."""
        return self.start_us + self.duration_us


@dataclass(frozen=True)
class StepWindow:
    """A traced step: its number and its time window (microseconds)."""

    number: int
    start_us: float
    duration_us: float


@dataclass
class StepKernels:
    """The kernels of one step: self time per op, their busy union, the step's length."""

    step_us: float
    busy_us: float
    self_us: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    @property
    def kernel_us(self) -> float:
        """Sum of the kernels' self times (concurrent kernels each counted)."""
        return sum(self.self_us.values())


@dataclass(frozen=True)
class TraceSummary:
    """Per-step medians of the trace: step length, kernel self-time sum, busy union, and their ratios."""

    steps: int
    step_us: float
    kernel_us: float
    busy_us: float
    coverage: float | None
    concurrency: float | None


def read_trace_events(trace_dir: str) -> list[dict[str, Any]]:
    """The Chrome trace events of every ``*.xplane.pb`` in ``trace_dir``, via xprof's converter (read once)."""
    files = tuple(sorted(glob.glob(os.path.join(trace_dir, "*.xplane.pb"))))
    return list(_converted_events(files)) if files else []


@lru_cache(maxsize=4)
def _converted_events(files: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    from xprof.convert import raw_to_tool_data

    with native_stderr_captured():  # xprof logs a harmless absl error line for trace_viewer
        data, _ = raw_to_tool_data.xspace_to_tool_data(list(files), "trace_viewer", {})
    if isinstance(data, bytes):
        data = data.decode()
    trace = json.loads(data) if data else {}
    return tuple(trace.get("traceEvents", []) if isinstance(trace, dict) else trace)


def step_windows(events: Iterable[dict[str, Any]]) -> list[StepWindow]:
    """The step markers, in step order."""
    windows = [StepWindow(int(e["args"]["step_num"]), float(e["ts"]), float(e["dur"]))
               for e in events if e.get("ph") == "X" and "step_num" in (e.get("args") or {})]
    return sorted(windows, key=lambda w: (w.number, w.start_us))


def kernel_events(events: list[dict[str, Any]], on_device: bool = False) -> list[KernelEvent]:
    """TensorFlow op events: host ``long_name`` events on CPU, ``/device:GPU`` events on GPU."""
    gpu_pids = {e.get("pid") for e in events
                if e.get("ph") == "M" and e.get("name") == "process_name"
                and str((e.get("args") or {}).get("name", "")).startswith("/device:GPU")}
    kernels = []
    for event in events:
        if event.get("ph") != "X" or (event.get("pid") in gpu_pids) != on_device:
            continue
        args = event.get("args") or {}
        label = args.get("tf_op") if on_device else args.get("long_name")
        if not label or ":" not in str(label):
            continue
        name, _, kernel_type = str(label).rpartition(":")
        kernels.append(KernelEvent(name, kernel_type or str(event.get("name")), (event.get("pid"), event.get("tid")),
                                   float(event["ts"]), float(event.get("dur", 0.0))))
    named = {kernel.name for kernel in kernels}
    return kernels + [call for call in ([] if on_device else async_call_events(events)) if call.name not in named]


def async_call_events(events: list[dict[str, Any]]) -> list[KernelEvent]:
    """Call ops run as one asynchronous kernel (an XLA-compiled function), from their async start events."""
    calls = []
    for event in events:
        args = event.get("args") or {}
        if event.get("ph", "X") == "X" and event.get("name") == ASYNC_START_EVENT \
                and args.get("kernel_type") in CALL_KERNEL_TYPES and args.get("name"):
            calls.append(KernelEvent(str(args["name"]), str(args["kernel_type"]), (event.get("pid"), event.get("tid")),
                                     float(event.get("ts", 0.0)), float(event.get("dur", 0.0))))
    return calls


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by ``(start, end)`` intervals, overlaps counted once."""
    total, reach = 0.0, -np.inf
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def self_times(kernels: list[KernelEvent]) -> list[float]:
    """Each kernel's duration minus that of the kernels nested directly inside it on its lane.

    A function-call kernel (``FUNCTION_CALL_TYPES``) loses the union of all
    kernels inside its interval, on any lane: its body runs on other threads.
    """
    own = [_outside_body(k, kernels) if k.kernel_type in FUNCTION_CALL_TYPES else k.duration_us for k in kernels]
    by_lane: dict[tuple[Any, Any], list[int]] = defaultdict(list)
    for index, kernel in enumerate(kernels):
        by_lane[kernel.lane].append(index)
    for indices in by_lane.values():
        open_parents: list[int] = []
        for index in sorted(indices, key=lambda i: (kernels[i].start_us, -kernels[i].duration_us)):
            while open_parents and kernels[open_parents[-1]].end_us <= kernels[index].start_us:
                open_parents.pop()
            if open_parents:
                own[open_parents[-1]] -= kernels[index].duration_us
            open_parents.append(index)
    return [max(0.0, value) for value in own]


def _outside_body(call: KernelEvent, kernels: list[KernelEvent]) -> float:
    inside = [(k.start_us, k.end_us) for k in kernels if k is not call and k.lane != call.lane
              and call.start_us <= k.start_us and k.end_us <= call.end_us]
    return call.duration_us - union_length(inside)


def per_step(events: list[dict[str, Any]], on_device: bool = False,
             extra: Iterable[KernelEvent] = ()) -> list[StepKernels]:
    """The kernels of each traced step (a kernel belongs to the step its start falls in), with ``extra`` events."""
    kernels = kernel_events(events, on_device) + list(extra)
    own = self_times(kernels)
    steps = []
    for window in step_windows(events):
        end = window.start_us + window.duration_us
        inside = [i for i, k in enumerate(kernels) if window.start_us <= k.start_us < end]
        step = StepKernels(window.duration_us, union_length(
            (kernels[i].start_us, min(kernels[i].end_us, end)) for i in inside))
        for i in inside:
            name = kernels[i].name
            step.self_us[name] = step.self_us.get(name, 0.0) + own[i]
            step.counts[name] = step.counts.get(name, 0) + 1
            step.types.setdefault(name, kernels[i].kernel_type)
        steps.append(step)
    return steps


def summarize(steps: list[StepKernels]) -> TraceSummary | None:
    """Medians over steps of step length, kernel time, busy time, coverage and concurrency."""
    if not steps:
        return None
    coverage = [s.busy_us / s.step_us for s in steps if s.step_us > 0]
    concurrency = [s.kernel_us / s.busy_us for s in steps if s.busy_us > 0]
    return TraceSummary(
        steps=len(steps), step_us=float(np.median([s.step_us for s in steps])),
        kernel_us=float(np.median([s.kernel_us for s in steps])),
        busy_us=float(np.median([s.busy_us for s in steps])),
        coverage=float(np.median(coverage)) if coverage else None,
        concurrency=float(np.median(concurrency)) if concurrency else None,
    )


def kernel_series(steps: list[StepKernels]) -> dict[str, tuple[str, list[float], float]]:
    """Per op name: kernel type, self time in each step (0 where it did not run), mean runs per step."""
    names = list(dict.fromkeys(name for step in steps for name in step.self_us))
    series = {}
    for name in names:
        kernel_type = next(step.types[name] for step in steps if name in step.types)
        times = [step.self_us.get(name, 0.0) for step in steps]
        runs = sum(step.counts.get(name, 0) for step in steps) / len(steps)
        series[name] = (kernel_type, times, runs)
    return series


def median_of_sums(series: list[list[float]]) -> float | None:
    """The median over steps of the per-step sum of several kernels' times; None for no kernels."""
    if not series:
        return None
    return float(np.median(np.sum(np.asarray(series, dtype=float), axis=0)))
