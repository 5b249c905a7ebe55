"""The command line the single-model benchmarks share: a model file, rounds, batch size."""
from __future__ import annotations

import argparse
import subprocess
import time


def model_benchmark_args(description: str) -> argparse.Namespace:
    """``MODEL`` (default models/fashion_mnist.py), ``--repeats`` (rounds, default 3), ``--batch-size``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("model", nargs="?", default="models/fashion_mnist.py")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians are reported)")
    parser.add_argument("--batch-size", type=int, default=1)
    return parser.parse_args()


def wall_seconds(command: list[str]) -> float:
    """Seconds one command takes to run to its end (its output discarded)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start
