"""``tfprofscale fit`` and ``tfprofscale predict``: a latency model from a sweep, and its predictions.

``fit RESULTS_DIR --out model.json`` fits the latency model on every
finished configuration of a sweep directory, one model per machine that
measured them (tfprofscale.audit.machine_models), and prints it, with its
held-out validation (against an affine baseline and TensorFlow's cost
model, beside the measurement's repeatability) when the sweep is large
enough. ``predict model.json
MODEL.py`` traces one configuration (no timing: graph and formulas only)
and prints the predicted step latency, layer by layer.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tfprofscale.errors import InputError
from tfprofscale.inputs import check_input_file
from tfprofscale.output import check_output_path, refuse_overlaps
from tfprofscale.profiling.trace import loading
from tfprofscale.profiling.trace.input_shapes import parse_input_shapes
from tfprofscale.quiet import import_tensorflow_quietly
from tfprofscale.sweep.files import SWEEP_FILES
from tfprofscale.sweep.machine import this_machine

if TYPE_CHECKING:
    from tfprofscale.records import LayerRow
    from tfprofscale.audit.latency import LatencyModel


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fit`` and ``predict`` sub-commands."""
    fit = subparsers.add_parser("fit", help="fit a latency model on a sweep directory",
                                description="Fit the step-latency model on a sweep's measured configurations.")
    fit.add_argument("results_dir", help="sweep output directory (with reports/*.json)")
    fit.add_argument("--out", default="latency_model.json", help="model file to write (default latency_model.json)")
    fit.add_argument("--statistic", choices=("median", "p10", "min"), default=None,
                     help="step time a configuration is fitted to (default: the one whose spread between "
                          "processes is smallest on the sweep, printed with the fit; median when unknown)")
    fit.add_argument("--mode", choices=("infer", "train"), default="infer",
                     help="fit the inference or the training-step configurations of a sweep with [sweep] mode "
                          "(default infer)")
    fit.set_defaults(run=run_fit)
    predict = subparsers.add_parser("predict", help="predict a model's step latency without running it",
                                    description="Predict the step latency of one configuration from a fitted model.")
    predict.add_argument("latency_model", help="model file written by `tfprofscale fit`")
    predict.add_argument("model", help="model file defining build_model(**params) or model")
    predict.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                         help="model parameter (repeatable)")
    predict.add_argument("--batch-size", type=int, default=1, help="inference batch size (default 1)")
    predict.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]D1,D2,...",
                         help="per-example input shape for inputs the model leaves undefined (once per input)")
    predict.add_argument("--machine", metavar="FINGERPRINT",
                         help="use the model fitted on this machine (default: this machine's; see `fit`'s output)")
    predict.set_defaults(run=run_predict)


def run_fit(args: argparse.Namespace) -> int:
    """Fit, save and print the model, and its validation when there are enough configurations."""
    check_sweep_dir(args.results_dir)
    check_output_path(args.out, "--out")
    sweep = Path(args.results_dir)
    refuse_overlaps([("--out", args.out)], [(f"the sweep's {name}", sweep / name) for name in SWEEP_FILES],
                    [("the sweep's reports", sweep / "reports")])
    import_tensorflow_quietly()
    from tfprofscale.audit.latency import fit_latency_model
    from tfprofscale.audit.machine_models import UNKNOWN, FittedMachine, save_models, sweep_machines
    from tfprofscale.audit.statistic_spread import statistic_spreads
    from tfprofscale.audit.validation import MIN_VALIDATION_CONFIGS, load_sweep, validate_samples

    machines = sweep_machines(args.results_dir) if Path(args.results_dir).is_dir() else {}
    fitted = []
    for fingerprint, description in (machines or {None: ""}).items():
        spreads = statistic_spreads(args.results_dir, machine=fingerprint if len(machines) > 1 else None)
        statistic = args.statistic or spreads.best()
        samples = load_sweep(args.results_dir, statistic,
                             machine=fingerprint if len(machines) > 1 else None, mode=args.mode)
        if not samples:
            raise InputError(f"{args.results_dir} has no finished configuration (reports/*.json with status ok)")
        if len(samples) >= MIN_VALIDATION_CONFIGS:
            validation = validate_samples(samples)
            model, lines = validation.model, validation.lines()
        else:
            model = fit_latency_model(samples)
            lines = model.lines() + [f"(no held-out validation: it needs {MIN_VALIDATION_CONFIGS} configurations, "
                                     f"the sweep has {len(samples)})"]
        print(f"machine {fingerprint}: {description}" if fingerprint else "machine not recorded")
        print(spreads.line(statistic, named=args.statistic is not None))
        print("\n".join(lines))
        fitted.append(FittedMachine(fingerprint or UNKNOWN, description, model))
    save_models(args.out, fitted)
    print(f"wrote {args.out}: one latency model per machine ({len(fitted)} machine{'s' * (len(fitted) > 1)})")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """Trace the configuration, predict its step latency, print it per layer."""

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be an integer >= 1, got {args.batch_size}")
    input_shapes = parse_input_shapes(args.input_shape)
    check_input_file(args.latency_model, "latency model")
    check_input_file(args.model, "model file")
    import_tensorflow_quietly()
    from tfprofscale.audit.machine_models import load_for_machine

    model = load_for_machine(args.latency_model, args.machine, this_machine()).model
    layers = untimed_layer_rows(args.model, args.param, args.batch_size, input_shapes)
    print("\n".join(prediction_lines(model, layers, args.batch_size)))
    return 0


def prediction_lines(model: "LatencyModel", layers: list["LayerRow"], batch_size: int) -> list[str]:
    """``predict``'s output: each layer's predicted time (``–`` for a type the fit left out), overhead, total."""
    width = max(len(f"{row.name} ({row.type})") for row in layers)
    lines = []
    for row, time_us in zip(layers, model.layer_times_us(layers)):
        shown = f"{'–':>10} us  (left out of the fit)" if model.left_out(row) else f"{time_us:10.1f} us"
        lines.append(f"{row.name + ' (' + row.type + ')':<{width}}  {shown}")
    lines.append(f"{'per-step overhead':<{width}}  {model.overhead_us:10.1f} us")
    left_out = sorted({row.type for row in layers if model.left_out(row)})
    if left_out:
        lines.append(f"left out of the fit: {', '.join(left_out)} (the sweep's configurations could not separate "
                     "their time from the per-step overhead, which holds it; sweep more varied configurations)")
    lines.append(f"predicted step latency: {model.predict_ms(layers):.3f} ms (batch {batch_size})")
    return lines


def check_sweep_dir(path: str) -> None:
    """InputError unless ``path`` is an existing directory (a file or a missing path is named as such)."""
    folder = Path(path)
    if folder.is_dir():
        return
    if folder.exists():
        kind = "a file" if folder.is_file() else "not a regular file or folder"
        raise InputError(f"{path} is {kind}, not a sweep directory (give the sweep's --out folder)")
    raise InputError(f"sweep directory {path} does not exist")


def untimed_layer_rows(model_path: str, param_pairs: list[str], batch_size: int,
                       input_shapes: tuple[tuple[int, ...], ...] | None = None) -> list["LayerRow"]:
    """The per-layer rows of one configuration from its graph and formulas, without running it."""
    from tfprofscale.formulas import analytic
    from tfprofscale.profiling.assemble import layer_rows
    from tfprofscale.profiling.graph import graph_stats
    from tfprofscale.profiling.runtime.attribution import attribute_ops
    from tfprofscale.profiling.trace import tracing

    model_file = loading.load_model_file(model_path)
    params = loading.parse_params(param_pairs, model_file)
    traced = tracing.trace(loading.build(model_file, params), batch_size, model_file.example_inputs, params,
                           input_shapes, with_inputs=False)
    stats = graph_stats.graph_stats(traced.graph)
    costs = analytic.analyze_layers(traced.layers, model_file.formulas)
    ops = attribute_ops(stats, None, traced.layer_of)
    return layer_rows(traced.layers, costs, ops, stats, traced=False)
