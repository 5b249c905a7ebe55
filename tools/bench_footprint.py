"""Benchmark: peak RSS and wall time of `profile` against its floor, per model, and the exit after the report.

The floor is what running the model costs anyway: Python, import TensorFlow,
build the model, trace it and run one step. `profile` is the command line
with default options (trace included). Each is a child process whose peak
RSS is read with ``os.wait4``; floor and profile alternate (interleaved),
for ``--repeats`` rounds, and medians are reported with the load average
before and after each model. The issue's goals: peak RSS within 1.5x the
floor (1.2x on fashion_mnist), wall time within 2.0x on ResNet50 and 3.0x on
the weight-heavy models.

The exit: on ResNet50, the seconds from the report being written (main
returning) to the process having ended, with the prompt exit (flush, then
``os._exit``, as ``python -m tfprofscale profile`` does) against Python's
normal exit.

Weight-heavy models need up to ~10 GB: they run one at a time, and a model
is skipped (said so in the table) when the memory available is under its
expected need.

    python tools/bench_footprint.py [--models fashion_mnist,resnet50,...] [--repeats 3] [--out FILE.md]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB = 2**30

# name: (model file, --param values, weights in GiB)
MODELS = {
    "fashion_mnist": ("models/fashion_mnist.py", [], 0.003),
    "resnet50": ("tools/fixtures/resnet50.py", [], 0.095),
    "mlp_0.5GiB": ("tools/fixtures/dense_mlp.py", ["layers=2"], 0.5),
    "mlp_1GiB": ("tools/fixtures/dense_mlp.py", ["layers=4"], 1.0),
    "mlp_2.5GiB": ("tools/fixtures/dense_mlp.py", ["layers=10"], 2.5),
    "vgg16_doc003": ("tools/fixtures/vgg16_doc003.py", [], 1.65),
}
RSS_GOAL = {"fashion_mnist": 1.2}
WALL_GOAL = {"fashion_mnist": None, "resnet50": 2.0}

FLOOR = """
import sys
import tensorflow as tf
from tfprofscale.profiling.trace.loading import build, load_model_file, parse_params, resolve_params
from tfprofscale.profiling.trace.tracing import trace
model_file = load_model_file(sys.argv[1])
params = resolve_params(model_file, parse_params(sys.argv[2:], model_file))
traced = trace(build(model_file, params), 1, model_file.example_inputs, params)
traced.run()
"""

EXIT = """
import os, sys, time
from tfprofscale.cli import main
status = main(["profile", sys.argv[2], "--quiet", "--logdir", sys.argv[3], *sys.argv[4:]])
sys.stdout.flush()
print(f"REPORTED {time.time()!r}", file=sys.stderr, flush=True)
if sys.argv[1] == "prompt":
    os._exit(status)
sys.exit(status)
"""


def child(command: list[str]) -> tuple[float, float, str]:
    """Peak RSS (GiB), wall seconds and stderr of one child process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        text = err.read().decode(errors="replace")
    if status != 0:
        tail = [line for line in text.splitlines() if line.strip()][-1:] or ["?"]
        raise RuntimeError(f"{' '.join(command[:4])} failed ({status}): {tail[0]}")
    return usage.ru_maxrss / 2**20, wall, text


def available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def bench_model(name: str, repeats: int, logdir: str) -> dict:
    path, params, weights_gib = MODELS[name]
    need = 1.0 + 4.5 * weights_gib  # the floor builds the model with ~2-3x its weights transiently
    param_args = [arg for value in params for arg in ("--param", value)]
    floors, profiles, skipped_rounds = [], [], 0
    load_before = os.getloadavg()
    for _ in range(repeats):
        if available_gib() < need:
            skipped_rounds += 1
            continue
        floors.append(child([sys.executable, "-c", FLOOR, path, *params])[:2])
        profiles.append(child([sys.executable, "-m", "tfprofscale", "profile", path, *param_args, "--quiet",
                               "--logdir", logdir])[:2])
    return {"model": name, "weights_gib": weights_gib, "rounds": len(floors), "skipped_rounds": skipped_rounds,
            "floor_rss_gib": [f[0] for f in floors], "floor_wall_s": [f[1] for f in floors],
            "profile_rss_gib": [p[0] for p in profiles], "profile_wall_s": [p[1] for p in profiles],
            "load_before": load_before[0], "load_after": os.getloadavg()[0],
            "available_gib_at_end": available_gib()}


EXIT_OPTIONS = ["--steps", "5", "--warmup", "1", "--trace-steps", "2", "--max-time", "0.5"]


def bench_exit(repeats: int, logdir: str) -> dict:
    """Seconds from the report written to the process gone, prompt exit against Python's normal exit.

    Short timing options (``EXIT_OPTIONS``: a traced profile still, every stage run) keep the rounds
    short; what the exit has to tear down is the same objects.
    """
    seconds: dict[str, list[float]] = {"prompt": [], "normal": []}
    for _ in range(repeats):
        for mode in seconds:
            _, _, err = child([sys.executable, "-c", EXIT, mode, "tools/fixtures/resnet50.py", logdir, *EXIT_OPTIONS])
            ended = time.time()
            reported = float(next(line for line in err.splitlines() if line.startswith("REPORTED")).split()[1])
            seconds[mode].append(ended - reported)
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(results: list[dict]) -> str:
    lines = ["| model | weights | rounds | floor RSS | profile RSS | RSS ratio (goal) | floor wall | profile wall "
             "| wall ratio (goal) | load before/after |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if not r["rounds"]:
            lines.append(f"| {r['model']} | {r['weights_gib']} GiB | 0 | not run: {available_gib():.1f} GiB available "
                         "| | | | | | |")
            continue
        floor_rss, profile_rss = median(r["floor_rss_gib"]), median(r["profile_rss_gib"])
        floor_wall, profile_wall = median(r["floor_wall_s"]), median(r["profile_wall_s"])
        rss_goal = RSS_GOAL.get(r["model"], 1.5)
        wall_goal = WALL_GOAL.get(r["model"], 3.0)
        wall_goal_text = f"{wall_goal}" if wall_goal else "-"
        lines.append(
            f"| {r['model']} | {r['weights_gib']} GiB | {r['rounds']} | {floor_rss:.2f} GiB | {profile_rss:.2f} GiB "
            f"| {profile_rss / floor_rss:.2f}x ({rss_goal}) | {floor_wall:.1f} s | {profile_wall:.1f} s "
            f"| {profile_wall / floor_wall:.2f}x ({wall_goal_text}) | {r['load_before']:.1f} / {r['load_after']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from: " + ", ".join(MODELS))
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians reported)")
    parser.add_argument("--exit", action="store_true", help="also time the exit after the report (ResNet50)")
    parser.add_argument("--only-exit", action="store_true", help="time the exit only")
    parser.add_argument("--out", help="append the results (JSON lines) to this file")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in [] if args.only_exit else args.models.split(","):
            result = bench_model(name, args.repeats, str(Path(folder) / "runs"))
            results.append(result)
            print(json.dumps(result), flush=True)
            if args.out:
                with open(args.out, "a") as out:
                    out.write(json.dumps(result) + "\n")
        print(table(results))
        if args.exit or args.only_exit:
            seconds = bench_exit(args.repeats, str(Path(folder) / "runs"))
            print(f"exit after the report (ResNet50, {args.repeats} interleaved rounds, median): prompt "
                  f"{median(seconds['prompt']):.2f} s, normal {median(seconds['normal']):.2f} s "
                  f"(load {os.getloadavg()[0]:.1f}); rounds: {json.dumps(seconds)}")


if __name__ == "__main__":
    main()
