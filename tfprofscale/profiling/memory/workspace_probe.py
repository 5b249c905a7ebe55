"""What oneDNN allocates as scratch for a layer's kernel, measured on the kernel alone.

oneDNN picks an implementation per shape and CPU (for a convolution a jit
kernel with a scratchpad of 8-12 KB on an AVX2 machine, or a gemm path with
an im2col-style buffer of 32-160 KB for single-channel inputs; for a matrix
product a few KB from batch 2 on, none at batch 1), and its scratchpad size
follows that choice, which no formula outside oneDNN reproduces. So each
distinct kernel geometry of a model is built once, alone, side by side in
one small graph run for one traced Session step, and its temporaries are
read from the allocation records: the workspace term of the memory
estimate, as a cuDNN workspace query would give it on a GPU.

One small registered function per layer type builds its kernel from the
geometry the formulas report (the same shape as TensorFlow's flops_registry).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfprofscale.profiling.memory.frozen import FrozenGraph
from tfprofscale.profiling.memory.session_step import traced_session_step
from tfprofscale.profiling.memory.step_memory import step_memory


@dataclass(frozen=True)
class Probe:
    """The geometry fields a layer type's kernel depends on, and how to build that kernel on placeholders."""

    fields: tuple[str, ...]
    build: Callable[[dict[str, Any]], tuple[list[Any], Any]]


PROBES: dict[str, Probe] = {}


def probe_for(layer_type: str, fields: tuple[str, ...]) -> Callable[[Callable], Callable]:
    """Register the kernel builder of ``layer_type``."""

    def register(build: Callable) -> Callable:
        PROBES[layer_type] = Probe(fields, build)
        return build

    return register


@probe_for("Conv2D", ("batch", "in_h", "in_w", "in_channels", "out_channels", "kernel_h", "kernel_w", "stride_h",
                      "stride_w", "dilation_h", "dilation_w", "padding", "use_bias", "activation"))
def _conv2d(g: dict[str, Any]) -> tuple[list[Any], Any]:
    source = tf.compat.v1.placeholder(tf.float32, (g["batch"], g["in_h"], g["in_w"], g["in_channels"]))
    kernel = _filled((g["kernel_h"], g["kernel_w"], g["in_channels"], g["out_channels"]))
    output = tf.nn.conv2d(source, kernel, (1, g["stride_h"], g["stride_w"], 1), g["padding"].upper(),
                          dilations=(1, g["dilation_h"], g["dilation_w"], 1))
    return [source], _bias_and_activation(output, g)


@probe_for("DepthwiseConv2D", ("batch", "in_h", "in_w", "in_channels", "depth_multiplier", "kernel_h", "kernel_w",
                               "stride_h", "stride_w", "dilation_h", "dilation_w", "padding", "use_bias",
                               "activation"))
def _depthwise_conv2d(g: dict[str, Any]) -> tuple[list[Any], Any]:
    source = tf.compat.v1.placeholder(tf.float32, (g["batch"], g["in_h"], g["in_w"], g["in_channels"]))
    kernel = _filled((g["kernel_h"], g["kernel_w"], g["in_channels"], g["depth_multiplier"]))
    output = tf.nn.depthwise_conv2d(source, kernel, (1, g["stride_h"], g["stride_w"], 1), g["padding"].upper(),
                                    dilations=(g["dilation_h"], g["dilation_w"]))
    return [source], _bias_and_activation(output, g)


@probe_for("Dense", ("rows", "in_features", "out_features", "use_bias", "activation"))
def _dense(g: dict[str, Any]) -> tuple[list[Any], Any]:
    source = tf.compat.v1.placeholder(tf.float32, (g["rows"], g["in_features"]))
    output = tf.linalg.matmul(source, _filled((g["in_features"], g["out_features"])))
    return [source], _bias_and_activation(output, g)


def _filled(shape: tuple[int, ...]) -> tf.Tensor:
    return tf.constant(np.full(shape, 0.5, np.float32))


def _bias_and_activation(output: tf.Tensor, g: dict[str, Any]) -> tf.Tensor:
    """The bias and ReLU Grappler fuses into the kernel (other activations stay separate ops)."""
    if g["use_bias"]:
        output = tf.nn.bias_add(output, _filled((output.shape[-1],)))
    return tf.nn.relu(output) if g["activation"] == "relu" else output


def probe_key(layer_type: str, geometry: dict[str, Any]) -> tuple[Any, ...] | None:
    """The kernel's identity for probing; None for a layer the probes do not build (grouped, NCHW ...)."""
    probe = PROBES.get(layer_type)
    grouped = layer_type == "Conv2D" and geometry.get("groups", 1) != 1
    if probe is None or any(name not in geometry for name in probe.fields) or grouped \
            or geometry.get("data_format", "channels_last") != "channels_last":
        return None
    return (layer_type, *(geometry[name] for name in probe.fields))


def kernel_scratch_bytes(keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], int]:
    """{probe key: bytes of temporaries its kernel allocates}, every distinct key built once."""
    distinct = sorted(set(keys), key=repr)
    if not distinct:
        return {}
    graph, inputs, outputs = tf.Graph(), [], []
    with graph.as_default():
        for index, key in enumerate(distinct):
            probe = PROBES[key[0]]
            with tf.name_scope(f"probe{index}"):
                sources, output = probe.build(dict(zip(probe.fields, key[1:])))
                inputs += sources
                outputs.append(tf.identity(output, name="output").name)
    frozen = FrozenGraph(graph.as_graph_def(), [t.name for t in inputs], outputs)
    zeros = tuple(np.zeros(t.shape, np.float32) for t in inputs)
    scratch = {f"probe{index}": 0 for index in range(len(distinct))}
    for allocation in step_memory(traced_session_step(frozen, zeros)).allocations:
        scope = allocation.op.split("/")[0]
        if scope in scratch and allocation.bytes > 0 and allocation.is_workspace:
            scratch[scope] += allocation.bytes
    return {key: scratch[f"probe{index}"] for index, key in enumerate(distinct)}
