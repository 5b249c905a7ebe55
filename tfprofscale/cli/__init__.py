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


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except InputError as error:
        print(f"tfprofscale {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tfprofscale {args.command}: interrupted", file=sys.stderr)
        return 130


PROMPT_EXIT_COMMANDS = ("profile",)


def console_main() -> None:
    """The console script: ``main()``, then, after ``profile``, leave at once.

    A profile's report is written and flushed before ``main`` returns; what
    Python would do next (collect every cyclic object TensorFlow and Keras
    made, tear down modules) took 1.1-1.3 s on ResNet50 and changes nothing,
    so the process ends with ``os._exit``. Other commands exit normally.
    """
    status = main()
    if sys.argv[1:2] and sys.argv[1] in PROMPT_EXIT_COMMANDS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
