"""The command line: one sub-command per module in this package.

Each command module exposes ``register(subparsers)``, which adds its parser
and sets ``run=function(args) -> int``. Bad input (``InputError``) becomes
one line on stderr and exit status 2; nothing prints a traceback for it.
Ctrl-C (exit 130) and SIGTERM (exit 143) end a command in one line too,
after its clean-up ran; a command may set ``args.interrupt_note`` (what
was kept) for that line.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
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


#: Options whose value may start with "-" (argparse would take ``--input-shape -1,32,3`` for two options).
DASH_VALUE_OPTIONS = ("--input-shape", "--param")


def _join_dash_values(argv: list[str]) -> list[str]:
    """``--input-shape -1,32,3`` -> ``--input-shape=-1,32,3``, so the value reaches its check and its message."""
    joined: list[str] = []
    for item in argv:
        if joined and joined[-1] in DASH_VALUE_OPTIONS and item.startswith("-") and not item.startswith("--"):
            joined[-1] = f"{joined[-1]}={item}"
        else:
            joined.append(item)
    return joined


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: workers stopped, what is done kept, one line, exit status 143."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _on_sigterm(handler: object) -> object:
    """Install a SIGTERM handler; the previous one (None where only the main thread may set handlers)."""
    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, TypeError):  # not the main thread, or no previous handler to restore
        return None


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(_join_dash_values(argv))
    previous_sigterm = _on_sigterm(_raise_terminated)
    try:
        return int(args.run(args) or 0)
    except InputError as error:
        print(f"tfprofscale {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        by = " by SIGTERM" if isinstance(interrupt, Terminated) else ""
        note = getattr(args, "interrupt_note", None)
        print(f"tfprofscale {args.command}: interrupted{by}" + (f": {note}" if note else ""), file=sys.stderr)
        return 143 if by else 130
    finally:
        _on_sigterm(previous_sigterm)


PROMPT_EXIT_COMMANDS = ("profile",)


def console_main() -> None:
    """The console script and ``python -m tfprofscale``: ``main()``, then leave.

    After an interrupt (130, 143) the clean-up is done and said, so a second
    Ctrl-C must not break the exit. After ``profile`` the report is written
    and flushed before ``main`` returns; what Python would do next (collect
    every cyclic object TensorFlow and Keras made, tear down modules) took
    1.1-1.3 s on ResNet50 and changes nothing, so the process ends with
    ``os._exit``. Other commands exit normally.
    """
    status = main()
    if status in (130, 143):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.argv[1:2] and sys.argv[1] in PROMPT_EXIT_COMMANDS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
