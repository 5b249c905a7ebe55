"""``profile()``: the stages of the pipeline run in order on one model.

load -> trace -> graph stats (tfprof) -> analytic formulas -> runtime
(timing, trace, allocator) -> attribution -> Report.
"""
from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfprofscale.errors import InputError

if TYPE_CHECKING:
    from tfprofscale.profiling.report import Report


@dataclass(frozen=True)
class ProfileOptions:
    """How to measure: batch, step counts, where traces go, optional data."""

    batch_size: int = 1
    steps: int = 50
    warmup: int = 5
    trace_steps: int = 20
    logdir: str | os.PathLike = "runs"
    trace: bool = True
    run_name: str | None = None
    weights: str | None = None
    data: str | None = None
    show_predictions: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    progress: bool = False

    def validate(self) -> None:
        """InputError for counts that cannot be measured."""
        for name in ("batch_size", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        for name in ("warmup", "trace_steps", "show_predictions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"{name.replace('_', '-')} must be an integer >= 0, got {value!r}")


def profile(model_or_path: Any, batch_size: int = 1, **options: Any) -> "Report":
    """Profile a model file path, a keras.Model or a tf.function; return the Report.

    Keyword options are the fields of ``ProfileOptions`` (``steps``,
    ``warmup``, ``trace_steps``, ``logdir``, ``trace``, ``params`` ...).
    """
    return run_profile(model_or_path, ProfileOptions(batch_size=batch_size, **options))


def run_profile(model_or_path: Any, options: ProfileOptions) -> "Report":
    """Profile with explicit options (the CLI and the sweep workers call this)."""
    options.validate()
    say = _Progress(options.progress)
    run_dir = _run_dir(options, _model_name(model_or_path)) if options.trace else None
    say("loading the model")
    model, model_file, params = _load(model_or_path, options)
    data = _load_data(model_file, params, options, say)
    from tfprofscale.formulas import analytic
    from tfprofscale.profiling import graph_stats, runtime, tracing
    from tfprofscale.profiling.attribution import attribute_ops
    from tfprofscale.profiling.report import Report, layer_rows, totals

    say(f"tracing at batch {options.batch_size}")
    example_inputs = model_file.example_inputs if model_file else None
    traced = tracing.trace(model, options.batch_size, example_inputs, params)
    say("counting graph FLOPs with tfprof")
    stats = graph_stats.graph_stats(traced.graph)
    costs = analytic.analyze_layers(traced.layers)
    say(f"timing {options.warmup} warm-up + {options.steps} steps"
        + (f", tracing {options.trace_steps} more" if run_dir else ""))
    measured = runtime.measure(traced.run, steps=options.steps, warmup=options.warmup,
                               trace_steps=options.trace_steps, run_dir=run_dir)
    ops = attribute_ops(stats, measured.kernels if measured.traced_step_times else None, traced.layer_of)
    rows = layer_rows(traced.layers, costs, ops, stats, traced=measured.traced_step_times is not None)
    report = Report(
        model=_model_name(model_or_path), params=params, batch_size=options.batch_size,
        tensorflow=_tf_version(), device=measured.device, totals=totals(rows, ops, stats, measured),
        layers=rows, ops=ops, trace_dir=measured.trace_dir,
    )
    report.warnings.extend(measured.warnings)
    if data is not None and traced.keras_model is not None:
        _add_accuracy(report, traced.keras_model, data, options, say)
    say("done")
    return report


def _load(model_or_path: Any, options: ProfileOptions) -> tuple[Any, Any, dict[str, Any]]:
    from tfprofscale.profiling import loading

    if not isinstance(model_or_path, (str, os.PathLike)):
        if options.params:
            raise InputError("params apply to a model file, not to a model object")
        return model_or_path, None, {}
    model_file = loading.load_model_file(model_or_path)
    params = loading.resolve_params(model_file, options.params)
    model = loading.build(model_file, params)
    if options.weights:
        _load_weights(model, options.weights)
    return model, model_file, params


def _load_weights(model: Any, weights: str) -> None:
    if not Path(weights).is_file():
        raise InputError(f"--weights {weights} does not exist")
    try:
        model.load_weights(weights)
    except Exception as error:  # h5py/keras raise many types for a wrong file
        raise InputError(f"--weights {weights} does not fit this model: {type(error).__name__}: {error}") from None


def _load_data(model_file: Any, params: dict[str, Any], options: ProfileOptions, say: "_Progress") -> Any:
    """The model's test data when a data directory is given, loaded before anything is measured."""
    data_dir = options.data or os.environ.get("TFPROFSCALE_DATA")
    if not data_dir or model_file is None or model_file.load_data is None:
        return None
    say(f"loading data from {data_dir}")
    return model_file.load_data(data_dir, **params)


def _add_accuracy(report: Any, model: Any, data: Any, options: ProfileOptions, say: "_Progress") -> None:
    from tfprofscale import training

    say("evaluating on the test split")
    report.totals.accuracy = training.evaluate(model, data)
    if options.show_predictions:
        report.predictions = training.prediction_lines(model, data, options.show_predictions)


def _model_name(model_or_path: Any) -> str:
    if isinstance(model_or_path, (str, os.PathLike)):
        return Path(model_or_path).stem
    return str(getattr(model_or_path, "name", None) or getattr(model_or_path, "__name__", "model"))


def _run_dir(options: ProfileOptions, model_name: str) -> Path:
    from tfprofscale.profiling.runtime import check_logdir

    logdir = check_logdir(options.logdir)
    name = options.run_name or f"{model_name}-b{options.batch_size}"
    return logdir / re.sub(r"[^A-Za-z0-9_.=,-]+", "_", name)


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


class _Progress:
    """Stage messages on stderr with elapsed seconds, when enabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.start:5.1f}s] {message}", file=sys.stderr, flush=True)
