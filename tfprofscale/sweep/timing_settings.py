"""A sweep's timing options in [sweep]: profile's --threads, --min-time, --target-ci, --max-time, --processes.

The command line's ``sweep --threads ... --processes N`` override the file's
values. Every mistake is the INI reader's one line naming the file, section
and key.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from tfprofscale.errors import InputError
from tfprofscale.profiling.runtime.budget import MAX_STEPS, check_processes
from tfprofscale.profiling.runtime.timing import parse_threads


@dataclass(frozen=True)
class TimingSettings:
    """How each configuration is timed (target_ci in percent, as on the command line)."""

    threads: str | None = None
    min_time: float = 0.02
    target_ci: float = 2.0
    max_time: float = 3.0
    processes: int = 1

    def overridden(self, **given: Any) -> "TimingSettings":
        """These settings with the command line's values that were given (not None), checked."""
        settings = replace(self, **{name: value for name, value in given.items() if value is not None})
        if settings.min_time > settings.max_time:
            raise InputError(f"--min-time {settings.min_time:g} s is longer than --max-time {settings.max_time:g} s: "
                             "not one timed round would fit the time budget")
        return settings


def read_timing(read: Callable[..., Any]) -> TimingSettings:
    """[sweep] threads, min_time, target_ci, max_time, processes, read with the INI reader ``read``."""
    positive = read.positive_float  # type: ignore[attr-defined]
    settings = TimingSettings(threads=read("threads", _threads, None), min_time=read("min_time", positive, 0.02),
                              target_ci=read("target_ci", positive, 2.0), max_time=read("max_time", positive, 3.0),
                              processes=read("processes", _processes, 1))
    if settings.min_time > settings.max_time:
        raise read.where("min_time").error(  # type: ignore[attr-defined]
            f"{settings.min_time:g} s is longer than max_time {settings.max_time:g} s: not one timed round would "
            "fit the time budget")
    return settings


def check_step_bounds(read: Any, config: Any) -> None:
    """steps, warmup and trace_steps beyond ``MAX_STEPS`` (they would run for days): the key's one-line error."""
    for key in ("steps", "warmup", "trace_steps"):
        if getattr(config, key) > MAX_STEPS:
            raise read.where(key).error(f"value {getattr(config, key)} is more than {MAX_STEPS:,} steps")


def _threads(where: Any, text: str) -> str:
    try:
        parse_threads(text.strip())
    except InputError as error:
        raise where.error(str(error).replace("--threads ", "", 1)) from None
    return text.strip()


def _processes(where: Any, text: str) -> int:
    try:
        return check_processes(text.strip(), "value")
    except InputError as error:
        raise where.error(str(error)) from None
