"""The audit as text (terminal), as ``audit.md`` with figures, and as JSON with every number.

The report opens with the five largest divergences a user can act on
(``tfprofscale.audit.divergences``), then the documents' counting
conventions, then FLOPs, fusion, coverage, memory and time in detail.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

from tfprofscale.audit.analysis import Audit
from tfprofscale.audit.conventions import get_convention
from tfprofscale.audit.divergences import Divergence, largest_divergences
from tfprofscale.audit.layout import UNSUPPORTED, short_cell, wrap
from tfprofscale.audit.time_views import HEADER
from tfprofscale.output import write_text
from tfprofscale.profiling.memory.estimate import ALLOCATOR_TRACKING_THRESHOLD_BYTES
from tfprofscale.report.units import binary_bytes, si


@dataclass
class Table:
    """A header and rows of cells, rendered aligned (text) or as a pipe table (markdown)."""

    header: list[str]
    rows: list[list[str]]


Block = Union[str, Table]


# -- sections ------------------------------------------------------------------------------------

def _count(value: float | None) -> str:
    return UNSUPPORTED if value is None else f"{value:,.0f}"


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
_SIDES = {"flops": ("count", "graph"), "memory": ("estimate", "measured peak"),
          "coverage": ("kernels", "traced step"), "time": ("line", "measured"), "roofline": ("bound", "measured")}


def _divergence_blocks(audit: Audit) -> list[Block]:
    blocks: list[Block] = ["factor = max(estimate / measured, measured / estimate); "
                           "each topic once, at its worst layer and configuration; the documents' counting "
                           "conventions are in their own section below"]
    return blocks + _ranked(audit, largest_divergences(audit))


def _convention_blocks(audit: Audit) -> list[Block]:
    found = largest_divergences(audit, count=len(audit.profiles[0].flops.totals), conventions=True)
    blocks: list[Block] = [
        "Other documents count operations differently from TensorFlow's profiler; these gaps are "
        "definitions, not errors in the model or the measurement. Each convention once, at its worst place:"]
    blocks += _ranked(audit, found)
    names = dict.fromkeys(d.topic.removeprefix("convention ") for d in found)
    blocks += [f"{name}: {get_convention(name).source}: {get_convention(name).definition}" for name in names]
    if "doc000_published" in names:
        blocks.append("doc000_published is document 000's conv formula as printed, known to be wrong (a sum "
                      "where a product is meant); it is shown to expose it, not to be used.")
    return blocks


def _ranked(audit: Audit, divergences: list[Divergence]) -> list[Block]:
    blocks: list[Block] = []
    for rank, d in enumerate(divergences, start=1):
        factor = f"x{d.factor:,.2f}" if math.isfinite(d.factor) else "x inf"
        where = f" [{d.config_id}]" if audit.kind == "sweep" and d.config_id else ""
        estimate, measured = _SIDES.get(d.kind, ("estimate", "measured"))
        blocks.append(f"{rank}. {factor} {d.kind}, {d.topic}, at {d.where}{where}: {estimate} "
                      f"{_amount(d.estimate, d.unit)} vs {measured} {_amount(d.measured, d.unit)}. Cause: {d.cause}")
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
               UNSUPPORTED if f.time_us is None else f"{f.time_us:,.1f}",
               "" if f.achieved_gflops is None else f"{f.achieved_gflops:.2f}"] for f in example.fusions]
    return ["Graph ops rewritten into the runtime kernels that really ran (compare per-op estimates with these):",
            Table(["graph ops", "kernel", "fused or rewritten", "configurations"], rows),
            f"Kernels of {example.config_id}:",
            Table(["layer", "graph ops", "kernel", "graph FLOPs", "time us/step", "GFLOP/s"], detail)]


def _coverage_blocks(audit: Audit) -> list[Block]:
    rows = [[p.config_id, f"{c.step_time_us:,.1f}", f"{c.traced_step_time_us:,.1f}", f"{c.kernel_time_us:,.1f}",
             f"{100 * c.share:.0f}%" if c.share is not None else UNSUPPORTED, f"{c.outside_kernels_us:,.1f}",
             f"{c.unattributed_time_us:,.1f}",
             UNSUPPORTED if c.profiler_overhead is None else f"x{c.profiler_overhead:.2f}"]
            for p in audit.profiles if (c := p.coverage) is not None]
    if not rows:
        return ["No profiler trace in these profiles: coverage needs per-op kernel times."]
    return ["Share of the traced step during which some op kernel ran (the union of kernel intervals: kernels "
            "running at the same time count once; 'kernels us' sums their self times, so it can exceed the step); "
            "the rest is outside any op kernel: framework overhead (function dispatch, executor scheduling) and "
            "idle gaps, not separated by the trace.",
            Table(["configuration", "step us", "traced step us", "kernels us", "coverage", "outside kernels us",
                   "kernels in no layer us", "profiler overhead"], rows)]


def _amount(value: float | None, unit: str) -> str:
    """A divergence's number with its unit: bytes in binary units as everywhere, others with SI prefixes."""
    return binary_bytes(value) if unit == "B" else f"{si(value)} {unit}"


def _bytes(value: int | None) -> str:
    return UNSUPPORTED if value is None else binary_bytes(value)


def _memory_blocks(audit: Audit) -> list[Block]:
    blocks: list[Block] = [
        "Estimate = parameters + input + peak of live activations over the execution order (not their sum; "
        "element-wise layers write into a dying input's buffer) + the workspaces oneDNN allocates while the layer "
        "at the peak runs (convolution and matmul scratch, probed on each kernel alone; max-pool workspace). "
        "Measured = weights "
        "+ input + the in-step transient peak of one traced step's allocation records; the difference is split "
        "term by term. The allocator figure is process-wide and misses requests under "
        f"{ALLOCATOR_TRACKING_THRESHOLD_BYTES:,} B: shown for reference only."]
    rows = []
    for p in audit.profiles:
        m, terms = p.memory, p.memory.estimate.terms
        rows.append([p.config_id, *map(_bytes, (
            terms["parameters"], terms["input"], terms["activations"], p.memory.estimate.workspace_bytes,
            p.memory.estimate.total_bytes, m.peak_bytes, m.allocator_peak_bytes)),
            f"{100 * m.relative_error:+.1f}%" if m.relative_error is not None else UNSUPPORTED])
        blocks += [f"{p.config_id}: {c.cause}: {c.bytes:+,} B" for c in m.causes]
        blocks += [f"{p.config_id}: {m.note}"] if m.note else []
    if any(p.memory.estimate.chain_assumed for p in audit.profiles):
        blocks.append("The reports carry no layer inbound names: the layers are taken as a chain.")
    header = ["configuration", "parameters", "input", "activations at peak", "workspace at peak", "estimate",
              "measured peak", "allocator peak (process-wide)", "(measured - estimate) / measured"]
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


def _views_blocks(audit: Audit) -> list[Block]:
    time = audit.time
    rows = [view.cells() for view in time.views] + ([time.step_views.cells()] if time.step_views else [])
    if not rows:
        return ["No layer has all three views: measured times need a trace, TensorFlow's estimate a profile "
                "made with the cost model (see the profile's warnings if Grappler failed), the roofline a formula."]
    intro = ("Per layer type, summed over the layers that have all three: the formulas' FLOPs and bytes at the "
             "machine peaks (roofline), Grappler's estimate of the layer's graph ops, and the traced kernel times; "
             "the whole step against the median step time. Factor = max(estimate / measured, measured / estimate).")
    return [intro, Table(HEADER, rows)]


def sections(audit: Audit) -> list[tuple[str, list[Block]]]:
    """The report's sections in order, each a title and its blocks."""
    found = [("The five largest divergences", _divergence_blocks(audit)),
             ("Counting conventions against TensorFlow's count", _convention_blocks(audit)),
             ("FLOPs: formulas against the graph", _flops_blocks(audit)),
             ("Fusion: graph ops and the kernels that ran", _fusion_blocks(audit)),
             ("Coverage: what the per-op times account for", _coverage_blocks(audit)),
             ("Memory: parameters + input + live activations + workspace against the measured peak",
              _memory_blocks(audit)),
             ("Time: formulas via the roofline, TensorFlow's cost model, measured", _views_blocks(audit)),
             ("Time and prediction", _time_blocks(audit))]
    if audit.training.pass_ratios or audit.training.ledger:
        found.append(("Training step: backward against forward, the ledger against the measured peak",
                      _training_blocks(audit)))
    if audit.failed_configs:
        found.append(("Failed configurations", list(audit.failed_configs)))
    return found


def _training_blocks(audit: Audit) -> list[Block]:
    training = audit.training
    ratios = Table(["layer type", "layers", "fwd FLOPs", "bwd FLOPs", "bwd/fwd", "formulas bwd/fwd",
                    "fwd ns/FLOP", "bwd ns/FLOP"],
                   [[r.layer_type, str(r.layers), si(r.forward_flops), si(r.backward_flops), _ratio(r.flops_ratio),
                     _ratio(r.formula_ratio), _per_flop(r.ns_per_flop(False)), _per_flop(r.ns_per_flop(True))]
                    for r in training.pass_ratios])
    ledger = Table(["config", "term", "estimated", "measured", "estimate/measured"],
                   [[c.config_id, c.term, _bytes(c.estimated_bytes), _bytes(c.measured_bytes), _ratio(c.factor)]
                    for c in training.ledger])
    shown = ", ".join(f"{cid} {_ratio(value)}" for cid, value in training.train_to_forward.items())
    return ["Graph FLOPs by TensorFlow's statistics; the backward pass of a layer is its gradient_tape ops "
            "(dL/dX and dL/dW); time per FLOP from the traced kernels of each pass.", ratios,
            f"train step / forward FLOPs: {shown}",
            "Ledger terms as estimated by the formulas and as measured (variables from the captured buffers, "
            "transient terms from what is live at the measured peak).", ledger]


def _per_flop(value: float | None) -> str:
    return UNSUPPORTED if value is None else f"{value:.3g}"


# -- renderers -----------------------------------------------------------------------------------

def render_text(audit: Audit) -> str:
    """The report for the terminal."""
    lines = [_title(audit), "=" * len(_title(audit))]
    for title, blocks in sections(audit):
        lines += ["", title, "-" * len(title)]
        for block in blocks:
            lines += _text_table(block) if isinstance(block, Table) else wrap(block, "  ", "    ")
    return "\n".join(lines)


def _text_table(table: Table) -> list[str]:
    table = Table(table.header, [[short_cell(str(cell)) for cell in row] for row in table.rows])
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
    """A bullet, or a numbered item when the text is numbered already, wrapped (continuations indented)."""
    number = text.split(" ", 1)[0]
    numbered = number[:-1].isdigit() and number.endswith(".")
    return "\n".join(wrap(text if numbered else f"- {text}", "", " " * (len(number) + 1 if numbered else 2)))


def _markdown_table(table: Table) -> list[str]:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(short_cell(str(c)).replace("|", "\\|") for c in cells) + " |"
    return ["", row(table.header), row(["---"] * len(table.header)), *map(row, table.rows), ""]


def audit_json(audit: Audit) -> dict[str, Any]:
    """Every number of the audit, JSON-ready, the divergences first."""
    time = audit.time
    return _jsonable({
        "source": audit.source, "kind": audit.kind,
        "divergences": [asdict(d) for d in largest_divergences(audit)],
        "convention_divergences": [asdict(d) for d in largest_divergences(audit, count=100, conventions=True)],
        "profiles": [asdict(p) for p in audit.profiles],
        "time": {"layer_type_fits": [fit.to_dict() for fit in time.layer_type_fits],
                 "machine_peaks": time.peaks.to_dict() if time.peaks is not None else None,
                 "roofline": {cid: [op.to_dict() for op in ops] for cid, ops in time.roofline.items()},
                 "validation": time.validation.to_dict() if time.validation is not None else None,
                 "views": [view.to_dict() for view in time.views],
                 "step_views": time.step_views.to_dict() if time.step_views is not None else None,
                 "notes": time.notes},
        "failed_configs": audit.failed_configs})


def write_json(audit: Audit, path: str | Path) -> None:
    """Write ``audit_json(audit)`` to ``path``."""
    write_text(path, json.dumps(audit_json(audit), indent=2) + "\n")


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
