"""The audit: where, by how much and why formulas, TensorFlow's graph, the runtime and the allocator disagree.

For each profile (one JSON, or every finished configuration of a sweep):
FLOPs per layer under every counting convention against TensorFlow's graph
count, each gap split into named causes; the fusions the runtime made; how
much of the step the kernels cover; document 002's memory model against the
measured peak. The time side (per-layer-type fits, roofline, held-out
validation) comes from ``tfprofscale.audit.latency``, ``tfprofscale.audit.validation`` and ``tfprofscale.audit.roofline``
and is composed here. ``tfprofscale.audit.divergences`` ranks the divergences and
``tfprofscale.audit.render`` writes the report; ``tfprofscale.audit.profiles`` reads the reports.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfprofscale.audit import conventions, latency, roofline, time_views, validation
from tfprofscale.audit.training import TrainAudit, train_audit
from tfprofscale.audit.profiles import LoadedProfiles, layers_frame, load_profiles
from tfprofscale.profiling.memory.estimate import MemoryAudit, audit_memory
from tfprofscale.profiling.runtime import machine_peaks
from tfprofscale.records import LayerRow, Report

#: Graph op types tfprof counts from their shapes: 0 FLOPs means a shape was not fully defined.
SHAPE_COUNTED_OP_TYPES = frozenset({"Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2",
                                    "BatchMatMulV3", "Conv2DBackpropInput"})


@dataclass
class Cause:
    """One named part of a difference, in FLOPs (None when it cannot be quantified)."""

    cause: str
    flops: int | None


@dataclass
class ConventionCount:
    """One layer under one convention against TensorFlow's graph count; ``causes`` add up to ``difference``."""

    convention: str
    flops: int | None
    difference: int | None
    ratio: float | None
    causes: list[Cause] = field(default_factory=list)


@dataclass
class LayerFlops:
    """A layer's graph count, its count under every convention, and notes on what TensorFlow counts."""

    layer: str
    type: str
    graph_flops: int | None
    counts: list[ConventionCount]
    notes: list[Cause] = field(default_factory=list)


@dataclass
class ConventionTotal:
    """A convention over the whole model against the graph count of the layers it covers."""

    convention: str
    source: str
    definition: str
    flops: int
    graph_flops: int
    difference: int
    ratio: float | None
    exact_layers: int
    compared_layers: int  # layers with work: a count or a graph count other than 0
    uncovered_layers: list[str]
    uncovered_graph_flops: int
    matches_exactly: bool
    causes: list[Cause] = field(default_factory=list)


@dataclass
class FlopsAudit:
    """FLOPs per layer and in total; ``graph_flops`` is tfprof's total over the whole graph."""

    graph_flops: int
    layer_graph_flops: int
    layers: list[LayerFlops]
    totals: list[ConventionTotal]

    @property
    def exact_conventions(self) -> list[str]:
        """Conventions equal to TensorFlow's graph count on every layer and in total."""
        return [total.convention for total in self.totals if total.matches_exactly]


@dataclass
class Fusion:
    """Graph ops the runtime ran as one kernel (or one op run by a rewritten kernel)."""

    layer: str | None
    kernel_op: str
    kernel_type: str
    graph_ops: list[str]
    graph_op_types: list[str]
    graph_flops: int | None
    time_us: float | None
    achieved_gflops: float | None


@dataclass
class Coverage:
    """How much of the traced step the per-op kernel times account for."""

    step_time_us: float
    traced_step_time_us: float
    kernel_time_us: float
    share: float | None
    unattributed_time_us: float
    outside_kernels_us: float
    profiler_overhead: float | None
    busy_time_us: float | None = None
    concurrency: float | None = None


@dataclass
class ProfileAudit:
    """Everything audited for one profile (one configuration)."""

    config_id: str
    config: dict[str, Any]
    model: str
    batch_size: int
    device: str
    tensorflow: str
    flops: FlopsAudit
    fusions: list[Fusion]
    coverage: Coverage | None
    memory: MemoryAudit


@dataclass
class TimeAudit:
    """The time side, from tfprofscale.latency, .validation and .roofline; ``notes`` say what is missing."""

    layer_type_fits: list[Any] = field(default_factory=list)
    peaks: Any = None
    roofline: dict[str, list[Any]] = field(default_factory=dict)
    validation: Any = None
    notes: list[str] = field(default_factory=list)
    views: list[Any] = field(default_factory=list)
    step_views: Any = None


@dataclass
class Audit:
    """The audit of a profile JSON or of a sweep directory."""

    source: str
    kind: str
    profiles: list[ProfileAudit]
    time: TimeAudit
    failed_configs: list[str] = field(default_factory=list)
    training: TrainAudit = field(default_factory=TrainAudit)


# -- FLOPs ---------------------------------------------------------------------------------------

def audit_flops(report: Report) -> FlopsAudit:
    """Every layer under every registered convention, against the graph, with causes."""
    layers = [_layer_flops(row, [op for op in report.ops if op.layer == row.name]) for row in report.layers]
    layer_graph = sum(row.graph_flops or 0 for row in report.layers)
    totals = [_convention_total(c, layers) for c in conventions.registered_conventions()]
    return FlopsAudit(report.totals.graph_flops, layer_graph, layers, totals)


def _layer_flops(row: LayerRow, ops: list[Any]) -> LayerFlops:
    notes = _layer_notes(row, ops)
    if not row.supported:
        counts = [ConventionCount(c.name, None, None, None) for c in conventions.registered_conventions()]
        return LayerFlops(row.name, row.type, row.graph_flops, counts, notes)
    rule = conventions.count(conventions.TENSORFLOW, row.type, row.geometry, row.analytic_terms)
    graph_causes = _graph_causes(row, ops, rule)
    counts = [_convention_count(c, row, rule, graph_causes) for c in conventions.registered_conventions()]
    return LayerFlops(row.name, row.type, row.graph_flops, counts, notes)


def _convention_count(convention: conventions.Convention, row: LayerRow, rule: int | None,
                      graph_causes: list[Cause]) -> ConventionCount:
    value = conventions.count(convention.name, row.type, row.geometry, row.analytic_terms)
    if value is None:
        return ConventionCount(convention.name, None, None, None)
    graph = row.graph_flops or 0
    difference = value - graph
    ratio = value / graph if graph else None
    if rule is None:
        causes = [Cause("no TensorFlow rule for this layer: compared with the graph count directly", difference)]
        return ConventionCount(convention.name, value, difference, ratio, [c for c in causes if c.flops])
    causes = _convention_causes(convention, row, value - rule) + graph_causes
    return ConventionCount(convention.name, value, difference, ratio, causes)


def _convention_causes(convention: conventions.Convention, row: LayerRow, gap: int) -> list[Cause]:
    """Named parts of (convention - TensorFlow's rule); what they leave over is named as such."""
    if not row.analytic_terms:
        return []
    parts = convention.differences(row.type, row.geometry, row.analytic_terms) if convention.differences else None
    if parts is None:
        parts = {f"the {convention.name} rule differs from TensorFlow's": gap}
    residual = gap - sum(parts.values())
    if residual:
        parts = {**parts, f"not explained by the {convention.name} convention's stated differences": residual}
    return [Cause(label, flops) for label, flops in parts.items() if flops]


def _graph_causes(row: LayerRow, ops: list[Any], rule: int | None) -> list[Cause]:
    """Why TensorFlow's graph count differs from TensorFlow's own rule for the layer."""
    gap = (rule or 0) - (row.graph_flops or 0)
    if rule is None or gap == 0:
        return []
    unshaped = sorted({op.type for op in ops if op.type in SHAPE_COUNTED_OP_TYPES and op.graph_flops == 0})
    if unshaped:
        return [Cause(f"shapes not fully defined: tfprof counted 0 for {', '.join(unshaped)}", gap)]
    if row.graph_flops is None:
        return [Cause(f"TensorFlow has no FLOPs statistics for {_op_types(row.uncounted_ops, ops)}", gap)]
    counted = ", ".join(f"{op.type} {op.graph_flops:,}" for op in ops if op.graph_flops)
    return [Cause(f"not explained: TensorFlow's graph counts this layer differently from its rule "
                  f"(its counted ops: {counted or 'none'})", gap)]


def _layer_notes(row: LayerRow, ops: list[Any]) -> list[Cause]:
    notes = []
    if not row.supported:
        reason = row.geometry.get("unsupported_reason", f"no formula for {row.type}")
        notes.append(Cause(f"no formula ({reason}): the graph's count stands alone", row.graph_flops))
    padded = row.analytic_terms.get("padded_taps", 0)
    if padded:
        notes.append(Cause("SAME padding: TensorFlow counts 2 FLOPs per multiply by a padding zero "
                           "(so do the conventions built on output size)", 2 * padded))
    if row.uncounted_ops:
        notes.append(Cause(f"no FLOPs statistics in TensorFlow for {_op_types(row.uncounted_ops, ops)}",
                           row.analytic_terms.get("activations") if row.supported else None))
    return notes


def _op_types(names: list[str], ops: list[Any]) -> str:
    types = {op.name: op.type for op in ops}
    return ", ".join(sorted({types.get(name, name.rsplit("/", 1)[-1]) for name in names}))


def _convention_total(convention: conventions.Convention, layers: list[LayerFlops]) -> ConventionTotal:
    counted = [(layer, next(c for c in layer.counts if c.convention == convention.name)) for layer in layers]
    covered = [(layer, c) for layer, c in counted if c.flops is not None]
    uncovered = [layer for layer, c in counted if c.flops is None]
    flops = sum(c.flops for _, c in covered)
    graph = sum(layer.graph_flops or 0 for layer, _ in covered)
    uncovered_graph = sum(layer.graph_flops or 0 for layer in uncovered)
    causes: dict[str, int] = defaultdict(int)
    for _, c in covered:
        for cause in c.causes:
            causes[cause.cause] += cause.flops or 0
    working = [(layer, c) for layer, c in covered if c.flops or layer.graph_flops]
    exact = sum(1 for _, c in working if c.difference == 0)
    return ConventionTotal(
        convention.name, convention.source, convention.definition, flops, graph, flops - graph,
        flops / graph if graph else None, exact, len(working), [layer.layer for layer in uncovered],
        uncovered_graph, matches_exactly=exact == len(working) and uncovered_graph == 0,
        causes=[Cause(label, value) for label, value in causes.items() if value])


# -- fusion and coverage -------------------------------------------------------------------------

def fusions(report: Report) -> list[Fusion]:
    """Kernels that absorbed graph ops, and graph ops run by a kernel of another type."""
    by_name = {op.name: op for op in report.ops}
    found = []
    for op in report.ops:
        if not op.kernel or (not op.fused_ops and op.kernel == op.type):
            continue
        members = [by_name[name] for name in op.fused_ops if name in by_name] + [op]
        counted = [m.graph_flops for m in members if m.graph_flops is not None]
        flops = sum(counted) if counted else None
        found.append(Fusion(op.layer, op.name, op.kernel, [m.name for m in members], [m.type for m in members],
                            flops, op.time_us,
                            flops / (op.time_us * 1e3) if flops and op.time_us else None))
    return found


def coverage(report: Report) -> Coverage | None:
    """Kernel time over traced step time; None without a trace."""
    totals = report.totals
    if totals.traced_step_time_ms is None or totals.kernel_time_us is None:
        return None
    traced_us = totals.traced_step_time_ms.median * 1e3
    unattributed = totals.unattributed_time_us or 0.0
    busy_us = totals.busy_time_us if totals.busy_time_us is not None else totals.kernel_time_us
    return Coverage(
        step_time_us=totals.step_time_ms.median * 1e3, traced_step_time_us=traced_us,
        kernel_time_us=totals.kernel_time_us, share=busy_us / traced_us if traced_us else None,
        unattributed_time_us=unattributed, outside_kernels_us=traced_us - busy_us,
        profiler_overhead=totals.profiler_overhead, busy_time_us=totals.busy_time_us,
        concurrency=totals.concurrency)


def audit_profile(report: Report, config_id: str = "profile", config: dict[str, Any] | None = None) -> ProfileAudit:
    """FLOPs, fusion, coverage and memory of one profile."""
    return ProfileAudit(
        config_id=config_id, config=dict(config if config is not None else report.params),
        model=report.model, batch_size=report.batch_size, device=report.device, tensorflow=report.tensorflow,
        flops=audit_flops(report), fusions=fusions(report), coverage=coverage(report), memory=audit_memory(report))


# -- composition ---------------------------------------------------------------------------------

def audit_path(path: str | Path, time_analysis: bool = True) -> Audit:
    """The full audit of a profile JSON or a sweep output directory."""
    loaded = load_profiles(path)
    return audit_profiles(loaded, Path(path) if loaded.kind == "sweep" else None, time_analysis)


def audit_profiles(loaded: LoadedProfiles, sweep_dir: Path | None = None, time_analysis: bool = True) -> Audit:
    """The full audit of loaded profiles; ``sweep_dir`` enables the held-out validation."""
    profiles = [audit_profile(report, config_id, config) for config_id, config, report in loaded.profiles]
    time = analyse_time(loaded, sweep_dir) if time_analysis else TimeAudit(notes=["time analysis not run"])
    training = train_audit([(config_id, report) for config_id, _, report in loaded.profiles])
    return Audit(loaded.source, loaded.kind, profiles, time, loaded.failed, training)


def analyse_time(loaded: LoadedProfiles, sweep_dir: Path | None) -> TimeAudit:
    """Per-layer-type fits, the roofline of every op, and (for a sweep) held-out validation."""
    time = TimeAudit(layer_type_fits=list(latency.layer_type_fits(layers_frame(loaded))),
                     peaks=machine_peaks.machine_peaks())
    reports = [report for _, _, report in loaded.profiles]
    time.views = time_views.layer_type_views(reports, time.peaks)
    time.step_views = time_views.step_views(reports, time.peaks)
    if not time.layer_type_fits:
        time.notes.append("no time = a*FLOPs + b fit: no layer type has 3 timed layers with 2 FLOPs counts")
    time.notes.append("roofline bounds use this machine's peaks (measured once, cached), "
                      "whatever machine measured the profiles")
    time.roofline = {cid: list(roofline.roofline_ops(report, time.peaks)) for cid, _, report in loaded.profiles}
    if sweep_dir is not None:
        time.validation = validation.validate_sweep(sweep_dir)
        if time.validation is None:
            time.notes.append(f"no held-out validation: it needs {validation.MIN_VALIDATION_CONFIGS} configurations")
    return time
