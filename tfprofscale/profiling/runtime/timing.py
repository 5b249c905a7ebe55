"""Reproducible step times, the way pyperf and Google Benchmark measure.

A *round* runs ``steps_per_round`` inference steps back to back, timing
each, and keeps the median of its steps as the round's value (a step that
the scheduler preempted does not move it, as it would the round's mean);
``steps_per_round`` is calibrated first so that a round lasts at least
``min_round_s``. Rounds repeat until the confidence interval of the median
of the round values is narrower than ``target_ci`` (relative width:
(high - low) / median), or the time budget ``max_time_s`` ends, but never
before ``min_steps`` steps and ``min_rounds`` rounds. The interval is the
distribution-free order-statistic interval of the median (two order
statistics chosen from the binomial distribution): no normality is assumed.

The thread pools (TensorFlow's intra- and inter-op parallelism) and the
load average at start and end are recorded with the times: a median means
little without them.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from tfprofscale.errors import InputError

CONFIDENCE = 0.95


@dataclass(frozen=True)
class StopRule:
    """When a timed measurement is precise enough, or has run long enough."""

    min_steps: int = 50
    min_round_s: float = 0.02
    target_ci: float = 0.02
    max_time_s: float = 3.0
    min_rounds: int = 6
    confidence: float = CONFIDENCE

    def validate(self) -> None:
        """InputError for a rule that cannot be followed, naming the option that sets it."""
        for name, option in (("min_round_s", "--min-time (seconds)"), ("target_ci", "--target-ci (a fraction here)"),
                             ("max_time_s", "--max-time (seconds)")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                    or not math.isfinite(value):
                raise InputError(f"{option} must be a finite number > 0, got {value!r}")
        if self.min_round_s > self.max_time_s:
            raise InputError(f"--min-time {self.min_round_s:g} s is longer than --max-time {self.max_time_s:g} s: "
                             "not one timed round would fit the time budget")


@dataclass(frozen=True)
class Rounds:
    """The outcome of a timed measurement: each round's median step time and every step's time (seconds)."""

    round_medians: list[float]
    step_seconds: list[float]
    steps_per_round: int
    ci_low: float | None
    ci_high: float | None
    stopped_by: str
    elapsed_s: float

    @property
    def steps(self) -> int:
        """Timed steps in all rounds (calibration not included)."""
        return len(self.step_seconds)


def median_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Order-statistic confidence interval of the median; None when too few values give it.

    With ``n`` sorted values the interval is ``[x(k), x(n-k+1)]`` for the
    largest ``k`` with P(Binomial(n, 1/2) <= k - 1) <= (1 - confidence) / 2.
    """
    ordered = sorted(float(value) for value in values)
    n = len(ordered)
    tail = (1 - confidence) / 2
    k, cumulative = 0, 0.0
    while k < n and cumulative + math.comb(n, k) / 2 ** n <= tail:
        cumulative += math.comb(n, k) / 2 ** n
        k += 1
    if k == 0:
        return None
    return float(ordered[k - 1]), float(ordered[n - k])


def relative_width(interval: tuple[float, float] | None, median: float) -> float | None:
    """(high - low) / median; None without an interval or a positive median."""
    if interval is None or median <= 0:
        return None
    return (interval[1] - interval[0]) / median


def calibrate(run_round: Callable[[int], list[float]], min_round_s: float, max_steps: int = 1 << 20) -> int:
    """Steps per round such that ``run_round(steps)`` (which returns each step's seconds) lasts ``min_round_s``.

    Grows the count Google Benchmark's way: by the ratio of the wanted to the
    measured duration (times 1.4), at most tenfold per try.
    """
    steps = 1
    while True:
        elapsed = sum(run_round(steps))
        if elapsed >= min_round_s or steps >= max_steps:
            return steps
        factor = min(10.0, 1.4 * min_round_s / elapsed) if elapsed > 0 else 10.0
        steps = min(max_steps, max(steps + 1, round(steps * factor)))


def time_rounds(run_round: Callable[[int], list[float]], rule: StopRule,
                clock: Callable[[], float] = time.perf_counter) -> Rounds:
    """Calibrate, then time rounds of ``run_round(steps_per_round)`` until ``rule`` says stop.

    ``run_round(k)`` runs k steps and returns each one's duration in seconds;
    ``clock`` only measures the time budget.
    """
    started = clock()
    per_round = calibrate(run_round, rule.min_round_s)
    needed = max(rule.min_rounds, math.ceil(rule.min_steps / per_round))
    medians: list[float] = []
    steps: list[float] = []
    while True:
        durations = run_round(per_round)
        steps += durations
        medians.append(statistics.median(durations))
        if len(medians) < needed:
            continue
        interval = median_ci(medians, rule.confidence)
        width = relative_width(interval, statistics.median(medians))
        stopped_by = ("precision" if width is not None and width <= rule.target_ci
                      else "time budget" if clock() - started >= rule.max_time_s else None)
        if stopped_by:
            low, high = interval if interval is not None else (None, None)
            return Rounds(medians, steps, per_round, low, high, stopped_by, clock() - started)


@dataclass(frozen=True)
class ThreadSettings:
    """TensorFlow's thread pools: intra-op (threads per kernel) and inter-op (kernels at once); 0 = TF's choice."""

    intra_op: int
    inter_op: int
    cpus: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return {"intra_op": self.intra_op, "inter_op": self.inter_op, "cpus": self.cpus}

    def describe(self) -> str:
        """``intra-op 2, inter-op 1`` (``default`` for 0)."""
        def show(value: int) -> str:
            return str(value) if value else "default"
        return f"intra-op {show(self.intra_op)}, inter-op {show(self.inter_op)} ({self.cpus} CPUs)"


def parse_threads(text: str | int | None) -> tuple[int, int] | None:
    """``--threads N`` (intra-op N, inter-op 1) or ``INTRA,INTER``; None for not given.

    InputError (exit 2) for anything but positive integers.
    """
    if text is None:
        return None
    parts = [text] if isinstance(text, int) and not isinstance(text, bool) else str(text).split(",")
    try:
        counts = [int(str(part).strip()) for part in parts]
    except ValueError:
        counts = []
    if len(counts) not in (1, 2) or any(count < 1 for count in counts) or isinstance(text, bool):
        raise InputError(f"--threads must be N or INTRA,INTER with integers >= 1, got {text!r}")
    most = max_threads()
    if max(counts) > most:
        raise InputError(f"--threads {text}: at most {most} threads per pool ({THREADS_PER_CPU} per CPU on this "
                         f"{os.cpu_count() or 1}-CPU machine); more only compete for the CPUs")
    return (counts[0], counts[1] if len(counts) == 2 else 1)


THREADS_PER_CPU = 4


def max_threads() -> int:
    """The most threads a pool may ask for: ``THREADS_PER_CPU`` per CPU (TensorFlow's choice is one per CPU)."""
    return THREADS_PER_CPU * (os.cpu_count() or 1)


def current_threads() -> ThreadSettings:
    """The thread settings TensorFlow runs with now."""
    import tensorflow as tf

    return ThreadSettings(tf.config.threading.get_intra_op_parallelism_threads(),
                          tf.config.threading.get_inter_op_parallelism_threads(), os.cpu_count())


def apply_threads(requested: tuple[int, int] | None) -> str | None:
    """Set TensorFlow's thread pools before any op runs; a warning line when that is too late."""
    if requested is None:
        return None
    import tensorflow as tf

    intra, inter = requested
    now = current_threads()
    if (now.intra_op, now.inter_op) == (intra, inter):
        return None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        return (f"threads: TensorFlow was already running with {now.describe()}, so --threads "
                f"{intra},{inter} could not be applied; the times are for the former")
    return None


def load_average() -> float | None:
    """The 1-minute load average (None where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
