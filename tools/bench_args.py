"""The command line the single-model benchmarks share: a model file, rounds, batch size."""
from __future__ import annotations

import argparse


def model_benchmark_args(description: str) -> argparse.Namespace:
    """``MODEL`` (default models/fashion_mnist.py), ``--repeats`` (rounds, default 3), ``--batch-size``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("model", nargs="?", default="models/fashion_mnist.py")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians are reported)")
    parser.add_argument("--batch-size", type=int, default=1)
    return parser.parse_args()
