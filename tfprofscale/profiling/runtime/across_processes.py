"""Step times over several processes: what another process of the same command will measure.

A process's median step time reproduces within its own 95% interval, but
the next process's median often falls outside it (memory layout, address
space randomisation, thread placement and CPU frequency differ per process
and stay fixed within one: pyperf and Google Benchmark run several worker
processes for this reason). ``combine`` turns the step times of N processes
into one: every statistic (median, p10, p90, CV, mean) is the median over
the processes of the per-process figure, ``min`` is the fastest step of all,
``n`` the steps of all; the interval is the 95% *prediction* interval for
the median the next run of the same command (N processes again) will
report: Student's t on the logarithms of the per-process medians (step-time
noise is multiplicative and skewed towards slow),
exp(mean +- t(n-1) * s * sqrt(1/n + c_N/N)), where c_N/N is the variance of
the median of N draws in units of one draw's (c = 1 for N <= 2, 1.346 for 3,
1.193 for 4, 1.434 for 5, pi/2 beyond: the large-N limit, wider than the
exact value). That, not the precision of one process's median, is what a
user comparing two runs needs. With one process the interval stays the
within-process interval of the median and ``interval_scope`` says so.
"""
from __future__ import annotations

import math
import signal
import statistics
from dataclasses import asdict, replace
from typing import Any

WITHIN_PROCESS = "within one process"
BETWEEN_PROCESSES = "between processes"

# Two-sided 97.5% quantiles of Student's t by degrees of freedom (1..30); beyond 30 the normal 1.96 is
# used (t(30) = 2.042, t(60) = 2.000): the interval is then at most 4% too narrow.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_975(degrees_of_freedom: int) -> float:
    """Student's t 97.5% quantile (two-sided 95%) for ``degrees_of_freedom`` >= 1."""
    if degrees_of_freedom < 1:
        raise ValueError("degrees of freedom must be >= 1")
    return T_975[degrees_of_freedom - 1] if degrees_of_freedom <= len(T_975) else 1.96


# Variance of the median of N normal draws over sigma^2 / N, for N = 1..5 (N = 1, 2: the draw, the mean);
# order-statistics values (0.4487 and 0.2868 sigma^2 for 3 and 5), checked by simulation in the tests.
MEDIAN_VARIANCE_FACTOR = (1.0, 1.0, 1.3462, 1.1930, 1.4342)


def median_variance_factor(count: int) -> float:
    """c_N: the variance of the median of ``count`` normal draws is c_N * sigma^2 / count (pi/2 beyond 5)."""
    return MEDIAN_VARIANCE_FACTOR[count - 1] if count <= len(MEDIAN_VARIANCE_FACTOR) else math.pi / 2


def prediction_interval(values: list[float], next_count: int = 1) -> tuple[float, float] | None:
    """95% interval for the median of ``next_count`` more values drawn like ``values`` (on the log scale).

    None for fewer than two values or a value that is not positive.
    """
    n = len(values)
    if n < 2 or min(values) <= 0:
        return None
    logs = [math.log(value) for value in values]
    spread = math.sqrt(1 / n + median_variance_factor(next_count) / next_count)
    half = t_975(n - 1) * statistics.stdev(logs) * spread
    centre = statistics.fmean(logs)
    return math.exp(centre - half), math.exp(centre + half)


def between_process_cv(medians: list[float]) -> float | None:
    """Sample standard deviation over mean of the per-process medians (None for fewer than 2)."""
    if len(medians) < 2 or statistics.fmean(medians) <= 0:
        return None
    return statistics.stdev(medians) / statistics.fmean(medians)


def exit_reason(returncode: int) -> str:
    """Why a worker process ended, from its return code: ``killed by SIGKILL (...)`` or ``exit status 3``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (killed from outside, e.g. by the out-of-memory killer)" if -returncode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit status {returncode}"


def combine(per_process: list[Any], failures: list[dict[str, Any]], requested: int,
            started: dict[int, str] | None = None) -> Any:
    """One ``StepTimes`` from the ``StepTimes`` of each process that finished (in the order they ran).

    ``failures`` are ``{"process": k, "failed": reason}`` for workers that died; their
    place is kept in ``processes`` so the report says which one died and why.
    ``started`` says how each finished process began (process number -> "forked" ...),
    kept in its entry when given.
    """
    if not per_process:
        raise ValueError("no process finished timing")
    how = started or {}
    entries = sorted([{"process": index, **_entry(times), **({"started": how[index]} if index in how else {})}
                      for index, times in _numbered(per_process, failures)] + failures,
                     key=lambda entry: entry["process"])
    first = per_process[0]
    if len(per_process) == 1:
        return replace(first, interval_scope=WITHIN_PROCESS, processes=entries if requested > 1 else None,
                       processes_requested=requested, processes_contributed=1)
    medians = [times.median for times in per_process]
    interval = prediction_interval(medians, next_count=requested)
    return replace(
        first,
        median=float(statistics.median(medians)),
        p10=_median_of(per_process, "p10"), p90=_median_of(per_process, "p90"),
        min=min(times.min for times in per_process), cv=_median_of(per_process, "cv"),
        mean=_median_of(per_process, "mean"), n=sum(times.n for times in per_process),
        rounds=sum(times.rounds or 0 for times in per_process) or None,
        ci_low=interval[0], ci_high=interval[1],
        stopped_by=", ".join(sorted({times.stopped_by for times in per_process if times.stopped_by})) or None,
        load_end=per_process[-1].load_end,
        interval_scope=BETWEEN_PROCESSES, processes=entries, processes_requested=requested,
        processes_contributed=len(per_process), between_process_cv=between_process_cv(medians),
        this_process_median=first.median,
    )


def _numbered(per_process: list[Any], failures: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    """Process numbers (1-based, in running order) of the finished processes, skipping the failed ones."""
    failed = {entry["process"] for entry in failures}
    numbers = [k for k in range(1, len(per_process) + len(failures) + 1) if k not in failed]
    return list(zip(numbers, per_process))


def _median_of(per_process: list[Any], name: str) -> float:
    return float(statistics.median([getattr(times, name) for times in per_process]))


def _entry(times: Any) -> dict[str, Any]:
    """The per-process figures kept in ``step_time_ms.processes``."""
    keep = ("median", "ci_low", "ci_high", "p10", "p90", "min", "cv", "n", "rounds", "stopped_by",
            "load_start", "load_end")
    figures = asdict(times)
    return {name: figures.get(name) for name in keep}
