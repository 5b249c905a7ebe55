"""The Report record: three views of a model's cost, per layer, per op, in total.

Built from the outputs of the other stages; written as JSON (the contract in
DESIGN.md), CSV (per layer), a pandas DataFrame, or a printed table.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tfprofscale import output
from tfprofscale.profiling.runtime.attribution import OpRow
from tfprofscale.profiling.graph.graph_stats import GraphStats
from tfprofscale.records import LayerCost, LayerInfo, LiveStep, LiveTensor, MemoryRecord
from tfprofscale.profiling.runtime.measure import RuntimeResult, StepTimes
from tfprofscale.profiling.runtime.shares import unattributed_time_us
from tfprofscale.profiling.trace.tracing import STRUCTURAL_OP_TYPES


@dataclass
class LayerRow:
    """One layer: analytic, graph and runtime cost side by side."""

    name: str
    type: str
    output_shape: list[int]
    params: int
    analytic_flops: int | None
    analytic_macs: int | None
    graph_flops: int | None
    activation_bytes: int
    time_us: float | None
    achieved_gflops: float | None
    time_share: float | None = None
    receptive_field: int | None = None
    supported: bool = True
    inbound: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    kernels: list[str] = field(default_factory=list)
    uncounted_ops: list[str] = field(default_factory=list)
    analytic_terms: dict[str, int] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    depth: int = 0
    measured_bytes: int | None = None
    tf_estimated_us: float | None = None


@dataclass
class Totals:
    """Whole-model figures; ``step_time_ms`` is per inference step."""

    params: int
    analytic_flops: int | None
    analytic_macs: int | None
    graph_flops: int
    activation_bytes: int
    analytic_memory_bytes: int
    peak_bytes: int | None
    resident_bytes: int | None
    step_time_ms: StepTimes
    traced_step_time_ms: StepTimes | None = None
    profiler_overhead: float | None = None
    kernel_time_us: float | None = None
    unattributed_time_us: float | None = None
    unsupported_layers: list[str] = field(default_factory=list)
    accuracy: float | None = None
    formula_coverage: float | None = None
    kernel_coverage: float | None = None
    tf_estimated_step_ms: float | None = None
    covered_graph_flops: int | None = None
    tfprof_flops: int | None = None
    graph_flops_by_source: dict[str, int] = field(default_factory=dict)
    uncounted_op_types: dict[str, int] = field(default_factory=dict)
    busy_time_us: float | None = None
    concurrency: float | None = None


@dataclass
class Report:
    """A profile of one model at one batch size."""

    model: str
    params: dict[str, Any]
    batch_size: int
    tensorflow: str
    device: str
    totals: Totals
    layers: list[LayerRow]
    ops: list[OpRow]
    trace_dir: str | None = None
    predictions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    memory: MemoryRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict of DESIGN.md's profile contract."""
        return _jsonable(asdict(self))

    def write_json(self, path: str | Path) -> None:
        """Write the report as JSON to ``path`` (atomically: the old file or the whole new one)."""
        output.write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def write_csv(self, path: str | Path) -> None:
        """Write the per-layer table as CSV to ``path`` (atomically)."""
        rows = [_flat_layer(row) for row in self.layers]
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["name"])
        writer.writeheader()
        writer.writerows(rows)
        output.write_text(path, buffer.getvalue())

    def to_frame(self) -> Any:
        """The per-layer table as a pandas DataFrame, one row per layer."""
        import pandas as pd

        return pd.DataFrame([_flat_layer(row) for row in self.layers])

    def ops_frame(self) -> Any:
        """The per-op table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([asdict(op) for op in self.ops])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        """A Report back from its JSON dict."""
        totals = dict(data["totals"])
        totals["step_time_ms"] = StepTimes(**_known(StepTimes, totals["step_time_ms"]))
        if totals.get("traced_step_time_ms"):
            totals["traced_step_time_ms"] = StepTimes(**_known(StepTimes, totals["traced_step_time_ms"]))
        return cls(
            model=data["model"], params=data["params"], batch_size=data["batch_size"],
            tensorflow=data["tensorflow"], device=data["device"],
            totals=Totals(**_known(Totals, totals)),
            layers=[LayerRow(**_known(LayerRow, row)) for row in data["layers"]],
            ops=[OpRow(**_known(OpRow, row)) for row in data["ops"]],
            trace_dir=data.get("trace_dir"), predictions=data.get("predictions", []),
            warnings=list(data.get("warnings", [])), memory=_memory_record(data.get("memory")),
        )


def _memory_record(data: dict[str, Any] | None) -> MemoryRecord | None:
    if data is None:
        return None
    record = MemoryRecord(**_known(MemoryRecord, data))
    record.live_at_peak = [LiveTensor(**_known(LiveTensor, tensor)) for tensor in data.get("live_at_peak", [])]
    record.live_timeline = [LiveStep(**_known(LiveStep, step)) for step in data.get("live_timeline", [])]
    return record


def _known(record: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(record)}
    return {k: v for k, v in data.items() if k in names}


def _flat_layer(row: LayerRow) -> dict[str, Any]:
    flat = asdict(row)
    flat["output_shape"] = "x".join(str(d) for d in row.output_shape)
    for key in ("inbound", "ops", "kernels", "uncounted_ops"):
        flat[key] = " ".join(flat[key])
    for key in ("analytic_terms", "geometry"):
        flat[key] = json.dumps(flat[key], sort_keys=True)
    return flat


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def layer_rows(layers: list[LayerInfo], costs: list[LayerCost], ops: list[OpRow],
               stats: GraphStats, traced: bool) -> list[LayerRow]:
    """Per-layer rows: formulas, the graph's counts and measured kernel times."""
    graph_types = {op.name: op.type for op in stats.ops}
    rows = [_layer_row(info, cost, [op for op in ops if op.layer == info.name], graph_types, traced)
            for info, cost in zip(layers, costs)]
    _fill_time_shares(rows)
    return rows


def _layer_row(info: LayerInfo, cost: LayerCost, ops: list[OpRow], graph_types: dict[str, str],
               traced: bool) -> LayerRow:
    graph_ops = [op for op in ops if op.name in graph_types]
    time_us = sum(op.time_us or 0.0 for op in ops) if traced else None
    graph_flops = _layer_graph_flops(graph_ops)
    counted = graph_flops if graph_flops is not None else cost.flops
    return LayerRow(
        name=info.name, type=info.type, output_shape=list(info.output_shape), params=cost.params,
        analytic_flops=cost.flops, analytic_macs=cost.macs, graph_flops=graph_flops,
        activation_bytes=cost.activation_bytes, time_us=time_us,
        achieved_gflops=counted / (time_us * 1e3) if counted and time_us else None,
        receptive_field=cost.receptive_field, supported=cost.supported, inbound=list(info.inbound),
        ops=[op.name for op in ops], kernels=sorted({op.kernel for op in ops if op.kernel}),
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


def _fill_time_shares(rows: list[LayerRow]) -> None:
    total = sum(row.time_us or 0.0 for row in rows)
    for row in rows:
        row.time_share = row.time_us / total if total and row.time_us is not None else None


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
