"""The largest batch whose train (or inference) step fits a memory budget, and gradient-accumulation plans."""
from __future__ import annotations

from typing import Callable

from tfprofscale.records import AccumulationPlan, MaxBatch

PeakAt = Callable[[int], int]


def find_max_batch(budget_bytes: int, peak_at: PeakAt, *, weights_bytes: int = 0,
                   probe_batches: tuple[int, int] = (1, 2), batch_limit: int = 1 << 16) -> MaxBatch:
    """The largest batch whose measured peak ``peak_at(batch)`` fits ``budget_bytes``.

    Memory is affine in the batch: the two probes give slope and intercept,
    the fit gives a candidate, and measurements at it and the next batch
    confirm it (moving down, or up, until batch fits and batch + 1 does not).
    InputError when the budget is below ``weights_bytes`` or no batch fits.
    """
    raise NotImplementedError("train records: signature only, body follows")


def accumulation_plan(target_batch: int, budget_bytes: int, peak_at: PeakAt, *, accumulator_bytes: int,
                      step_time_ms_at: Callable[[int], float] | None = None, weights_bytes: int = 0,
                      max_batch: MaxBatch | None = None) -> AccumulationPlan:
    """Micro-batch and steps that reach ``target_batch`` within ``budget_bytes`` by accumulating gradients.

    ``accumulator_bytes``: one accumulator per trainable variable at its dtype,
    added to the micro-batch's peak when more than one step is needed.
    """
    raise NotImplementedError("train records: signature only, body follows")


def parse_size(text: str) -> int:
    """Bytes of ``2GiB``, ``500MB``, ``1.5G``, ``4096`` (binary units for ``Ki/Mi/Gi``, decimal for ``K/M/G``)."""
    raise NotImplementedError("train records: signature only, body follows")
