"""Runtime: step times, a profiler trace, per-kernel device times, allocator peak.

Order of a measurement: warm-up steps; ``steps`` timed steps without the
profiler (step-time statistics); one step with the allocator's peak reset
(peak memory); then ``trace_steps`` steps under ``tf.profiler.experimental``
with step markers, written to a TensorBoard logdir and read back through the
xprof converters (``framework_op_stats``) for per-kernel self times.
"""
from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfprofscale.errors import InputError


@dataclass(frozen=True)
class StepTimes:
    """Statistics of per-step wall times, in milliseconds."""

    median: float
    p10: float
    p90: float
    min: float
    cv: float
    n: int
    mean: float | None = None

    @classmethod
    def from_seconds(cls, seconds: list[float]) -> "StepTimes":
        """Statistics of a list of step durations given in seconds."""
        ms = np.asarray(seconds, dtype=float) * 1e3
        mean = float(ms.mean())
        return cls(
            median=float(np.median(ms)), p10=float(np.percentile(ms, 10)),
            p90=float(np.percentile(ms, 90)), min=float(ms.min()),
            cv=float(ms.std() / mean) if mean > 0 else 0.0, n=len(ms), mean=mean,
        )


@dataclass(frozen=True)
class KernelTime:
    """One kernel the runtime executed, averaged per step."""

    name: str
    kernel_type: str
    time_us: float
    occurrences: float


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
    warnings: tuple[str, ...] = ()

    @property
    def profiler_overhead(self) -> float | None:
        """Median traced step time over median untraced step time."""
        if self.traced_step_times is None or self.step_times.median <= 0:
            return None
        return self.traced_step_times.median / self.step_times.median


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
            run_dir: Path | None, device: str | None = None) -> RuntimeResult:
    """Time ``step``; with ``run_dir`` also trace it and read per-kernel times."""
    device = device or default_device()
    with tf.device(device):
        for _ in range(warmup):
            _block(step())
        times = StepTimes.from_seconds([_timed(step) for _ in range(steps)])
        peak, resident = _peak_memory(step, device)
        traced, kernels, trace_dir, warnings = None, [], None, ()
        if run_dir is not None and trace_steps > 0:
            try:
                traced_seconds, trace_dir = _trace(step, trace_steps, run_dir)
                traced = StepTimes.from_seconds(traced_seconds)
                kernels = kernel_times(trace_dir, trace_steps, on_device=device.startswith("GPU"))
            except (OSError, tf.errors.OpError) as error:  # full disk, unwritable folder: keep what was measured
                traced, kernels, trace_dir = None, [], None
                warnings = (_trace_lost(run_dir, error),)
    return RuntimeResult(device, times, traced, peak, resident, kernels, trace_dir, warnings)


def _trace_lost(run_dir: Path, error: Exception) -> str:
    """The warning of a trace that could not be written or read back."""
    message = " ".join(str(getattr(error, "message", None) or error).split())
    return (f"trace export to {run_dir} failed ({type(error).__name__}: {message}): "
            f"step times and FLOPs kept, no per-kernel times, trace_dir is null")


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


def kernel_times(trace_dir: str, trace_steps: int, on_device: bool = False) -> list[KernelTime]:
    """Per-kernel self time per step, from the trace via xprof's converters."""
    from xprof.convert import raw_to_tool_data

    files = sorted(glob.glob(os.path.join(trace_dir, "*.xplane.pb")))
    if not files:
        return []
    data, _ = raw_to_tool_data.xspace_to_tool_data(files, "framework_op_stats", {})
    table = json.loads(data)[0]
    columns = [column["id"] for column in table["cols"]]
    wanted_place = "Device" if on_device else "Host"
    kernels = []
    for row in table["rows"]:
        cell = dict(zip(columns, (c.get("v") for c in row["c"])))
        if cell["type"] == "IDLE" or cell["host_or_device"] != wanted_place:
            continue
        kernels.append(KernelTime(
            name=cell["operation"], kernel_type=cell["type"],
            time_us=float(cell["total_self_time"]) / trace_steps,
            occurrences=float(cell["occurrences"]) / trace_steps,
        ))
    return kernels
