"""Calls into a user's model file, with every exit from them turned into one line (exit status 2).

A model file that calls ``sys.exit(0)`` or raises ``SystemExit`` at import or
in ``build_model``/``example_inputs``/``load_data`` would otherwise end the
profile with status 0 and nothing written. ``os._exit`` skips every handler,
so while user code runs ``os._exit`` is replaced by a function that raises
instead (outside a guarded call, and in a process that never enters one, it
is the real ``os._exit``). What this cannot see: an exit from C code (e.g.
``ctypes`` calling libc's ``exit``) or ``posix._exit`` called by that name;
in a sweep those end the worker, which the sweep records as a failed
configuration ("worker process exited with status N").
"""
from __future__ import annotations

import functools
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from tfprofscale.errors import InputError

_real_os_exit = os._exit
_guard_depth = 0


class _UserExit(BaseException):
    """Raised in place of ``os._exit(status)`` while user code runs."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _guarded_os_exit(status: int) -> None:
    if _guard_depth:
        raise _UserExit(status)
    _real_os_exit(status)


@contextmanager
def user_code(file: str | os.PathLike, doing: str) -> Iterator[None]:
    """Run a block of user code; SystemExit or ``os._exit`` inside it becomes an InputError.

    The message: ``model file FILE exited with status N while DOING``.
    """
    global _guard_depth
    _guard_depth += 1
    os._exit = _guarded_os_exit
    try:
        yield
    except SystemExit as error:
        raise InputError(f"model file {Path(file).name} exited with status {exit_status(error.code)} "
                         f"while {doing}") from None
    except _UserExit as error:
        raise InputError(f"model file {Path(file).name} exited with status {error.status} "
                         f"(os._exit) while {doing}") from None
    finally:
        _guard_depth -= 1
        if not _guard_depth:
            os._exit = _real_os_exit


def exit_status(code: Any) -> str:
    """The status ``sys.exit(code)`` gives: None is 0, an int itself, anything else 1 (with the message)."""
    if code is None:
        return "0"
    if isinstance(code, int):
        return str(code)
    return f"1 ({' '.join(str(code).split())})"


def guarded(function: Callable[..., Any], file: str | os.PathLike, name: str) -> Callable[..., Any]:
    """``function`` (a user's hook such as ``example_inputs``) with exits and failures made one line."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with user_code(file, f"calling {name}"):
            try:
                return function(*args, **kwargs)
            except InputError:
                raise
            except Exception as error:  # the user's hook failed: say which, with its message
                shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
                raise InputError(f"model file {Path(file).name}: {name}({shown}) failed: "
                                 f"{type(error).__name__}: {first_line(error)}") from None

    return call


#: TensorFlow's prefix naming the internal function an op ran in (``{{function_node __wrapped__X_device_...}}``).
_FUNCTION_NODE = re.compile(r"^(\{\{function_node [^}]*\}\}\s*)+")
#: TensorFlow's suffix naming the op again (`` [Op:RandomUniform] name: ``).
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\](\s*name:.*)?$")


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (TensorFlow's run down dozens of lines), without
    TensorFlow's internal function-node prefix and op suffix."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return _OP_SUFFIX.sub("", _FUNCTION_NODE.sub("", lines[0])) if lines else ""
