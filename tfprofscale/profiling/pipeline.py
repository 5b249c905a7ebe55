"""``profile()``: the stages of the pipeline run in order on one model.

load -> trace -> graph stats (tfprof) -> analytic formulas -> runtime
(timing, trace, allocator) -> attribution -> Report.
"""
from __future__ import annotations

import os
import re
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tfprofscale import training
from tfprofscale.errors import InputError
from tfprofscale.footprint import check_above_floor, max_memory_bytes
from tfprofscale.formulas import analytic
from tfprofscale.formulas.custom import registered_anywhere
from tfprofscale.profiling import train_profile
from tfprofscale.profiling.assemble import layer_rows, totals
from tfprofscale.profiling.graph import graph_stats
from tfprofscale.profiling.graph.tf_cost_model import add_tf_estimates
from tfprofscale.profiling.memory import measure as memory
from tfprofscale.profiling.memory.batch_limits import add_batch_limits, check_budget_above_weights, check_budget_options
from tfprofscale.profiling.memory.graph_liveness import annotate_rows
from tfprofscale.profiling.runtime import fork_server
from tfprofscale.profiling.runtime import measure as runtime
from tfprofscale.profiling.runtime.attribution import attribute_ops, body_kernels_renamed
from tfprofscale.profiling.runtime.budget import check_processes, check_step_counts
from tfprofscale.profiling.runtime.kernel_trace import read_trace_events
from tfprofscale.profiling.runtime.machine_peaks import fresh_cached_peaks
from tfprofscale.profiling.runtime.measure import check_logdir, kernel_times
from tfprofscale.profiling.runtime.measurement_checks import measurement_warnings
from tfprofscale.profiling.runtime.nested_kernels import loop_events
from tfprofscale.profiling.runtime.processes import time_in_more_processes, worker_request
from tfprofscale.profiling.runtime.run_checks import check_step_fits, model_run_errors
from tfprofscale.profiling.runtime.shares import apply_step_medians, unattributed_time_us
from tfprofscale.profiling.runtime.timing import StopRule, apply_threads, parse_threads
from tfprofscale.profiling.runtime.xla_cluster import add_xla_view
from tfprofscale.profiling.trace import loading, tracing
from tfprofscale.profiling.trace.input_budget import check_model_fits
from tfprofscale.profiling.trace.input_shapes import check_input_shapes
from tfprofscale.profiling.trace.train_setup import check_optimizer_name
from tfprofscale.profiling.trace.user_code import user_code
from tfprofscale.profiling.trace.weight_checks import untrained_bias_warnings
from tfprofscale.profiling.trace.weights import load_weights
from tfprofscale.profiling.train_views import add_train_views
from tfprofscale.records import Report


@dataclass(frozen=True)
class ProfileOptions:
    """How to measure: batch, step counts, where traces go, optional data.

    ``memory`` runs the memory stage (turned off only to benchmark it),
    ``memory_trace`` adds the untimed BFC-allocator trace (see memory_trace.py).
    ``max_memory`` (bytes, or a size such as ``"6GiB"``) caps what the process
    may hold: the memory and cost-model stages are skipped when their
    estimated need would not fit under it (see tfprofscale/footprint.py).
    """

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
    input_shapes: tuple[tuple[int, ...], ...] | dict[str, tuple[int, ...]] | None = None
    tf_cost_model: bool = True
    memory_trace: bool = False
    memory: bool = True
    threads: str | int | None = None
    min_time: float = 0.02
    target_ci: float = 0.02
    max_time: float = 3.0
    train: bool = False
    optimizer: str | None = None
    jit_compile: bool = False
    memory_budget: int | str | None = None
    target_batch: int | None = None
    max_memory: int | str | None = None
    processes: int = 1

    def stop_rule(self) -> "StopRule":
        """When to stop timing: at least ``steps`` steps, rounds of ``min_time`` s, CI target or ``max_time`` s."""
        return StopRule(min_steps=self.steps, min_round_s=self.min_time, target_ci=self.target_ci,
                        max_time_s=self.max_time)

    def validate(self) -> None:
        """InputError for counts that cannot be measured."""
        parse_threads(self.threads)
        self.stop_rule().validate()
        check_processes(self.processes)
        check_step_counts(self.steps, self.warmup, self.trace_steps)
        for name in ("batch_size", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        for name in ("warmup", "trace_steps", "show_predictions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"{name.replace('_', '-')} must be an integer >= 0, got {value!r}")
        max_memory_bytes(self.max_memory)
        if self.input_shapes is not None:
            check_input_shapes(self.input_shapes)
        check_optimizer_name(self.optimizer)
        check_budget_options(self)


def profile(model_or_path: Any, batch_size: int = 1, **options: Any) -> "Report":
    """Profile a model file path, a keras.Model or a tf.function; return the Report.

    Keyword options are the fields of ``ProfileOptions`` (``steps``,
    ``warmup``, ``trace_steps``, ``logdir``, ``trace``, ``params`` ...).
    """
    return run_profile(model_or_path, ProfileOptions(batch_size=batch_size, **options))


def run_profile(model_or_path: Any, options: ProfileOptions) -> "Report":
    """Profile with explicit options (the CLI and the sweep workers call this)."""
    options.validate()

    threads_warning = apply_threads(parse_threads(options.threads))
    if options.processes > 1:
        fork_server.start()  # before this process's first op: later it could not fork (see fork_server)
    say = _Progress(options.progress)
    run_dir = _run_dir(options, _model_name(model_or_path)) if options.trace else None
    say("loading the model")
    model, model_file, params = _load(model_or_path, options)
    data = _load_data(model_file, params, options, say)

    check_model_fits(model, options.batch_size)  # from the declared shapes: before tracing, which takes long
    say(f"tracing at batch {options.batch_size}")
    example_inputs = model_file.example_inputs if model_file else None
    with user_code(model_file.path, "tracing the model") if model_file else nullcontext():
        traced = (train_profile.trace_step(model, model_file, params, options) if options.train else
                  tracing.trace(model, options.batch_size, example_inputs, params, options.input_shapes,
                                jit_compile=options.jit_compile))
    check_budget_above_weights(options, traced)
    max_memory = max_memory_bytes(options.max_memory)
    check_above_floor(max_memory, options.max_memory)
    say("counting graph FLOPs with tfprof")
    stats = graph_stats.graph_stats(traced.graph)
    costs = analytic.analyze_layers(traced.layers, _user_formulas(model_file))
    check_step_fits(traced, costs)
    if options.processes > 1 and model_file is None:
        raise InputError("--processes above 1 needs a model file: each timing process re-imports it")
    say(f"timing {options.warmup} warm-up + at least {options.steps} steps (until the median is within "
        f"{100 * options.target_ci:g}%)" + (f", tracing {options.trace_steps} more" if run_dir else "")
        + f", all within --max-time {options.max_time:g} s (fewer steps if a step is slow)"
        + (f"; then {options.processes - 1} more timing processes" if options.processes > 1 else ""))
    with model_run_errors():
        measured = runtime.measure(traced.run, steps=options.steps, warmup=options.warmup,
                                   trace_steps=options.trace_steps, run_dir=run_dir, rule=options.stop_rule())
    timing_warnings = [measured.budget_note] if measured.budget_note else []
    for note in timing_warnings:
        say(note)
    if options.processes > 1:
        combined, more = time_in_more_processes(
            measured.step_times, worker_request(str(model_file.path), params, options, measured.device),
            options.processes, say)
        measured, timing_warnings = replace(measured, step_times=combined), timing_warnings + more
    kernels = None
    if measured.traced_step_times:
        kernels, measured = _with_nested_kernels(stats, measured)
    if kernels is not None:
        stats = graph_stats.with_executions(stats, {k.name: k.occurrences for k in kernels})
    ops = attribute_ops(stats, kernels, traced.layer_of)
    rows = layer_rows(traced.layers, costs, ops, stats, traced=measured.traced_step_times is not None)
    if kernels is not None:
        apply_step_medians(rows, kernels, unattributed_time_us(ops, kernels))
    report = Report(
        model=_model_name(model_or_path), params=params, batch_size=options.batch_size,
        tensorflow=_tf_version(), device=measured.device, totals=totals(rows, ops, stats, measured),
        layers=rows, ops=ops, trace_dir=measured.trace_dir,
        precision_policy=train_profile.precision_policy(traced.keras_model),
    )
    if options.train:
        add_train_views(report, traced, stats, costs)
    if measured.trace_failure:
        report.warnings.append(measured.trace_failure)
    if traced.keras_model is not None:
        report.warnings += untrained_bias_warnings(traced.keras_model)
    if options.jit_compile:
        say("reading XLA's optimized HLO and its instructions in the trace")
        add_xla_view(report, traced)
        report.warnings.append("--jit-compile: memory is measured on the graph's own kernels in a Session, "
                               "without XLA (XLA's buffer assignment is not in the allocation records)")
    if options.tf_cost_model and not options.train:  # Grappler needs the frozen graph: a train step has none
        say("estimating with TensorFlow's cost model (Grappler)")
        add_tf_estimates(report, traced, max_memory=max_memory)
    if not options.train:
        annotate_rows(report.layers, traced.graph, traced.layer_of, traced.function.outputs,
                      (op.name for op in ops if op.fused_into))
    if options.memory and options.train:
        say("measuring memory: one traced Session step of the training step, variables re-created")
        train_profile.add_train_memory(report, traced, costs, measured.device)
    elif options.memory:
        say("measuring memory: one traced Session step with the model's variables")
        memory.attach_memory(report, memory.measure_memory(traced, measured.device, measured.peak_bytes,
                                                           measured.resident_bytes, report.layers, max_memory))
    if options.memory_budget is not None:
        say(f"finding the largest batch that fits {options.memory_budget}")
        add_batch_limits(report, model, model_file, params, options, traced)
    if options.memory and options.memory_trace:
        say("memory trace: a second, untimed run with the BFC CPU allocator (child process)")
        memory.add_memory_trace(report, model_file.path if model_file else model_or_path, run_dir, options)
    report.warnings += ([threads_warning] if threads_warning else []) + timing_warnings
    report.warnings += measurement_warnings(report.totals, rows, _cached_peak_flops())
    if data is not None and traced.keras_model is not None:
        _add_accuracy(report, traced.keras_model, data, options, say)
    say("done")
    return report


def _user_formulas(model_file: Any) -> dict[str, Any]:
    """The model file's own formulas; for a model object, those registered with ``@tfprofscale.formula``."""
    return model_file.formulas if model_file is not None else registered_anywhere()


def _with_nested_kernels(stats: Any, measured: Any) -> tuple[list[Any], Any]:
    """The kernels that ran, body kernels named after their body ops, with While loops' spans (and the
    measurement with its trace summary counting them)."""
    loops = loop_events(read_trace_events(measured.trace_dir), stats) if measured.trace_dir else []
    if loops:
        kernels, summary = kernel_times(measured.trace_dir, measured.device.startswith("GPU"), loops)
        measured = replace(measured, kernels=kernels, trace_summary=summary)
    return body_kernels_renamed(stats, measured.kernels), measured


def _load(model_or_path: Any, options: ProfileOptions) -> tuple[Any, Any, dict[str, Any]]:
    if isinstance(model_or_path, loading.ModelFile):
        model_file = model_or_path  # already imported (by the CLI): a model file is imported once per profile
    elif not isinstance(model_or_path, (str, os.PathLike)):
        if options.params:
            raise InputError("params apply to a model file, not to a model object")
        return model_or_path, None, {}
    else:
        model_file = loading.load_model_file(model_or_path)
    params = loading.resolve_params(model_file, options.params)
    model = loading.build(model_file, params)
    if options.weights:
        _load_weights(model, options.weights)
    return model, model_file, params


def _load_weights(model: Any, weights: str) -> None:
    load_weights(model, weights)


def _load_data(model_file: Any, params: dict[str, Any], options: ProfileOptions, say: "_Progress") -> Any:
    """The model's test data when a data directory is given, loaded before anything is measured."""
    data_dir = options.data or os.environ.get("TFPROFSCALE_DATA")
    if not data_dir or model_file is None or model_file.load_data is None:
        return None
    say(f"loading data from {data_dir}")
    return model_file.load_data(data_dir, **params)


def _add_accuracy(report: Any, model: Any, data: Any, options: ProfileOptions, say: "_Progress") -> None:
    say("evaluating on the test split")
    report.totals.accuracy = training.evaluate(model, data)
    if options.show_predictions:
        report.predictions = training.prediction_lines(model, data, options.show_predictions)


def _model_name(model_or_path: Any) -> str:
    if hasattr(model_or_path, "module") and hasattr(model_or_path, "path"):  # a loaded ModelFile
        return model_or_path.name
    if isinstance(model_or_path, (str, os.PathLike)):
        return Path(model_or_path).stem
    return str(getattr(model_or_path, "name", None) or getattr(model_or_path, "__name__", "model"))


def _run_dir(options: ProfileOptions, model_name: str) -> Path:
    logdir = check_logdir(options.logdir)
    name = options.run_name or f"{model_name}-b{options.batch_size}"
    return logdir / re.sub(r"[^A-Za-z0-9_.=,-]+", "_", name)


def _cached_peak_flops() -> float | None:
    """The machine's FLOP/s peak if a still-valid measurement is cached (never measured here: it takes seconds)."""
    peaks = fresh_cached_peaks()
    return peaks.flops_per_s if peaks is not None else None


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
