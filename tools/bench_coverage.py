"""The between-process part of tools/bench_repeatability.py (issue 18): spreads, interval coverage, cost.

See ``bench_repeatability.py --coverage``'s description. Every process is a
``tfprofscale.profiling.runtime.timing_worker`` started by ``processes.run_worker``,
the same worker ``profile --processes N`` starts for processes 2..N.
"""
from __future__ import annotations

import itertools
import json
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

MODELS = {  # name: (model file, parameters, batch size); step times as measured at load ~1 on 2 cores
    "fashion_mnist-b1": ("models/fashion_mnist.py", {}, 1),
    "cnn-sub-ms": ("models/generated_cnn.py", {"n_layers": 2, "filters": 8, "input_size": 32}, 1),
    "cnn-5ms": ("models/generated_cnn.py", {"n_layers": 3, "filters": 32, "input_size": 288, "stride": 1}, 1),
    "cnn-50ms": ("models/generated_cnn.py", {"n_layers": 3, "filters": 64, "input_size": 448, "stride": 1}, 1),
    "resnet50-b1": ("tools/fixtures/resnet50.py", {}, 1),
}
PROCESS_COUNTS = (1, 3, 5)
STATISTICS = ("median", "p10", "min")


def run_coverage(args: Any) -> None:
    """Run the pool (interleaved), then print spreads and coverage per model; optionally the cost."""
    names = args.models or list(MODELS)
    if args.commands:
        for route, commands in measure_commands(names, args.commands, args.routes).items():
            for name in names:
                report_commands(f"{name} ({route})", commands[name])
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


ROUTES = {"forked": {}, "re-imported": {"TFPROFSCALE_FORK_SERVER": "0"}}  # how processes 2..5 start


def measure_commands(names: list[str], count: int, routes: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``count`` independent `profile --processes 5` commands per model and route, interleaved; their step_time_ms."""
    commands = {route: {name: [] for name in names} for route in routes}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "report.json"
        for number, name, route in itertools.product(range(count), names, routes):
            path, params, batch = MODELS[name]
            command = [sys.executable, "-m", "tfprofscale", "profile", str(ROOT / path), "--quiet", "--no-trace",
                       "--no-cost-model", "--processes", str(max(PROCESS_COUNTS)), "--batch-size", str(batch),
                       "--json", str(out)] + [f"--param={key}={value}" for key, value in params.items()]
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "PYTHONPATH": str(ROOT), **ROUTES[route]})
            steps = json.loads(out.read_text())["totals"]["step_time_ms"]
            commands[route][name].append(steps)
            medians = " ".join(f"{entry['median']:.4f}" if "median" in entry else "died"
                               for entry in steps["processes"])
            seconds = time.perf_counter() - started
            print(f"{name:18s} {route:11s} command {number + 1:2d}: process medians {medians} ms ({seconds:.1f} s; "
                  f"load {steps['processes'][0]['load_start']:.2f} -> {steps['load_end']:.2f})", flush=True)
    return commands


def report_commands(name: str, commands: list[dict[str, Any]]) -> None:
    """Coverage over consecutive independent commands at N = 1, 3, 5, and fresh against forked spreads."""
    from tfprofscale.profiling.runtime.across_processes import prediction_interval

    per_command = [[entry["median"] for entry in steps["processes"] if "median" in entry] for steps in commands]
    loads = [entry[key] for steps in commands for entry in steps["processes"] for key in ("load_start", "load_end")
             if entry.get(key) is not None]
    print(f"\n{name}: {len(commands)} independent commands of {max(PROCESS_COUNTS)} processes; load average "
          f"{min(loads):.2f} to {max(loads):.2f} (median {statistics.median(loads):.2f}) on {os.cpu_count()} CPUs")
    fresh = [medians[0] for medians in per_command]
    forked_within = [statistics.stdev(m[1:]) / statistics.mean(m[1:]) for m in per_command if len(m) > 2]
    print(f"  spread of the median: fresh processes (each command's first) CV {100 * _cv(fresh):.1f}%; "
          f"processes 2-5 within one command CV {100 * statistics.median(forked_within):.1f}% (median over commands), "
          f"across commands CV {100 * _cv([x for m in per_command for x in m[1:]]):.1f}%")
    for count in PROCESS_COUNTS:
        reported = [statistics.median(medians[:count]) for medians in per_command]
        intervals = [(steps["processes"][0]["ci_low"], steps["processes"][0]["ci_high"]) if count == 1
                     else prediction_interval(medians[:count], next_count=count)
                     for steps, medians in zip(commands, per_command)]
        pairs = [(interval, following) for interval, following in zip(intervals, reported[1:]) if interval]
        covered = sum(low <= following <= high for (low, high), following in pairs)
        widths = [(interval[1] - interval[0]) / median for interval, median in zip(intervals, reported) if interval]
        print(f"  N = {count}: the interval held the next command's median in {covered} of {len(pairs)}; median "
              f"width {100 * statistics.median(widths):.1f}% of the median; the reported median's spread between "
              f"commands CV {100 * _cv(reported):.1f}%")


def _cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values)


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
