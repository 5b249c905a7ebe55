"""The time budget (``--max-time``) bounds the whole measurement of one process.

Warm-up, calibration, timed rounds and traced steps all fit in it (the first,
cold step, which carries TensorFlow's one-time set-up, does not count): after
the warm-up has shown how long a warm step takes, ``plan_steps`` shrinks the timed and
traced step counts (never below one timed step) when the requested ones would
not fit, and says so; up to three traced steps are kept first, since per-layer
times come only from them. A step slower than the whole budget is measured once
(the warm step after the cold one is the timed step, no trace): a 60 s step
with ``--max-time 1`` runs twice, not 75 times.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tfprofscale.errors import InputError

MAX_STEPS = 10_000_000  # 10 million steps of the fastest step (~10 us) take minutes; more is a typo
TRACED_STEP_COST = 1.5  # a traced step costs up to the profiler-overhead limit of an untraced one
MIN_TRACED = 3  # traced steps a slow step keeps, budget allowing, so that per-layer times are measured
WARMUP_SHARE = 0.2  # warm-up stops early once it has used this share of the budget (after one step)


@dataclass(frozen=True)
class StepPlan:
    """How many steps of each kind fit the budget, and the seconds left for timed rounds."""

    steps: int
    trace_steps: int
    min_rounds: int
    rounds_budget_s: float
    shrunk: str | None = None


def warmup_done(steps_run: int, wanted: int, elapsed_s: float, max_time_s: float) -> bool:
    """Whether warm-up may stop: the wanted steps ran, or (after one) it has used its share of the budget."""
    return steps_run >= max(1, wanted) or (steps_run >= 1 and elapsed_s >= WARMUP_SHARE * max_time_s)


def plan_steps(step_s: float, used_s: float, steps: int, trace_steps: int, max_time_s: float,
               min_rounds: int = 6) -> StepPlan:
    """Timed and traced steps that fit ``max_time_s`` after ``used_s`` (warm-up), for steps of ``step_s`` seconds.

    ``steps`` and ``trace_steps`` are the requested counts; timing needs at least
    ``min_rounds`` rounds of one step (plus one calibration step).
    """
    remaining = max_time_s - used_s
    if step_s >= max_time_s or remaining <= step_s:
        why = (f"one step takes {step_s:.3g} s, longer than --max-time {max_time_s:g} s" if step_s >= max_time_s
               else f"the warm-up used {used_s:.3g} s of --max-time {max_time_s:g} s")
        return StepPlan(1, 0, 1, 0.0, f"{why}: the step was timed once, not traced")
    wanted_timed = max(steps, min_rounds) + 1
    if (wanted_timed + TRACED_STEP_COST * trace_steps) * step_s <= remaining:
        return StepPlan(steps, trace_steps, min_rounds, remaining - TRACED_STEP_COST * trace_steps * step_s)
    room = remaining / step_s  # the budget left, in steps
    kept = _traced_to_keep(room, trace_steps)
    scale = (room - TRACED_STEP_COST * kept) / (wanted_timed + TRACED_STEP_COST * (trace_steps - kept))
    traced = kept + math.floor((trace_steps - kept) * scale)
    timed = max(1, math.floor(steps * scale))
    tracing = f" and {traced} traced instead of {trace_steps}" if trace_steps else ""
    note = (f"slow step ({1e3 * step_s:.4g} ms): {timed} timed steps instead of {steps}{tracing}, to fit the whole "
            f"measurement in --max-time {max_time_s:g} s (raise --max-time for more)")
    return StepPlan(timed, traced, min(min_rounds, timed), remaining - TRACED_STEP_COST * traced * step_s, note)


def _traced_to_keep(room: float, trace_steps: int) -> int:
    """Traced steps kept before any share-out: up to ``MIN_TRACED``, as many as leave room for two timed steps.

    The per-layer times come only from traced steps, so a slow step keeps a few of
    them rather than giving all the budget to timed steps (one calibration step
    and one timed step are the least the step time needs).
    """
    kept = min(trace_steps, MIN_TRACED)
    while kept and room - TRACED_STEP_COST * kept < 2:
        kept -= 1
    return kept


def check_step_counts(steps: Any, warmup: Any, trace_steps: Any) -> None:
    """InputError for step counts beyond ``MAX_STEPS`` (they would run for days), naming the option."""
    for name, value in (("steps", steps), ("warmup", warmup), ("trace-steps", trace_steps)):
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_STEPS:
            raise InputError(f"--{name} {value}: at most {MAX_STEPS:,} steps (the time budget --max-time "
                             "bounds the measurement anyway)")


MAX_PROCESSES = 100


def check_processes(value: Any, where: str = "--processes") -> int:
    """The number of timing processes: a positive integer (at most ``MAX_PROCESSES``), else InputError."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+").isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= MAX_PROCESSES:
        raise InputError(f"{where} must be an integer from 1 to {MAX_PROCESSES} (timing processes), got {value!r}")
    return number
