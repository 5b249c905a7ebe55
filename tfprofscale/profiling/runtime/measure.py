"""Runtime: step times, a profiler trace, per-kernel device times, allocator peak.

Order of a measurement: warm-up steps; calibrated, repeated rounds of timed
steps without the profiler until the median is precise enough or the time
budget ends (``timing.time_rounds``, at least ``steps`` steps); one step with
the allocator's peak reset (peak memory); then ``trace_steps`` steps under
``tf.profiler.experimental`` with step markers, written to a TensorBoard
logdir and read back through xprof's ``trace_viewer`` converter for per-step
kernel self times, busy time and concurrency (``kernel_trace``). The thread
settings and the load average at start and end are recorded with the times.
"""
from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfprofscale.errors import InputError
from tfprofscale.profiling.runtime import budget, kernel_trace
from tfprofscale.profiling.runtime.timing import StopRule, current_threads, load_average, time_rounds
from tfprofscale.records import KernelTime, StepTimes


@dataclass(frozen=True)
class RuntimeResult:
    """Everything measured by running the model."""

    device: str
    step_times: StepTimes
    traced_step_times: StepTimes | None
    peak_bytes: int | None
    resident_bytes: int | None
    kernels: list[KernelTime]
    trace_dir: str | None
    trace_failure: str | None = None
    trace_summary: kernel_trace.TraceSummary | None = None
    budget_note: str | None = None
    trace_steps: int | None = None

    @property
    def profiler_overhead(self) -> float | None:
        """Median traced step time over median untraced step time."""
        base = self.step_times.this_process_median or self.step_times.median
        if self.traced_step_times is None or base <= 0:
            return None
        return self.traced_step_times.median / base


def default_device() -> str:
    """``GPU:0`` when TensorFlow sees a GPU, else ``CPU:0``."""
    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"


def check_logdir(logdir: str | os.PathLike) -> Path:
    """Create ``logdir`` and prove it writable, or raise InputError."""
    path = Path(logdir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".tfprofscale-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise InputError(f"--logdir {path} is not writable: {error.strerror or error}") from None
    return path


def measure(step: Callable[[], Any], *, steps: int, warmup: int, trace_steps: int,
            run_dir: Path | None, device: str | None = None, rule: StopRule | None = None) -> RuntimeResult:
    """Time ``step`` in rounds (at least ``steps`` steps); with ``run_dir`` also trace it and read kernel times.

    The whole measurement (warm-up, timing, tracing) fits ``rule.max_time_s``: see ``budget``.
    """
    device = device or default_device()
    rule = rule or StopRule()
    with tf.device(device):
        times, plan = time_within_budget(step, steps, warmup, trace_steps if run_dir is not None else 0, rule)
        peak, resident = _peak_memory(step, device)
        traced, kernels, trace_dir, summary, failure = None, [], None, None, None
        if run_dir is not None and plan.trace_steps > 0:
            earlier = _trace_files(run_dir)
            try:
                traced_seconds, trace_dir = _trace(step, plan.trace_steps, run_dir)
                kernels, summary = kernel_times(trace_dir, on_device=device.startswith("GPU"))
                traced = StepTimes.from_seconds(traced_seconds)
            except tf.errors.InvalidArgumentError:
                raise  # the model itself failed under the profiler: not the trace's fault
            except Exception as error:  # a full disk, a broken trace: keep what was measured without it
                _remove_new_trace_files(run_dir, earlier)
                trace_dir, kernels, summary = None, [], None
                failure = (f"the profiler trace in {run_dir} was lost ({type(error).__name__}: "
                           f"{getattr(error, 'strerror', None) or error}); step times and memory are kept, "
                           "per-op times are unknown")
    return RuntimeResult(device, times, traced, peak, resident, kernels, trace_dir, failure, summary,
                         budget_note=plan.shrunk, trace_steps=plan.trace_steps)


def time_within_budget(step: Callable[[], Any], steps: int, warmup: int, trace_steps: int,
                       rule: StopRule) -> tuple[StepTimes, budget.StepPlan]:
    """Warm up, plan the step counts that fit ``rule.max_time_s`` (``budget.plan_steps``), time the steps.

    The first (cold) step carries TensorFlow's one-time costs and is outside the
    budget; the second is always run: if it alone exceeds the budget it is the one
    timed step (two steps in all), else warm-up goes on and the plan follows.
    """
    load_start = load_average()
    _timed(step)
    started = time.perf_counter()
    warm = [_timed(step)]
    while warm[0] < rule.max_time_s and not budget.warmup_done(1 + len(warm), warmup,
                                                                 time.perf_counter() - started, rule.max_time_s):
        warm.append(_timed(step))
    plan = budget.plan_steps(min(warm), time.perf_counter() - started, steps, trace_steps, rule.max_time_s,
                             rule.min_rounds)
    conditions = {"threads": current_threads().to_dict(), "load_start": load_start}
    if plan.rounds_budget_s <= 0:  # one timed step: the warm step itself when it alone exceeds the budget
        once = StepTimes.from_seconds(warm[:1] if warm[0] >= rule.max_time_s else [_timed(step)])
        return replace(once, rounds=1, steps_per_round=1, stopped_by="time budget", target_ci=rule.target_ci,
                       interval_scope="within one process", load_end=load_average(), **conditions), plan
    planned = replace(rule, min_steps=plan.steps, min_rounds=plan.min_rounds, max_time_s=plan.rounds_budget_s)
    rounds = time_rounds(lambda count: [_timed(step) for _ in range(count)], planned)
    return StepTimes.from_rounds(rounds, planned, load_end=load_average(), **conditions), plan


def time_steps(step: Callable[[], Any], rule: StopRule) -> StepTimes:
    """Step-time statistics from calibrated rounds, with threads and load at start and end."""
    load_start = load_average()
    rounds = time_rounds(lambda count: [_timed(step) for _ in range(count)], rule)
    return StepTimes.from_rounds(rounds, rule, threads=current_threads().to_dict(),
                                 load_start=load_start, load_end=load_average())


def _block(result: Any) -> None:
    """Wait for a step's outputs (GPU execution is asynchronous)."""
    for tensor in tf.nest.flatten(result):
        if hasattr(tensor, "numpy"):
            tensor.numpy()


def _timed(step: Callable[[], Any]) -> float:
    start = time.perf_counter()
    _block(step())
    return time.perf_counter() - start


def _peak_memory(step: Callable[[], Any], device: str) -> tuple[int | None, int | None]:
    """Allocator peak during one step, and what was resident before it."""
    try:
        tf.config.experimental.reset_memory_stats(device)
        resident = tf.config.experimental.get_memory_info(device)["current"]
        _block(step())
        return int(tf.config.experimental.get_memory_info(device)["peak"]), int(resident)
    except (ValueError, tf.errors.OpError):
        return None, None


def _trace(step: Callable[[], Any], trace_steps: int, run_dir: Path) -> tuple[list[float], str]:
    options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=2, python_tracer_level=0,
                                                       device_tracer_level=1)
    before = set(glob.glob(str(run_dir / "plugins" / "profile" / "*")))
    tf.profiler.experimental.start(str(run_dir), options=options)
    seconds = []
    try:
        for number in range(trace_steps):
            with tf.profiler.experimental.Trace("infer", step_num=number, _r=1):
                seconds.append(_timed(step))
    finally:
        tf.profiler.experimental.stop()
    new = sorted(set(glob.glob(str(run_dir / "plugins" / "profile" / "*"))) - before)
    return seconds, (new[-1] if new else str(run_dir))


def _trace_files(run_dir: Path) -> dict[Path, tuple[int, int]]:
    """Every file under the run's profile folder, with its size and modification time."""
    files = {}
    for path in (Path(run_dir) / "plugins" / "profile").glob("*/*"):
        try:
            info = path.stat()
        except OSError:
            continue
        files[path] = (info.st_size, info.st_mtime_ns)
    return files


def _remove_new_trace_files(run_dir: Path, earlier: dict[Path, tuple[int, int]]) -> None:
    """Remove what a failed trace wrote (a truncated .xplane.pb TensorBoard would try to read), and its empty folder."""
    for path, signature in _trace_files(run_dir).items():
        if earlier.get(path) != signature:
            path.unlink(missing_ok=True)
            if not any(path.parent.iterdir()):
                path.parent.rmdir()


def kernel_times(trace_dir: str, on_device: bool = False, extra: Any = ()
                 ) -> tuple[list[KernelTime], kernel_trace.TraceSummary | None]:
    """Per-kernel median self time per step and the trace's busy time, via xprof's trace viewer data.

    ``extra`` are kernel events the trace implies but does not hold (a While loop's span).
    """
    steps = kernel_trace.per_step(kernel_trace.read_trace_events(trace_dir), on_device, extra)
    kernels = [KernelTime(name, kernel_type, float(np.median(times)), runs, tuple(times))
               for name, (kernel_type, times, runs) in kernel_trace.kernel_series(steps).items()]
    return kernels, kernel_trace.summarize(steps)
