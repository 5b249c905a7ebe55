"""Benchmark: a 12-configuration sweep against 12 separate ``profile`` commands, and Dask against the local pool.

    python tools/bench_sweep.py [--rounds 3] [--skip-dask] [--keep DIR]

The grid: models/fashion_mnist.py, total_layers 4 6 8 x conv_size 3 5 x
batch 1 16 (12 configurations, 20 timed steps, 5 warm-up, 5 traced).
Each round runs, interleaved, as fresh subprocesses:

1. ``sweep`` with one local worker, then the same 12 configurations as 12
   ``profile`` commands: ratio = sweep wall time / the 12 profiles' total;
2. ``sweep --workers 2`` (the local pool), then ``sweep --scheduler`` on a
   fresh local Dask cluster of 2 single-threaded worker processes (its
   workers import TensorFlow during the sweep, as the pool's do): overhead
   per configuration = (Dask - pool) / 12, without and with the cluster's
   start (which a long-lived cluster pays once, the pool at every sweep).

It prints every round with the load average, then the medians of the
per-round figures. The machine is shared: compare figures of one run only.

``--processes-cost`` (issue 18) instead times the sweep (one worker) at
``--processes 1`` and ``--processes 3``, interleaved: the time per
configuration and its ratio (goal <= 1.5x).
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "fashion_mnist.py"
STEPS, WARMUP, TRACE_STEPS = 20, 5, 5
LAYERS, CONV_SIZES, BATCHES = (4, 6, 8), (3, 5), (1, 16)
GRID = f"""\
[sweep]
model = {MODEL}
batch_size = {' '.join(map(str, BATCHES))}
steps = {STEPS}
warmup = {WARMUP}
trace_steps = {TRACE_STEPS}

[grid]
total_layers = {' '.join(map(str, LAYERS))}
conv_size = {' '.join(map(str, CONV_SIZES))}
"""
CONFIGURATIONS = len(LAYERS) * len(CONV_SIZES) * len(BATCHES)
PYTHON = [sys.executable, "-m", "tfprofscale"]


def timed(command: list[str]) -> float:
    """Wall seconds of one command run to completion (it must succeed)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if finished.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({finished.returncode}):\n{finished.stderr[-2000:]}")
    return elapsed


def sweep_s(config: Path, out: Path, *extra: str) -> float:
    return timed(PYTHON + ["sweep", str(config), "--out", str(out), "--no-resume", *extra])


def profiles_s(folder: Path) -> float:
    """The 12 configurations as 12 ``profile`` commands, total wall seconds."""
    total = 0.0
    for layers, conv_size, batch in itertools.product(LAYERS, CONV_SIZES, BATCHES):
        total += timed(PYTHON + ["profile", str(MODEL), "--batch-size", str(batch),
                                 "--param", f"total_layers={layers}", "--param", f"conv_size={conv_size}",
                                 "--steps", str(STEPS), "--warmup", str(WARMUP), "--trace-steps", str(TRACE_STEPS),
                                 "--logdir", str(folder / "profile_runs"), "--quiet"])
    return total


def dask_sweep_s(config: Path, out: Path) -> tuple[float, float]:
    """Seconds to start a local cluster of 2 single-threaded worker processes, and of a sweep on it."""
    from distributed import LocalCluster

    os.environ["PYTHONPATH"] = str(REPO)  # the cluster's worker processes import tfprofscale from here
    started = time.perf_counter()
    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        start_s = time.perf_counter() - started
        return start_s, sweep_s(config, out, "--scheduler", cluster.scheduler_address)


def processes_cost(config: Path, folder: Path, rounds: int) -> None:
    """The sweep's time per configuration at --processes 1 and 3, interleaved, ``rounds`` each; medians and ratio."""
    seconds: dict[int, list[float]] = {1: [], 3: []}
    for number in range(1, rounds + 1):
        for count in seconds:
            seconds[count].append(sweep_s(config, folder / f"sweep{count}", "--processes", str(count)))
            print(f"round {number}: --processes {count}: {seconds[count][-1] / CONFIGURATIONS:.2f} s per "
                  f"configuration   ({load()})", flush=True)
    one, three = (statistics.median(seconds[count]) / CONFIGURATIONS for count in (1, 3))
    print(f"median time per configuration: --processes 1 {one:.2f} s, --processes 3 {three:.2f} s "
          f"(x{three / one:.2f}; goal <= 1.5x)")


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--skip-dask", action="store_true", help="only the sweep against separate profiles")
    parser.add_argument("--keep", metavar="DIR", help="keep the outputs here instead of a temporary folder")
    parser.add_argument("--processes-cost", action="store_true", help="the sweep at --processes 1 against 3")
    args = parser.parse_args()
    ratios, overheads, with_start = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as scratch:
        folder = Path(args.keep) if args.keep else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "bench.ini"
        config.write_text(GRID)
        print(f"{CONFIGURATIONS} configurations, {args.rounds} rounds; at start: {load()}", flush=True)
        if args.processes_cost:
            processes_cost(config, folder, args.rounds)
            return 0
        for number in range(1, args.rounds + 1):
            one_worker = sweep_s(config, folder / "sweep")
            separate = profiles_s(folder)
            ratios.append(one_worker / separate)
            print(f"round {number}: sweep {one_worker:6.1f} s, 12 profiles {separate:6.1f} s, "
                  f"ratio {ratios[-1]:.3f}   ({load()})", flush=True)
            if args.skip_dask:
                continue
            pool = sweep_s(config, folder / "pool", "--workers", "2")
            start, cluster = dask_sweep_s(config, folder / "dask")
            overheads.append((cluster - pool) / CONFIGURATIONS)
            with_start.append((start + cluster - pool) / CONFIGURATIONS)
            print(f"round {number}: local pool (2 workers) {pool:6.1f} s, Dask (2 workers) {cluster:6.1f} s "
                  f"+ {start:.1f} s to start the cluster; Dask overhead {overheads[-1]:+.2f} s per configuration, "
                  f"{with_start[-1]:+.2f} s counting the cluster's start   ({load()})", flush=True)
    print(f"median ratio sweep / 12 separate profiles: {statistics.median(ratios):.3f} "
          f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
    if overheads:
        print(f"median Dask overhead against the local pool: {statistics.median(overheads):+.2f} s per configuration "
              f"(rounds: {', '.join(f'{o:+.2f}' for o in overheads)})")
        print(f"  counting the cluster's start: {statistics.median(with_start):+.2f} s per configuration "
              f"(rounds: {', '.join(f'{o:+.2f}' for o in with_start)})")
    print(f"at end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
