"""``tfprofscale train MODEL.py --data DIR``: train a model file on its real data, save the weights."""
from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from tfprofscale.errors import InputError
from tfprofscale.inputs import check_input_file
from tfprofscale.output import atomic_path, check_output_path, refuse_overlaps
from tfprofscale.profiling.trace import loading
from tfprofscale.quiet import import_tensorflow_quietly

if TYPE_CHECKING:
    from tfprofscale.training import TrainResult

WEIGHTS_SUFFIX = ".weights.h5"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train", help="train a model file on its data and save the weights",
        description="Train a model file (one with load_data) on its training split, report the "
                    "test accuracy and save the weights for profile/sweep --weights.")
    parser.add_argument("model", help="model file defining build_model(**params) and load_data(path, **params)")
    parser.add_argument("--data", metavar="DIR", help="data directory (default: $TFPROFSCALE_DATA)")
    parser.add_argument("--epochs", type=int, default=10, metavar="N", help="training epochs (default 10)")
    parser.add_argument("--learning-rate", type=float, default=0.001, metavar="X", help="Adam learning rate (default 0.001)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="training batch size (default 64)")
    parser.add_argument("--dropout", type=float, metavar="P", help="dropout rate; same as --param dropout=P")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="model parameter (repeatable)")
    parser.add_argument("--save", metavar="FILE", help=f"write the trained weights (name ends in {WEIGHTS_SUFFIX})")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load, train, evaluate on the test split, save; prints a short summary."""
    _check_arguments(args)
    _check_weights_target(args.save)
    refuse_overlaps([("--save", args.save)], [("model file", args.model)], [("--data", args.data)])
    check_input_file(args.model, "model file")
    from tfprofscale import datasets

    data_dir = datasets.resolve_data_dir(args.data)
    import_tensorflow_quietly()
    from tfprofscale import training

    model_file = loading.load_model_file(args.model)
    if model_file.load_data is None:
        raise InputError(f"model file {args.model} has no load_data(path, **params): it cannot be trained")
    pairs = args.param + ([] if args.dropout is None else [f"dropout={args.dropout!r}"])
    params = loading.parse_params(pairs, model_file)
    model = loading.build(model_file, params)
    if not hasattr(model, "fit"):
        raise InputError(f"model file {args.model} gives a {type(model).__name__}, not a keras.Model: it cannot be trained")
    data = model_file.load_data(data_dir, **params)
    result = training.train(model, data, args.epochs, args.learning_rate, args.batch_size, progress=not args.quiet)
    accuracy = training.evaluate(model, data)
    print(_summary(model_file.name, result, accuracy, len(data.x_test)))
    if args.save:
        with atomic_path(args.save) as temporary:  # the name keeps its .weights.h5 ending
            model.save_weights(str(temporary))
        changed = {key: value for key, value in params.items() if model_file.defaults.get(key) != value}
        shown = "".join(f" --param {key}={value!r}" for key, value in changed.items())
        print(f"weights saved to {args.save} (profile with: --weights {args.save}{shown})")
    return 0


def _summary(name: str, result: TrainResult, accuracy: float, test_examples: int) -> str:
    """One line: what was trained, the final training loss and the test accuracy."""
    return (f"{name}: {result.epochs} epoch(s) on {result.train_examples} examples in {result.wall_time_s:.1f} s, "
            f"final loss {result.loss_per_epoch[-1]:.4f}, train accuracy {result.train_accuracy_per_epoch[-1]:.4f}, "
            f"test accuracy {accuracy:.4f} over {test_examples} examples")


def _check_weights_target(target: str | None) -> None:
    """InputError unless ``target`` is None or a writable ``*.weights.h5`` path."""
    if target is None:
        return
    if not target.endswith(WEIGHTS_SUFFIX):
        raise InputError(f"--save {target}: the file name must end in {WEIGHTS_SUFFIX} (Keras weights format)")
    check_output_path(target, "--save")


def _check_arguments(args: argparse.Namespace) -> None:
    """InputError for a training setting that cannot train (before TensorFlow is imported)."""
    if not math.isfinite(args.learning_rate) or args.learning_rate <= 0:
        raise InputError(f"--learning-rate {args.learning_rate}: must be a finite number > 0")
    for option, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise InputError(f"{option} {value}: must be an integer >= 1")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        raise InputError(f"--dropout {args.dropout}: must be a rate in [0, 1)")
