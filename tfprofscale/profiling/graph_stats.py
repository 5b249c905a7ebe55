"""Graph FLOPs: TensorFlow's own profiler (tfprof) on the traced graph.

Every op of the concrete function's graph is listed with the FLOPs tfprof
counts for it. An op type for which TensorFlow registers no FLOPs statistics
(``Relu``, ``ResourceGather`` ...) gets ``flops=None``: not counted is not 0.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops
from tensorflow.python.profiler import model_analyzer
from tensorflow.python.profiler.option_builder import ProfileOptionBuilder


@dataclass(frozen=True)
class GraphOp:
    """One op of the traced graph and the FLOPs TensorFlow counts for it."""

    name: str
    type: str
    flops: int | None
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class GraphStats:
    """All ops of a graph in execution order, and tfprof's total."""

    ops: list[GraphOp]
    total_flops: int

    def by_name(self) -> dict[str, GraphOp]:
        """The ops keyed by name."""
        return {op.name: op for op in self.ops}


def graph_stats(graph: tf.Graph) -> GraphStats:
    """Run tfprof's float-operation view over ``graph`` and list every op."""
    counted = tfprof_flops(graph)
    ops = [
        GraphOp(
            name=op.name,
            type=op.type,
            flops=counted.get(op.name, 0) if _has_flops_statistics(graph, op) else None,
            inputs=tuple(t.op.name for t in op.inputs),
        )
        for op in graph.get_operations()
    ]
    return GraphStats(ops=ops, total_flops=sum(counted.values()))


def tfprof_flops(graph: tf.Graph) -> dict[str, int]:
    """Op name -> FLOPs, as counted by ``model_analyzer.profile``."""
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    quiet = logging.getLogger("tensorflow")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        root = model_analyzer.profile(graph, options=options)
    finally:
        quiet.setLevel(level)
    counted: dict[str, int] = {}
    stack = list(root.children)
    while stack:
        node = stack.pop()
        if node.float_ops:
            counted[node.name] = int(node.float_ops)
        stack.extend(node.children)
    return counted


def _has_flops_statistics(graph: tf.Graph, op: tf.Operation) -> bool:
    try:
        return tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value is not None
    except (ValueError, TypeError):
        return False
