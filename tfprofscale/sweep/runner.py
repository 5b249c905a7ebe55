"""Sweeps: a grid of configurations profiled in workers, stored as each one finishes.

``expand_grid`` turns a ``SweepConfig`` into ``ConfigTask``s (the Cartesian
product of the grid, the batch sizes and the repeats); ``run_sweep`` profiles
the ones not done yet through an ``Executor`` and writes the output directory:
``sweep.json`` (the resolved sweep), ``reports/<config_id>.json`` (one record
per configuration; its existence means done), ``results.csv`` and
``layers.csv`` (rewritten after each configuration), ``runs/`` (TensorBoard:
a trace and an HParams session per configuration), ``plots/*.png``,
``report.md``, and ``.lock`` while a sweep runs. Every file is written
atomically (a temporary file, then ``os.replace``), so killing a sweep loses
at most the configurations in flight; running it again resumes.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import sys
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from tfprofscale.errors import InputError
from tfprofscale.sweep.executor import Executor, LocalProcessPool, Outcome
from tfprofscale.sweep.config import SweepConfig, TrainingSettings
from tfprofscale.sweep.report import LAYER_FIELDS, RESULT_COLUMNS, atomic_write_text, write_summaries, write_tables

MAX_ID_CHARS = 180
_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ConfigTask:
    """One configuration: grid values, inference batch size and repeat number."""

    config_id: str
    params: dict[str, Any]
    batch_size: int
    repeat: int


@dataclass(frozen=True)
class RunPlan:
    """What every configuration of a sweep shares: the model file and how to measure it."""

    model: str
    steps: int
    warmup: int
    trace_steps: int
    logdir: str
    weights_dir: str
    weights: str | None = None
    data: str | None = None
    training: TrainingSettings | None = None
    input_shapes: tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True)
class SweepOptions:
    """How to run a sweep: where to, resume or not, workers, data and weights."""

    out_dir: Path
    resume: bool = True
    workers: int = 1
    data: str | None = None
    weights: str | None = None
    progress: bool = True


@dataclass
class SweepSummary:
    """What a sweep did."""

    out_dir: Path
    total: int
    resumed: int
    failed: dict[str, str] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> int:
        """Configurations profiled successfully."""
        return self.total - len(self.failed)


def config_id(params: dict[str, Any], batch_size: int, repeat: int) -> str:
    """``k=v,...,batch_size=B,rR``: a stable, file-name-safe name for one configuration."""
    return _file_name([*_pairs(params), f"batch_size={batch_size}", f"r{repeat}"])


def _model_id(params: dict[str, Any]) -> str:
    """``k=v,...``: the name of the model a configuration builds (batch and repeat aside)."""
    return _file_name(_pairs(params) or ["defaults"])


def _pairs(params: dict[str, Any]) -> list[str]:
    return [f"{key}={_UNSAFE_CHARACTERS.sub('_', str(value))}" for key, value in params.items()]


def _file_name(parts: list[str]) -> str:
    """The parts joined by commas; a long name is cut and ends in a hash of the whole."""
    name = ",".join(parts)
    if len(name) <= MAX_ID_CHARS:
        return name
    return f"{name[:MAX_ID_CHARS - 13]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"


def expand_grid(config: SweepConfig) -> list[ConfigTask]:
    """Every configuration of the sweep, in grid order; InputError if two get the same id."""
    _check_names(config)
    names = list(config.grid)
    tasks, seen = [], {}
    for values in itertools.product(*config.grid.values()):
        params = dict(zip(names, values))
        for batch_size, repeat in itertools.product(config.batch_sizes, range(config.repeats)):
            task = ConfigTask(config_id(params, batch_size, repeat), params, batch_size, repeat)
            if task.config_id in seen:
                raise InputError(f"{config.source} [grid]: values {seen[task.config_id]} and {params} "
                                 f"give the same configuration id {task.config_id!r}")
            seen[task.config_id] = params
            tasks.append(task)
    return tasks


def _check_names(config: SweepConfig) -> None:
    clashes = [name for name in config.grid if name in {*RESULT_COLUMNS, *LAYER_FIELDS, "config_id"}]
    if clashes:
        raise InputError(f"{config.origin(clashes[0])}: {clashes[0]!r} is also a column of the results")


def run_configuration(plan: RunPlan, task: ConfigTask) -> dict[str, Any]:
    """Profile one configuration (in a worker); its report dict and training summary."""
    import keras

    from tfprofscale.profiling.pipeline import ProfileOptions, run_profile

    try:
        weights, training = plan.weights, None
        if plan.training is not None:
            weights, training = _trained_weights(plan, task)
        options = ProfileOptions(
            batch_size=task.batch_size, steps=plan.steps, warmup=plan.warmup, trace_steps=plan.trace_steps,
            logdir=plan.logdir, trace=plan.trace_steps > 0, run_name=task.config_id, weights=weights,
            data=plan.data, params=dict(task.params), input_shapes=plan.input_shapes,
        )
        return {"report": run_profile(plan.model, options).to_dict(), "training": training}
    finally:
        keras.backend.clear_session()


def _trained_weights(plan: RunPlan, task: ConfigTask) -> tuple[str, dict[str, Any]]:
    """Weights trained for ``task.params`` (all batch sizes and repeats share them), trained once."""
    from tfprofscale.profiling import loading
    from tfprofscale import training

    name = _model_id(task.params)
    weights = Path(plan.weights_dir) / f"{name}.weights.h5"
    summary_file = Path(plan.weights_dir) / f"{name}.training.json"
    if weights.is_file() and summary_file.is_file():
        return str(weights), json.loads(summary_file.read_text())
    model_file = loading.load_model_file(plan.model)
    params = loading.resolve_params(model_file, task.params)
    model = loading.build(model_file, params)
    data = model_file.load_data(plan.data, **params)
    result = training.train(model, data, plan.training.epochs, plan.training.learning_rate,
                            plan.training.batch_size, progress=False)
    summary = {"epochs": result.epochs, "learning_rate": result.learning_rate, "batch_size": result.batch_size,
               "train_examples": result.train_examples, "final_loss": result.loss_per_epoch[-1],
               "final_train_accuracy": result.train_accuracy_per_epoch[-1], "wall_time_s": result.wall_time_s,
               "weights": str(weights)}
    weights.parent.mkdir(parents=True, exist_ok=True)
    partial_weights = weights.with_name(f".{name}.{os.getpid()}.weights.h5")
    model.save_weights(str(partial_weights))
    atomic_write_text(summary_file, json.dumps(summary, indent=2) + "\n")
    os.replace(partial_weights, weights)
    return str(weights), summary


def prepare_worker() -> None:
    """Run once in each worker: accuracy only from the sweep's --data, TensorFlow imported quietly."""
    from tfprofscale.quiet import import_tensorflow_quietly
    from tfprofscale.datasets import DATA_ENV_VAR

    os.environ.pop(DATA_ENV_VAR, None)
    import_tensorflow_quietly()


def run_sweep(config: SweepConfig, options: SweepOptions, executor: Executor | None = None) -> SweepSummary:
    """Profile every configuration not done yet, then write tables, plots, HParams and report.md."""
    tasks = expand_grid(config)
    out_dir = _make_out_dir(Path(options.out_dir))
    _check_output_files(out_dir)
    with SweepLock(out_dir):
        store = ResultStore(out_dir)
        if not options.resume:
            store.clear()
        store.start(_settings(config, options), len(tasks))
        records = {task.config_id: store.record(task.config_id) for task in tasks}
        done = {key: record for key, record in records.items() if record is not None}
        todo = [task for task in tasks if task.config_id not in done]
        store.forget([task.config_id for task in todo])
        plan = _plan(config, options, store)
        executor = executor or LocalProcessPool(options.workers, initializer=prepare_worker)
        with _ProgressBar(len(tasks), done, options.progress) as bar:
            with closing(executor.map_unordered(partial(run_configuration, plan), todo)) as outcomes:
                for outcome in outcomes:
                    record = outcome_record(outcome)
                    store.save_record(record)
                    done[record["config_id"]] = record
                    written = [done[t.config_id] for t in tasks if t.config_id in done]
                    write_tables(out_dir, written, list(config.grid))
                    bar.advance(record)
        ordered = [done[task.config_id] for task in tasks]
        write_tables(out_dir, ordered, list(config.grid))
        plots = write_summaries(out_dir, config, ordered, list(config.grid))
        store.finish()
    failed = {r["config_id"]: r["error"] for r in ordered if r["status"] != "ok"}
    return SweepSummary(out_dir, len(tasks), len(tasks) - len(todo), failed, plots)


def outcome_record(outcome: Outcome) -> dict[str, Any]:
    """The ``reports/<config_id>.json`` record of one configuration's outcome."""
    task: ConfigTask = outcome.task
    value = outcome.value or {}
    return {
        "config_id": task.config_id, "config": {**task.params, "batch_size": task.batch_size},
        "repeat": task.repeat, "status": "ok" if outcome.ok else "failed", "error": outcome.error,
        "elapsed_s": round(outcome.elapsed_s, 3), "report": value.get("report"), "training": value.get("training"),
    }


def _plan(config: SweepConfig, options: SweepOptions, store: "ResultStore") -> RunPlan:
    trains = options.data is not None and options.weights is None
    return RunPlan(model=str(config.model), steps=config.steps, warmup=config.warmup,
                   trace_steps=config.trace_steps, logdir=str(store.runs_dir), weights_dir=str(store.weights_dir),
                   weights=options.weights, data=options.data, training=config.training if trains else None,
                   input_shapes=config.input_shapes)


def _settings(config: SweepConfig, options: SweepOptions) -> dict[str, Any]:
    settings = config.settings()
    settings["model"] = str(Path(settings["model"]).resolve())
    if options.data is None or options.weights is not None:
        settings["training"] = None
    settings.update(data=options.data, weights=options.weights)
    return json.loads(json.dumps(settings))


SWEEP_FILES = ("sweep.json", "results.csv", "layers.csv", "report.md")


def _check_output_files(out_dir: Path) -> None:
    """InputError if one of the sweep's files is in the way (a directory or a special file of that name)."""
    for name in SWEEP_FILES:
        path = out_dir / name
        if path.exists() and not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise InputError(f"{path} is {kind}: the sweep writes a file there; remove it, or use another --out")


def _make_out_dir(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--out {out_dir}: cannot create it: {error.strerror or error}") from None
    if not os.access(out_dir, os.W_OK):
        raise InputError(f"--out {out_dir}: not writable")
    return out_dir


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
        from tfprofscale.inputs import read_text

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


class _ProgressBar:
    """A tqdm bar on stderr: configurations done / total, failures, ETA."""

    def __init__(self, total: int, done: dict[str, dict[str, Any]], enabled: bool) -> None:
        from tqdm import tqdm

        self.failures = sum(1 for record in done.values() if record["status"] != "ok")
        self.bar = tqdm(total=total, initial=len(done), desc="sweep", unit="config", file=sys.stderr,
                        disable=not enabled, dynamic_ncols=True, smoothing=0.1)
        self.bar.set_postfix(failed=self.failures)

    def __enter__(self) -> "_ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def advance(self, record: dict[str, Any]) -> None:
        """One more configuration done; a failure is also printed on its own line."""
        if record["status"] != "ok":
            self.failures += 1
            self.bar.write(f"failed: {record['config_id']}: {record['error']}", file=sys.stderr)
        self.bar.set_postfix(failed=self.failures, refresh=False)
        self.bar.update(1)
