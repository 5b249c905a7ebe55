"""Benchmark: how well two `profile` processes agree on the median step time of the same configuration.

For several generated-CNN configurations (models/generated_cnn.py), each
round runs `python -m tfprofscale profile` twice per configuration and per
timing mode, all interleaved (A of every configuration and mode, then B),
and takes the repeat-to-repeat difference |A - B| / mean(A, B) of the
median step time. Printed per mode: the mean of these differences over the
configurations (MAPE) in each round and their median over rounds (goal <= 3%
on a quiet machine), with the load average seen. Modes:

- ``calibrated``: the defaults (calibrated rounds until the median's 95%
  interval is within 2% or 3 s have passed);
- ``single-pass``: the former method, 50 single steps and their median
  (``--min-time 1e-9 --max-time 1e-9``: one step per round, stop at 50);
- ``calibrated-1-thread``: the defaults with ``--threads 1``.

    python tools/bench_repeatability.py [--rounds 3] [--modes calibrated single-pass calibrated-1-thread]

``--coverage`` (issue 18) measures instead, for fashion_mnist b1, the
generated CNN at three sizes (sub-ms, ~5 ms, ~50 ms steps on a quiet machine)
and ResNet50 b1, a pool of ``--pool`` fresh timing processes per model (the
very workers ``profile --processes N`` starts, interleaved over the models,
one at a time): the between-process spread (CV) of the median, p10 and min;
and the coverage of the reported 95% interval at N = 1, 3, 5: in each of
``--draws`` draws, two disjoint groups of N processes are taken from the pool
at random, the first group's interval (``across_processes.combine``, exactly
as ``profile --processes N`` reports it; N = 1: the within-process interval)
is checked against the second group's median (the next independent run).
Resampling a finite pool makes the draws dependent: with a pool of 12 and
N = 5 each draw uses 10 of the 12 processes. The load average at the start
and end of every process is printed next to the figures. ``--cost`` times
``profile`` at ``--processes 1`` and ``3`` on fashion_mnist (interleaved).

``--commands K`` is the goal's own test: K independent ``profile --processes 5``
commands per model (interleaved over the models; process 1 of each is a fresh
``python -m``, processes 2-5 are forked from its fork server): at N = 1, 3, 5
(each command's first N processes, as ``--processes N`` would report them)
whether each command's interval holds the next command's median (K - 1
pairs), and the spread of fresh processes (each command's first) against
forked ones, within one command and across commands.

    python tools/bench_repeatability.py --coverage [--pool 12] [--draws 10] [--cost] [--commands 11]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIGURATIONS = [  # generated_cnn parameters and batch size: small to medium steps (about 0.3 to 10 ms)
    ({"n_layers": 2, "filters": 16, "input_size": 64}, 1),
    ({"n_layers": 3, "filters": 32, "input_size": 96}, 1),
    ({"n_layers": 2, "filters": 32, "input_size": 128}, 4),
    ({"n_layers": 3, "filters": 16, "input_size": 160}, 2),
]
MODES = {
    "calibrated": [],
    "single-pass": ["--min-time", "1e-9", "--max-time", "1e-9"],
    "calibrated-1-thread": ["--threads", "1"],
}
ROOT = Path(__file__).resolve().parents[1]


def profile_median_ms(params: dict, batch: int, mode: str, out: Path) -> tuple[float, dict]:
    """One profile process (no trace); its median step time and step_time_ms record."""
    command = [sys.executable, "-m", "tfprofscale", "profile", str(ROOT / "models" / "generated_cnn.py"),
               "--quiet", "--no-trace", "--batch-size", str(batch), "--json", str(out), *MODES[mode]]
    for key, value in params.items():
        command += ["--param", f"{key}={value}"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    steps = json.loads(out.read_text())["totals"]["step_time_ms"]
    return steps["median"], steps


def describe(params: dict, batch: int) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) + f",batch={batch}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--coverage", action="store_true", help="the between-process benchmark of issue 18")
    parser.add_argument("--pool", type=int, default=12, help="fresh timing processes per model (--coverage)")
    parser.add_argument("--draws", type=int, default=10, help="independent-run checks per N (--coverage)")
    parser.add_argument("--models", nargs="+", default=None, help="a subset of the --coverage models")
    parser.add_argument("--cost", action="store_true", help="profile wall time at --processes 1 and 3")
    parser.add_argument("--commands", type=int, default=0, metavar="K",
                        help="K independent `profile --processes 5` commands per model: coverage over "
                             "consecutive ones")
    parser.add_argument("--routes", nargs="+", default=["forked"], choices=["forked", "re-imported"],
                        help="how --commands start processes 2..5 (both: interleaved, compared)")
    args = parser.parse_args()
    if args.coverage or args.cost or args.commands:
        from bench_coverage import run_coverage

        run_coverage(args)
        return
    mape = {mode: [] for mode in args.modes}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(args.rounds):
            medians: dict[tuple[str, int, str], list[float]] = {}
            for repeat in ("A", "B"):
                for index, (params, batch) in enumerate(CONFIGURATIONS):
                    for mode in args.modes:
                        median, steps = profile_median_ms(params, batch, mode, Path(folder) / "r.json")
                        medians.setdefault((mode, index, repeat), []).append(median)
                        loads += [steps.get("load_start"), steps.get("load_end")]
                        print(f"round {round_number} {repeat} {mode:20s} {describe(params, batch):45s} "
                              f"median {median:8.3f} ms  cv {100 * steps['cv']:5.1f}%  n {steps['n']:5d}  "
                              f"load {steps.get('load_start')} -> {steps.get('load_end')}", flush=True)
            for mode in args.modes:
                differences = []
                for index in range(len(CONFIGURATIONS)):
                    a, b = medians[(mode, index, "A")][0], medians[(mode, index, "B")][0]
                    differences.append(abs(a - b) / ((a + b) / 2))
                mape[mode].append(statistics.mean(differences))
    known = [load for load in loads if load is not None]
    print(f"\n{len(CONFIGURATIONS)} generated-CNN configurations x 2 profile processes x {args.rounds} rounds, "
          f"interleaved; load average seen {min(known):.2f} to {max(known):.2f} "
          f"(median {statistics.median(known):.2f}) on {os.cpu_count()} CPUs")
    for mode, values in mape.items():
        print(f"{mode:20s} repeat-to-repeat MAPE of the median step time: median {100 * statistics.median(values):.1f}% "
              f"(rounds: {', '.join(f'{100 * v:.1f}%' for v in values)}; goal <= 3% on a quiet machine)")


if __name__ == "__main__":
    main()
