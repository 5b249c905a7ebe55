"""Warnings about trust in the times, from hand-built totals whose statistics are known."""
from __future__ import annotations

import numpy as np
import pytest

from tfprofscale.profiling.runtime.measurement_checks import (CV_LIMIT, FASTER_THAN_PEAK, high_cv, high_load,
                                                       imprecise_median, measurement_warnings, odd_overhead)
from tfprofscale.records import LayerRow, Report, Totals
from tfprofscale.records import StepTimes
from tfprofscale.report.table import render


def totals(step: StepTimes, overhead: float | None = 1.1) -> Totals:
    return Totals(params=0, analytic_flops=0, analytic_macs=0, graph_flops=0, activation_bytes=0,
                  analytic_memory_bytes=0, peak_bytes=None, resident_bytes=None, step_time_ms=step,
                  profiler_overhead=overhead)


def rounds_of(seconds: list[float], **extra) -> StepTimes:
    base = StepTimes.from_seconds(seconds)
    fields = dict(median=base.median, p10=base.p10, p90=base.p90, min=base.min, cv=base.cv, n=len(seconds) * 10,
                  mean=base.mean, rounds=len(seconds), steps_per_round=10)
    return StepTimes(**(fields | extra))


def test_a_known_cv_over_the_limit_warns():
    # Steps of 1 ms and 3 ms alternating: mean 2 ms, population std 1 ms, CV = 50% > 10%.
    step = rounds_of([0.001, 0.003] * 4)
    assert step.cv == pytest.approx(0.5)
    line = high_cv(totals(step))
    assert "CV 50%" in line and "80 steps in 8 rounds" in line


def test_a_cv_under_the_limit_is_quiet():
    # 1.00 and 1.10 ms: mean 1.05, std 0.05, CV 4.8% < 10%
    step = rounds_of([0.00100, 0.00110] * 4)
    assert step.cv == pytest.approx(0.05 / 1.05) and step.cv < CV_LIMIT
    assert high_cv(totals(step)) is None


def test_load_above_the_limit_at_start_or_end_warns():
    quiet = rounds_of([0.001] * 6, load_start=0.5, load_end=1.0)
    assert high_load(totals(quiet), cpus=2) is None            # limit 0.75 * 2 = 1.5
    busy_end = rounds_of([0.001] * 6, load_start=0.5, load_end=3.2)
    line = high_load(totals(busy_end), cpus=2)
    assert "3.20 at the end" in line and "start" not in line.split("on 2 CPUs")[0]


@pytest.mark.parametrize("overhead, warns", [(0.82, True), (1.0, False), (1.3, False), (1.5, False), (1.87, True),
                                             (None, False)])
def test_profiler_overhead_outside_one_to_one_and_a_half_warns(overhead, warns):
    assert (odd_overhead(totals(rounds_of([0.001] * 6), overhead)) is not None) == warns


def test_a_budget_stop_short_of_the_target_says_too_few_steps():
    # interval 1.9-2.1 ms around a 2 ms median: 10% wide, target 2%
    step = rounds_of([0.002] * 6, ci_low=1.9, ci_high=2.1, ci_confidence=0.95, target_ci=0.02,
                     stopped_by="time budget")
    assert step.ci_width == pytest.approx(0.1)
    assert "too few steps" in imprecise_median(totals(step))
    reached = rounds_of([0.002] * 6, ci_low=1.99, ci_high=2.01, ci_confidence=0.95, target_ci=0.02,
                        stopped_by="time budget")
    assert imprecise_median(totals(reached)) is None


def test_a_layer_faster_than_the_peak_names_both_speeds():
    fast = LayerRow(name="conv0", type="Conv2D", output_shape=[1], params=0, analytic_flops=None,
                    analytic_macs=None, graph_flops=None, activation_bytes=0, time_us=1.0, achieved_gflops=251.0)
    (line,) = measurement_warnings(totals(rounds_of([0.001] * 6)), [fast], peak_flops_per_s=124.5e9, cpus=2)
    assert "251.0 GFLOP/s" in line and "124.5 GFLOP/s" in line and FASTER_THAN_PEAK in line


def test_warnings_are_printed_and_kept_in_the_json():
    step = rounds_of(list(np.array([1, 3, 1, 3, 1, 3]) * 1e-3))
    report = Report(model="m", params={}, batch_size=1, tensorflow="x", device="CPU:0", totals=totals(step),
                    layers=[], ops=[])
    report.warnings = measurement_warnings(report.totals, [], cpus=2)
    assert report.to_dict()["warnings"] == report.warnings and report.warnings
    assert f"Warning:       {report.warnings[0]}" in render(report)


def test_over_several_processes_the_budget_warning_judges_each_process_not_the_between_interval():
    # A between-process interval 14% wide says nothing of steps: judge each process's own interval instead.
    # Process 1: 2.00 ms, 1.99-2.01 (1% wide, reached); process 2: 2.10 ms, 2.00-2.20 (9.5% wide, budget);
    # process 3: 2.05 ms, 2.00-2.10 (4.9% wide, budget). Short of the 2% target: processes 2 and 3; widest 2.
    entries = [{"process": 1, "median": 2.00, "ci_low": 1.99, "ci_high": 2.01, "n": 900, "stopped_by": "precision"},
               {"process": 2, "median": 2.10, "ci_low": 2.00, "ci_high": 2.20, "n": 300, "stopped_by": "time budget"},
               {"process": 3, "median": 2.05, "ci_low": 2.00, "ci_high": 2.10, "n": 400, "stopped_by": "time budget"}]
    step = rounds_of([0.002] * 6, ci_low=1.8, ci_high=2.1, target_ci=0.02, stopped_by="precision, time budget",
                     interval_scope="between processes", processes=entries, processes_contributed=3)
    line = imprecise_median(totals(step))
    assert line.startswith("too few steps for the requested precision in 2 of 3 timing processes: process 2's "
                           "median interval is 9.5% of it wide after 300 steps, target 2.0%")
    every_reached = [dict(entry, stopped_by="precision") for entry in entries]
    assert imprecise_median(totals(rounds_of([0.002] * 6, ci_low=1.8, ci_high=2.1, target_ci=0.02,
                                             interval_scope="between processes", processes=every_reached,
                                             processes_contributed=3))) is None
