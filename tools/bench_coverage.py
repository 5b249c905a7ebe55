"""The between-process part of tools/bench_repeatability.py (issue 18): spreads, interval coverage, cost.

See ``bench_repeatability.py --coverage``'s description. Every process is a
``tfprofscale.profiling.runtime.timing_worker`` started by ``processes.run_worker``,
the same worker ``profile --processes N`` starts for processes 2..N.
"""
from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfprofscale.profiling.pipeline import ProfileOptions  # noqa: E402
from tfprofscale.profiling.runtime.processes import run_worker, worker_request  # noqa: E402

MODELS = {  # name: (model file, parameters, batch size)
    "fashion_mnist-b1": ("models/fashion_mnist.py", {}, 1),
    "cnn-sub-ms": ("models/generated_cnn.py", {"n_layers": 2, "filters": 8, "input_size": 32}, 1),
    "cnn-5ms": ("models/generated_cnn.py", {"n_layers": 3, "filters": 16, "input_size": 192}, 1),
    "cnn-50ms": ("models/generated_cnn.py", {"n_layers": 3, "filters": 32, "input_size": 256, "stride": 1}, 1),
    "resnet50-b1": ("tools/fixtures/resnet50.py", {}, 1),
}
PROCESS_COUNTS = (1, 3, 5)
STATISTICS = ("median", "p10", "min")


def run_coverage(args: Any) -> None:
    """Run the pool (interleaved), then print spreads and coverage per model; optionally the cost."""
    names = args.models or list(MODELS)
    if args.coverage:
        pools = measure_pools(names, args.pool)
        for name in names:
            report_model(name, pools[name], args.draws)
    if args.cost:
        measure_cost(rounds=args.rounds)


def measure_pools(names: list[str], size: int) -> dict[str, list[Any]]:
    """``size`` fresh timing processes per model, interleaved over the models; their StepTimes."""
    from tfprofscale.records import StepTimes

    pools: dict[str, list[Any]] = {name: [] for name in names}
    for number in range(size):
        for name in names:
            path, params, batch = MODELS[name]
            request = worker_request(str(ROOT / path), _resolved(path, params), ProfileOptions(batch_size=batch),
                                     "CPU:0")
            outcome = run_worker(number + 1, request)
            if isinstance(outcome, str):
                print(f"{name} process {number + 1}: failed: {outcome}", flush=True)
                continue
            times = StepTimes(**outcome["step_times"])
            pools[name].append(times)
            print(f"{name:18s} process {number + 1:2d}: median {times.median:9.4f} ms  p10 {times.p10:9.4f}  "
                  f"min {times.min:9.4f}  interval {times.ci_low}-{times.ci_high}  n {times.n:6d}  "
                  f"load {times.load_start:.2f} -> {times.load_end:.2f}", flush=True)
    return pools


def _resolved(path: str, params: dict[str, Any]) -> dict[str, Any]:
    from tfprofscale.profiling.trace import loading

    return loading.resolve_params(loading.load_model_file(ROOT / path), params)


def report_model(name: str, pool: list[Any], draws: int) -> None:
    """Spread of each statistic over the pool, and the coverage of the interval at N = 1, 3, 5."""
    loads = [load for times in pool for load in (times.load_start, times.load_end) if load is not None]
    print(f"\n{name}: {len(pool)} processes; load average {min(loads):.2f} to {max(loads):.2f} "
          f"(median {statistics.median(loads):.2f}) on {os.cpu_count()} CPUs")
    medians = [times.median for times in pool]
    print(f"  median of the process medians {statistics.median(medians):.4f} ms")
    for statistic in STATISTICS:
        values = [getattr(times, statistic) for times in pool]
        cv = statistics.stdev(values) / statistics.mean(values)
        spread = (max(values) - min(values)) / statistics.median(values)
        print(f"  between-process spread of the {statistic:6s}: CV {100 * cv:5.1f}%, range {100 * spread:5.1f}%")
    for count in PROCESS_COUNTS:
        covered, widths, checked = coverage(pool, count, draws)
        if checked:
            print(f"  N = {count}: the reported 95% interval held the next run's median in {covered} of {checked} "
                  f"draws; median interval width {100 * statistics.median(widths):.1f}% of the median")


def coverage(pool: list[Any], count: int, draws: int, seed: int = 0) -> tuple[int, list[float], int]:
    """Draws of two disjoint groups of ``count``: does the first's interval hold the second's median?"""
    from tfprofscale.profiling.runtime.across_processes import combine

    if 2 * count > len(pool):
        print(f"  N = {count}: needs a pool of {2 * count}, have {len(pool)}")
        return 0, [], 0
    rng = random.Random(seed)
    covered, widths = 0, []
    for _ in range(draws):
        chosen = rng.sample(range(len(pool)), 2 * count)
        first = combine([pool[i] for i in chosen[:count]], [], count)
        second = combine([pool[i] for i in chosen[count:]], [], count)
        if first.ci_low is None or first.ci_high is None:
            continue
        covered += first.ci_low <= second.median <= first.ci_high
        widths.append((first.ci_high - first.ci_low) / first.median)
    return covered, widths, len(widths)


def measure_cost(rounds: int) -> None:
    """Wall time of `profile models/fashion_mnist.py` at --processes 1 and 3, interleaved, ``rounds`` each."""
    seconds: dict[int, list[float]] = {1: [], 3: []}
    loads = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(rounds):
            for count in seconds:
                loads.append(os.getloadavg()[0])
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "tfprofscale", "profile", str(ROOT / "models/fashion_mnist.py"),
                                "--quiet", "--logdir", folder, "--processes", str(count)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
                seconds[count].append(time.perf_counter() - started)
                loads.append(os.getloadavg()[0])
    one, three = statistics.median(seconds[1]), statistics.median(seconds[3])
    print(f"\nprofile fashion_mnist wall time, median of {rounds}: --processes 1 {one:.1f} s, --processes 3 "
          f"{three:.1f} s (x{three / one:.2f}); runs {seconds}; load {min(loads):.2f} to {max(loads):.2f}")
