"""Sweeps: a grid of configurations profiled in workers, stored as each one finishes.

``iter_grid`` (tfprofscale.sweep.grid) yields the sweep's ``ConfigTask``s
(the Cartesian product of the grid, the batch sizes and the repeats), once
``check_grid_size`` has counted them against the limit; ``run_sweep``
profiles the ones not done yet through an ``Executor`` (a local pool of
worker processes, or a Dask cluster with ``scheduler``) and writes the
output directory: ``sweep.json`` (the resolved sweep),
``reports/<config_id>.json`` (one record per configuration; its existence
means done), ``results.csv`` and ``layers.csv`` (rewritten after each
configuration), ``runs/`` (TensorBoard: a trace and an HParams session per
configuration), ``plots/*.png``, ``report.md``, and ``.lock`` while a sweep
runs. Every file is written atomically (a temporary file, then
``os.replace``), so killing a sweep loses at most the configurations in
flight; running it again resumes, and ``retry_failed`` runs the failed and
timed-out configurations again. Each configuration is recorded once, by
its id, however often an executor reports it.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterable

from tqdm import tqdm

from tfprofscale.errors import InputError
from tfprofscale.sweep.config import SweepConfig
from tfprofscale.sweep.configuration import RunPlan, prepare_worker, run_configuration
from tfprofscale.sweep.executor import Executor, LocalProcessPool, Outcome
from tfprofscale.sweep.files import SWEEP_FILES
from tfprofscale.sweep.grid import DEFAULT_MAX_CONFIGS, ConfigTask, check_grid_size, config_id, expand_grid, iter_grid
from tfprofscale.sweep.report import write_summaries
from tfprofscale.sweep.store import ResultStore, SweepLock
from tfprofscale.sweep.tables import write_tables

__all__ = ["ConfigTask", "RunPlan", "SweepLock", "SweepOptions", "SweepSummary", "config_id", "expand_grid",
           "make_executor", "outcome_record", "prepare_worker", "run_configuration", "run_sweep"]

OK, FAILED, TIMED_OUT = "ok", "failed", "timed_out"


@dataclass(frozen=True)
class SweepOptions:
    """How to run a sweep: where to, resume or retry, where the workers are, limits, data and weights."""

    out_dir: Path
    resume: bool = True
    workers: int = 1
    data: str | None = None
    weights: str | None = None
    progress: bool = True
    retry_failed: bool = False
    timeout_s: float | None = None
    scheduler: str | None = None
    max_configs: int = DEFAULT_MAX_CONFIGS


@dataclass
class SweepSummary:
    """What a sweep did."""

    out_dir: Path
    total: int
    resumed: int
    failed: dict[str, str] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    ran: int = 0

    @property
    def ok(self) -> int:
        """Configurations profiled successfully."""
        return self.total - len(self.failed)


def make_executor(options: SweepOptions, fresh_per_task: bool = False) -> Executor:
    """A Dask executor when ``options.scheduler`` names a cluster, else a local pool of ``workers``."""
    if options.scheduler:
        from tfprofscale.sweep.dask_executor import DaskExecutor

        executor = DaskExecutor(options.scheduler, initializer=prepare_worker, timeout_s=options.timeout_s)
        executor.connect()
        return executor
    return LocalProcessPool(options.workers, initializer=prepare_worker, timeout_s=options.timeout_s,
                            fresh_per_task=fresh_per_task)


def run_sweep(config: SweepConfig, options: SweepOptions, executor: Executor | None = None) -> SweepSummary:
    """Profile every configuration not done yet, then write tables, plots, HParams and report.md."""
    total = check_grid_size(config, options.max_configs)
    out_dir = _make_out_dir(Path(options.out_dir))
    _check_output_files(out_dir)
    executor = executor or make_executor(options, fresh_per_task=config.repeats > 1)
    with SweepLock(out_dir):
        store = ResultStore(out_dir)
        if not options.resume:
            store.clear()
        store.start(_settings(config, options), total)
        sweep = _SweepState.of(config, store, options)
        refuse_changed_model(config.model, sweep.done.values(), out_dir)
        store.forget([task.config_id for task in sweep.todo])
        function = partial(run_configuration, _plan(config, options, store))
        with _ProgressBar(total, total - len(sweep.todo), sweep.done, options.progress) as bar:
            with closing(executor.map_unordered(function, sweep.todo)) as outcomes:
                for record in filter(None, map(sweep.record, outcomes)):
                    bar.advance(record)
        ordered = [sweep.done[key] for key in sweep.order]
        write_tables(out_dir, ordered, config.axes())
        plots = write_summaries(out_dir, config, ordered, config.axes())
        store.finish()
    failed = {r["config_id"]: r["error"] for r in ordered if r["status"] != OK}
    timed_out = [r["config_id"] for r in ordered if r["status"] == TIMED_OUT]
    return SweepSummary(out_dir, total, total - len(sweep.todo), failed, plots, timed_out, len(sweep.recorded))


@dataclass
class _SweepState:
    """Where a sweep stands: the ids in grid order, the records so far, what is left to run."""

    store: ResultStore
    grid_names: list[str]
    timeout_s: float | None
    model_hash: str | None = None
    order: list[str] = field(default_factory=list)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    todo: list[ConfigTask] = field(default_factory=list)
    recorded: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, config: SweepConfig, store: ResultStore, options: SweepOptions) -> "_SweepState":
        """The stored records kept (good ones, and failed ones unless retrying) and the configurations to run."""
        progress = cls(store, config.axes(), options.timeout_s, model_sha256(config.model))
        for task in iter_grid(config):
            progress.order.append(task.config_id)
            record = store.record(task.config_id)
            if record is not None and (record.get("status") == OK or not options.retry_failed):
                progress.done[task.config_id] = record
            else:
                progress.todo.append(task)
        return progress

    def record(self, outcome: Outcome) -> dict[str, Any] | None:
        """Store an outcome and refresh the tables; None if its configuration was already recorded in this run.

        An executor may report a configuration twice (one re-run after its
        worker was lost): the first report is kept.
        """
        record = outcome_record(outcome, self.timeout_s, self.model_hash)
        if record["config_id"] in self.recorded:
            return None
        self.recorded.add(record["config_id"])
        self.store.save_record(record)
        self.done[record["config_id"]] = record
        write_tables(self.store.out_dir, [self.done[key] for key in self.order if key in self.done], self.grid_names)
        return record


def refuse_changed_model(model: Path, records: Iterable[dict[str, Any]], out_dir: Path) -> None:
    """InputError if a stored record was measured on another version of the model file (its content hash differs)."""
    now = model_sha256(model)
    changed = [record for record in records if record.get("model_sha256") not in (None, now)]
    if changed:
        raise InputError(f"model file {model} changed since {out_dir} measured {len(changed)} of its configurations "
                         f"(sha256 {changed[0]['model_sha256'][:12]}... then, {now[:12]}... now): start fresh with "
                         "--no-resume, or use another --out")


def model_sha256(model: str | os.PathLike) -> str:
    """The SHA-256 of the model file's content, as hex."""
    digest = hashlib.sha256()
    try:
        with open(model, "rb") as handle:
            for chunk in iter(lambda: handle.read(2**20), b""):
                digest.update(chunk)
    except OSError as error:
        raise InputError(f"model file {model} cannot be read: {error.strerror or error}") from None
    return digest.hexdigest()


def outcome_record(outcome: Outcome, timeout_s: float | None = None, model_hash: str | None = None) -> dict[str, Any]:
    """The ``reports/<config_id>.json`` record of one configuration's outcome, with where it ran."""
    task: ConfigTask = outcome.task
    value = outcome.value or {}
    status = OK if outcome.ok else TIMED_OUT if outcome.timed_out else FAILED
    return {
        "config_id": task.config_id, "config": {**task.params, "batch_size": task.batch_size,
                                                   **({"mode": task.mode} if task.mode else {})},
        "repeat": task.repeat, "status": status, "error": outcome.error,
        "timeout_s": timeout_s if outcome.timed_out else None,
        "elapsed_s": round(outcome.elapsed_s, 3), "host": value.get("host") or outcome.host,
        "machine": value.get("machine"), "model_sha256": model_hash,
        "report": value.get("report"), "training": value.get("training"),
    }


def _plan(config: SweepConfig, options: SweepOptions, store: "ResultStore") -> RunPlan:
    trains = options.data is not None and options.weights is None
    return RunPlan(model=str(Path(config.model).resolve()), steps=config.steps, warmup=config.warmup,
                   trace_steps=config.trace_steps, logdir=str(store.runs_dir.resolve()),
                   weights_dir=str(store.weights_dir.resolve()),
                   weights=options.weights, data=options.data, training=config.training if trains else None,
                   input_shapes=config.input_shapes, timing=config.timing)


def _settings(config: SweepConfig, options: SweepOptions) -> dict[str, Any]:
    settings = config.settings()
    settings["model"] = str(Path(settings["model"]).resolve())
    if options.data is None or options.weights is not None:
        settings["training"] = None
    settings.update(data=options.data, weights=options.weights)
    return json.loads(json.dumps(settings))


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


class _ProgressBar:
    """A tqdm bar on stderr: configurations done / total, failures, ETA."""

    def __init__(self, total: int, initial: int, done: dict[str, dict[str, Any]], enabled: bool) -> None:
        self.failures = sum(1 for record in done.values() if record["status"] != OK)
        self.bar = tqdm(total=total, initial=initial, desc="sweep", unit="config", file=sys.stderr,
                        disable=not enabled, dynamic_ncols=True, smoothing=0.1)
        self.bar.set_postfix(failed=self.failures)

    def __enter__(self) -> "_ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def advance(self, record: dict[str, Any]) -> None:
        """One more configuration done; a failure is also printed on its own line."""
        if record["status"] != OK:
            self.failures += 1
            self.bar.write(f"{record['status'].replace('_', ' ')}: {record['config_id']}: {record['error']}",
                           file=sys.stderr)
        self.bar.set_postfix(failed=self.failures, refresh=False)
        self.bar.update(1)
