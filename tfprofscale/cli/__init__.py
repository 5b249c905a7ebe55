"""The command line: one sub-command per module in this package.

Each command module exposes ``register(subparsers)``, which adds its parser
and sets ``run=function(args) -> int``. Bad input (``InputError``) becomes
one line on stderr and exit status 2; nothing prints a traceback for it.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile

from tfprofscale.errors import InputError

COMMAND_MODULES = ("profile", "train", "sweep", "audit", "fit")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors exit with status 2 in one line."""

    def error(self, message: str) -> None:  # noqa: D102 - argparse hook
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every command module that is present registered."""
    parser = _Parser(prog="tfprofscale", description=(
        "Graph-level profiler for TensorFlow models: hand formulas, TensorFlow's graph FLOPs and the "
        "measured runtime, side by side, layer by layer and over grids of configurations."))
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"tfprofscale.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"tfprofscale.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up chatter kept off stderr.

    TensorFlow 2.21 logs oneDNN/CUDA notices from C++ before any log level
    applies; they are captured and shown only if the import itself fails.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()
    try:
        return int(args.run(args) or 0)
    except InputError as error:
        print(f"tfprofscale {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tfprofscale {args.command}: interrupted", file=sys.stderr)
        return 130
