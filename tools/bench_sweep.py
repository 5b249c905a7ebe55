"""Benchmark: a 12-configuration sweep against 12 separate ``profile`` commands.

    python tools/bench_sweep.py [--profile-runs 3] [--workers 1] [--keep DIR]

Runs ``python -m tfprofscale sweep`` on a 12-configuration grid of
models/fashion_mnist.py (total_layers 4 6 8 x conv_size 3 5 x batch 1 16),
and ``python -m tfprofscale profile`` on one of its configurations with the
same measurement settings, each as a fresh subprocess, and prints

    ratio = sweep wall time / (12 x one profile's wall time)

The sweep's workers import TensorFlow once and profile many configurations,
where each ``profile`` command pays Python and TensorFlow start-up again;
the goal is a ratio <= 0.4. The sweep's time includes its plots, HParams
summary and report. The single profile is timed ``--profile-runs`` times
and the median is used.
"""
from __future__ import annotations

import argparse
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
GRID = f"""\
[sweep]
model = {MODEL}
batch_size = 1 16
steps = {STEPS}
warmup = {WARMUP}
trace_steps = {TRACE_STEPS}

[grid]
total_layers = 4 6 8
conv_size = 3 5
"""
CONFIGURATIONS = 3 * 2 * 2
PROFILED = {"total_layers": 6, "conv_size": 5, "batch_size": 16}


def timed(command: list[str]) -> float:
    """Wall seconds of one command run to completion (it must succeed)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if finished.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({finished.returncode}):\n{finished.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile-runs", type=int, default=3, help="times the single profile is run (median)")
    parser.add_argument("--workers", type=int, default=1, help="sweep workers (default 1)")
    parser.add_argument("--keep", metavar="DIR", help="keep the sweep output here instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as scratch:
        folder = Path(args.keep) if args.keep else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "bench.ini"
        config.write_text(GRID)
        python = [sys.executable, "-m", "tfprofscale"]
        sweep_s = timed(python + ["sweep", str(config), "--out", str(folder / "sweep"), "--no-resume",
                                  "--workers", str(args.workers)])
        profile_command = python + ["profile", str(MODEL), "--batch-size", str(PROFILED["batch_size"]),
                                    "--param", f"total_layers={PROFILED['total_layers']}",
                                    "--param", f"conv_size={PROFILED['conv_size']}",
                                    "--steps", str(STEPS), "--warmup", str(WARMUP),
                                    "--trace-steps", str(TRACE_STEPS), "--logdir", str(folder / "profile_runs"),
                                    "--quiet"]
        profile_runs_s = [timed(profile_command) for _ in range(args.profile_runs)]
    profile_s = statistics.median(profile_runs_s)
    ratio = sweep_s / (CONFIGURATIONS * profile_s)
    shown = ", ".join(f"{seconds:.1f}" for seconds in profile_runs_s)
    print(f"sweep of {CONFIGURATIONS} configurations ({args.workers} worker(s)):  {sweep_s:7.1f} s "
          f"({sweep_s / CONFIGURATIONS:.2f} s per configuration, plots and report included)")
    print(f"one profile command ({', '.join(f'{k}={v}' for k, v in PROFILED.items())}): "
          f"{profile_s:7.1f} s (median of {shown})")
    print(f"{CONFIGURATIONS} x one profile:{CONFIGURATIONS * profile_s:27.1f} s")
    print(f"ratio sweep / ({CONFIGURATIONS} x profile): {ratio:.3f}   (goal <= 0.4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
