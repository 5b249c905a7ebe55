"""Input files read safely: only regular files, of bounded size, checked before they are opened.

A FIFO given as a config file would block ``open`` for ever and ``/dev/zero``
would fill the memory: both are refused by ``stat`` before anything is read.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from tfprofscale.errors import InputError

#: Configuration, latency model and report files are text of at most this size.
TEXT_LIMIT_BYTES = 64 * 2**20


def check_input_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` if it is a readable regular file; else InputError: does not exist / is a directory / not regular."""
    file = Path(path)
    try:
        mode = os.stat(file).st_mode
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except NotADirectoryError:
        raise InputError(f"{what} {path} does not exist (a folder on its path is a regular file)") from None
    except OSError as error:
        raise InputError(f"{what} {path} cannot be read: {error.strerror or error}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise InputError(f"{what} {path} is not a regular file")
    if not os.access(file, os.R_OK):
        raise InputError(f"{what} {path} is not readable")
    return file


def read_bytes(path: str | os.PathLike, what: str, limit: int = TEXT_LIMIT_BYTES) -> bytes:
    """The content of a regular file of at most ``limit`` bytes; InputError otherwise."""
    file = check_input_file(path, what)
    try:
        with open(file, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise InputError(f"{what} {path} cannot be read: {error.strerror or error}") from None
    if len(data) > limit:
        raise InputError(f"{what} {path} is larger than {limit:,} bytes: not a file tfprofscale wrote or reads")
    return data


def read_text(path: str | os.PathLike, what: str, limit: int = TEXT_LIMIT_BYTES) -> str:
    """The UTF-8 text of a regular file; InputError if it is binary (NUL bytes) or not UTF-8."""
    data = read_bytes(path, what, limit)
    if b"\0" in data:
        raise InputError(f"{what} {path} is not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {error.start})") from None
