"""Independent counts of the work in a traced one-layer-per-branch Keras model, per layer.

Three routes, none of them the formulas under test:

- ``tfprof``: TensorFlow's profiler on the top-level graph, summed over the ops
  under the layer's recorded name scope (as in test_analytic);
- ``einsum``: the multiply-adds of each Einsum op (tfprof has no statistics
  for them), counted by running ``np.einsum`` on arrays of ones of the op's
  operand shapes: each output element is then the number of products it sums,
  so their total is the number of multiply-adds; flops are twice that;
- ``loops``: tfprof on each While body graph under the scope (floating-point
  ops only, not the int32 loop counters), times the trip count the test knows
  from the input's shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.profiler import model_analyzer
from tensorflow.python.profiler.option_builder import ProfileOptionBuilder


@dataclass(frozen=True)
class Traced:
    graph: tf.Graph
    scopes: dict[str, str]


def trace(model: keras.Model, specs: list[tf.TensorSpec]) -> Traced:
    """The model's inference graph with every top-level layer's name scope recorded."""
    scopes: dict[str, str] = {}
    for layer in model.layers:
        layer.call = _scope_recording(layer, scopes)
    try:
        function = tf.function(lambda *x: model(list(x) if len(x) > 1 else x[0], training=False))
        graph = function.get_concrete_function(*specs).graph
    finally:
        for layer in model.layers:
            del layer.call
    return Traced(graph, scopes)


def _scope_recording(layer, scopes):
    original = layer.call

    def call(*args, **kwargs):
        scopes.setdefault(layer.name, tf.get_current_name_scope())
        return original(*args, **kwargs)
    return call


def tfprof_op_flops(graph: tf.Graph) -> dict[str, int]:
    """tfprof's float_ops per op name of the top-level graph."""
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return dict(_walk(model_analyzer.profile(graph, options=options)))


def tfprof_flops(graph: tf.Graph, scope: str) -> int:
    """tfprof's float_ops summed over the floating-point ops under ``scope/`` (not int32 shape arithmetic)."""
    counts = tfprof_op_flops(graph)
    prefix = scope + "/" if scope else ""
    return sum(counts.get(op.name, 0) for op in graph.get_operations()
               if op.name.startswith(prefix) and _is_floating(op))


def _walk(node):
    yield node.name, node.float_ops
    for child in node.children:
        yield from _walk(child)


def einsum_flops(graph: tf.Graph, scope: str) -> int:
    """2 x the products of every Einsum op under ``scope/``, counted with numpy on ones."""
    total = 0
    for op in graph.get_operations():
        if op.type == "Einsum" and op.name.startswith(scope + "/"):
            equation = op.get_attr("equation").decode()
            operands = [np.ones(tuple(t.shape), np.float64) for t in op.inputs]
            total += 2 * int(np.einsum(equation, *operands).sum())
    return total


def select_elements(graph: tf.Graph, scope: str) -> int:
    """Output elements of the floating-point Select ops under ``scope/``: masking tfprof does not count."""
    return sum(math.prod(op.outputs[0].shape) for op in graph.get_operations()
               if op.type in ("Select", "SelectV2") and op.name.startswith(scope + "/") and _is_floating(op))


def loop_body_flops(graph: tf.Graph, scope: str) -> list[int]:
    """tfprof's floating-point flops of one iteration of each While under ``scope/``."""
    return [tfprof_flops(body, "") for body in _loop_bodies(graph, scope)]


def loop_body_selects(graph: tf.Graph, scope: str) -> list[int]:
    """Select output elements of one iteration of each While under ``scope/``."""
    return loop_body_elements(graph, scope, ("Select", "SelectV2"))


def loop_body_elements(graph: tf.Graph, scope: str, op_types: tuple[str, ...]) -> list[int]:
    """Floating-point output elements of the ops of ``op_types`` in one iteration of each While under ``scope/``."""
    return [sum(math.prod(op.outputs[0].shape) for op in body.get_operations()
                if op.type in op_types and _is_floating(op))
            for body in _loop_bodies(graph, scope)]


def _loop_bodies(graph: tf.Graph, scope: str) -> list[tf.Graph]:
    return [graph._get_function(op.get_attr("body").name).graph for op in graph.get_operations()
            if op.type in ("While", "StatelessWhile") and op.name.startswith(scope + "/")]


def _is_floating(op) -> bool:
    return bool(op.outputs) and op.outputs[0].dtype.is_floating


def info_of(layer: keras.layers.Layer, batch: int):
    """A LayerInfo for a layer of a built functional model, batch fixed (first call's inputs)."""
    from tfprofscale.records import LayerInfo

    node = layer._inbound_nodes[0]
    return LayerInfo(
        name=layer.name, type=type(layer).__name__,
        input_shapes=tuple((batch, *t.shape[1:]) for t in node.input_tensors),
        output_shape=(batch, *keras.tree.flatten(node.output_tensors)[0].shape[1:]),
        layer=layer)
