"""Warnings about how far a profile's times can be trusted.

Each check is one small function of the report's totals and rows that
returns a warning line or None; ``measurement_warnings`` runs them all.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from tfprofscale.records import LayerRow, StepTimes, Totals

CV_LIMIT = 0.10
HIGH_LOAD_PER_CPU = 0.75
OVERHEAD_RANGE = (1.0, 1.5)
FASTER_THAN_PEAK = "peak underestimated or work counted that did not run"
LOW_KERNEL_COVERAGE = 0.5
LOW_COVERAGE_MIN_STEP_MS = 3.0


def measurement_warnings(totals: "Totals", rows: list["LayerRow"], peak_flops_per_s: float | None = None,
                         cpus: int | None = None) -> list[str]:
    """Every warning that applies, in a fixed order (noise, load, profiler, precision, roofline)."""
    checks: list[Callable[[], list[str]]] = [
        lambda: _listed(high_cv(totals)), lambda: _listed(high_load(totals, cpus or os.cpu_count() or 1)),
        lambda: _listed(odd_overhead(totals)), lambda: _listed(imprecise_median(totals)),
        lambda: _listed(low_kernel_coverage(totals)), lambda: faster_than_peak(rows, peak_flops_per_s),
    ]
    return [line for check in checks for line in check()]


def _listed(line: str | None) -> list[str]:
    return [] if line is None else [line]


def high_cv(totals: "Totals") -> str | None:
    """Step times whose coefficient of variation is over ``CV_LIMIT``: between processes where several timed them."""
    steps = totals.step_time_ms
    spread = getattr(steps, "between_process_cv", None)
    if spread is not None and spread > CV_LIMIT:
        return (f"noisy timing: the medians of the {steps.processes_contributed} timing processes vary with CV "
                f"{100 * spread:.0f}% (limit {100 * CV_LIMIT:.0f}%): another run may measure a different median; "
                "compare medians within the interval")
    if steps.cv <= CV_LIMIT:
        return None
    over = f"{steps.n} steps in {steps.rounds} rounds" if steps.rounds else f"{steps.n} steps"
    return (f"noisy timing: step times vary with CV {100 * steps.cv:.0f}% over {over} (limit {100 * CV_LIMIT:.0f}%): "
            "the machine was busy or the steps differ; compare medians with care")


def high_load(totals: "Totals", cpus: int) -> str | None:
    """A 1-minute load average above ``HIGH_LOAD_PER_CPU`` per CPU at the start or the end of timing."""
    steps = totals.step_time_ms
    loads = {"start": steps.load_start, "end": steps.load_end}
    high = {when: load for when, load in loads.items() if load is not None and load > HIGH_LOAD_PER_CPU * cpus}
    if not high:
        return None
    shown = ", ".join(f"{load:.2f} at the {when}" for when, load in high.items())
    return (f"busy machine: load average {shown} of timing on {cpus} CPUs (limit {HIGH_LOAD_PER_CPU * cpus:.2f}): "
            "other processes competed for the CPUs, times are slower and noisier than on a quiet machine")


def odd_overhead(totals: "Totals") -> str | None:
    """Traced over untraced median step time outside ``OVERHEAD_RANGE`` once rounded as shown (x0.996 is x1.00)."""
    overhead = totals.profiler_overhead
    low, high = OVERHEAD_RANGE
    if overhead is None or low <= round(overhead, 2) <= high:
        return None
    why = ("traced steps ran faster than untimed ones: the two phases met different conditions (noise)"
           if overhead < low else "the profiler slowed the steps: kernel times are inflated")
    return f"profiler overhead x{overhead:.2f} outside [{low}, {high}]: {why}"


def imprecise_median(totals: "Totals") -> str | None:
    """Timing ended by the time budget before the median's interval reached its target width.

    Over several processes the target is each process's own interval (the stop
    rule's), not the between-process one, which no number of steps narrows.
    """
    steps = totals.step_time_ms
    if steps.interval_scope == "between processes":
        return _imprecise_processes(steps)
    width = steps.ci_width
    if steps.stopped_by != "time budget" or steps.target_ci is None or (width is not None and width <= steps.target_ci):
        return None
    shown = "unknown" if width is None else f"{100 * width:.1f}%"
    return (f"too few steps for the requested precision: the median's {100 * (steps.ci_confidence or 0):.0f}% "
            f"interval is {shown} of it wide after {steps.n} steps, target {100 * steps.target_ci:.1f}% "
            "(raise --max-time, or accept the wider interval)")


def _imprecise_processes(steps: "StepTimes") -> str | None:
    """The timing processes stopped by the budget short of the target: how many, and the widest."""
    if steps.target_ci is None:
        return None
    short = [entry for entry in steps.processes or [] if entry.get("stopped_by") == "time budget"
             and (_entry_width(entry) is None or _entry_width(entry) > steps.target_ci)]
    if not short:
        return None
    widest = max(short, key=lambda entry: _entry_width(entry) or float("inf"))
    width = _entry_width(widest)
    shown = "unknown" if width is None else f"{100 * width:.1f}%"
    return (f"too few steps for the requested precision in {len(short)} of {steps.processes_contributed} timing "
            f"processes: process {widest['process']}'s median interval is {shown} of it wide after {widest['n']} "
            f"steps, target {100 * steps.target_ci:.1f}% (raise --max-time, or accept the wider interval; the "
            "interval between processes does not narrow with more steps)")


def _entry_width(entry: dict) -> float | None:
    """A process entry's relative interval width, (high - low) / median."""
    low, high, median = entry.get("ci_low"), entry.get("ci_high"), entry.get("median")
    return None if low is None or high is None or not median else (high - low) / median


def low_kernel_coverage(totals: "Totals") -> str | None:
    """Kernels busy for less than ``LOW_KERNEL_COVERAGE`` of a traced step longer than ``LOW_COVERAGE_MIN_STEP_MS``."""
    traced, coverage = totals.traced_step_time_ms, totals.kernel_coverage
    if traced is None or coverage is None or coverage >= LOW_KERNEL_COVERAGE or traced.median <= LOW_COVERAGE_MIN_STEP_MS:
        return None
    return (f"kernels cover {100 * coverage:.0f}% of the {traced.median:.1f} ms traced step (below "
            f"{100 * LOW_KERNEL_COVERAGE:.0f}%): the rest of the time went somewhere the trace does not show "
            "(untraced ops, waiting, the framework); per-layer times and shares hold only the traced part")


def faster_than_peak(rows: list["LayerRow"], peak_flops_per_s: float | None) -> list[str]:
    """Layers whose achieved FLOP/s beat the machine's measured peak."""
    if not peak_flops_per_s:
        return []
    peak_gflops = peak_flops_per_s / 1e9
    return [f"{row.name} ran at {row.achieved_gflops:.1f} GFLOP/s, above the machine's measured peak "
            f"{peak_gflops:.1f} GFLOP/s: {FASTER_THAN_PEAK}"
            for row in rows if row.achieved_gflops is not None and row.achieved_gflops > peak_gflops]
