"""``--memory-trace``: a second, untimed run under the BFC CPU allocator, for TensorBoard's Memory Profile.

On CPU, TensorFlow's default allocator sends small requests to malloc and
keeps no timeline, so the Memory Profile tab is empty. With
``TF_CPU_ALLOCATOR_USE_BFC=true`` set before TensorFlow is imported every
allocation goes through a BFC allocator the profiler records. That setting
slows some models (VGG16 b1 85 -> 150 ms per step measured), so it runs in a
child process of its own, never in the timed one, and writes its trace into
the same logdir as a run of its own (``<run>-memory``).

    python -m tfprofscale.profiling.memory.memory_trace MODEL.py RUN_DIR --batch-size N [--params JSON] [--weights F]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tfprofscale.profiling.trace import loading, tracing
from tfprofscale.quiet import import_tensorflow_quietly

BFC_ENVIRONMENT = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}
MEMORY_TRACE_STEPS = 3
MEMORY_RUN_SUFFIX = "-memory"


def memory_run_dir(run_dir: Path) -> Path:
    """The logdir run the memory trace is written to, beside the timed run."""
    return run_dir.with_name(run_dir.name + MEMORY_RUN_SUFFIX)


def run_memory_trace(model_path: str, run_dir: Path, batch_size: int, params: dict[str, Any],
                     weights: str | None = None, timeout_s: float = 600) -> tuple[str | None, str | None]:
    """Trace a model file in a child process with the BFC CPU allocator; (trace dir, None) or (None, why)."""
    target = memory_run_dir(run_dir)
    command = [sys.executable, "-m", "tfprofscale.profiling.memory.memory_trace", str(model_path), str(target),
               "--batch-size", str(batch_size), "--params", json.dumps(params)]
    command += ["--weights", weights] if weights else []
    try:
        done = subprocess.run(command, env={**os.environ, **BFC_ENVIRONMENT}, capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, f"the memory trace did not finish within {timeout_s:.0f} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return None, f"the memory trace failed (exit {done.returncode}): {last}"
    return done.stdout.strip().splitlines()[-1], None


def _trace_in_this_process(model_path: str, run_dir: str, batch_size: int, params: dict[str, Any],
                           weights: str | None) -> str:
    """Build, warm up and trace a few steps; return the new trace folder (run under BFC_ENVIRONMENT)."""
    import_tensorflow_quietly()
    import tensorflow as tf

    model_file = loading.load_model_file(model_path)
    resolved = loading.resolve_params(model_file, params)
    model = loading.build(model_file, resolved)
    if weights:
        model.load_weights(weights)
    traced = tracing.trace(model, batch_size, model_file.example_inputs, resolved)
    traced.run()
    before = set(glob.glob(os.path.join(run_dir, "plugins", "profile", "*")))
    tf.profiler.experimental.start(run_dir)
    try:
        for number in range(MEMORY_TRACE_STEPS):
            with tf.profiler.experimental.Trace("infer", step_num=number, _r=1):
                traced.run()
    finally:
        tf.profiler.experimental.stop()
    new = sorted(set(glob.glob(os.path.join(run_dir, "plugins", "profile", "*"))) - before)
    return new[-1] if new else run_dir


def main(argv: list[str] | None = None) -> int:
    """The child process: trace one model file into RUN_DIR, print the trace folder."""
    if os.environ.get("TF_CPU_ALLOCATOR_USE_BFC") != "true":
        print("memory_trace: TF_CPU_ALLOCATOR_USE_BFC=true must be set before TensorFlow starts", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("run_dir")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--params", default="{}")
    parser.add_argument("--weights")
    args = parser.parse_args(argv)
    print(_trace_in_this_process(args.model, args.run_dir, args.batch_size, json.loads(args.params), args.weights))
    return 0


if __name__ == "__main__":
    sys.exit(main())
