"""Benchmark: the whole `profile` command against its floor, the memory stage's cost, the profiler overhead.

Prints, for a model file (default models/fashion_mnist.py):

- the wall time of `python -m tfprofscale profile MODEL` against the floor
  (Python start, import TensorFlow, build the model, run one step), and their
  ratio (goal <= 2.0);
- the wall time of `profile()` with and without the memory stage (the Session with the model's variables,
  one traced Session step, Grappler's static peak, kernel scratch probes),
  both through the Python API so that they differ in that stage only;
- the profiler overhead: traced / untraced median step time (goal <= 1.10).

The four runs of a round are interleaved; rounds are repeated and medians
reported, with the load average before and after.

    python tools/bench_profile.py [MODEL.py] [--repeats 3] [--batch-size 1]
    python tools/bench_profile.py tools/fixtures/resnet50.py     # keras.applications.ResNet50(weights=None)
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
traced.run()
"""

API_PROFILE = """
import sys
from tfprofscale.quiet import import_tensorflow_quietly
import_tensorflow_quietly()
from tfprofscale.profiling.pipeline import profile
profile(sys.argv[1], batch_size=int(sys.argv[2]), logdir=sys.argv[3], memory=sys.argv[4] == "memory")
"""


def runs(seconds: list[float]) -> str:
    return ", ".join(f"{s:.2f}" for s in seconds)


def main() -> None:
    args = model_benchmark_args(__doc__.splitlines()[0])
    batch = str(args.batch_size)
    profile_s, floor_s, with_s, without_s, overheads = [], [], [], [], []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        logdir = str(Path(folder) / "runs")
        for repeat in range(args.repeats):
            report = Path(folder) / f"r{repeat}.json"
            floor_s.append(wall_seconds([sys.executable, "-c", FLOOR, args.model, batch]))
            profile_s.append(wall_seconds([sys.executable, "-m", "tfprofscale", "profile", args.model, "--quiet",
                                           "--batch-size", batch, "--logdir", logdir, "--json", str(report)]))
            with_s.append(wall_seconds([sys.executable, "-c", API_PROFILE, args.model, batch, logdir, "memory"]))
            without_s.append(wall_seconds([sys.executable, "-c", API_PROFILE, args.model, batch, logdir, "none"]))
            overheads.append(json.loads(report.read_text())["totals"]["profiler_overhead"])
    profile_med, floor_med = statistics.median(profile_s), statistics.median(floor_s)
    with_med, without_med = statistics.median(with_s), statistics.median(without_s)
    print(f"model:                 {args.model}, batch {args.batch_size}"
          f"  ({args.repeats} interleaved repeats, medians)")
    print(f"load average:          before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} (1 min)")
    print(f"profile command:       {profile_med:.2f} s   (runs: {runs(profile_s)})")
    print(f"floor (start+import+build+1 step): {floor_med:.2f} s   (runs: {runs(floor_s)})")
    print(f"ratio profile/floor:   {profile_med / floor_med:.2f}   (goal <= 2.0)")
    print(f"profile() with memory stage:    {with_med:.2f} s   (runs: {runs(with_s)})")
    print(f"profile() without memory stage: {without_med:.2f} s   (runs: {runs(without_s)})")
    print(f"memory stage:          +{with_med - without_med:.2f} s, ratio with/without {with_med / without_med:.2f}")
    print(f"profiler overhead:     {statistics.median(overheads):.3f}   traced/untraced median step time"
          f" (runs: {', '.join(f'{o:.3f}' for o in overheads)}; goal <= 1.10)")


if __name__ == "__main__":
    main()
