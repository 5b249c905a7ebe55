"""The ``--train`` stages the pipeline runs in place of, or beside, the inference ones.

Tracing the training step (trace/train_step.py), its per-phase views
(train_views.py) and its memory: the measured peak of one traced step and
the ledger (memory/train_memory.py).
"""
from __future__ import annotations

from typing import Any

from tfprofscale.errors import InputError


def precision_policy(model: Any) -> str | None:
    """The Keras dtype policy the model computes under (``float32``, ``mixed_float16`` ...), None if unknown."""
    policy = getattr(model, "dtype_policy", None)
    return getattr(policy, "name", None)


def trace_step(model: Any, model_file: Any, params: dict[str, Any], options: Any) -> Any:
    """The TrainTraced training step of ``model`` at the options' batch, with its loss and optimizer resolved."""
    from tfprofscale.profiling.trace.train_setup import resolve_setup
    from tfprofscale.profiling.trace.train_step import trace_train_step

    if not _is_keras_model(model):
        raise InputError(f"--train needs a keras.Model; the model is a {type(model).__name__}")
    hook = model_file.train_setup if model_file is not None else None
    setup = resolve_setup(model, hook, params, options.optimizer)
    example_inputs = model_file.example_inputs if model_file is not None else None
    return trace_train_step(model, options.batch_size, setup, example_inputs, params, options.input_shapes,
                            jit_compile=options.jit_compile)


def _is_keras_model(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Model)


def add_train_memory(report: Any, traced: Any, costs: Any, device: str) -> None:
    """The measured train-step peak, what is live at it, per-layer bytes and the ledger, into ``report``."""
    from tfprofscale.profiling.memory.measure import total_peak_bytes
    from tfprofscale.profiling.memory.train_memory import (
        measure_train_memory,
        train_ledger,
    )

    measurement, memory = measure_train_memory(traced, device)
    record = report.memory = measurement.record
    for row in report.layers:
        row.measured_bytes = measurement.layer_bytes.get(row.name)
    report.totals.peak_bytes = total_peak_bytes(record)
    report.warnings += measurement.warnings
    ledger = train_ledger(traced, costs, record, memory, report.totals.peak_bytes, report.precision_policy)
    record.ledger = ledger.as_dict()
    record.estimated_peak_bytes = ledger.estimated_peak_bytes or ledger.total_estimated_bytes  # the walked peak
    record.estimate_terms = {line.term: line.estimated_bytes for line in ledger.lines}
