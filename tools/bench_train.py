"""Benchmark: the wall time of `profile --train` against an inference `profile` of the same model.

Interleaved rounds (inference, then --train), each a fresh `python -m
tfprofscale profile MODEL` process with the same options; medians are
reported with the load average seen. The train profile does more: it traces
the whole training step (forward, loss, gradients, update: about three
times the ops), counts and times it, and measures its memory through a
Session with the variables re-created (session_graph) instead of the frozen
graph.

    python tools/bench_train.py [MODEL.py] [--repeats 3] [--batch-size 1]
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_args import model_benchmark_args, wall_seconds


def main() -> None:
    args = model_benchmark_args(__doc__.splitlines()[0])
    infer_s, train_s, loads = [], [], [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as folder:
        base = [sys.executable, "-m", "tfprofscale", "profile", args.model, "--quiet", "--batch-size",
                str(args.batch_size), "--logdir", str(Path(folder) / "runs")]
        for _ in range(args.repeats):
            infer_s.append(wall_seconds(base))
            loads.append(os.getloadavg()[0])
            train_s.append(wall_seconds([*base, "--train"]))
            loads.append(os.getloadavg()[0])
    ratios = [t / i for t, i in zip(train_s, infer_s)]
    print(f"model:              {args.model}, batch {args.batch_size}  ({args.repeats} interleaved rounds, medians)")
    print(f"profile (infer):    {statistics.median(infer_s):.2f} s   (runs: {', '.join(f'{s:.2f}' for s in infer_s)})")
    print(f"profile --train:    {statistics.median(train_s):.2f} s   (runs: {', '.join(f'{s:.2f}' for s in train_s)})")
    print(f"ratio train/infer:  median {statistics.median(ratios):.2f} per round ({', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"load average seen:  {min(loads):.2f} to {max(loads):.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
