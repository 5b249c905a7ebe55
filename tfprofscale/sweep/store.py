"""A sweep's output directory: the lock that keeps two sweeps apart, and the stored records.

``reports/<config_id>.json`` holds one record per configuration (its
existence means done); ``sweep.json`` the resolved sweep. Every file is
written atomically, so a reader sees the old file or the whole new one.
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tfprofscale.errors import InputError
from tfprofscale.inputs import read_text
from tfprofscale.sweep.tables import atomic_write_text


class SweepLock:
    """``DIR/.lock`` holding this process's pid while a sweep writes to DIR.

    Created exclusively (a complete pid file hard-linked into place, which
    fails when the lock exists, as O_EXCL does, and is never seen empty).
    A lock whose pid is no longer alive is stale and taken over.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / ".lock"

    def __enter__(self) -> "SweepLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise InputError naming the live sweep that holds it."""
        if self.path.is_dir() or (self.path.exists() and not self.path.is_file()):
            raise InputError(f"{self.path} is not a lock file (a {'directory' if self.path.is_dir() else 'special file'}"
                             "): remove it, or use another --out")
        pid_file = self.path.with_name(f".lock.{os.getpid()}")
        pid_file.write_text(f"{os.getpid()}\n")
        try:
            for _ in range(3):
                try:
                    os.link(pid_file, self.path)
                    return
                except FileExistsError:
                    self._remove_if_stale()
            raise InputError(f"{self.path}: cannot take the lock, another sweep keeps taking it")
        finally:
            pid_file.unlink(missing_ok=True)

    def _remove_if_stale(self) -> None:
        holder = self.holder()
        if holder is not None and _alive(holder):
            raise InputError(f"{self.path.parent} is in use by another sweep (pid {holder}): wait for it to "
                             f"finish, or delete {self.path} if that process is not a sweep")
        self.path.unlink(missing_ok=True)

    def holder(self) -> int | None:
        """The pid in the lock file, or None if there is none."""
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if self.holder() == os.getpid():
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ResultStore:
    """The files of a sweep's output directory."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.reports_dir = self.out_dir / "reports"
        self.runs_dir = self.out_dir / "runs"
        self.plots_dir = self.out_dir / "plots"
        self.weights_dir = self.out_dir / "weights"
        self.manifest = self.out_dir / "sweep.json"

    def clear(self) -> None:
        """Remove every output of an earlier sweep (--no-resume)."""
        for folder in (self.reports_dir, self.runs_dir, self.plots_dir, self.weights_dir):
            shutil.rmtree(folder, ignore_errors=True)
        for name in ("results.csv", "layers.csv", "report.md", "sweep.json"):
            (self.out_dir / name).unlink(missing_ok=True)

    def start(self, settings: dict[str, Any], total: int) -> None:
        """Write sweep.json; InputError if DIR holds a sweep made with other settings."""
        previous = self._read_manifest() if self.manifest.exists() else {}
        changed = [key for key in settings if previous and key != "config_file" and previous.get(key) != settings[key]]
        if changed:
            raise InputError(f"{self.out_dir} holds a sweep with other settings ({changed[0]}: "
                             f"{previous.get(changed[0])!r} there, {settings[changed[0]]!r} now): "
                             f"use --no-resume to start over, or another --out")
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        started = previous.get("started") or _now()
        self._write_manifest({**settings, "configurations": total, "started": started, "finished": None})

    def forget(self, config_ids: list[str]) -> None:
        """Remove what an interrupted run left of these configurations: traces, temporary files."""
        for config_id in config_ids:
            shutil.rmtree(self.runs_dir / config_id, ignore_errors=True)
        partial_files = [*self.out_dir.glob(".*.tmp"), *self.reports_dir.glob(".*.tmp"),
                         *self.weights_dir.glob(".*.tmp"), *self.weights_dir.glob(".*.weights.h5")]
        for partial_file in partial_files:
            partial_file.unlink(missing_ok=True)

    def finish(self) -> None:
        """Stamp sweep.json with the finishing time."""
        manifest = self._read_manifest()
        self._write_manifest({**manifest, "finished": _now()})

    def _read_manifest(self) -> dict[str, Any]:
        """sweep.json; InputError (one line, with the way out) if it is not a JSON object."""
        try:
            manifest = json.loads(read_text(self.manifest, "sweep manifest"))
        except ValueError as error:
            raise InputError(f"{self.manifest} is corrupt ({error}): use --no-resume to start over, "
                             "or another --out") from None
        if not isinstance(manifest, dict):
            raise InputError(f"{self.manifest} is corrupt (a {type(manifest).__name__}, not an object): "
                             "use --no-resume to start over, or another --out")
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_text(self.manifest, json.dumps(manifest, indent=2) + "\n")

    def record(self, config_id: str) -> dict[str, Any] | None:
        """The stored record of a configuration, or None if it is not done."""
        path = self.reports_dir / f"{config_id}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def save_record(self, record: dict[str, Any]) -> None:
        """Write ``reports/<config_id>.json``."""
        atomic_write_text(self.reports_dir / f"{record['config_id']}.json", json.dumps(record, indent=2) + "\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
