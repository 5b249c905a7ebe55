"""One FULL_TRACE Session step of a frozen graph: the RunMetadata whose step_stats hold every allocation.

The Session runs ops one at a time (``inter_op_parallelism_threads=1``) so
that the execution order, and the peak, are the same from run to run, and
without constant folding: in the real function the weights are variables,
which cannot be folded.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from tfprofscale.errors import InputError
from tfprofscale.profiling.memory.frozen import FrozenGraph


def traced_session_step(frozen: FrozenGraph, inputs: tuple[Any, ...]) -> Any:
    """RunMetadata of one FULL_TRACE Session step of the frozen graph (after one untraced step).

    Ops are placed by the Session's default (on the GPU when there is one).
    InputError, in one line, when the graph cannot be imported or run.
    """
    feeds = {name: np.asarray(value) for name, value in zip(frozen.input_names, inputs)}
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    run_metadata = tf.compat.v1.RunMetadata()
    try:
        with tf.compat.v1.Session(graph=frozen.graph(), config=session_config()) as session:
            session.run(frozen.output_names, feeds)
            session.run(frozen.output_names, feeds, options=options, run_metadata=run_metadata)
    except (tf.errors.OpError, ValueError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"cannot run the frozen graph in a Session: {type(error).__name__}: {first_line}") from None
    return run_metadata


def session_config() -> Any:
    """One op at a time, no constant folding (the weights are variables in the real function)."""
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=1, allow_soft_placement=True)
    config.graph_options.rewrite_options.constant_folding = rewriter_config_pb2.RewriterConfig.OFF
    config.graph_options.optimizer_options.opt_level = tf.compat.v1.OptimizerOptions.L0  # nor the classic folding
    config.graph_options.optimizer_options.do_function_inlining = True
    return config
