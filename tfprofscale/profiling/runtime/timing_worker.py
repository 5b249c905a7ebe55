"""A fresh process that times one model's step: ``python -m tfprofscale.profiling.runtime.timing_worker REQUEST RESULT``.

It imports the model file, builds and traces the model at the request's batch
size, then warms up and times the step as the profiling process does
(``measure.time_within_budget``), and writes the step times as JSON to
RESULT. It runs either forked from the fork server (``fork_server``: TensorFlow
imported, no op run yet) or as ``python -m`` here, re-importing TensorFlow; a
fork of the profiling process itself would deadlock on its first op.
Exit status: 0 with RESULT written, 2 for a model that fails, 1 otherwise.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tfprofscale.errors import InputError
from tfprofscale.profiling.runtime.timing import StopRule, apply_threads, parse_threads
from tfprofscale.profiling.trace.user_code import user_code
from tfprofscale.profiling.trace.weights import load_weights
from tfprofscale.quiet import import_tensorflow_quietly


def time_model(request: dict[str, Any]) -> dict[str, Any]:
    """Build and trace the requested model, then time its step; the result as a JSON-ready dict."""

    import_tensorflow_quietly()

    apply_threads(parse_threads(request["threads"]))
    import tensorflow as tf

    from tfprofscale.profiling.runtime.measure import time_within_budget
    from tfprofscale.profiling.trace import loading, tracing

    model_file = loading.load_model_file(request["model"])
    params = request["params"]
    model = loading.build(model_file, params)
    if request.get("weights"):

        load_weights(model, request["weights"])
    shapes = request.get("input_shapes")
    with user_code(model_file.path, "tracing the model"):
        traced = tracing.trace(model, request["batch_size"], model_file.example_inputs, params,
                               None if shapes is None else tuple(tuple(shape) for shape in shapes))
    rule = StopRule(**request["rule"])
    with tf.device(request["device"]):
        times, plan = time_within_budget(traced.run, request["steps"], request["warmup"], 0, rule)
    return {"step_times": asdict(times), "budget_note": plan.shrunk}


def main(argv: list[str]) -> int:
    """Read the request, time, write the result; one line on stderr when the model fails."""
    request_path, result_path = argv
    try:
        result = time_model(json.loads(Path(request_path).read_text()))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    except Exception as error:  # the model failed while building or running: its one line, for the report
        print(f"error: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}",
              file=sys.stderr, flush=True)
        return 1
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # skip Python's slow exit after TensorFlow (cyclic garbage collection)
