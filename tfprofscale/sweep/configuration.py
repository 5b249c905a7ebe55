"""The worker's side of a sweep: profile one configuration, and say which machine measured it.

Runs in a worker process (a local pool's or a Dask worker's): it imports
TensorFlow once (``prepare_worker``) and then profiles configuration after
configuration. What it returns travels back to the driver, which alone
writes the sweep's output directory.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfprofscale.errors import InputError
from tfprofscale.profiling.trace import loading
from tfprofscale.quiet import import_tensorflow_quietly
from tfprofscale.sweep.config import TimingSettings, TrainingSettings
from tfprofscale.sweep.grid import ConfigTask, model_id
from tfprofscale.sweep.machine import host_name, this_machine
from tfprofscale.sweep.tables import atomic_write_text


@dataclass(frozen=True)
class RunPlan:
    """What every configuration of a sweep shares: the model file and how to measure it."""

    model: str
    steps: int
    warmup: int
    trace_steps: int
    logdir: str
    weights_dir: str
    weights: str | None = None
    data: str | None = None
    training: TrainingSettings | None = None
    input_shapes: tuple[tuple[int, ...], ...] | dict[str, tuple[int, ...]] | None = None
    timing: TimingSettings = TimingSettings()


def run_configuration(plan: RunPlan, task: ConfigTask) -> dict[str, Any]:
    """Profile one configuration: its report dict, training summary, host and machine fingerprint."""
    import keras

    from tfprofscale.profiling.pipeline import ProfileOptions, run_profile

    try:
        weights, training = plan.weights, None
        if plan.training is not None:
            weights, training = _trained_weights(plan, task)
        trace_problem = _trace_folder_problem(plan)
        options = ProfileOptions(
            batch_size=task.batch_size, steps=plan.steps, warmup=plan.warmup, trace_steps=plan.trace_steps,
            logdir=plan.logdir, trace=plan.trace_steps > 0 and trace_problem is None, run_name=task.config_id,
            weights=weights, data=plan.data, params=dict(task.params), input_shapes=plan.input_shapes,
            train=task.mode == "train",
            threads=plan.timing.threads, min_time=plan.timing.min_time, target_ci=plan.timing.target_ci / 100,
            max_time=plan.timing.max_time, processes=plan.timing.processes,
        )
        report = run_profile(plan.model, options).to_dict()
        if trace_problem is not None:
            report["warnings"] = [*report.get("warnings", []), trace_problem]
        return {"report": report, "training": training, "host": host_name(), "machine": this_machine().to_dict()}
    finally:
        keras.backend.clear_session()


def _trace_folder_problem(plan: RunPlan) -> str | None:
    """Why the trace cannot be written (a warning: the step times are measured anyway), or None."""
    from tfprofscale.profiling.runtime.measure import check_logdir

    if plan.trace_steps <= 0:
        return None
    try:
        check_logdir(plan.logdir)
    except InputError as error:
        return f"trace not written ({error}): step times and FLOPs kept, trace_dir is null"
    return None


def _trained_weights(plan: RunPlan, task: ConfigTask) -> tuple[str, dict[str, Any]]:
    """Weights trained for ``task.params`` (all batch sizes and repeats share them), trained once."""
    from tfprofscale import training

    name = model_id(task.params)
    weights = Path(plan.weights_dir) / f"{name}.weights.h5"
    summary_file = Path(plan.weights_dir) / f"{name}.training.json"
    if weights.is_file() and summary_file.is_file():
        return str(weights), json.loads(summary_file.read_text())
    model_file = loading.load_model_file(plan.model)
    params = loading.resolve_params(model_file, task.params)
    model = loading.build(model_file, params)
    data = model_file.load_data(plan.data, **params)
    result = training.train(model, data, plan.training.epochs, plan.training.learning_rate,
                            plan.training.batch_size, progress=False)
    summary = {"epochs": result.epochs, "learning_rate": result.learning_rate, "batch_size": result.batch_size,
               "train_examples": result.train_examples, "final_loss": result.loss_per_epoch[-1],
               "final_train_accuracy": result.train_accuracy_per_epoch[-1], "wall_time_s": result.wall_time_s,
               "weights": str(weights)}
    weights.parent.mkdir(parents=True, exist_ok=True)
    partial_weights = weights.with_name(f".{name}.{os.getpid()}.weights.h5")
    model.save_weights(str(partial_weights))
    atomic_write_text(summary_file, json.dumps(summary, indent=2) + "\n")
    os.replace(partial_weights, weights)
    return str(weights), summary


def prepare_worker() -> None:
    """Run once in each worker: accuracy only from the sweep's --data, TensorFlow imported quietly."""
    from tfprofscale.datasets import DATA_ENV_VAR

    os.environ.pop(DATA_ENV_VAR, None)
    import_tensorflow_quietly()
