"""The max-batch search and the gradient-accumulation plan on peaks computed by hand."""
from __future__ import annotations

import pytest

from tfprofscale.errors import InputError
from tfprofscale.profiling.memory.max_batch import accumulation_plan, find_max_batch


class Peaks:
    """A fake ``peak_at``: bytes from a formula, every measured batch recorded."""

    def __init__(self, formula):
        self.formula, self.calls = formula, []

    def __call__(self, batch: int) -> int:
        self.calls.append(batch)
        return self.formula(batch)


def affine(batch: int) -> int:
    return 1_000 + 300 * batch   # 1,000 B resident + 300 B per example


def test_affine_memory_found_from_two_probes_and_confirmed():
    peaks = Peaks(affine)
    found = find_max_batch(10_000, peaks, weights_bytes=1_000)
    # probes: 1 -> 1,300, 2 -> 1,600: slope 300, intercept 1,000; (10,000 - 1,000) / 300 = 30
    assert found.batch_size == 30
    assert (found.estimated_peak_bytes, found.measured_peak_bytes) == (10_000, 10_000)   # 1,000 + 300 * 30
    assert found.next_batch_measured_peak_bytes == 10_300                              # batch 31 does not fit
    assert peaks.calls == [1, 2, 30, 31]                                                # nothing else measured


def test_non_affine_memory_corrected_by_confirmation():
    peaks = Peaks(lambda b: 1_000 + 100 * b + 20 * b * b)
    found = find_max_batch(10_000, peaks, weights_bytes=1_000)
    # the probes (1,120 and 1,280 B) extrapolate to batch (10,000 - 960) / 160 = 56, which peaks at 69,320 B;
    # by hand 1,000 + 100 b + 20 b^2 <= 10,000: b = 18 gives 9,280 B, b = 19 gives 10,120 B
    assert found.batch_size == 18
    assert (found.measured_peak_bytes, found.next_batch_measured_peak_bytes) == (9_280, 10_120)
    assert found.estimated_peak_bytes == 960 + 160 * 18   # the affine fit's figure, kept for the record
    assert 56 in found.measured and found.measured[56] == 69_320


def test_memory_growing_slower_than_the_probes_moves_up():
    peaks = Peaks(lambda b: 1_000 + 300 * b - (0 if b < 3 else 50 * (b - 2)))
    found = find_max_batch(10_000, peaks)
    # from batch 3 on, 250 B per example: 1,000 + 300 b - 50 (b - 2) = 1,100 + 250 b <= 10,000 -> b = 35
    assert (found.batch_size, found.measured_peak_bytes, found.next_batch_measured_peak_bytes) == (35, 9_850, 10_100)


def test_budget_errors_are_one_line_input_errors():
    with pytest.raises(InputError, match=r"--memory-budget 900 B is below the weights alone \(1,000 B\)"):
        find_max_batch(900, Peaks(affine), weights_bytes=1_000)
    with pytest.raises(InputError, match=r"no batch fits; the smallest peak measured is 1,300 B at batch 1"):
        find_max_batch(1_200, Peaks(affine), weights_bytes=1_000)


def test_accumulation_plan_by_hand():
    times = Peaks(lambda b: 2 * b)   # a step time of 2 ms per example, as a fake callback
    plan = accumulation_plan(100, 10_000, Peaks(affine), accumulator_bytes=600, step_time_ms_at=times,
                             weights_bytes=1_000)
    # batch 100 peaks at 31,000 B; with 600 B of accumulators 9,400 B remain: (9,400 - 1,000) / 300 = 28;
    # steps = ceil(100 / 28) = 4, micro = ceil(100 / 4) = 25, measured at 1,000 + 300 * 25 = 8,500 B
    assert (plan.micro_batch, plan.steps, plan.extra_bytes) == (25, 4, 600)
    assert plan.micro_peak_bytes == 8_500 + 600
    assert plan.step_time_ms == 50 and plan.target_step_time_ms == 200
    assert times.calls == [25]


def test_accumulation_not_needed_when_the_target_fits():
    plan = accumulation_plan(20, 10_000, Peaks(affine), accumulator_bytes=600)
    assert (plan.micro_batch, plan.steps, plan.extra_bytes, plan.step_time_ms) == (20, 1, 0, None)


def test_accumulation_errors():
    with pytest.raises(InputError, match=r"--target-batch 0: must be an integer >= 1"):
        accumulation_plan(0, 10_000, Peaks(affine), accumulator_bytes=600)
    with pytest.raises(InputError, match=r"below the weights"):
        accumulation_plan(100, 1_500, Peaks(affine), accumulator_bytes=600, weights_bytes=1_000)
