"""The largest batch whose train (or inference) step fits a memory budget, and gradient-accumulation plans.

Memory is affine in the batch (weights, slots and workspace are fixed; every
activation, gradient of an activation and input grows with it), so two
measured batch sizes give a slope and an intercept and the budget gives a
candidate. Measurement has the last word: the search measures the candidate
and the next batch, and moves (a secant step between the nearest batch that
fits and the nearest that does not, or halfway when the secant stalls) until
batch B fits and B + 1 does not. Every measurement is kept.
"""
from __future__ import annotations

import math
from typing import Callable

from tfprofscale.errors import InputError
from tfprofscale.records import AccumulationPlan, MaxBatch

PeakAt = Callable[[int], int]

class _Measured:
    """``peak_at`` with every result kept."""

    def __init__(self, peak_at: PeakAt):
        self.peak_at, self.peaks = peak_at, {}

    def __call__(self, batch: int) -> int:
        if batch not in self.peaks:
            self.peaks[batch] = int(self.peak_at(batch))
        return self.peaks[batch]


def find_max_batch(budget_bytes: int, peak_at: PeakAt, *, weights_bytes: int = 0,
                   probe_batches: tuple[int, int] = (1, 2), batch_limit: int = 1 << 16) -> MaxBatch:
    """The largest batch whose measured peak ``peak_at(batch)`` fits ``budget_bytes``.

    Memory is affine in the batch: the two probes give slope and intercept,
    the fit gives a candidate, and measurements at it and the next batch
    confirm it (moving down, or up, until batch fits and batch + 1 does not).
    InputError when the budget is below ``weights_bytes`` or no batch fits.
    """
    if budget_bytes < weights_bytes:
        raise InputError(f"--memory-budget {budget_bytes:,} B is below the weights alone ({weights_bytes:,} B)")
    small, large = sorted(probe_batches)
    if not 1 <= small < large <= batch_limit:
        raise ValueError(f"probe batches {probe_batches} must be 1 <= a < b <= {batch_limit}")
    measure = _Measured(peak_at)
    if measure(small) > budget_bytes:
        smallest = min((1, small), key=lambda b: measure(b))
        raise InputError(f"--memory-budget {budget_bytes:,} B: no batch fits; the smallest peak measured is "
                         f"{measure(smallest):,} B at batch {smallest}")
    slope = (measure(large) - measure(small)) / (large - small)
    intercept = measure(small) - slope * small
    candidate = _affine_batch(budget_bytes, slope, intercept, batch_limit)
    batch = _confirm(budget_bytes, measure, candidate, batch_limit)
    estimated = round(intercept + slope * batch)
    return MaxBatch(budget_bytes=budget_bytes, batch_size=batch, estimated_peak_bytes=estimated,
                    measured_peak_bytes=measure(batch),
                    next_batch_measured_peak_bytes=measure(batch + 1) if batch < batch_limit else None,
                    measured=dict(sorted(measure.peaks.items())))


def _affine_batch(budget: int, slope: float, intercept: float, limit: int) -> int:
    """The largest batch the affine fit keeps within the budget (the limit if memory does not grow)."""
    if slope <= 0:
        return limit
    return max(1, min(limit, math.floor((budget - intercept) / slope)))


def _confirm(budget: int, measure: _Measured, candidate: int, limit: int) -> int:
    """The B with peak(B) <= budget < peak(B + 1) (or the limit), searched from ``candidate`` by measuring.

    A batch that fits is confirmed at the next one; a confirmation that fits
    too, or a candidate that does not fit, moves the search by ``_step``.
    """
    low = max(b for b, peak in measure.peaks.items() if peak <= budget)
    high = min((b for b, peak in measure.peaks.items() if peak > budget), default=None)
    guess: int | None = candidate
    while (high is None or high - low > 1) and not (high is None and low >= limit):
        if guess is None or not (low < guess <= limit and (high is None or guess < high)):
            guess = _step(low, high, measure, budget, limit)
        if measure(guess) <= budget:
            confirming, low = guess == low + 1, guess
            guess = None if confirming else guess + 1
        else:
            high, guess = guess, None
    return low


def _step(low: int, high: int | None, measure: _Measured, budget: int, limit: int) -> int:
    """Along the slope of the two largest batches that fit, from ``low`` to the budget; when that leaves
    the bracket (``low``, ``high``), halfway between them; with nothing above ``low`` measured, at least
    ``low + 1`` and at most the limit."""
    fits = sorted(b for b, peak in measure.peaks.items() if peak <= budget)[-2:]
    slope = (measure(fits[-1]) - measure(fits[0])) / (fits[-1] - fits[0]) if len(fits) == 2 else 0
    ahead = low + math.floor((budget - measure(low)) / slope) if slope > 0 else 2 * low
    if high is None:
        return max(low + 1, min(limit, ahead))
    return ahead if low < ahead < high else (low + high) // 2


def accumulation_plan(target_batch: int, budget_bytes: int, peak_at: PeakAt, *, accumulator_bytes: int,
                      step_time_ms_at: Callable[[int], float] | None = None, weights_bytes: int = 0,
                      max_batch: MaxBatch | None = None) -> AccumulationPlan:
    """Micro-batch and steps that reach ``target_batch`` within ``budget_bytes`` by accumulating gradients.

    One step at ``target_batch`` when it fits (no accumulators). Otherwise the
    accumulators (``accumulator_bytes``: one per trainable variable at its dtype)
    take their share of the budget, the largest micro-batch that fits the rest
    sets the number of steps ``ceil(target / micro)``, and the micro-batch is
    then the smallest that reaches the target in that many steps. FLOPs per
    example are unchanged; ``step_time_ms_at(micro)`` measures one micro-step.
    """
    if isinstance(target_batch, bool) or not isinstance(target_batch, int) or target_batch < 1:
        raise InputError(f"--target-batch {target_batch!r}: must be an integer >= 1")
    measure = _Measured(peak_at)
    if max_batch is not None:
        measure.peaks.update(max_batch.measured)
    if max_batch is not None and target_batch <= max_batch.batch_size or measure(target_batch) <= budget_bytes:
        return _plan(target_batch, target_batch, 1, 0, measure, step_time_ms_at)
    if target_batch == 1:
        raise InputError(f"--memory-budget {budget_bytes:,} B: no batch fits; the smallest peak measured is "
                         f"{measure(1):,} B at batch 1")
    room = budget_bytes - accumulator_bytes
    if room < weights_bytes:
        raise InputError(f"--target-batch {target_batch}: the budget {budget_bytes:,} B leaves "
                         f"{room:,} B beside {accumulator_bytes:,} B of accumulators, below the weights "
                         f"({weights_bytes:,} B)")
    largest = find_max_batch(room, measure, weights_bytes=weights_bytes,
                             probe_batches=(1, 2), batch_limit=target_batch).batch_size
    steps = math.ceil(target_batch / largest)
    micro = math.ceil(target_batch / steps)
    return _plan(target_batch, micro, steps, accumulator_bytes, measure, step_time_ms_at)


def _plan(target: int, micro: int, steps: int, extra: int, measure: _Measured,
          step_time_ms_at: Callable[[int], float] | None) -> AccumulationPlan:
    return AccumulationPlan(target_batch=target, micro_batch=micro, steps=steps, extra_bytes=extra,
                            step_time_ms=step_time_ms_at(micro) if step_time_ms_at else None,
                            micro_peak_bytes=measure(micro) + extra)
