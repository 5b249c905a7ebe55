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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf


from tfprofscale.profiling.memory.session_graph import traced_graph_step
from tfprofscale.profiling.memory.step_memory import step_memory


@dataclass(frozen=True)
class Probe:
    """The geometry fields a layer type's kernel depends on, and how to build that kernel on placeholders."""

    fields: tuple[str, ...]
    build: Callable[[dict[str, Any]], tuple[list[Any], Any]]
    weight_elements: Callable[[dict[str, Any]], int]


PROBES: dict[str, Probe] = {}
PROBE_GROUP_BYTES = 256 * 2**20  # weights run together in one Session at most (or one larger kernel)


def probe_for(layer_type: str, fields: tuple[str, ...],
              weight_elements: Callable[[dict[str, Any]], int]) -> Callable[[Callable], Callable]:
    """Register the kernel builder of ``layer_type`` and the number of weights it holds."""

    def register(build: Callable) -> Callable:
        PROBES[layer_type] = Probe(fields, build, weight_elements)
        return build

    return register


@probe_for("Conv2D", ("batch", "in_h", "in_w", "in_channels", "out_channels", "kernel_h", "kernel_w", "stride_h",
                      "stride_w", "dilation_h", "dilation_w", "padding", "use_bias", "activation"),
           lambda g: g["kernel_h"] * g["kernel_w"] * g["in_channels"] * g["out_channels"] + g["out_channels"])
def _conv2d(g: dict[str, Any]) -> tuple[list[Any], Any]:
    source = tf.compat.v1.placeholder(tf.float32, (g["batch"], g["in_h"], g["in_w"], g["in_channels"]))
    kernel = _filled((g["kernel_h"], g["kernel_w"], g["in_channels"], g["out_channels"]))
    output = tf.nn.conv2d(source, kernel, (1, g["stride_h"], g["stride_w"], 1), g["padding"].upper(),
                          dilations=(1, g["dilation_h"], g["dilation_w"], 1))
    return [source], _bias_and_activation(output, g)


@probe_for("DepthwiseConv2D", ("batch", "in_h", "in_w", "in_channels", "depth_multiplier", "kernel_h", "kernel_w",
                               "stride_h", "stride_w", "dilation_h", "dilation_w", "padding", "use_bias",
                               "activation"),
           lambda g: g["kernel_h"] * g["kernel_w"] * g["in_channels"] * g["depth_multiplier"] * 2)
def _depthwise_conv2d(g: dict[str, Any]) -> tuple[list[Any], Any]:
    source = tf.compat.v1.placeholder(tf.float32, (g["batch"], g["in_h"], g["in_w"], g["in_channels"]))
    kernel = _filled((g["kernel_h"], g["kernel_w"], g["in_channels"], g["depth_multiplier"]))
    output = tf.nn.depthwise_conv2d(source, kernel, (1, g["stride_h"], g["stride_w"], 1), g["padding"].upper(),
                                    dilations=(g["dilation_h"], g["dilation_w"]))
    return [source], _bias_and_activation(output, g)


@probe_for("Dense", ("rows", "in_features", "out_features", "use_bias", "activation"),
           lambda g: g["in_features"] * g["out_features"] + g["out_features"])
def _dense(g: dict[str, Any]) -> tuple[list[Any], Any]:
    source = tf.compat.v1.placeholder(tf.float32, (g["rows"], g["in_features"]))
    output = tf.linalg.matmul(source, _filled((g["in_features"], g["out_features"])))
    return [source], _bias_and_activation(output, g)


INITIALISERS = "probe_initialisers"  # graph collection of the weights' AssignVariableOps


def _filled(shape: tuple[int, ...]) -> tf.Tensor:
    """A weight of ``shape`` as the model holds it, a variable, set to one repeated value by a Fill op.

    A variable, not a constant: oneDNN runs a product whose weights are
    constant differently (with a scratch to cache them), and the model's
    weights are variables. The GraphDef holds the shape, never the values.
    """
    from tensorflow.python.ops import gen_resource_variable_ops

    handle = gen_resource_variable_ops.var_handle_op(dtype=tf.float32, shape=shape, shared_name=_unique_name())
    initial = tf.fill(shape, tf.constant(0.5, tf.float32))
    tf.compat.v1.add_to_collection(INITIALISERS, gen_resource_variable_ops.assign_variable_op(handle, initial))
    return gen_resource_variable_ops.read_variable_op(handle, tf.float32)


def _unique_name() -> str:
    return tf.compat.v1.get_default_graph().unique_name("probe_weight")


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


def weight_bytes(key: tuple[Any, ...]) -> int:
    """Bytes of float32 weights (with the bias, counted for every kernel) the probe of ``key`` holds."""
    probe = PROBES[key[0]]
    return 4 * int(probe.weight_elements(dict(zip(probe.fields, key[1:]))))


def probe_groups(keys: list[tuple[Any, ...]], group_bytes: int = PROBE_GROUP_BYTES) -> list[list[tuple[Any, ...]]]:
    """The distinct keys in groups run together, each group's weights at most ``group_bytes`` (or one kernel)."""
    groups: list[list[tuple[Any, ...]]] = []
    held = group_bytes
    for key in sorted(set(keys), key=repr):
        size = weight_bytes(key)
        if held + size > group_bytes:
            groups.append([])
            held = 0
        groups[-1].append(key)
        held += size
    return groups


def largest_group_bytes(keys: list[tuple[Any, ...]]) -> int:
    """Weights held at once by the largest probe group (what probing adds to the process at most)."""
    return max((sum(weight_bytes(key) for key in group) for group in probe_groups(keys)), default=0)


def kernel_scratch_bytes(keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], int]:
    """{probe key: bytes of temporaries its kernel allocates}, every distinct key built once.

    Kernels run side by side in one Session per group (``probe_groups``), so
    probing never holds more weights than ``PROBE_GROUP_BYTES`` or the largest kernel's.
    """
    scratch: dict[tuple[Any, ...], int] = {}
    for group in probe_groups(keys):
        scratch.update(_group_scratch_bytes(group))
    return scratch


def _group_scratch_bytes(distinct: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], int]:
    graph, inputs, outputs = tf.Graph(), [], []
    with graph.as_default():
        for index, key in enumerate(distinct):
            probe = PROBES[key[0]]
            with tf.name_scope(f"probe{index}"):
                sources, output = probe.build(dict(zip(probe.fields, key[1:])))
                inputs += sources
                outputs.append(tf.identity(output, name="output").name)
    zeros = {t.name: np.zeros(t.shape, np.float32) for t in inputs}
    scratch = {f"probe{index}": 0 for index in range(len(distinct))}
    initialisers = graph.get_collection(INITIALISERS)
    for allocation in step_memory(traced_graph_step(graph, outputs, zeros, initialisers)).allocations:
        scope = allocation.op.split("/")[0]
        if scope in scratch and allocation.bytes > 0 and allocation.is_workspace:
            scratch[scope] += allocation.bytes
    return {key: scratch[f"probe{index}"] for index, key in enumerate(distinct)}
