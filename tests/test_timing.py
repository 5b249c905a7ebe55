"""Calibration, the median's confidence interval and the stop rule, on fake clocks: nothing here is timed."""
from __future__ import annotations

import math

import pytest

from tfprofscale.cli import main
from tfprofscale.errors import InputError
from tfprofscale.profiling.runtime.timing import StopRule, calibrate, median_ci, parse_threads, relative_width, time_rounds


class FakeMachine:
    """A clock and a step runner: ``run(k)`` returns the next k step durations and advances the clock by them."""

    def __init__(self, durations):
        self.durations = iter(durations)
        self.now = 0.0
        self.calls = []

    def clock(self) -> float:
        return self.now

    def run(self, steps: int) -> list[float]:
        self.calls.append(steps)
        taken = [next(self.durations) for _ in range(steps)]
        self.now += sum(taken)
        return taken


def constant(seconds: float):
    while True:
        yield seconds


def test_median_ci_takes_the_binomial_order_statistics():
    # n = 6: P(Bin(6, 1/2) = 0) = 1/64 = 0.0156 <= 0.025 but P(<= 1) = 7/64 = 0.109 > 0.025: k = 1,
    # the interval is [x(1), x(6)] (coverage 1 - 2/64 = 96.9%).
    assert median_ci([6, 1, 5, 2, 4, 3]) == (1.0, 6.0)
    # n = 5: P(Bin(5, 1/2) = 0) = 1/32 = 0.031 > 0.025: no 95% interval from 5 values.
    assert median_ci([1, 2, 3, 4, 5]) is None
    # n = 20: P(X <= 5) = 0.0207 <= 0.025 < P(X <= 6) = 0.0577: k = 6, [x(6), x(15)].
    assert sum(math.comb(20, i) for i in range(6)) / 2 ** 20 == pytest.approx(0.0207, abs=1e-4)
    assert median_ci(list(range(1, 21))) == (6.0, 15.0)


def test_relative_width_is_the_interval_over_the_median():
    assert relative_width((9.0, 11.0), 10.0) == pytest.approx(0.2)
    assert relative_width(None, 10.0) is None


def test_calibration_grows_the_round_until_it_lasts_the_minimum_time():
    # 1 ms steps, 20 ms rounds wanted. 1 step: 1 ms -> x min(10, 1.4 * 20 / 1) = x10 -> 10 steps: 10 ms
    # -> x min(10, 1.4 * 20 / 10 = 2.8) -> 28 steps: 28 ms >= 20 ms.
    machine = FakeMachine(constant(0.001))
    assert calibrate(machine.run, 0.020) == 28
    assert machine.calls == [1, 10, 28]


def test_steady_steps_stop_on_precision_after_the_minimum_rounds():
    # Every step takes 2 ms: each round's mean is 2 ms, the interval has width 0 at the 6th round.
    machine = FakeMachine(constant(0.002))
    rule = StopRule(min_steps=10, min_round_s=0.010, target_ci=0.02, max_time_s=60.0)
    rounds = time_rounds(machine.run, rule, machine.clock)
    # calibration: 1 step (2 ms) -> x7 -> 7 steps (14 ms >= 10 ms)
    assert rounds.steps_per_round == 7
    assert len(rounds.round_medians) == 6 and rounds.stopped_by == "precision"
    assert rounds.ci_low == pytest.approx(0.002) and rounds.ci_high == pytest.approx(0.002)
    assert rounds.steps == 42


def test_a_preempted_step_does_not_move_its_round():
    # Calibration for 3.5 ms rounds: 1 step (1 ms) -> x round(1.4 * 3.5 / 1 = 4.9) -> 5 steps (5 ms >= 3.5 ms).
    # Then in every round one of the 5 steps is preempted and takes 50 ms. Each round's median is still
    # 1 ms (its mean would be (4 * 1 + 50) / 5 = 10.8 ms).
    def preempted_once_per_round():
        for _ in range(1 + 5):          # calibration: 1 step, then 5 steps
            yield 0.001
        while True:
            for duration in (0.001, 0.001, 0.050, 0.001, 0.001):
                yield duration

    machine = FakeMachine(preempted_once_per_round())
    rule = StopRule(min_steps=1, min_round_s=0.0035, target_ci=0.02, max_time_s=60.0)
    rounds = time_rounds(machine.run, rule, machine.clock)
    assert rounds.steps_per_round == 5 and rounds.stopped_by == "precision"
    assert rounds.round_medians == [pytest.approx(0.001)] * 6
    assert sorted(rounds.step_seconds)[-6:] == [pytest.approx(0.050)] * 6   # every step is kept for p90, CV


def test_min_steps_sets_the_least_number_of_rounds():
    machine = FakeMachine(constant(0.002))
    rule = StopRule(min_steps=100, min_round_s=0.010, target_ci=0.02, max_time_s=60.0)
    rounds = time_rounds(machine.run, rule, machine.clock)
    assert len(rounds.round_medians) == math.ceil(100 / 7)   # 15 rounds of 7 steps
    assert rounds.steps >= 100


def test_noisy_steps_stop_on_the_time_budget_with_the_interval_they_reached():
    # Rounds of one step (each >= the 1 ms minimum) alternate 1 ms and 3 ms: median 2 ms, and any 95%
    # interval spans [1 ms, 3 ms], 100% of the median: never within 2%. The budget, 0.1 s, ends it.
    def alternating():
        while True:
            yield 0.001
            yield 0.003

    machine = FakeMachine(alternating())
    rule = StopRule(min_steps=1, min_round_s=0.001, target_ci=0.02, max_time_s=0.1)
    rounds = time_rounds(machine.run, rule, machine.clock)
    assert rounds.stopped_by == "time budget" and rounds.steps_per_round == 1
    assert (rounds.ci_low, rounds.ci_high) == (pytest.approx(0.001), pytest.approx(0.003))
    # calibration used the first 1 ms step; then 2 ms per pair of rounds until 0.1 s have passed in all
    assert 0.1 <= machine.now < 0.1 + 0.003
    assert rounds.elapsed_s == pytest.approx(machine.now)


def test_a_wide_start_narrows_until_the_target():
    # Five 10 ms rounds then 1 ms ones: the interval of the median shrinks as 1 ms values pile up.
    def slow_then_fast():
        yield 0.010   # calibration (10 ms >= 5 ms: one step per round)
        for _ in range(5):
            yield 0.010
        while True:
            yield 0.001

    machine = FakeMachine(slow_then_fast())
    rule = StopRule(min_steps=1, min_round_s=0.005, target_ci=0.02, max_time_s=60.0, min_rounds=6)
    rounds = time_rounds(machine.run, rule, machine.clock)
    assert rounds.stopped_by == "precision" and rounds.ci_high == pytest.approx(0.001)
    values = rounds.round_medians
    # The upper end x(n-k+1) is a 1 ms value once n - k + 1 <= n - 5, i.e. k >= 6. k = 6 first at n = 20:
    # P(Bin(19, 1/2) <= 5) = 16664 / 2**19 = 0.032 > 0.025, P(Bin(20, 1/2) <= 5) = 21700 / 2**20 = 0.0207.
    assert sum(math.comb(19, i) for i in range(6)) == 16664 and sum(math.comb(20, i) for i in range(6)) == 21700
    assert sum(value == pytest.approx(0.010) for value in values) == 5 and len(values) == 20


@pytest.mark.parametrize("text, expected", [("4", (4, 1)), ("2,3", (2, 3)), (None, None), (3, (3, 1))])
def test_threads_parse(text, expected):
    assert parse_threads(text) == expected


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1,2,3", "", "1.5", True])
def test_threads_reject_bad_values(bad):
    with pytest.raises(InputError, match="--threads"):
        parse_threads(bad)


@pytest.mark.parametrize("bad", ["0", "x", "2,0"])
def test_profile_threads_bad_values_exit_2(bad, capsys, tmp_path):
    status = main(["profile", str(tmp_path / "absent.py"), "--threads", bad])
    assert status == 2
    err = capsys.readouterr().err
    assert "--threads" in err and err.count("\n") == 1


@pytest.mark.parametrize("option, value", [("--target-ci", "0"), ("--max-time", "-1"), ("--min-time", "nan")])
def test_profile_bad_timing_options_exit_2(option, value, capsys, cnn_file):
    status = main(["profile", str(cnn_file), option, value])
    assert status == 2
    err = capsys.readouterr().err
    assert option.lstrip("-").split("-")[0] in err and err.count("\n") == 1


def test_stop_rule_rejects_a_non_positive_budget():
    with pytest.raises(InputError, match="--max-time"):
        StopRule(max_time_s=0).validate()
