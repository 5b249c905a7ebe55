"""``tfprofscale sweep CONFIG.ini``: profile a grid of configurations, then tables, plots and a report."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from tfprofscale.errors import InputError
from tfprofscale.output import check_output_folder, refuse_overlaps
from tfprofscale.profiling.runtime.budget import check_processes
from tfprofscale.profiling.runtime.timing import parse_threads
from tfprofscale.profiling.trace import loading
from tfprofscale.profiling.trace.weights import check_weights_format
from tfprofscale.sweep.config import load_sweep_config
from tfprofscale.sweep.config_values import check_scheduler_address
from tfprofscale.sweep.files import SWEEP_FILES, SWEEP_FOLDERS
from tfprofscale.sweep.grid import DEFAULT_MAX_CONFIGS
from tfprofscale.sweep.scheduler_probe import probe_scheduler


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` sub-command."""
    parser = subparsers.add_parser(
        "sweep", help="profile every configuration of a grid",
        description="Profile every configuration of an INI file's grid in reusable worker processes; "
                    "write results.csv, layers.csv, one JSON report per configuration, TensorBoard "
                    "traces and HParams, plots and report.md into --out. Rerunning resumes.")
    parser.add_argument("config", help="INI file: document 001's [CONFIGURATION] or [sweep] + [grid]")
    parser.add_argument("--model", metavar="FILE", help="model file (overrides the config's [sweep] model)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: results/<config file name>)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start over: remove this sweep's earlier outputs in --out")
    parser.add_argument("--data", metavar="DIR",
                        help="train each configuration on this data, then measure its test accuracy")
    parser.add_argument("--weights", metavar="FILE", help="load these trained weights in every configuration")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes (default 1: parallel workers share the CPU cores, "
                             "so their step times would disturb each other)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run the failed and timed-out configurations again; keep every good result")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="run on this dask.distributed cluster instead of local workers "
                             "(start its workers with `dask worker HOST:PORT --nthreads 1`)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="stop a configuration that runs longer, record it as timed out and go on "
                             "(overrides [sweep] timeout; default: no limit)")
    parser.add_argument("--max-configs", type=int, default=DEFAULT_MAX_CONFIGS, metavar="N",
                        help=f"refuse a sweep of more configurations (default {DEFAULT_MAX_CONFIGS:,})")
    parser.add_argument("--threads", metavar="N|INTRA,INTER", help="as profile's (overrides [sweep] threads)")
    parser.add_argument("--min-time", type=float, metavar="S", help="as profile's (overrides [sweep] min_time)")
    parser.add_argument("--target-ci", type=float, metavar="PCT", help="as profile's (overrides [sweep] target_ci)")
    parser.add_argument("--max-time", type=float, metavar="S", help="as profile's (overrides [sweep] max_time)")
    parser.add_argument("--processes", metavar="N",
                        help="timing processes per configuration, as profile's (overrides [sweep] processes)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check everything, run the sweep, say where the outputs are; status 1 if nothing succeeded."""
    from tfprofscale.sweep.runner import SweepOptions, run_sweep

    _check_arguments(args)
    out_dir = Path(args.out) if args.out else Path("results") / Path(args.config).stem
    check_output_folder(out_dir, "--out")
    if args.weights is not None:
        check_weights_format(args.weights)
    config = load_sweep_config(args.config, args.model)
    config = replace(config, timing=config.timing.overridden(
        threads=args.threads, min_time=args.min_time, target_ci=args.target_ci, max_time=args.max_time,
        processes=None if args.processes is None else check_processes(args.processes)))
    refuse_overlaps([(f"the sweep's {name}", out_dir / name) for name in SWEEP_FILES],
                    [("config file", args.config), ("model file", config.model), ("--weights", args.weights)],
                    [("--data", args.data)],
                    [(f"the sweep's {name}/", out_dir / name) for name in SWEEP_FOLDERS])
    data = _check_data(args.data, config.model)
    options = SweepOptions(out_dir=out_dir, resume=not args.no_resume, workers=args.workers, data=data,
                           weights=args.weights, retry_failed=args.retry_failed,
                           timeout_s=args.timeout if args.timeout is not None else config.timeout_s,
                           scheduler=args.scheduler or config.scheduler, max_configs=args.max_configs)
    args.interrupt_note = (f"workers stopped; the configurations finished so far are kept in {out_dir / 'reports'}"
                           " (run the same command again to resume)")
    summary = run_sweep(config, options)
    timed_out = f", {len(summary.timed_out)} of them timed out" if summary.timed_out else ""
    print(f"{summary.total} configurations: {summary.ok} ok, {len(summary.failed)} failed{timed_out}"
          + (f" ({summary.resumed} done by an earlier run)" if summary.resumed else ""))
    print(f"tables:  {out_dir / 'results.csv'} (per configuration), {out_dir / 'layers.csv'} (per layer)")
    print(f"reports: {out_dir / 'reports'}/<config_id>.json")
    print(f"plots:   {out_dir / 'plots'}/ ({len(summary.plots)} figures), index {out_dir / 'report.md'}")
    print(f"traces and HParams: tensorboard --logdir {out_dir / 'runs'}")
    return 0 if summary.ok else 1


def _check_arguments(args: argparse.Namespace) -> None:
    """InputError for a worker count, time limit, limit or scheduler address that cannot work."""

    if args.workers < 1:
        raise InputError(f"--workers {args.workers}: must be at least 1")
    if args.timeout is not None and not args.timeout > 0:
        raise InputError(f"--timeout {args.timeout:g}: must be a number of seconds > 0")
    if args.processes is not None:
        check_processes(args.processes)
    if args.threads is not None:
        parse_threads(args.threads)
    for option, value in (("--min-time", args.min_time), ("--target-ci", args.target_ci),
                          ("--max-time", args.max_time)):
        if value is not None and not 0 < value < float("inf"):
            raise InputError(f"{option} must be a finite number > 0, got {value!r}")
    if args.max_configs < 1:
        raise InputError(f"--max-configs {args.max_configs}: must be at least 1")
    if args.scheduler is not None:
        check_scheduler_address(args.scheduler, lambda problem: InputError(f"--scheduler: {problem}"))
        if args.workers != 1:
            raise InputError(f"--workers {args.workers} with --scheduler: the cluster's workers run the "
                             f"configurations (start as many `dask worker` processes as you want)")
        probe_scheduler(args.scheduler)  # seconds at most, so after the checks that cost nothing


def _check_data(data: str | None, model: Path) -> str | None:
    """The data directory as a string, after checking it and that the model can load data."""
    if data is None:
        return None
    from tfprofscale.datasets import resolve_data_dir

    path = resolve_data_dir(data)
    if loading.load_model_file(model).load_data is None:
        raise InputError(f"--data {data}: model file {model} has no load_data(path, **params), so it cannot be trained")
    return str(path.resolve())
