"""--processes N (issue 18) and the time budget's bounds (issue 21): statistics by hand, bad input, real workers."""
from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import pytest

from tests.cli_faults import DENSE, one_line_error
from tfprofscale.cli import main
from tfprofscale.errors import InputError
from tfprofscale.profiling.runtime import budget
from tfprofscale.profiling.runtime.across_processes import (
    BETWEEN_PROCESSES, WITHIN_PROCESS, combine, exit_reason, prediction_interval, t_975)

KILLED_IN_A_PROCESS = """
import os
import signal

import keras


def build_model():
    kill_in = os.environ.get("TFPROFSCALE_TEST_KILL_IN_PROCESS")
    if kill_in and os.environ.get("TFPROFSCALE_TIMING_PROCESS") == kill_in:
        os.kill(os.getpid(), signal.SIGKILL)
    inputs = keras.Input((10,), name="x")
    return keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs), name="dense")
"""


def step_times(median, p10, minimum, n, cv):
    from tfprofscale.records import StepTimes

    return StepTimes(median=median, p10=p10, p90=median * 1.5, min=minimum, cv=cv, n=n, mean=median, rounds=n // 10,
                     steps_per_round=10, ci_low=median * 0.99, ci_high=median * 1.01, stopped_by="precision",
                     interval_scope=WITHIN_PROCESS, load_start=0.5, load_end=0.6)


# ---- statistics across processes, on fake per-process results -------------------------------------------------

def test_prediction_interval_by_hand():
    # values 1.0 1.2 1.1 on the log scale: 0, 0.1823216, 0.0953102; mean 0.0925439, s 0.0911923 (n - 1 = 2);
    # t(2) = 4.303. For one more value: half width 4.303 * 0.0911923 * sqrt(1 + 1/3) = 0.4531048, so
    # exp(0.0925439 -+ 0.4531048) = 0.697285 .. 1.725727. For the median of 3 more: sqrt(1/3 + 1.3462/3) =
    # 0.8843453, half 0.3470173: 0.775325 .. 1.552026, narrower.
    low, high = prediction_interval([1.0, 1.2, 1.1])
    assert (low, high) == pytest.approx((0.697285, 1.725727), abs=1e-6)
    assert prediction_interval([1.0, 1.2, 1.1], next_count=3) == pytest.approx((0.775325, 1.552026), abs=1e-6)
    assert prediction_interval([1.0]) is None and prediction_interval([1.0, 0.0]) is None
    assert t_975(1) == 12.706 and t_975(30) == 2.042 and t_975(500) == 1.96


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 6, 9])
def test_the_median_variance_factor_against_a_simulation(count):
    # The variance of the median of `count` standard normal draws, by simulation (an independent route from the
    # order-statistics table); beyond 5 the factor is pi/2, the large-N limit, never narrower than the truth.
    import numpy as np

    from tfprofscale.profiling.runtime.across_processes import median_variance_factor

    draws = np.random.default_rng(count).standard_normal((400_000, count))
    simulated = float(np.median(draws, axis=1).var() * count)
    if count <= 5:
        assert median_variance_factor(count) == pytest.approx(simulated, rel=0.01)
    else:
        assert simulated < median_variance_factor(count) < 1.05 * math.pi / 2


def test_combine_takes_medians_over_processes_and_keeps_each_process():
    runs = [step_times(1.0, 0.9, 0.8, 100, 0.1), step_times(1.2, 1.0, 0.85, 200, 0.2),
            step_times(1.1, 0.95, 0.7, 300, 0.3)]
    combined = combine(runs, [], requested=3)
    assert combined.median == pytest.approx(1.1)        # median of 1.0 1.2 1.1
    assert combined.p10 == pytest.approx(0.95)          # median of 0.9 1.0 0.95
    assert combined.min == pytest.approx(0.7)           # fastest step of all
    assert combined.cv == pytest.approx(0.2) and combined.n == 600
    assert (combined.ci_low, combined.ci_high) == pytest.approx((0.775325, 1.552026), abs=1e-6)  # N = 3 next
    assert combined.between_process_cv == pytest.approx(0.1 / 1.1)
    assert combined.interval_scope == BETWEEN_PROCESSES and combined.this_process_median == 1.0
    assert [entry["median"] for entry in combined.processes] == [1.0, 1.2, 1.1]
    assert [entry["process"] for entry in combined.processes] == [1, 2, 3]
    assert (combined.processes_requested, combined.processes_contributed) == (3, 3)


def test_a_dead_process_keeps_its_place_and_the_others_count():
    runs = [step_times(2.0, 1.9, 1.8, 50, 0.1), step_times(3.0, 2.9, 2.8, 50, 0.1), step_times(4.0, 3.9, 1.5, 50, 0.1)]
    combined = combine(runs, [{"process": 2, "failed": "killed by SIGKILL"}], requested=4)
    assert [entry["process"] for entry in combined.processes] == [1, 2, 3, 4]
    assert combined.processes[1] == {"process": 2, "failed": "killed by SIGKILL"}
    assert [combined.processes[k]["median"] for k in (0, 2, 3)] == [2.0, 3.0, 4.0]
    assert combined.median == 3.0 and combined.min == 1.5 and combined.processes_contributed == 3
    # logs 0.6931 1.0986 1.3863: mean 1.0593513, s 0.3482375; the next run has 4 processes: sqrt(1/3 + 1.1930/4)
    # = 0.7947222; half 4.303 * 0.3482375 * 0.7947222 = 1.1908640 -> exp(-0.1315127) .. exp(2.2502152). On the
    # log scale the low end stays above 0 (a symmetric interval on the times went below 0 here).
    assert (combined.ci_low, combined.ci_high) == pytest.approx((0.876768, 9.489778), abs=1e-6)


def test_one_process_keeps_its_within_process_interval():
    only = step_times(1.0, 0.9, 0.8, 100, 0.1)
    combined = combine([only], [{"process": 2, "failed": "exit status 1"}], requested=2)
    assert combined.interval_scope == WITHIN_PROCESS
    assert (combined.median, combined.ci_low, combined.ci_high) == (1.0, only.ci_low, only.ci_high)
    assert combined.processes_contributed == 1 and combined.processes[1]["failed"] == "exit status 1"


def test_exit_reasons():
    assert exit_reason(-9).startswith("killed by SIGKILL (killed from outside")
    assert exit_reason(-15) == "killed by SIGTERM"
    assert exit_reason(3) == "exit status 3"


def test_noisy_timing_uses_the_spread_between_processes():
    from tfprofscale.profiling.runtime.measurement_checks import high_cv

    steps = SimpleNamespace(cv=0.02, n=100, rounds=10, between_process_cv=0.15, processes_contributed=3)
    assert high_cv(SimpleNamespace(step_time_ms=steps)).startswith(
        "noisy timing: the medians of the 3 timing processes vary with CV 15% (limit 10%)")
    steps.between_process_cv = 0.05
    assert high_cv(SimpleNamespace(step_time_ms=steps)) is None


@pytest.mark.parametrize("overhead, warned", [(0.996, False), (0.994, True), (1.504, False), (1.506, True)])
def test_the_overhead_warning_judges_the_figure_it_shows(overhead, warned):
    from tfprofscale.profiling.runtime.measurement_checks import odd_overhead

    # 0.996 is shown as x1.00, inside [1.0, 1.5]; 0.994 as x0.99, outside; 1.504 as x1.50; 1.506 as x1.51.
    line = odd_overhead(SimpleNamespace(profiler_overhead=overhead))
    assert (line is not None) == warned
    if warned:
        assert f"x{overhead:.2f} outside [1.0, 1.5]" in line


# ---- the time budget bounds the whole measurement --------------------------------------------------------------

def test_a_step_slower_than_the_budget_is_timed_once_and_not_traced():
    plan = budget.plan_steps(step_s=2.0, used_s=2.0, steps=50, trace_steps=20, max_time_s=1.0)
    assert (plan.steps, plan.trace_steps, plan.min_rounds, plan.rounds_budget_s) == (1, 0, 1, 0.0)
    assert "one step takes 2 s, longer than --max-time 1 s: the step was timed once, not traced" in plan.shrunk


def test_fast_steps_keep_the_requested_counts():
    # 1 ms steps after 0.01 s of warm-up: (50 + 1 + 1.5 * 20) * 0.001 = 0.081 s fits the 2.99 s left;
    # the rounds may use 2.99 - 1.5 * 20 * 0.001 = 2.96 s.
    plan = budget.plan_steps(step_s=0.001, used_s=0.01, steps=50, trace_steps=20, max_time_s=3.0)
    assert (plan.steps, plan.trace_steps, plan.min_rounds, plan.shrunk) == (50, 20, 6, None)
    assert plan.rounds_budget_s == pytest.approx(2.96)


def test_a_slow_step_is_measured_fewer_times_to_fit_and_says_so():
    # 50 ms steps, 0.25 s used: 2.75 s left = 55 steps; wanted 51 + 1.5 * 20 = 81 steps. 3 traced steps are kept
    # first (4.5 steps), the other 50.5 are shared: scale 50.5 / (51 + 1.5 * 17) = 0.6601; traced 3 + floor(17 *
    # 0.6601) = 14, timed floor(50 * 0.6601) = 33; rounds get 2.75 - 1.5 * 14 * 0.05 = 1.70 s.
    plan = budget.plan_steps(step_s=0.05, used_s=0.25, steps=50, trace_steps=20, max_time_s=3.0)
    assert (plan.steps, plan.trace_steps, plan.min_rounds) == (33, 14, 6)
    assert plan.rounds_budget_s == pytest.approx(1.70)
    assert plan.shrunk.startswith("slow step (50 ms): 33 timed steps instead of 50 and 14 traced instead of 20")


def test_a_step_that_barely_fits_keeps_traced_steps():
    # The 1 GiB MLP's 73 ms step after 0.6 s of warm-up: 2.4 s left = 32.88 steps. Sharing everything
    # proportionally (scale 32.88 / 81) gave 20 timed + 1 + 1.5 * 8 traced = 33 steps > 32.88, so no trace and no
    # per-layer times. Now: 3 kept (4.5 steps), scale (32.88 - 4.5) / (51 + 25.5) = 0.3710; traced 3 + floor(6.31)
    # = 9, timed floor(18.55) = 18; rounds get 2.4 - 1.5 * 9 * 0.073 = 1.4145 s, room for 1 + 18 steps.
    plan = budget.plan_steps(step_s=0.073, used_s=0.6, steps=50, trace_steps=20, max_time_s=3.0)
    assert (plan.steps, plan.trace_steps, plan.min_rounds) == (18, 9, 6)
    assert plan.rounds_budget_s == pytest.approx(1.4145)
    assert plan.rounds_budget_s >= (plan.steps + 1) * 0.073


def test_traced_steps_give_way_to_the_last_two_timed_steps():
    # 0.5 s steps, 0.5 s used: 2.5 s left = 5 steps. 3 traced (4.5) would leave 0.5 < 2 steps; 2 traced (3) leave 2:
    # one calibration and one timed step. scale 2 / (51 + 1.5 * 18) = 0.026 adds nothing.
    plan = budget.plan_steps(step_s=0.5, used_s=0.5, steps=50, trace_steps=20, max_time_s=3.0)
    assert (plan.steps, plan.trace_steps, plan.min_rounds) == (1, 2, 1)
    assert plan.rounds_budget_s == pytest.approx(1.0)


def test_an_untraced_slow_step_says_nothing_of_traced_steps():
    # --no-trace, 100 ms steps, 0.25 s used: 2.75 s left;
    # wanted (51 + 1.5 * 0) * 0.1 = 5.1 s, scale 2.75 / 5.1 = 0.539, timed floor(50 * 0.539) = 26, none traced.
    plan = budget.plan_steps(step_s=0.1, used_s=0.25, steps=50, trace_steps=0, max_time_s=3.0)
    assert (plan.steps, plan.trace_steps) == (26, 0)
    assert plan.shrunk.startswith("slow step (100 ms): 26 timed steps instead of 50, to fit the whole measurement")


def test_a_step_slower_than_the_budget_runs_twice_in_all():
    from tfprofscale.profiling.runtime.measure import time_within_budget
    from tfprofscale.profiling.runtime.timing import StopRule

    calls = []
    times, plan = time_within_budget(lambda: calls.append(time.sleep(0.05)), steps=50, warmup=5, trace_steps=20,
                                     rule=StopRule(min_round_s=0.01, max_time_s=0.04))
    assert len(calls) == 2 and times.n == 1 and plan.trace_steps == 0 and times.stopped_by == "time budget"


# ---- bad input: one line, exit 2 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "101"])
def test_profile_refuses_a_bad_process_count(capsys, write_model, value):
    line = one_line_error(capsys, "profile", str(write_model(DENSE)), "--processes", value)
    assert f"--processes must be an integer from 1 to 100 (timing processes), got '{value}'" in line


def test_profile_refuses_a_round_longer_than_the_budget(capsys, write_model):
    line = one_line_error(capsys, "profile", str(write_model(DENSE)), "--min-time", "100000", "--max-time", "0.1")
    assert "--min-time 100000 s is longer than --max-time 0.1 s: not one timed round would fit" in line


@pytest.mark.parametrize("option", ["--steps", "--warmup", "--trace-steps"])
def test_profile_refuses_step_counts_that_would_run_for_days(capsys, write_model, option):
    line = one_line_error(capsys, "profile", str(write_model(DENSE)), option, "99999999999999999999999")
    assert f"{option} 99999999999999999999999: at most 10,000,000 steps" in line


def test_profile_bounds_threads(capsys, write_model):
    import os

    most = 4 * (os.cpu_count() or 1)
    line = one_line_error(capsys, "profile", str(write_model(DENSE)), "--threads", "999")
    assert f"--threads 999: at most {most} threads per pool (4 per CPU" in line


@pytest.mark.parametrize("line, fragment", [
    ("processes = 0", "[sweep] processes: value must be an integer from 1 to 100"),
    ("processes = two", "[sweep] processes: value must be an integer from 1 to 100"),
    ("processes = 2.5", "[sweep] processes: value must be an integer from 1 to 100"),
    ("steps = 1e20", "[sweep] steps: value 1e+20 is not an integer"),
    ("steps = 100000000000000000000", "[sweep] steps: value 100000000000000000000 is more than 10,000,000 steps"),
    ("min_time = 100000\nmax_time = 0.1", "[sweep] min_time: 100000 s is longer than max_time 0.1 s"),
    ("threads = 999", "[sweep] threads: 999: at most"),
])
def test_sweep_refuses_bad_timing_keys(capsys, tmp_path, write_model, line, fragment):
    write_model(DENSE, "dense.py")
    config = tmp_path / "sweep.ini"
    config.write_text(f"[sweep]\nmodel = dense.py\n{line}\n")
    error = one_line_error(capsys, "sweep", str(config), "--out", str(tmp_path / "out"))
    assert fragment in error
    assert not (tmp_path / "out").exists()


def test_sweep_timing_keys_and_their_command_line_overrides(tmp_path, write_model):
    from tfprofscale.sweep.config import load_sweep_config

    write_model(DENSE, "dense.py")
    config_path = tmp_path / "sweep.ini"
    config_path.write_text("[sweep]\nmodel = dense.py\nthreads = 2\nmin_time = 0.05\ntarget_ci = 5\n"
                           "max_time = 10\nprocesses = 3\n")
    timing = load_sweep_config(config_path).timing
    assert (timing.threads, timing.min_time, timing.target_ci, timing.max_time, timing.processes) == \
        ("2", 0.05, 5.0, 10.0, 3)
    overridden = timing.overridden(threads=None, min_time=None, target_ci=None, max_time=4.0, processes=1)
    assert (overridden.max_time, overridden.processes, overridden.threads) == (4.0, 1, "2")
    with pytest.raises(InputError, match="--min-time 0.05 s is longer than --max-time 0.01 s"):
        timing.overridden(max_time=0.01)


# ---- real worker processes ------------------------------------------------------------------------------------

def run_profile_json(tmp_path, model_path, *options):
    out = tmp_path / "report.json"
    status = main(["profile", str(model_path), "--quiet", "--no-trace", "--no-cost-model", "--steps", "5",
                   "--warmup", "1", "--max-time", "0.5", "--json", str(out), *options])
    return status, json.loads(out.read_text()) if out.exists() else None


def test_two_processes_give_two_per_process_entries(capsys, tmp_path, write_model):
    status, report = run_profile_json(tmp_path, write_model(DENSE), "--processes", "2")
    out = capsys.readouterr().out
    assert status == 0
    steps = report["totals"]["step_time_ms"]
    assert [entry["process"] for entry in steps["processes"]] == [1, 2]
    assert all(entry["median"] > 0 and entry["n"] >= 5 for entry in steps["processes"])
    assert steps["interval_scope"] == BETWEEN_PROCESSES and steps["processes_contributed"] == 2
    assert steps["n"] == sum(entry["n"] for entry in steps["processes"])
    assert "Processes:     2 of 2 timed the step" in out


def test_one_process_says_its_interval_is_within_the_process(capsys, tmp_path, write_model):
    status, report = run_profile_json(tmp_path, write_model(DENSE))
    out = capsys.readouterr().out
    assert status == 0 and report["totals"]["step_time_ms"]["interval_scope"] == WITHIN_PROCESS
    assert report["totals"]["step_time_ms"]["processes"] is None
    assert "the interval is within one process: another process's median may fall outside it" in out


def test_a_killed_worker_is_reported_and_the_others_kept(capsys, tmp_path, write_model, monkeypatch):
    monkeypatch.setenv("TFPROFSCALE_TEST_KILL_IN_PROCESS", "2")  # the model kills itself in timing process 2 only
    status, report = run_profile_json(tmp_path, write_model(KILLED_IN_A_PROCESS), "--processes", "3")
    assert status == 0
    steps = report["totals"]["step_time_ms"]
    assert [entry["process"] for entry in steps["processes"]] == [1, 2, 3]
    assert steps["processes"][1]["failed"].startswith("killed by SIGKILL")
    assert steps["processes"][0]["median"] > 0 and steps["processes"][2]["median"] > 0
    assert (steps["processes_requested"], steps["processes_contributed"]) == (3, 2)
    assert any(line.startswith("timing process 2 of 3 died (killed by SIGKILL") and "combines the 2 that finished"
               in line for line in report["warnings"])


# ---- the machine's peaks under load -------------------------------------------------------------------------------

def test_peaks_measured_under_load_warn_and_are_not_cached(monkeypatch, tmp_path):
    from tests.test_roofline import injected
    from tfprofscale.profiling.runtime import machine_peaks
    from tfprofscale.profiling.runtime.timing import current_threads

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    busy = machine_peaks.HIGH_LOAD_PER_CPU * current_threads().cpus + 0.5
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: injected(1.09e11, load=busy))
    peaks = machine_peaks.machine_peaks()
    assert peaks.flops_per_s == 1.09e11 and not machine_peaks.cache_path().exists()
    warning = machine_peaks.under_load_warning(peaks)
    assert warning.startswith(f"the machine's peaks were measured under load (load average {busy:.2f} on ")
    assert "109.0 GFLOP/s" in warning and "not cached" in warning
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: injected(2.15e11))
    quiet = machine_peaks.machine_peaks()
    assert quiet.flops_per_s == 2.15e11 and machine_peaks.cache_path().exists()
    assert machine_peaks.under_load_warning(quiet) is None


def test_audit_remeasure_under_load_warns_in_one_line(capsys, monkeypatch, tmp_path):
    from tests.test_roofline import injected
    from tfprofscale.profiling.runtime import machine_peaks
    from tfprofscale.profiling.runtime.timing import current_threads

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    busy = machine_peaks.HIGH_LOAD_PER_CPU * current_threads().cpus + 0.5
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: injected(1.09e11, load=busy))
    (tmp_path / "sweep").mkdir()

    def stop(path):
        raise InputError("stop after the peaks")

    monkeypatch.setattr("tfprofscale.audit.analysis.audit_path", stop)
    assert main(["audit", str(tmp_path / "sweep"), "--remeasure"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("warning: the machine's peaks were measured under load") and len(lines) == 2
    assert not machine_peaks.cache_path().exists()


# ---- sweeps: repeats in separate processes; a model object cannot be re-imported ------------------------------

def pid_of(task):
    import os

    return os.getpid()


@pytest.mark.parametrize("fresh", [True, False])
def test_repeats_run_in_fresh_processes_when_asked(fresh):
    from tfprofscale.sweep.executor import LocalProcessPool

    outcomes = list(LocalProcessPool(1, fresh_per_task=fresh).map_unordered(pid_of, [0, 1, 2]))
    assert all(outcome.ok for outcome in outcomes)
    assert len({outcome.value for outcome in outcomes}) == (3 if fresh else 1)


def test_processes_need_a_model_file():
    import keras

    import tfprofscale

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(InputError, match="--processes above 1 needs a model file"):
        tfprofscale.profile(model, steps=1, warmup=0, trace=False, processes=2, memory=False, tf_cost_model=False)


def test_a_sweep_configuration_is_timed_with_the_sweeps_timing_settings(tmp_path, monkeypatch, write_model):
    from tfprofscale.profiling import pipeline
    from tfprofscale.sweep.configuration import RunPlan, run_configuration
    from tfprofscale.sweep.grid import ConfigTask
    from tfprofscale.sweep.timing_settings import TimingSettings

    seen = []

    def capture(model, options):
        seen.append(options)
        raise InputError("stop after the options")

    monkeypatch.setattr(pipeline, "run_profile", capture)
    plan = RunPlan(model=str(write_model(DENSE)), steps=2, warmup=0, trace_steps=0, logdir=str(tmp_path / "runs"),
                   weights_dir=str(tmp_path / "weights"),
                   timing=TimingSettings(threads="1", min_time=0.05, target_ci=5.0, max_time=4.0, processes=3))
    with pytest.raises(InputError, match="stop after the options"):
        run_configuration(plan, ConfigTask("r0", {}, 1, 0))
    options = seen[0]
    # target_ci is given in percent, as on the command line: 5% is 0.05 in ProfileOptions.
    assert (options.threads, options.min_time, options.target_ci, options.max_time, options.processes) == \
        ("1", 0.05, 0.05, 4.0, 3)
