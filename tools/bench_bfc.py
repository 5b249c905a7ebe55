"""Benchmark: how much the BFC CPU allocator (``--memory-trace``'s setting) slows a model's steps.

Runs `python -m tfprofscale profile MODEL --no-trace` with and without
``TF_CPU_ALLOCATOR_USE_BFC=true``, interleaved and repeated, and prints the
median step times and their ratio, with the load average.

    python tools/bench_bfc.py [MODEL.py] [--repeats 3] [--batch-size 1]
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_args import model_benchmark_args


def step_median_ms(model: str, batch: str, json_path: Path, bfc: bool) -> float:
    env = {name: value for name, value in os.environ.items() if name != "TF_CPU_ALLOCATOR_USE_BFC"}
    if bfc:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    subprocess.run([sys.executable, "-m", "tfprofscale", "profile", model, "--quiet", "--no-trace",
                    "--batch-size", batch, "--json", str(json_path)],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(json_path.read_text())["totals"]["step_time_ms"]["median"]


def main() -> None:
    args = model_benchmark_args(__doc__.splitlines()[0])
    plain, bfc = [], []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            plain.append(step_median_ms(args.model, str(args.batch_size), Path(folder) / f"p{repeat}.json", False))
            bfc.append(step_median_ms(args.model, str(args.batch_size), Path(folder) / f"b{repeat}.json", True))
    print(f"model: {args.model}, batch {args.batch_size}  ({args.repeats} interleaved repeats, medians); "
          f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"default CPU allocator: {statistics.median(plain):.3f} ms/step  (runs: {plain})")
    print(f"BFC CPU allocator:     {statistics.median(bfc):.3f} ms/step  (runs: {bfc})")
    print(f"ratio BFC/default:     {statistics.median(bfc) / statistics.median(plain):.2f}")


if __name__ == "__main__":
    main()
