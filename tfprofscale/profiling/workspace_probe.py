"""What oneDNN allocates as scratch for a convolution, measured on the convolution alone.

oneDNN picks a convolution implementation per shape and CPU (a jit kernel
with a small scratchpad, about 12 KB on an AVX2 machine; a gemm path with an
im2col-style buffer for single-channel inputs, 32-160 KB depending on the
kernel and the width), and its scratchpad size follows that choice, which
no formula outside oneDNN reproduces. So each distinct Conv2D geometry of a
model is run once, alone, side by side in one small graph and one traced
Session step, and its temporaries are read from the allocation records: the
workspace term of the memory estimate, like a cuDNN workspace query.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfprofscale.profiling.frozen import FrozenGraph

GEOMETRY_KEYS = ("batch", "in_h", "in_w", "in_channels", "out_channels", "kernel_h", "kernel_w", "stride_h",
                 "stride_w", "dilation_h", "dilation_w", "padding", "use_bias", "activation")


def probe_key(geometry: dict[str, Any]) -> tuple[Any, ...] | None:
    """The geometry's identity for probing; None for a convolution the probe does not build (groups, NCHW)."""
    if any(key not in geometry for key in GEOMETRY_KEYS) or geometry.get("groups", 1) != 1 \
            or geometry.get("data_format", "channels_last") != "channels_last":
        return None
    return tuple(geometry[key] for key in GEOMETRY_KEYS)


def convolution_scratch_bytes(geometries: list[dict[str, Any]], device: str = "CPU:0") -> dict[tuple, int]:
    """{probe key: bytes of temporaries its Conv2D allocates}, for every distinct probe-able geometry."""
    from tfprofscale.profiling.memory import traced_session_step
    from tfprofscale.profiling.step_memory import step_memory

    keys = sorted({key for key in map(probe_key, geometries) if key is not None}, key=repr)
    if not keys:
        return {}
    graph, inputs, outputs = _probe_graph(keys)
    frozen = FrozenGraph(graph.as_graph_def(), [t.name for t in inputs], outputs)
    zeros = tuple(np.zeros(t.shape, np.float32) for t in inputs)
    scratch = {f"probe{index}": 0 for index in range(len(keys))}
    for allocation in step_memory(traced_session_step(frozen, zeros, device)).allocations:
        scope = allocation.op.split("/")[0]
        if scope in scratch and allocation.bytes > 0 and allocation.is_workspace:
            scratch[scope] += allocation.bytes
    return {key: scratch[f"probe{index}"] for index, key in enumerate(keys)}


def _probe_graph(keys: list[tuple[Any, ...]]) -> tuple[tf.Graph, list[Any], list[str]]:
    """One Conv2D (+ bias, ReLU) per key, each under its own scope; its input placeholders and output names."""
    graph, inputs, outputs = tf.Graph(), [], []
    with graph.as_default():
        for index, key in enumerate(keys):
            g = dict(zip(GEOMETRY_KEYS, key))
            with tf.name_scope(f"probe{index}"):
                source = tf.compat.v1.placeholder(tf.float32, (g["batch"], g["in_h"], g["in_w"], g["in_channels"]))
                inputs.append(source)
                kernel = tf.constant(np.full((g["kernel_h"], g["kernel_w"], g["in_channels"], g["out_channels"]),
                                             0.5, np.float32))
                output = tf.nn.conv2d(source, kernel, (1, g["stride_h"], g["stride_w"], 1), g["padding"].upper(),
                                      dilations=(1, g["dilation_h"], g["dilation_w"], 1))
                if g["use_bias"]:
                    output = tf.nn.bias_add(output, tf.constant(np.full(g["out_channels"], 0.5, np.float32)))
                if g["activation"] == "relu":
                    output = tf.nn.relu(output)
                outputs.append(tf.identity(output, name="output").name)
    return graph, inputs, outputs
