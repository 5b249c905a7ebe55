"""The report stage: layer rows and totals assembled from the outputs of the other stages."""
from __future__ import annotations

from tfprofscale.profiling.graph.graph_stats import GraphStats
from tfprofscale.profiling.runtime.measure import RuntimeResult
from tfprofscale.profiling.runtime.shares import roll_up_nested_times, unattributed_time_us
from tfprofscale.profiling.runtime.time_notes import add_time_notes
from tfprofscale.profiling.trace.tracing import STRUCTURAL_OP_TYPES
from tfprofscale.records import LayerCost, LayerInfo, LayerRow, OpRow, Totals


def layer_rows(layers: list[LayerInfo], costs: list[LayerCost], ops: list[OpRow],
               stats: GraphStats, traced: bool) -> list[LayerRow]:
    """Per-layer rows: formulas, the graph's counts and measured kernel times."""
    graph_types = {op.name: op.type for op in stats.ops}
    rows = [_layer_row(info, cost, [op for op in ops if op.layer == info.name],
                       [op for op in ops if op.timed_layer == info.name], graph_types, traced)
            for info, cost in zip(layers, costs)]
    add_time_notes(rows, ops)
    roll_up_nested_times(rows)
    return rows


def _layer_row(info: LayerInfo, cost: LayerCost, ops: list[OpRow], timed_ops: list[OpRow],
               graph_types: dict[str, str], traced: bool) -> LayerRow:
    graph_ops = [op for op in ops if op.name in graph_types]
    time_us = sum(op.time_us or 0.0 for op in timed_ops) if traced else None
    graph_flops = _layer_graph_flops(graph_ops)
    counted = graph_flops if graph_flops is not None else cost.flops
    return LayerRow(
        name=info.name, type=info.type, output_shape=list(info.output_shape), params=cost.params,
        analytic_flops=cost.flops, analytic_macs=cost.macs, graph_flops=graph_flops,
        activation_bytes=cost.activation_bytes, time_us=time_us,
        achieved_gflops=counted / (time_us * 1e3) if counted and time_us else None,
        receptive_field=cost.receptive_field, supported=cost.supported, inbound=list(info.inbound),
        ops=[op.name for op in ops], kernels=sorted({op.kernel for op in timed_ops if op.kernel}),
        timed_ops=[op.name for op in timed_ops],
        uncounted_ops=[op.name for op in graph_ops
                       if op.graph_flops is None and op.type not in STRUCTURAL_OP_TYPES],
        analytic_terms=dict(cost.terms), geometry=dict(cost.geometry), parent=info.parent, depth=info.depth,
    )


def _layer_graph_flops(graph_ops: list[OpRow]) -> int | None:
    """Sum of the counted ops; None if the layer computes but nothing is counted."""
    computing = [op for op in graph_ops if op.type not in STRUCTURAL_OP_TYPES]
    counted = [op.graph_flops for op in computing if op.graph_flops is not None]
    if computing and not counted:
        return None
    return sum(counted)


def totals(rows: list[LayerRow], ops: list[OpRow], stats: GraphStats, runtime: RuntimeResult,
           dtype_bytes: int = 4) -> Totals:
    """Whole-model totals from the layer rows, the graph and the runtime."""
    supported = [row for row in rows if row.supported]
    params = sum(row.params for row in rows)
    activation_bytes = sum(row.activation_bytes for row in rows)
    traced = runtime.traced_step_times is not None
    covered = sum(row.graph_flops or 0 for row in supported)
    summary = runtime.trace_summary if traced else None
    return Totals(
        params=params,
        analytic_flops=sum(row.analytic_flops for row in supported) if supported else None,
        analytic_macs=sum(row.analytic_macs for row in supported) if supported else None,
        graph_flops=stats.total_flops, covered_graph_flops=covered,
        formula_coverage=covered / stats.total_flops if stats.total_flops else None,
        tfprof_flops=stats.tfprof_flops, graph_flops_by_source=stats.flops_by_source(),
        uncounted_op_types=stats.uncounted(), activation_bytes=activation_bytes,
        analytic_memory_bytes=params * dtype_bytes + activation_bytes,
        peak_bytes=runtime.peak_bytes, resident_bytes=runtime.resident_bytes,
        step_time_ms=runtime.step_times, traced_step_time_ms=runtime.traced_step_times,
        profiler_overhead=runtime.profiler_overhead, kernel_time_us=summary.kernel_us if summary else None,
        unattributed_time_us=unattributed_time_us(ops, runtime.kernels) if traced else None,
        unsupported_layers=[row.name for row in rows if not row.supported],
        kernel_coverage=summary.coverage if summary else None,
        busy_time_us=summary.busy_us if summary else None,
        concurrency=summary.concurrency if summary else None,
    )
