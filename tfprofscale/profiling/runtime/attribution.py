"""Join graph ops with the runtime kernels that really ran, and with layers.

On CPU, oneDNN rewrites the graph before it runs: ``Conv2D -> BiasAdd ->
Relu`` executes as one ``_MklNativeFusedConv2D`` kernel named after the last
op of the chain. Such a kernel is matched to its graph op by name, and the
graph ops it absorbed are found by walking its data inputs back through ops
that never ran on their own. The fusion is kept visible: the kernel's row
lists ``fused_ops`` and each absorbed op names the kernel it went into.

Ops of function bodies (a While loop's body, a nested function) run under
names the runtime composes, e.g. ``<model>/<layer>/while/body/_1/<op in the
body>``: such a kernel is matched to the body op by its call site and its
name in the body, so its time goes to the layer that owns the loop. Ops that
TensorFlow prunes (they feed no output) are left out.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from tfprofscale.profiling.graph.graph_stats import BODY_OP_TYPES, GraphOp, GraphStats
from tfprofscale.profiling.trace.tracing import STRUCTURAL_OP_TYPES
from tfprofscale.records import KernelTime, OpRow


def attribute_ops(stats: GraphStats, kernels: list[KernelTime] | None,
                  layer_of: Callable[[str], str | None]) -> list[OpRow]:
    """Op rows for every computing graph op and every kernel that ran.

    ``kernels`` None means no trace was taken: times stay None. Structural
    ops (placeholders, variable reads, reshapes) appear only if they ran.
    """
    graph_ops = stats.by_name()
    timed = {k.name: k for k in body_kernels_renamed(stats, kernels or [])}
    rows: dict[str, OpRow] = {}
    for op in stats.ops:
        kernel = timed.get(op.name)
        if kernel is None and (op.type in STRUCTURAL_OP_TYPES or op.type in BODY_OP_TYPES and op.flops == 0
                               or not op.runs):
            continue
        rows[op.name] = _graph_row(op, kernel, layer_of, traced=kernels is not None)
    for kernel in timed.values():
        if kernel.name not in graph_ops:
            rows[kernel.name] = OpRow(kernel.name, kernel.kernel_type, layer_of(kernel.name), None,
                                      kernel.time_us, kernel.occurrences, kernel.kernel_type)
    for kernel in timed.values():
        if kernel.name in graph_ops:
            _mark_fusion(rows, graph_ops, timed, kernel.name)
    return list(rows.values())


def body_kernels_renamed(stats: GraphStats, kernels: list[KernelTime]) -> list[KernelTime]:
    """The kernels, those that ran a function body's op renamed to that op's name in ``stats``."""
    names = {op.name for op in stats.ops}
    in_bodies: dict[str, list[GraphOp]] = {}
    for op in stats.ops:
        if op.site and op.local_name:
            in_bodies.setdefault(op.local_name, []).append(op)
    return [kernel if kernel.name in names else replace(kernel, name=_body_op_name(kernel.name, in_bodies))
            for kernel in kernels]


def _body_op_name(kernel_name: str, in_bodies: dict[str, list[GraphOp]]) -> str:
    """``<site>/.../<local name>`` -> the body op's name; unchanged when no body op fits."""
    parts = kernel_name.split("/")
    for start in range(1, len(parts)):
        for op in in_bodies.get("/".join(parts[start:]), []):
            if kernel_name.startswith(op.site[0] + "/"):
                return op.name
    return kernel_name


def _graph_row(op: GraphOp, kernel: KernelTime | None, layer_of: Callable[[str], str | None],
               traced: bool) -> OpRow:
    if kernel is None:
        return OpRow(op.name, op.type, layer_of(op.name), op.flops, 0.0 if traced else None,
                     0.0 if traced else None, flops_source=op.flops_source, executions=op.executions)
    return OpRow(op.name, op.type, layer_of(op.name), op.flops, kernel.time_us,
                 kernel.occurrences, kernel.kernel_type, flops_source=op.flops_source, executions=op.executions)


def _mark_fusion(rows: dict[str, OpRow], graph_ops: dict[str, GraphOp],
                 timed: dict[str, KernelTime], kernel_name: str) -> None:
    """Walk back the first data input while ops never ran on their own."""
    current = graph_ops[kernel_name]
    while current.inputs:
        producer = graph_ops.get(current.inputs[0])
        if producer is None or producer.name in timed or producer.type in STRUCTURAL_OP_TYPES:
            return
        row = rows.get(producer.name)
        if row is None or row.fused_into is not None:
            return
        row.fused_into = kernel_name
        row.time_us = None
        row.occurrences = None
        rows[kernel_name].fused_ops.insert(0, producer.name)
        current = producer
