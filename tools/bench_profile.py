"""Benchmark: the whole `profile` command against its floor, and the profiler overhead.

Prints, for a model file (default models/fashion_mnist.py), the wall time of
`python -m tfprofscale profile MODEL`, the wall time of the floor (Python
start, import TensorFlow, build the model, run one step), their ratio (goal
<= 2.0), and the profiler overhead: traced / untraced median step time (goal
<= 1.10). Runs are interleaved and repeated; medians are reported.

    python tools/bench_profile.py [MODEL.py] [--repeats 3] [--batch-size 1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = """
import sys
import tensorflow as tf
from tfprofscale.profiling.loading import build, load_model_file, resolve_params
from tfprofscale.profiling.tracing import trace
model_file = load_model_file(sys.argv[1])
model = build(model_file, resolve_params(model_file, {}))
traced = trace(model, int(sys.argv[2]), model_file.example_inputs, model_file.defaults)
traced.run()
"""


def wall_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="models/fashion_mnist.py")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args()
    profile_s, floor_s, overheads = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            report = Path(folder) / f"r{repeat}.json"
            floor_s.append(wall_seconds([sys.executable, "-c", FLOOR, args.model, str(args.batch_size)]))
            profile_s.append(wall_seconds([sys.executable, "-m", "tfprofscale", "profile", args.model, "--quiet",
                                           "--batch-size", str(args.batch_size),
                                           "--logdir", str(Path(folder) / "runs"), "--json", str(report)]))
            overheads.append(json.loads(report.read_text())["totals"]["profiler_overhead"])
    profile_med, floor_med = statistics.median(profile_s), statistics.median(floor_s)
    print(f"model:                 {args.model}, batch {args.batch_size}  ({args.repeats} interleaved repeats, medians)")
    print(f"profile command:       {profile_med:.2f} s   (runs: {', '.join(f'{s:.2f}' for s in profile_s)})")
    print(f"floor (start+import+build+1 step): {floor_med:.2f} s   (runs: {', '.join(f'{s:.2f}' for s in floor_s)})")
    print(f"ratio profile/floor:   {profile_med / floor_med:.2f}   (goal <= 2.0)")
    print(f"profiler overhead:     {statistics.median(overheads):.3f}   traced/untraced median step time"
          f" (runs: {', '.join(f'{o:.3f}' for o in overheads)}; goal <= 1.10)")


if __name__ == "__main__":
    main()
