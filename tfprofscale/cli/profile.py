"""``tfprofscale profile MODEL.py``: one model, three views of its cost."""
from __future__ import annotations

import argparse
import os
from typing import Any

from tfprofscale.cli.html_pages import write_profile_html
from tfprofscale.errors import InputError
from tfprofscale.footprint import max_memory_bytes
from tfprofscale.output import check_output_folder, check_output_path, refuse_overlaps
from tfprofscale.profiling.runtime.budget import check_processes, check_step_counts
from tfprofscale.profiling.runtime.timing import StopRule, apply_threads, parse_threads
from tfprofscale.profiling.trace import loading
from tfprofscale.profiling.trace.input_shapes import parse_input_shapes
from tfprofscale.profiling.trace.weights import check_weights_format
from tfprofscale.quiet import import_tensorflow_quietly
from tfprofscale.report.fit_width import output_width
from tfprofscale.report.op_table import render_ops


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``profile`` sub-command."""
    parser = subparsers.add_parser("profile", help="profile one model file",
                                   description="Profile one model: formulas, graph FLOPs and runtime per layer.")
    parser.add_argument("model", help="model file defining build_model(**params) or model")
    add_measure_options(parser)
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="model parameter (repeatable)")
    parser.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]D1,D2,...",
                        help="per-example input shape, e.g. 224,224,3, for inputs the model leaves undefined "
                             "(once per input, in order, or by input name: token_ids=128)")
    parser.add_argument("--logdir", default="runs", help="TensorBoard logdir for the trace (default: runs)")
    parser.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    parser.add_argument("--csv", metavar="FILE", help="write the per-layer table as CSV")
    parser.add_argument("--html", metavar="FILE",
                        help="write an interactive HTML page of the report that opens offline (plotly.js inline)")
    parser.add_argument("--show-predictions", type=int, default=0, metavar="N",
                        help="with --data, print N test predictions")
    parser.add_argument("--ops", type=int, default=0, metavar="N",
                        help="also print the N slowest kernels (xprof's op-stats view, which stays blank offline)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.add_argument("--wide", action="store_true",
                        help="print every column of the table, whatever the terminal's width (COLUMNS)")
    parser.add_argument("--no-cost-model", action="store_true",
                        help="skip TensorFlow's cost model (Grappler's estimate per op; seconds on large graphs)")
    parser.add_argument("--max-memory", metavar="SIZE",
                        help="most memory this profile may hold, e.g. 6GiB or 500MB: the memory and cost-model "
                             "stages are skipped (one line says so) when their estimated need would not fit "
                             "(default: the memory the system has available)")
    parser.add_argument("--memory-trace", action="store_true",
                        help="also trace a second, untimed run with the BFC CPU allocator into the logdir "
                             "(<run>-memory), for TensorBoard's Memory Profile; slower")
    add_train_options(parser)
    add_timing_options(parser)
    parser.set_defaults(run=run)


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """--train and its companions, --jit-compile, --memory-budget and --target-batch."""
    parser.add_argument("--train", action="store_true",
                        help="profile one training step (forward, loss, gradients, optimizer update) instead of "
                             "inference")
    parser.add_argument("--optimizer", metavar="NAME",
                        help="with --train: sgd, momentum, adam, adamw or rmsprop instead of the model's own")
    parser.add_argument("--jit-compile", action="store_true", help="compile the step with XLA, as Keras does on GPU")
    parser.add_argument("--memory-budget", metavar="SIZE",
                        help="also find the largest batch whose measured peak fits SIZE (e.g. 2GiB, 500MB)")
    parser.add_argument("--target-batch", type=int, metavar="N",
                        help="with --train --memory-budget: plan gradient accumulation to reach batch N")


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    """How long and how precisely to time, and on how many threads."""
    parser.add_argument("--threads", metavar="N|INTRA,INTER",
                        help="TensorFlow threads, set before any op runs: N = N intra-op threads and 1 inter-op, "
                             "or INTRA,INTER (default: TensorFlow's choice)")
    parser.add_argument("--min-time", type=float, default=0.02, metavar="S",
                        help="minimum seconds per timed round; steps per round are calibrated to it (default 0.02)")
    parser.add_argument("--target-ci", type=float, default=2.0, metavar="PCT",
                        help="stop timing when the median's 95%% interval is this %% of it wide (default 2)")
    parser.add_argument("--max-time", type=float, default=3.0, metavar="S",
                        help="time budget in seconds for the whole measurement of one process: warm-up, timed and "
                             "traced steps shrink to fit it (default 3)")
    parser.add_argument("--processes", default=1, metavar="N",
                        help="time the step in N processes, one after another (this one and N - 1 fresh ones): "
                             "the interval then covers the median another run of the command reports "
                             "(default 1: within-process only)")


def add_measure_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``profile`` and ``sweep``: batch, steps, weights, data."""
    parser.add_argument("--batch-size", type=int, default=1, help="inference batch size (default 1)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up steps (default 5)")
    parser.add_argument("--trace-steps", type=int, default=20, help="profiled steps (default 20)")
    parser.add_argument("--no-trace", action="store_true", help="skip the profiler trace")
    parser.add_argument("--weights", metavar="FILE", help="load trained weights before profiling")
    parser.add_argument("--data", metavar="DIR", help="data directory for accuracy (or TFPROFSCALE_DATA)")


def run(args: argparse.Namespace) -> int:
    """Profile, print the table, write the requested files."""
    if args.ops < 0:
        raise InputError(f"--ops {args.ops}: must be an integer >= 0")
    refuse_overlaps([("--json", args.json), ("--csv", args.csv), ("--html", args.html)],
                    [("model file", args.model), ("--weights", args.weights)], [("--data", args.data)])
    for option, target in (("--json", args.json), ("--csv", args.csv), ("--html", args.html)):
        if target is not None:
            check_output_path(target, option)
    if not args.no_trace:
        check_output_folder(args.logdir, "--logdir")
    if args.weights is not None:
        check_weights_format(args.weights)
    if args.optimizer is not None and not args.train:
        raise InputError("--optimizer chooses the optimizer of the training step: it needs --train")
    max_memory_bytes(args.max_memory)
    _apply_threads_first(args)
    input_shapes = parse_input_shapes(args.input_shape)
    model_file = loading.load_model_file(args.model)
    _check_data_options(args, model_file)
    import_tensorflow_quietly()
    from tfprofscale.profiling.pipeline import ProfileOptions, run_profile

    params = loading.parse_params(args.param, model_file)
    options = ProfileOptions(
        batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, trace_steps=args.trace_steps,
        logdir=args.logdir, trace=not args.no_trace, weights=args.weights, data=args.data,
        show_predictions=args.show_predictions, params=params, progress=not args.quiet,
        input_shapes=input_shapes,
        tf_cost_model=not args.no_cost_model,
        memory_trace=args.memory_trace,
        threads=args.threads, min_time=args.min_time, target_ci=args.target_ci / 100, max_time=args.max_time,
        train=args.train, optimizer=args.optimizer, jit_compile=args.jit_compile,
        memory_budget=args.memory_budget, target_batch=args.target_batch,
        max_memory=args.max_memory,
        processes=check_processes(args.processes),
    )
    report = run_profile(model_file, options)
    from tfprofscale.report.table import render

    print(render(report, output_width(args.wide)))
    if args.ops:

        print()
        print(render_ops(report, args.ops))
    for line in report.predictions:
        print(line)
    if args.json:
        report.write_json(args.json)
    if args.csv:
        report.write_csv(args.csv)
    if args.html:

        write_profile_html(args.html, report.to_dict())
    return 0


def _check_data_options(args: argparse.Namespace, model_file: Any) -> None:
    """InputError for --data or --show-predictions that would be silently ignored (as train and sweep refuse them)."""
    from tfprofscale.datasets import DATA_ENV_VAR

    if args.show_predictions < 0:
        raise InputError(f"--show-predictions {args.show_predictions}: must be an integer >= 0")
    if args.data is not None and model_file.load_data is None:
        raise InputError(f"--data {args.data}: model file {args.model} has no load_data(path, **params), "
                         "so it has no data to evaluate")
    if args.show_predictions and model_file.load_data is None:
        raise InputError(f"--show-predictions: model file {args.model} has no load_data(path, **params), "
                         "so it has no test examples to predict")
    if args.show_predictions and args.data is None and not os.environ.get(DATA_ENV_VAR):
        raise InputError(f"--show-predictions {args.show_predictions} needs --data DIR (or {DATA_ENV_VAR}): "
                         "the predictions are made on its test split")


def _apply_threads_first(args: argparse.Namespace) -> None:
    """Check the timing options; with --threads, set TensorFlow's pools before the model file can run an op."""

    if not args.target_ci > 0:
        raise InputError(f"--target-ci must be a percentage > 0, got {args.target_ci}")
    StopRule(min_round_s=args.min_time, target_ci=args.target_ci / 100, max_time_s=args.max_time).validate()
    check_processes(args.processes)
    check_step_counts(args.steps, args.warmup, args.trace_steps)
    threads = parse_threads(args.threads)
    if threads is None:
        return

    import_tensorflow_quietly()
    apply_threads(threads)

