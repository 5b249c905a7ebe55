"""The ledger's liveness-aware peak against the measured peak of real train steps (docs/training.md).

    PYTHONPATH=. python tools/train_peak_check.py [MODEL ...]     (models of tools/train_peak_models.py)

For each model (batch 2) and optimizer (Adam, SGD) it traces one train step, runs it in a Session with
FULL_TRACE (``tests/train_step_records.py``, the third run), and prints one markdown row: estimated peak,
measured peak (resident lines + the records' transient peak with variable copies paired), the error, where
each peak is, and the plain running-sum peak. Memory records do not depend on load; the load average is printed.
"""
from __future__ import annotations

import os
import sys

import keras
import numpy as np

from tests.train_step_records import train_step_allocations
from tfprofscale.formulas.analytic import analyze_layers
from tfprofscale.formulas.optimizers import optimizer_spec
from tfprofscale.profiling.memory.train_peak import estimate_train_ledger
from tfprofscale.profiling.memory.train_peak_measured import measured_train_peak
from tfprofscale.profiling.trace.tracing import trace
from tools.train_peak_models import MODELS

BATCH = 2
OPTIMIZERS = {"Adam": keras.optimizers.Adam, "SGD": keras.optimizers.SGD}


def batch_of(model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (BATCH, *model.input_shape[1:])
    integer = str(model.inputs[0].dtype).startswith("int")
    x = rng.integers(0, 100, shape).astype(np.int32) if integer else rng.random(shape, dtype=np.float32)
    return x, rng.integers(0, model.output_shape[-1], BATCH).astype(np.int32)


def row(name: str, optimizer_name: str) -> str:
    keras.utils.set_random_seed(0)
    model, optimizer = MODELS[name](), OPTIMIZERS[optimizer_name]()
    x, y = batch_of(model)
    layers = trace(model, BATCH).layers
    ledger = estimate_train_ledger(layers, analyze_layers(layers), optimizer_spec(optimizer), BATCH,
                                   input_bytes=x.nbytes, label_bytes=y.nbytes)
    measured = measured_train_peak(train_step_allocations(model, optimizer, keras.losses.SparseCategoricalCrossentropy(),
                                                          x, y))
    peak = ledger.peak
    total = peak.resident_bytes + measured.transient_peak_bytes
    return (f"| {name} | {optimizer_name} | {peak.estimated_peak_bytes / 1e6:.2f} | {total / 1e6:.2f} | "
            f"{100 * (peak.estimated_peak_bytes / total - 1):+.1f} % | {peak.phase} `{peak.layer}` | "
            f"{measured.phase} `{measured.op[-48:]}` | "
            f"{(peak.resident_bytes + measured.records_peak_bytes) / 1e6:.2f} | {ledger.total_estimated_bytes / 1e6:.2f} |")


def main(names: list[str]) -> None:
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| model | optimizer | estimated peak MB | measured peak MB | error | estimated at | measured at "
          "| records' plain peak MB | sum of the ledger's terms MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for optimizer_name in OPTIMIZERS:
            print(row(name, optimizer_name), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(MODELS))
