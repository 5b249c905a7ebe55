"""``--memory-budget`` and ``--target-batch``: the largest batch that fits, and a gradient-accumulation plan.

The search itself (memory/max_batch.py) asks for the measured peak at a
batch size; here that is: trace the step (the training step with
``--train``, else inference) at that batch and measure one traced Session
step's allocation records, exactly as the memory stage does, plus what stays
resident (variables, or the frozen weights, and the fed inputs). Peaks are
measured once per batch and the profiled batch's own peak is reused.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from tfprofscale.errors import InputError
from tfprofscale.profiling.memory.max_batch import accumulation_plan, find_max_batch
from tfprofscale.profiling.memory.step_memory import HOST, step_memory
from tfprofscale.profiling.runtime.timing import StopRule
from tfprofscale.sizes import format_size, parse_size


def check_budget_options(options: Any) -> None:
    """InputError for a budget that is not a size, or a ``--target-batch`` below 1 or without a budget."""
    target = options.target_batch
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, int) or target < 1:
            raise InputError(f"--target-batch must be an integer >= 1, got {target!r}")
        if options.memory_budget is None:
            raise InputError("--target-batch needs --memory-budget SIZE (the budget the micro-batch must fit)")
        if not options.train:
            raise InputError("--target-batch plans gradient accumulation: it needs --train")
    if options.memory_budget is not None:
        budget_bytes(options)


def budget_bytes(options: Any) -> int:
    """The budget in bytes (``2GiB``, ``500MB`` or a number)."""

    budget = options.memory_budget
    if isinstance(budget, int) and not isinstance(budget, bool):
        if budget <= 0:
            raise InputError(f"--memory-budget must be more than 0 bytes, got {budget}")
        return budget
    return parse_size(str(budget), "--memory-budget")


def resident_bytes(traced: Any) -> int:
    """What no batch size changes: the model's variables, and with --train the optimizer's."""
    from tfprofscale.profiling.memory.train_memory import variable_bytes

    model = traced.keras_model
    if model is None:
        return 0
    optimizer_variables = list(model.optimizer.variables) if getattr(traced, "setup", None) is not None else []
    return variable_bytes(model.weights) + variable_bytes(optimizer_variables)


def check_budget_above_weights(options: Any, traced: Any) -> None:
    """InputError, before anything is measured, when the budget is below the variables alone."""
    if options.memory_budget is None:
        return
    budget, weights = budget_bytes(options), resident_bytes(traced)
    if budget < weights:

        what = "weights and optimizer state" if options.train else "weights"
        raise InputError(f"--memory-budget {options.memory_budget}: below the model's {what} alone "
                         f"({format_size(weights)})")


def peak_function(model: Any, model_file: Any, params: dict[str, Any], options: Any, traced: Any,
                  known: dict[int, int]) -> Callable[[int], int]:
    """batch -> measured peak bytes of one step at that batch (``known`` caches and collects them)."""

    def peak_at(batch: int) -> int:
        if batch not in known:
            known[batch] = _train_peak(traced, model_file, params, options, batch) if options.train else \
                _inference_peak(model, model_file, params, options, batch)
        return known[batch]

    return peak_at


def _train_peak(traced: Any, model_file: Any, params: dict[str, Any], options: Any, batch: int) -> int:
    from tfprofscale.profiling.memory.train_memory import measured_train_peak
    from tfprofscale.profiling.trace.train_step import trace_train_step

    example_inputs = model_file.example_inputs if model_file is not None else None
    at_batch = trace_train_step(traced.keras_model, batch, traced.setup, example_inputs, params,
                                options.input_shapes)
    return measured_train_peak(at_batch)


def _inference_peak(model: Any, model_file: Any, params: dict[str, Any], options: Any, batch: int) -> int:
    from tfprofscale.profiling.memory.measure import traced_session_step
    from tfprofscale.profiling.memory.train_memory import tensor_bytes
    from tfprofscale.profiling.trace import tracing

    example_inputs = model_file.example_inputs if model_file is not None else None
    at_batch = tracing.trace(model, batch, example_inputs, params, options.input_shapes)
    memory = step_memory(traced_session_step(at_batch))
    return resident_bytes(at_batch) + tensor_bytes(at_batch.inputs) + memory.peak(HOST).peak_bytes


def add_batch_limits(report: Any, model: Any, model_file: Any, params: dict[str, Any], options: Any,
                     traced: Any) -> None:
    """``report.max_batch`` (and ``report.accumulation`` with --target-batch); a budget no batch fits is a warning."""
    import tensorflow as tf

    budget = budget_bytes(options)
    known: dict[int, int] = {}
    if report.totals.peak_bytes is not None:
        known[options.batch_size] = report.totals.peak_bytes
    peak_at = peak_function(model, model_file, params, options, traced, known)
    weights = resident_bytes(traced)
    try:
        found = find_max_batch(budget, peak_at, weights_bytes=weights, probe_batches=_probes(peak_at, budget, options))
    except (InputError, MemoryError, tf.errors.OpError) as error:  # what was measured so far is kept
        smallest = min(known.items()) if known else None
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        report.max_batch = {"budget_bytes": budget, "batch_size": None,
                            "measured": {str(batch): peak for batch, peak in sorted(known.items())}, "reason": reason}
        report.warnings.append(f"--memory-budget: {reason}" + (f" (batch {smallest[0]} measured "
                                                             f"{smallest[1]:,} B)" if smallest else ""))
        return
    report.max_batch = _max_batch_dict(found)
    if options.target_batch is not None:
        plan = accumulation_plan(options.target_batch, budget, peak_at, accumulator_bytes=_trainable_bytes(traced),
                                 step_time_ms_at=_step_time_function(report, traced, model_file, params, options),
                                 weights_bytes=weights, max_batch=found)
        report.accumulation = asdict(plan) | {"target_step_time_ms": plan.target_step_time_ms}


def _probes(peak_at: Callable[[int], int], budget: int, options: Any) -> tuple[int, int]:
    """The two batches the affine fit starts from: the profiled batch and twice it when it fits, else 1 and 2.

    At small batches a training step's peak is often set by batch-independent
    buffers (the largest weight's gradient and the optimizer's temporaries), so
    the slope from batches 1 and 2 can be a hundred times too flat; from the
    profiled batch (already measured) it is the activations' slope.
    """
    batch = options.batch_size
    return (batch, 2 * batch) if batch > 1 and peak_at(batch) <= budget else (1, 2)


def _max_batch_dict(found: Any) -> dict[str, Any]:
    data = asdict(found)
    data["measured"] = {str(batch): peak for batch, peak in sorted(found.measured.items())}
    return data


def _trainable_bytes(traced: Any) -> int:
    from tfprofscale.profiling.memory.train_memory import variable_bytes

    return variable_bytes(traced.keras_model.trainable_weights)


def _step_time_function(report: Any, traced: Any, model_file: Any, params: dict[str, Any],
                        options: Any) -> Callable[[int], float]:
    """batch -> median train-step time in ms (the profile's own at its batch, else a short timing)."""

    def step_time_ms(batch: int) -> float:
        if batch == options.batch_size:
            return report.totals.step_time_ms.median
        from tfprofscale.profiling.runtime.measure import measure
        from tfprofscale.profiling.trace.train_step import trace_train_step

        example_inputs = model_file.example_inputs if model_file is not None else None
        at_batch = trace_train_step(traced.keras_model, batch, traced.setup, example_inputs, params,
                                    options.input_shapes)
        timed = measure(at_batch.run, steps=10, warmup=2, trace_steps=0, run_dir=None,
                        rule=StopRule(min_round_s=0.02, target_ci=0.05, max_time_s=2.0))
        return timed.step_times.median

    return step_time_ms
