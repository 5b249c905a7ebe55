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

Two graph rewrites move work between layers, and both are named:

- a fusion across layers (oneDNN runs a Dense's MatMul + BiasAdd and the
  next layer's LeakyRelu as one kernel named after the LeakyRelu): the
  kernel's time is charged to the layer of the fused op with the most FLOPs
  (``charged_layer``), and ``fused_layers`` lists the layers whose ops went
  into it. Only fused kernel types (``is_fused_kernel``) absorb ops, and the
  walk back stops at the contraction the fusion starts from;
- Grappler's merge of identical ops (two layers pooling the same tensor run
  one kernel): the op that never ran names the op whose kernel ran its work
  (``merged_into``) instead of reading a silent 0.0.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from tfprofscale.profiling.graph.graph_stats import BODY_OP_TYPES, GraphOp, GraphStats
from tfprofscale.profiling.runtime.nested_kernels import time_source
from tfprofscale.profiling.trace.tracing import STRUCTURAL_OP_TYPES
from tfprofscale.records import KernelTime, OpRow

#: The ops a oneDNN fusion starts at: the walk back from a fused kernel stops at the first of them.
CONTRACTION_OP_TYPES = frozenset({"Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "MatMul",
                                  "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"})

#: Kernel types that run several graph ops (oneDNN's and Grappler's fused kernels); plain kernels run one op,
#: and a graph op missing from the trace before them was not run by them (often an untraced inexpensive op).
FUSED_KERNEL_MARKERS = ("Fused", "LayerNorm", "Swish", "Mish")


def is_fused_kernel(kernel_type: str) -> bool:
    """A kernel type that runs several graph ops as one (``_MklNativeFusedConv2D``, ``_FusedMatMul`` ...)."""
    return any(marker in kernel_type for marker in FUSED_KERNEL_MARKERS)


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
                                      kernel.time_us, kernel.occurrences, kernel.kernel_type,
                                      time_source=time_source(kernel.kernel_type))
    for kernel in timed.values():
        if kernel.name in graph_ops and is_fused_kernel(kernel.kernel_type):
            _mark_fusion(rows, graph_ops, timed, kernel.name)
            _charge_fused_kernel(rows, rows[kernel.name])
    if kernels is not None:
        _mark_merged(rows, graph_ops)
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
                 kernel.occurrences, kernel.kernel_type, flops_source=op.flops_source, executions=op.executions,
                 time_source=time_source(kernel.kernel_type))


def _mark_fusion(rows: dict[str, OpRow], graph_ops: dict[str, GraphOp],
                 timed: dict[str, KernelTime], kernel_name: str) -> None:
    """Walk back the first data input while ops never ran on their own, up to the contraction a fusion starts at.

    oneDNN fuses forward from a convolution or matrix product (Conv2D ->
    BiasAdd -> Relu): the walk stops there, so an op before it that did not
    run (removed by Grappler, or an untraced inexpensive op) is not taken for
    part of the kernel.
    """
    current = graph_ops[kernel_name]
    while current.inputs and current.type not in CONTRACTION_OP_TYPES:
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


def _charge_fused_kernel(rows: dict[str, OpRow], kernel_row: OpRow) -> None:
    """Charge a fused kernel's time to the layer of its op with the most FLOPs; name the layers fused."""
    if not kernel_row.fused_ops:
        return
    members = [rows[name] for name in kernel_row.fused_ops] + [kernel_row]
    layers = list(dict.fromkeys(op.layer for op in members if op.layer is not None))
    if len(layers) < 2:
        return
    kernel_row.fused_layers = layers
    worker = max(members, key=lambda op: op.graph_flops or 0)
    if worker.graph_flops and worker.layer != kernel_row.layer:
        kernel_row.charged_layer = worker.layer


def _mark_merged(rows: dict[str, OpRow], graph_ops: dict[str, GraphOp]) -> None:
    """Ops that never ran while an identical op (same type, same inputs) did: Grappler merged them."""
    ran: dict[tuple[str, tuple[str, ...]], str] = {}
    for row in rows.values():
        op = graph_ops.get(row.name)
        if op is not None and row.kernel is not None and op.inputs:
            ran.setdefault((op.type, op.inputs), op.name)
    for row in rows.values():
        op = graph_ops.get(row.name)
        if op is None or row.kernel is not None or row.fused_into is not None or not op.inputs:
            continue
        twin = ran.get((op.type, op.inputs))
        if twin is not None and twin != op.name:
            row.merged_into, row.time_us, row.occurrences = twin, None, None
