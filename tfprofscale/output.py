"""Output files written whole or not at all, and output paths checked before any work.

Every file tfprofscale writes goes to a temporary file in the same folder,
is flushed to disk (``fsync``) and then renamed over the target
(``os.replace``, atomic on POSIX): a reader, or a later run, sees the old
file or the whole new one, never a truncated one, even on a full disk.
Writers that need a path (matplotlib's ``savefig``, Keras' ``save_weights``)
write to ``atomic_path``'s temporary path, which keeps the target's name as
its tail, so the suffix that selects the format is the same.
"""
from __future__ import annotations

import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from tfprofscale.errors import InputError

TEMPORARY_PREFIX = ".tfprofscale-partial-"


def check_output_path(path: str | os.PathLike, option: str) -> Path:
    """``path`` if a file can be written there; else InputError naming why (before any work is done).

    Refused: a directory, something that is not a regular file (a FIFO, a
    device), a read-only file, a path under a regular file, a folder that does
    not exist or is read-only.
    """
    target = Path(path)
    where = f"{option} {path}"
    if target.is_dir():
        raise InputError(f"{where}: is a directory, not a file")
    if target.exists() and not target.is_file():
        raise InputError(f"{where}: is not a regular file")
    _check_folder_of(target, where)
    if target.exists() and not os.access(target, os.W_OK):
        raise InputError(f"{where}: the file is read-only")
    return target


def check_output_folder(path: str | os.PathLike, option: str) -> Path:
    """``path`` if it is, or can be created as, a writable folder; else InputError naming why."""
    folder = Path(path)
    where = f"{option} {path}"
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{where}: {folder} is a regular file, not a folder"
                         if folder.is_file() else f"{where}: is not a folder")
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise InputError(f"{where}: {existing} is a regular file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{where}: folder {existing} is read-only")
    return folder


def _check_folder_of(target: Path, where: str) -> None:
    folder = target.parent
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise InputError(f"{where}: {existing} is a regular file, not a folder")
    if existing != folder:
        raise InputError(f"{where}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{where}: folder {folder} is read-only")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    current = path if str(path) else Path(".")
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


@contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed onto ``path`` if the block succeeds.

    With ``keep_suffix`` the temporary name ends in ``path``'s whole name (so
    ``.weights.h5`` or ``.png`` still selects the format), else it is
    ``.NAME.PID-RANDOM.tmp``. If the block raises, the temporary file is
    removed and ``path`` is left as it was. ``OSError`` (a full disk, a
    read-only folder) becomes InputError.
    """
    target = Path(path)
    token = f"{os.getpid()}-{secrets.token_hex(3)}"
    temporary = target.with_name(f"{TEMPORARY_PREFIX}{token}-{target.name}" if keep_suffix
                                 else f".{target.name}.{token}.tmp")
    try:
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, target)
        _fsync_folder(target.parent)
    except OSError as error:
        raise InputError(f"cannot write {target}: {error.strerror or error}") from None
    finally:
        _remove_quietly(temporary)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, keep_suffix=False) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems refuse to open a folder: then skip it."""
    try:
        descriptor = os.open(folder if str(folder) else ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _remove_quietly(path: Path) -> None:
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


# ------------------------------------------------ outputs that would destroy an input

#: A labelled path: (what it is, e.g. "--json" or "model file", the path).
Labelled = tuple[str, "str | os.PathLike"]


def refuse_overlaps(outputs: Sequence[Labelled], inputs: Sequence[Labelled] = (),
                    input_folders: Sequence[Labelled] = (), output_folders: Sequence[Labelled] = ()) -> None:
    """InputError (one line) if writing the outputs would replace an input or another output.

    An output file is refused when it is the same file as an input (same
    resolved path, through symlinks, or the same inode: a hard link), lies
    is an existing file inside an input folder (``--data``, a sweep's reports), or is the same file
    as another output. An input inside an output folder (one the command
    writes into, e.g. a sweep's ``reports/``) is refused too. Call it before
    any work; missing files and ``None`` paths are skipped where they cannot clash.
    """
    outputs = [(label, path) for label, path in outputs if path is not None]
    inputs = [(label, path) for label, path in inputs if path is not None]
    for index, (label, path) in enumerate(outputs):
        for other_label, other in [*inputs, *outputs[:index]]:
            if same_file(path, other):
                what = "which this command reads" if (other_label, other) in inputs else "another output"
                raise InputError(f"{label} {path}: is the same file as {other_label} {other} ({what}): "
                                 "writing it would destroy that file; choose another path")
        for folder_label, folder in input_folders:
            if folder is not None and os.path.lexists(path) and is_inside(path, folder):
                raise InputError(f"{label} {path}: would replace a file inside {folder_label} {folder}, which "
                                 "this command reads: choose another path")
    for label, path in inputs:
        for folder_label, folder in output_folders:
            if is_inside(path, folder):
                raise InputError(f"{label} {path}: is inside {folder_label} {folder}, which this command writes "
                                 "into: move it, or write elsewhere")


def same_file(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """True if both paths name one file: equal once resolved (symlinks followed), or one inode (hard links)."""
    if _resolved(first) == _resolved(second):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True if ``path``, resolved, is ``folder`` or lies below it."""
    inner, outer = _resolved(path), _resolved(folder)
    return inner == outer or outer in inner.parents


def _resolved(path: str | os.PathLike) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare it as written
        return Path(os.path.abspath(path))
