"""The audit as text (terminal), as ``audit.md`` with figures, and as JSON with every number.

The report opens with the five largest divergences: every estimate set
against its measurement (a convention's count of a layer or of the whole
model against the graph, the memory model against the allocator
peak, kernel time against step time, a layer-type time fit against a
layer's time, an op's roofline bound against its time), ranked by the
factor max(estimate / measured, measured / estimate), each topic once (at
its worst layer and configuration), each with its cause.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

from tfprofscale.audit.analysis import Audit, ProfileAudit, TimeAudit
from tfprofscale.audit.conventions import TENSORFLOW
from tfprofscale.audit.memory_model import ALLOCATOR_ROUNDING_BYTES, ALLOCATOR_TRACKING_THRESHOLD_BYTES
from tfprofscale.profiling.measurement_checks import FASTER_THAN_PEAK
from tfprofscale.profiling.table import binary_bytes, si

#: A layer whose formula-vs-graph gap is under this share of the model's graph FLOPs is not ranked.
NEGLIGIBLE_LAYER_SHARE = 0.01


@dataclass
class Divergence:
    """An estimate against a measurement: what (``topic``), where, the factor between them, the cause."""

    kind: str
    topic: str
    where: str
    config_id: str | None
    estimate: float
    measured: float
    unit: str
    factor: float
    cause: str


@dataclass
class Table:
    """A header and rows of cells, rendered aligned (text) or as a pipe table (markdown)."""

    header: list[str]
    rows: list[list[str]]


Block = Union[str, Table]


# -- the largest divergences ---------------------------------------------------------------------

def largest_divergences(audit: Audit, count: int = 5) -> list[Divergence]:
    """The ``count`` largest estimate/measurement factors, each topic at its worst place and configuration."""
    worst: dict[tuple[str, str], Divergence] = {}
    candidates = [d for p in audit.profiles for d in [*_flops_divergences(p), *_runtime_divergences(p)]]
    for candidate in candidates + _time_divergences(audit.time):
        key = (candidate.kind, candidate.topic)
        if candidate.factor > 1 and (key not in worst or candidate.factor > worst[key].factor):
            worst[key] = candidate
    return sorted(worst.values(), key=lambda d: -d.factor)[:count]


def divergence_factor(estimate: float, measured: float) -> float:
    """max(estimate / measured, measured / estimate); infinite when only one of them is 0."""
    if estimate <= 0 and measured <= 0:
        return 1.0
    if estimate <= 0 or measured <= 0:
        return math.inf
    return max(estimate / measured, measured / estimate)


def _cause_text(causes: list[tuple[str, float | None]], unit: str) -> str:
    ranked = sorted((c for c in causes if c[1]), key=lambda c: -abs(c[1]))[:2]
    return "; ".join(f"{label}: {value:+,.0f} {unit}" for label, value in ranked) or "no named cause"


def _flops_divergences(p: ProfileAudit) -> list[Divergence]:
    """Per convention: its model total, and every layer it counts (not 0) whose gap is not negligible."""
    found = [Divergence("flops", f"convention {t.convention}", "model total", p.config_id, t.flops, t.graph_flops,
                        "FLOPs", divergence_factor(t.flops, t.graph_flops),
                        _cause_text([(c.cause, c.flops) for c in t.causes], "FLOPs"))
             for t in p.flops.totals if t.convention != TENSORFLOW and t.graph_flops]
    for layer in p.flops.layers:
        for c in layer.counts:
            if c.convention == TENSORFLOW or not c.flops or not layer.graph_flops \
                    or abs(c.difference) < NEGLIGIBLE_LAYER_SHARE * p.flops.graph_flops:
                continue
            found.append(Divergence(
                "flops", f"convention {c.convention}", f"{layer.layer} ({layer.type})", p.config_id, c.flops,
                layer.graph_flops, "FLOPs", divergence_factor(c.flops, layer.graph_flops),
                _cause_text([(cause.cause, cause.flops) for cause in c.causes], "FLOPs")))
    return found


def _runtime_divergences(p: ProfileAudit) -> list[Divergence]:
    found, memory, cover = [], p.memory, p.coverage
    if memory.peak_bytes is not None:
        found.append(Divergence(
            "memory", "parameters + peak live activations + workspace vs allocator peak", "model", p.config_id,
            memory.estimate.total_bytes, memory.peak_bytes, "B",
            divergence_factor(memory.estimate.total_bytes, memory.peak_bytes),
            _cause_text([(c.cause, c.bytes) for c in memory.causes], "B")))
    if cover is not None:
        found.append(Divergence(
            "coverage", "per-op kernel time vs traced step time", "step", p.config_id, cover.kernel_time_us,
            cover.traced_step_time_us, "us", divergence_factor(cover.kernel_time_us, cover.traced_step_time_us),
            f"{cover.outside_kernels_us:,.0f} us per step outside any op kernel: framework overhead "
            "(function dispatch, executor scheduling) and idle gaps"))
    return found


def _time_divergences(time: TimeAudit) -> list[Divergence]:
    found = []
    for fit in time.layer_type_fits:
        for r in getattr(fit, "largest_residuals", None) or []:
            found.append(Divergence(
                "time", f"time = a*FLOPs + b of {fit.layer_type}", r["layer"], r.get("config_id"), r["predicted_us"],
                r["measured_us"], "us", divergence_factor(r["predicted_us"], r["measured_us"]),
                f"the {fit.layer_type} line misses this layer by {r['relative_error']:+.0%}: "
                "its time is not proportional to its FLOPs"))
    for config_id, ops in time.roofline.items():
        found += [Divergence("roofline", f"roofline bound of {op.kernel or op.name}", op.name, config_id,
                             op.roofline_time_us, op.measured_us, "us", op.share_of_bound, _roofline_cause(op))
                  for op in ops if op.flagged and op.share_of_bound is not None]
    return found


def _roofline_cause(op: Any) -> str:
    if op.bound == "memory":
        return ("faster than the memory roof allows for its estimated bytes: the bytes moved are over-estimated, "
                "or its data stayed in caches faster than the measured copy bandwidth")
    return (f"{op.measured_us:.1f} us measured, {op.roofline_time_us:.1f} us at the measured peak FLOP/s for its "
            f"counted FLOPs: {FASTER_THAN_PEAK}")


# -- sections ------------------------------------------------------------------------------------

def _count(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return ""
    return f"x{value:.3f}" if value >= 0.01 else f"x{value:.2g}"


def _title(audit: Audit) -> str:
    first = audit.profiles[0]
    if audit.kind == "sweep":
        failed = f", {len(audit.failed_configs)} failed" if audit.failed_configs else ""
        return f"Audit of sweep {audit.source}: {len(audit.profiles)} configurations of {first.model}{failed}"
    return (f"Audit of {audit.source}: {first.model}, batch {first.batch_size}, {first.device}, "
            f"TensorFlow {first.tensorflow}")


#: What the estimate and the measurement of each kind of divergence are called.
_SIDES = {"flops": ("count", "graph"), "memory": ("estimate", "allocator peak"),
          "coverage": ("kernels", "traced step"), "time": ("line", "measured"), "roofline": ("bound", "measured")}


def _divergence_blocks(audit: Audit) -> list[Block]:
    blocks: list[Block] = ["factor = max(estimate / measured, measured / estimate); "
                           "each topic once, at its worst layer and configuration"]
    for rank, d in enumerate(largest_divergences(audit), start=1):
        factor = f"x{d.factor:,.2f}" if math.isfinite(d.factor) else "x inf"
        where = f" [{d.config_id}]" if audit.kind == "sweep" and d.config_id else ""
        estimate, measured = _SIDES.get(d.kind, ("estimate", "measured"))
        blocks.append(f"{rank}. {factor} {d.kind}, {d.topic}, at {d.where}{where}: {estimate} {si(d.estimate)} "
                      f"vs {measured} {si(d.measured)} {d.unit}. Cause: {d.cause}")
    return blocks


def _flops_blocks(audit: Audit) -> list[Block]:
    example = audit.profiles[0]
    exact = [name for name in example.flops.exact_conventions
             if all(name in p.flops.exact_conventions for p in audit.profiles)]
    blocks: list[Block] = [
        (f"{', '.join(exact)} match{'es' if len(exact) == 1 else ''} TensorFlow's graph count exactly, on every "
         f"layer and in total{' in every configuration' if audit.kind == 'sweep' else ''}." if exact
         else "No convention matches TensorFlow's graph count exactly."),
        f"Model totals of {example.config_id} (graph: {_count(example.flops.graph_flops)} FLOPs):",
        Table(["convention", "FLOPs", "graph (same layers)", "ratio", "exact layers", "not covered", "source"],
              [[t.convention, _count(t.flops), _count(t.graph_flops), _ratio(t.ratio),
                f"{t.exact_layers}/{t.compared_layers}", ", ".join(t.uncovered_layers), t.source]
               for t in example.flops.totals])]
    blocks += [f"{t.convention} ({t.definition}): " + "; ".join(f"{c.cause} {c.flops:+,}" for c in t.causes)
               for t in example.flops.totals if t.causes]
    if example.flops.graph_flops != example.flops.layer_graph_flops:
        blocks.append(f"{_count(example.flops.graph_flops - example.flops.layer_graph_flops)} graph FLOPs "
                      "are in ops outside any layer.")
    names = [t.convention for t in example.flops.totals]
    blocks.append(Table(["layer", "graph", *names], [
        [f"{layer.layer} ({layer.type})", _count(layer.graph_flops),
         *(f"{_count(c.flops)} {_ratio(c.ratio)}".strip() for c in layer.counts)]
        for layer in example.flops.layers]))
    for layer in example.flops.layers:
        blocks += [f"{layer.layer}: {note.cause}" + ("" if note.flops is None else f" ({note.flops:,} FLOPs)")
                   for note in layer.notes]
    if audit.kind == "sweep":
        blocks.append(Table(["configuration", "graph", *(f"{n} ratio" for n in names)], [
            [p.config_id, _count(p.flops.graph_flops), *(_ratio(t.ratio) for t in p.flops.totals)]
            for p in audit.profiles]))
    return blocks


def _fusion_blocks(audit: Audit) -> list[Block]:
    patterns: dict[tuple[str, str], list[str]] = {}
    for p in audit.profiles:
        for f in p.fusions:
            patterns.setdefault((" + ".join(f.graph_op_types), f.kernel_type), []).append(p.config_id)
    if not patterns:
        traced = any(p.coverage is not None for p in audit.profiles)
        return ["No graph op ran as a kernel of another type." if traced else
                "No profiler trace in these profiles: the kernels that ran are unknown."]
    rows = [[ops, kernel, "fused" if "+" in ops else "rewritten", str(len(configs))]
            for (ops, kernel), configs in patterns.items()]
    example = audit.profiles[0]
    detail = [[f.layer or "", " + ".join(f.graph_op_types), f.kernel_type, _count(f.graph_flops),
               "n/a" if f.time_us is None else f"{f.time_us:,.1f}",
               "" if f.achieved_gflops is None else f"{f.achieved_gflops:.2f}"] for f in example.fusions]
    return ["Graph ops rewritten into the runtime kernels that really ran (compare per-op estimates with these):",
            Table(["graph ops", "kernel", "", "configurations"], rows),
            f"Kernels of {example.config_id}:",
            Table(["layer", "graph ops", "kernel", "graph FLOPs", "time us/step", "GFLOP/s"], detail)]


def _coverage_blocks(audit: Audit) -> list[Block]:
    rows = [[p.config_id, f"{c.step_time_us:,.1f}", f"{c.traced_step_time_us:,.1f}", f"{c.kernel_time_us:,.1f}",
             f"{100 * c.share:.0f}%" if c.share is not None else "n/a", f"{c.outside_kernels_us:,.1f}",
             f"{c.unattributed_time_us:,.1f}", "n/a" if c.profiler_overhead is None else f"x{c.profiler_overhead:.2f}"]
            for p in audit.profiles if (c := p.coverage) is not None]
    if not rows:
        return ["No profiler trace in these profiles: coverage needs per-op kernel times."]
    return ["Share of the traced step during which some op kernel ran (the union of kernel intervals: kernels "
            "running at the same time count once; 'kernels us' sums their self times, so it can exceed the step); "
            "the rest is outside any op kernel: framework overhead (function dispatch, executor scheduling) and "
            "idle gaps, not separated by the trace.",
            Table(["configuration", "step us", "traced step us", "kernels us", "coverage", "outside kernels us",
                   "kernels in no layer us", "profiler overhead"], rows)]


def _memory_blocks(audit: Audit) -> list[Block]:
    blocks: list[Block] = [
        "Estimate = parameters + peak of live activations over the execution order (not their sum) + workspace "
        "(im2col bound, live only while its layer runs). The allocator's statistics only count allocations >= "
        f"{ALLOCATOR_TRACKING_THRESHOLD_BYTES:,} B, rounded up to {ALLOCATOR_ROUNDING_BYTES} B: 'tracked' is the "
        "estimate as the allocator can see it, without and with the workspace bound."]
    rows = []
    for p in audit.profiles:
        m, e = p.memory, p.memory.estimate
        rows.append([p.config_id, *map(binary_bytes, (
            e.parameter_bytes, e.activation_peak_bytes, e.activation_sum_bytes, e.workspace_max_bytes,
            e.total_bytes, e.tracked_without_workspace_bytes, e.tracked_total_bytes, m.peak_bytes)),
            f"x{e.total_bytes / m.peak_bytes:.2f}" if m.peak_bytes else "n/a"])
        blocks += [f"{p.config_id}: {c.cause}: {c.bytes:+,} B" for c in m.causes]
        blocks += [f"{p.config_id}: {m.note}"] if m.note else []
    if any(p.memory.estimate.chain_assumed for p in audit.profiles):
        blocks.append("The reports carry no layer inbound names: the layers are taken as a chain.")
    header = ["configuration", "parameters", "activations peak", "activations sum", "workspace bound",
              "estimate", "tracked, no workspace", "tracked", "allocator peak", "estimate / peak"]
    return blocks[:1] + [Table(header, rows)] + blocks[1:]


def _time_blocks(audit: Audit) -> list[Block]:
    time = audit.time
    blocks: list[Block] = [line for fit in time.layer_type_fits for line in fit.lines()]
    blocks += time.peaks.lines() if time.peaks is not None else []
    if any(time.roofline.values()):
        example, ops = next(iter(time.roofline.items()))
        blocks.append(f"Roofline of every kernel of {example}:")
        blocks += [line for op in ops for line in op.lines()]
        flagged = {config_id: [op.layer or op.name for op in ops if op.flagged]
                   for config_id, ops in time.roofline.items()}
        kernels = sum(len(ops) for ops in time.roofline.values())
        if any(flagged.values()):
            blocks.append(Table(["configuration", "kernels", "faster than their bound"], [
                [config_id, str(len(time.roofline[config_id])), ", ".join(names)]
                for config_id, names in flagged.items() if names]))
        else:
            blocks.append(f"No kernel ran faster than its roofline bound ({kernels} kernels in "
                          f"{len(flagged)} configuration(s)).")
    blocks += time.validation.lines() if time.validation is not None else []
    return blocks + time.notes


def sections(audit: Audit) -> list[tuple[str, list[Block]]]:
    """The report's sections in order, each a title and its blocks."""
    found = [("The five largest divergences", _divergence_blocks(audit)),
             ("FLOPs: formulas against the graph", _flops_blocks(audit)),
             ("Fusion: graph ops and the kernels that ran", _fusion_blocks(audit)),
             ("Coverage: what the per-op times account for", _coverage_blocks(audit)),
             ("Memory: parameters + activations + workspace against the allocator", _memory_blocks(audit)),
             ("Time and prediction", _time_blocks(audit))]
    if audit.failed_configs:
        found.append(("Failed configurations", list(audit.failed_configs)))
    return found


# -- renderers -----------------------------------------------------------------------------------

def render_text(audit: Audit) -> str:
    """The report for the terminal."""
    lines = [_title(audit), "=" * len(_title(audit))]
    for title, blocks in sections(audit):
        lines += ["", title, "-" * len(title)]
        for block in blocks:
            lines += _text_table(block) if isinstance(block, Table) else [f"  {block}"]
    return "\n".join(lines)


def _text_table(table: Table) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(table.header, *table.rows)]
    def line(cells: list[str]) -> str:
        return "  " + "  ".join(f"{cell:<{width}}" for cell, width in zip(cells, widths)).rstrip()
    return [line(table.header), "  " + "  ".join("-" * w for w in widths), *map(line, table.rows)]


def render_markdown(audit: Audit, figures: dict[str, str] | None = None) -> str:
    """``audit.md``: the sections, then the figures (``{caption: relative path}``)."""
    lines = [f"# {_title(audit)}"]
    for title, blocks in sections(audit):
        lines += ["", f"## {title}", ""]
        for block in blocks:
            lines += _markdown_table(block) if isinstance(block, Table) else [_markdown_item(block)]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{caption}]({path})\n\n{caption}\n" for caption, path in figures.items()]
    return "\n".join(lines) + "\n"


def _markdown_item(text: str) -> str:
    """A bullet, or a numbered item when the text is numbered already."""
    number = text.split(" ", 1)[0]
    return text if number[:-1].isdigit() and number.endswith(".") else f"- {text}"


def _markdown_table(table: Table) -> list[str]:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return ["", row(table.header), row(["---"] * len(table.header)), *map(row, table.rows), ""]


def audit_json(audit: Audit) -> dict[str, Any]:
    """Every number of the audit, JSON-ready, the divergences first."""
    time = audit.time
    return _jsonable({
        "source": audit.source, "kind": audit.kind,
        "divergences": [asdict(d) for d in largest_divergences(audit)],
        "profiles": [asdict(p) for p in audit.profiles],
        "time": {"layer_type_fits": [fit.to_dict() for fit in time.layer_type_fits],
                 "machine_peaks": time.peaks.to_dict() if time.peaks is not None else None,
                 "roofline": {cid: [op.to_dict() for op in ops] for cid, ops in time.roofline.items()},
                 "validation": time.validation.to_dict() if time.validation is not None else None,
                 "notes": time.notes},
        "failed_configs": audit.failed_configs})


def write_json(audit: Audit, path: str | Path) -> None:
    """Write ``audit_json(audit)`` to ``path``."""
    Path(path).write_text(json.dumps(audit_json(audit), indent=2) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value
