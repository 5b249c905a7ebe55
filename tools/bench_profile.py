"""Benchmark: the whole `profile` command against its floor, and the profiler overhead.

Prints, for a model file (default models/fashion_mnist.py), the wall time of
`python -m tfprofscale profile MODEL`, the wall time of the floor (Python
start, import TensorFlow, build and trace the model, then run and time
directly as many steps as that profile ran: its timed steps, warm-up and
traced steps), their ratio (goal <= 2.0), and the profiler overhead: traced /
untraced median step time (goal <= 1.10). Runs are interleaved (profile, then
its floor) and repeated; medians are reported with the load average seen.

    python tools/bench_profile.py [MODEL.py] [--repeats 3] [--batch-size 1]
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_args import model_benchmark_args, wall_seconds

FLOOR = """
import sys
import tensorflow as tf
from tfprofscale.profiling.trace.loading import build, load_model_file, resolve_params
from tfprofscale.profiling.trace.tracing import trace
model_file = load_model_file(sys.argv[1])
model = build(model_file, resolve_params(model_file, {}))
traced = trace(model, int(sys.argv[2]), model_file.example_inputs, model_file.defaults)
import time
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    traced.run()
    time.perf_counter() - start
"""


def main() -> None:
    args = model_benchmark_args(__doc__.splitlines()[0])
    profile_s, floor_s, overheads, loads, steps_run = [], [], [], [os.getloadavg()[0]], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            report = Path(folder) / f"r{repeat}.json"
            profile_s.append(wall_seconds([sys.executable, "-m", "tfprofscale", "profile", args.model, "--quiet",
                                           "--batch-size", str(args.batch_size),
                                           "--logdir", str(Path(folder) / "runs"), "--json", str(report)]))
            totals = json.loads(report.read_text())["totals"]
            overheads.append(totals["profiler_overhead"])
            steps = totals["step_time_ms"]["n"] + 5 + totals["traced_step_time_ms"]["n"]  # timed, warm-up, traced
            steps_run.append(steps)
            loads += [totals["step_time_ms"].get("load_start"), os.getloadavg()[0]]
            floor_s.append(wall_seconds([sys.executable, "-c", FLOOR, args.model, str(args.batch_size), str(steps)]))
    profile_med, floor_med = statistics.median(profile_s), statistics.median(floor_s)
    ratios = [p / f for p, f in zip(profile_s, floor_s)]
    known = [load for load in loads if load is not None]
    print(f"model:                 {args.model}, batch {args.batch_size}  ({args.repeats} interleaved repeats, medians)")
    print(f"profile command:       {profile_med:.2f} s   (runs: {', '.join(f'{s:.2f}' for s in profile_s)})")
    print(f"floor (start+import+build+trace+the same steps): {floor_med:.2f} s   "
          f"(runs: {', '.join(f'{s:.2f}' for s in floor_s)}; steps {', '.join(map(str, steps_run))})")
    print(f"ratio profile/floor:   median {statistics.median(ratios):.2f} per round "
          f"({', '.join(f'{r:.2f}' for r in ratios)}), medians' ratio {profile_med / floor_med:.2f}   (goal <= 2.0)")
    print(f"load average seen:     {min(known):.2f} to {max(known):.2f} on {os.cpu_count()} CPUs")
    print(f"profiler overhead:     {statistics.median(overheads):.3f}   traced/untraced median step time"
          f" (runs: {', '.join(f'{o:.3f}' for o in overheads)}; goal <= 1.10)")


if __name__ == "__main__":
    main()
