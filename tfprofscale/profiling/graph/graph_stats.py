"""Graph FLOPs: TensorFlow's own statistics on the traced graph and the functions it calls.

tfprof (``model_analyzer.profile``) counts the top-level graph. The bodies
of call and loop ops (``function_library``) are counted with the same
statistics TensorFlow registers per op (``ops.get_stats_for_node_def``, what
tfprof itself uses), times the number of times the body runs per step. Ops
that do work but have no TensorFlow statistics (Einsum ...) are counted by
``op_statistics``, and say so (``flops_source``). Ops that TensorFlow prunes
because they feed no output count 0 (``runs`` False). An op with no
statistics at all gets ``flops=None``: not counted is not 0.
"""
from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator

import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops
from tensorflow.python.profiler import model_analyzer
from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

from tfprofscale.profiling.graph import function_library, op_statistics
from tfprofscale.profiling.graph.function_library import FunctionLookup
from tfprofscale.profiling.trace.tracing import STRUCTURAL_OP_TYPES


@dataclass(frozen=True)
class GraphOp:
    """One op of the traced graph (or of a function body it runs) and its FLOPs per step.

    ``site`` names the call and loop ops, outermost first, whose body holds
    the op (empty at the top level) and ``local_name`` its name in that body;
    ``executions`` is how many times it runs per step (None: not known), and
    ``flops`` its FLOPs per execution times that. ``flops_source`` says who
    counted them: "tfprof" (TensorFlow's statistics) or "tfprofscale" (ours).
    """

    name: str
    type: str
    flops: int | None
    inputs: tuple[str, ...]
    flops_source: str | None = None
    flops_per_execution: int | None = None
    executions: int | None = 1
    runs: bool = True
    site: tuple[str, ...] = ()
    local_name: str | None = None

    @property
    def uncounted_work(self) -> bool:
        """An op that runs and computes, but whose FLOPs nobody counted."""
        return (self.runs and self.flops is None and self.type not in STRUCTURAL_OP_TYPES
                and self.type not in DATA_MOVEMENT_OP_TYPES)


BODY_OP_TYPES = function_library.CALL_OP_TYPES | function_library.WHILE_OP_TYPES

#: Ops that move, select or convert data without floating-point arithmetic: never "uncounted work".
DATA_MOVEMENT_OP_TYPES = frozenset({
    "Transpose", "ConcatV2", "Pack", "Unpack", "Split", "SplitV", "Slice", "StridedSlice", "GatherV2",
    "Pad", "PadV2", "MirrorPad", "Tile", "Fill", "Range", "Cast", "ZerosLike", "OnesLike", "BroadcastTo",
    "Select", "SelectV2", "ShapeN", "Size", "Rank", "ReverseV2", "SpaceToBatchND", "BatchToSpaceND",
    "DepthToSpace", "SpaceToDepth", "TensorListReserve", "TensorListFromTensor", "TensorListGetItem",
    "TensorListSetItem", "TensorListStack", "TensorListLength",
})


@dataclass(frozen=True)
class GraphStats:
    """All ops of a graph and the bodies it runs, in execution order, and the totals."""

    ops: list[GraphOp]
    total_flops: int
    tfprof_flops: int = 0

    def by_name(self) -> dict[str, GraphOp]:
        """The ops keyed by name."""
        return {op.name: op for op in self.ops}

    def uncounted(self) -> dict[str, int]:
        """Op type -> how many computing ops of that type run with no FLOPs counted."""
        return dict(Counter(op.type for op in self.ops if op.uncounted_work))

    def flops_by_source(self) -> dict[str, int]:
        """Counted FLOPs per step split by who counted them ("tfprof", "tfprofscale")."""
        totals: Counter[str] = Counter()
        for op in self.ops:
            if op.flops and op.flops_source:
                totals[op.flops_source] += op.flops
        return dict(totals)


def graph_stats(graph: tf.Graph) -> GraphStats:
    """Count every op of ``graph`` and of the function bodies it runs."""
    counted = tfprof_flops(graph)
    with _quiet_tensorflow():  # TensorFlow's statistics log a deprecation notice on first use
        ops = _count_graph(graph, (), 1, True, FunctionLookup(graph), counted)
    return _with_total(ops, tfprof_total=sum(counted.values()))


def _with_total(ops: list[GraphOp], tfprof_total: int) -> GraphStats:
    return GraphStats(ops=ops, total_flops=sum(op.flops or 0 for op in ops), tfprof_flops=tfprof_total)


def _count_graph(graph: tf.Graph, site: tuple[str, ...], executions: int | None, runs: bool,
                 lookup: FunctionLookup, tfprof_counts: dict[str, int] | None = None) -> list[GraphOp]:
    """Every op of ``graph`` (the top level, or a body run from ``site``) and of the bodies they run."""
    live = function_library.live_ops(graph)
    prefix = "/".join(site) + "/" if site else ""
    found: list[GraphOp] = []
    for op in graph.get_operations():
        op_runs = runs and op.name in live
        bodies = function_library.bodies(op, lookup)
        flops, source = _op_flops(graph, op, tfprof_counts, has_bodies=bool(bodies))
        found.append(_graph_op(op, prefix + op.name, site, flops, source, executions, op_runs, prefix))
        for body in bodies:
            body_executions = None if executions is None or body.runs is None else executions * body.runs
            found.extend(_count_graph(body.graph, (*site, op.name), body_executions, op_runs, lookup))
    return found


def _op_flops(graph: tf.Graph, op: tf.Operation, tfprof_counts: dict[str, int] | None,
              has_bodies: bool) -> tuple[int | None, str | None]:
    """FLOPs of one execution: tfprof's (top level) or TensorFlow's statistics, else ours, else None.

    A call or loop op counts 0 itself (its body's ops are counted), None when its body is not found.
    """
    if op.type in BODY_OP_TYPES:
        return (0, None) if has_bodies else (None, None)
    tensorflow = _tensorflow_flops(graph, op)
    if tensorflow is not None:
        flops = tfprof_counts.get(op.name, 0) if tfprof_counts is not None else tensorflow
        return flops, op_statistics.TENSORFLOW
    return _our_flops(graph, op)


def _graph_op(op: tf.Operation, name: str, site: tuple[str, ...], flops: int | None, source: str | None,
              executions: int | None, runs: bool, prefix: str) -> GraphOp:
    per_step = None if flops is None or executions is None else flops * executions
    return GraphOp(
        name=name, type=op.type, flops=(per_step if runs else 0), inputs=tuple(prefix + t.op.name for t in op.inputs),
        flops_source=source, flops_per_execution=flops, executions=executions, runs=runs, site=site,
        local_name=op.name if site else None,
    )


def _our_flops(graph: tf.Graph, op: tf.Operation) -> tuple[int | None, str | None]:
    flops = op_statistics.our_flops(graph, op.node_def)
    return (flops, op_statistics.OURS) if flops is not None else (None, None)


def _tensorflow_flops(graph: tf.Graph, op: tf.Operation) -> int | None:
    """TensorFlow's registered FLOPs statistics for the op, or None when it registers none."""
    try:
        value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
    except (ValueError, TypeError, KeyError):
        return None
    return int(value) if value is not None else None


def with_executions(stats: GraphStats, observed: dict[str, float]) -> GraphStats:
    """Fill unknown loop trip counts from how often body ops ran per step (op name -> occurrences).

    Every op of a body runs as often as any other, so one observed op fixes the
    count for its whole body.
    """
    per_site: dict[tuple[str, ...], int] = {}
    for op in stats.ops:
        if op.executions is None and op.name in observed and observed[op.name] > 0:
            per_site.setdefault(op.site, round(observed[op.name]))
    if not per_site:
        return stats
    ops = [_executed(op, per_site[op.site]) if op.executions is None and op.site in per_site else op
           for op in stats.ops]
    return _with_total(ops, stats.tfprof_flops)


def _executed(op: GraphOp, executions: int) -> GraphOp:
    flops = None if op.flops_per_execution is None else op.flops_per_execution * executions
    return replace(op, executions=executions, flops=flops if op.runs else 0)


@contextmanager
def _quiet_tensorflow() -> Iterator[None]:
    """TensorFlow's Python logger at ERROR for the duration."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def tfprof_flops(graph: tf.Graph) -> dict[str, int]:
    """Op name -> FLOPs, as counted by ``model_analyzer.profile``."""
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    with _quiet_tensorflow():
        root = model_analyzer.profile(graph, options=options)
    counted: dict[str, int] = {}
    stack = list(root.children)
    while stack:
        node = stack.pop()
        if node.float_ops:
            counted[node.name] = int(node.float_ops)
        stack.extend(node.children)
    return counted
