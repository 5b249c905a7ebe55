"""The HTML page of one profile (``profile --html``, and each configuration of a sweep).

Built from the profile JSON (``Report.to_dict()`` or a file read back):
keys a report does not have (a training step's ``mode`` and ledger, an
older report's live-bytes timeline) are rendered when present and replaced
by one sentence when absent. The roofline's inputs (the machine's cached
peaks, each kernel's bound) come from the caller, who may import the audit.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tfprofscale.records.report import Report
from tfprofscale.report.html import memory_charts, profile_charts
from tfprofscale.report.html.charts import binary_bytes, si
from tfprofscale.report.html.layer_table import layer_table
from tfprofscale.report.html.page import (
    Block,
    Column,
    Html,
    Missing,
    Page,
    Section,
    Table,
    escape,
    write_page,
)
from tfprofscale.report.html.profile_charts import RooflineInput


def profile_page(report: dict[str, Any], roofline: RooflineInput | None = None,
                 no_roofline: str = "the machine's peaks were not available", links: list[tuple[str, str]] = ()
                 ) -> Page:
    """The page of one profile: header, layer table, time and FLOPs, roofline, memory, cost model, kernels."""
    kernels = profile_charts.kernels_by_layer(report)
    page = Page(f"{report.get('model')} — batch {report.get('batch_size')} — tfprofscale profile",
                facts=header_facts(report), notes=list(report.get("warnings") or []))
    if links:
        page.sections.append(Section("Links", [Html(" · ".join(f'<a href="{escape(href)}">{escape(text)}</a>'
                                                               for text, href in links))]))
    page.sections += [
        Section("Layers", [layer_table(report, kernels)], _totals_text(report)),
        Section("Time and FLOPs per layer", profile_charts.layer_bars(report, kernels)
                + profile_charts.hierarchy(report)),
        Section("Roofline", profile_charts.roofline(roofline, _no_roofline_reason(report, no_roofline))),
        Section("Memory", memory_blocks(report)),
        Section("TensorFlow's cost model", profile_charts.cost_model(report)),
        Section("Kernels", kernel_blocks(report)),
    ]
    return page


def write_profile_page(path: str | Path, report: dict[str, Any], roofline: RooflineInput | None = None,
                       no_roofline: str = "the machine's peaks were not available", plotly_src: str | None = None,
                       links: list[tuple[str, str]] = ()) -> None:
    """Write the profile page to ``path`` (atomically)."""
    write_page(path, profile_page(report, roofline, no_roofline, links), plotly_src)


def header_facts(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Model, batch, mode, dtype policy, device, TensorFlow, threads, load, step time."""
    totals = report.get("totals") or {}
    steps = totals.get("step_time_ms") or {}
    threads = steps.get("threads") or {}
    load = ("not recorded" if steps.get("load_start") is None or steps.get("load_end") is None
            else f"{steps['load_start']:.2f} → {steps['load_end']:.2f} (1-min average)")
    facts = [("model", str(report.get("model"))), ("batch", str(report.get("batch_size"))),
             ("mode", report.get("mode") or "inference"), ("dtype policy", _dtype_policy(report)),
             ("device", str(report.get("device"))), ("TensorFlow", str(report.get("tensorflow"))),
             ("threads", f"intra-op {threads.get('intra_op') or 'default'}, inter-op "
                         f"{threads.get('inter_op') or 'default'} ({threads.get('cpus', '?')} CPUs)"),
             ("load", load)]
    if steps.get("median") is not None:
        facts.append(("step time", f"median {steps['median']:.3f} ms (p10 {steps.get('p10', 0):.3f}, "
                                   f"p90 {steps.get('p90', 0):.3f}, n={steps.get('n')})"))
    if report.get("params"):
        facts.append(("parameters", ", ".join(f"{k}={v}" for k, v in report["params"].items())))
    return facts


def _dtype_policy(report: dict[str, Any]) -> str:
    for key in ("precision_policy", "dtype_policy", "dtype"):
        if report.get(key):
            return str(report[key])
    for layer in report.get("layers") or []:
        elements = 1
        for size in layer.get("output_shape") or []:
            elements *= size
        if layer.get("activation_bytes") and elements:
            return f"not recorded ({layer['activation_bytes'] / elements:g} B per activation element)"
    return "not recorded"


def _totals_text(report: dict[str, Any]) -> str:
    t = report.get("totals") or {}

    parts = [f"Params {t.get('params', 0):,}", f"FLOPs: formulas {si(t.get('analytic_flops'))}, graph "
             f"{si(t.get('graph_flops'))} (multiply-add = 2)", f"peak memory {binary_bytes(t.get('peak_bytes'))}"]
    if t.get("formula_coverage") is not None:
        parts.append(f"layers with a formula hold {100 * t['formula_coverage']:.1f}% of graph FLOPs")
    if t.get("kernel_coverage") is not None:
        parts.append(f"kernels busy {100 * t['kernel_coverage']:.0f}% of the traced step")
    return "; ".join(parts) + "."


def _no_roofline_reason(report: dict[str, Any], default: str) -> str:
    if not any(op.get("time_us") is not None for op in report.get("ops") or []):
        return "no profiler trace was taken (--no-trace), so no kernel has a measured time to place"
    return default


def memory_blocks(report: dict[str, Any]) -> list[Block]:
    """Terms, the live-bytes curve with its estimate, the tensors live at the peak, the training ledger."""
    memory = report.get("memory")
    curve = None
    try:  # the estimate's liveness is an inference step's: a training step has the ledger instead
        rows = Report.from_dict(report).layers if report.get("mode") != "train" else []
        curve = memory_charts.estimate_curve(rows, (memory or {}).get("kernel_scratch")) if rows else None
    except (KeyError, TypeError, ValueError):
        curve = None
    blocks: list[Block] = []
    blocks += memory_charts.terms(memory)
    blocks += memory_charts.live_bytes(memory, curve)
    blocks += memory_charts.live_at_peak_table(memory)
    blocks += memory_charts.ledger(report)
    if report.get("mode") == "train" and not blocks:
        blocks.append(Missing("Training memory", "no memory record"))
    return blocks


def kernel_blocks(report: dict[str, Any]) -> list[Block]:
    """Every op that ran or was counted: type, layer, kernel, fused ops, FLOPs, time, TF's estimate."""
    ops = report.get("ops") or []
    if not ops:
        return [Missing("Kernels", "the report lists no ops")]
    columns = [Column("short", "Op", format="text"), Column("type", "Type", format="text"),
               Column("layer", "Layer", format="text"), Column("kernel", "Kernel", format="text"),
               Column("fused", "Fused ops", format="text"),
               Column("graph_flops", "FLOPs graph", "per step", format="si", empty="unsupported"),
               Column("time_us", "Time", "µs / step", format="fixed1", empty="unsupported"),
               Column("tf_estimated_us", "TF estimate", "µs / step", format="fixed1"),
               Column("occurrences", "Runs", "per step", format="fixed2")]
    rows = [{"id": op["name"], "short": op["name"], "type": op.get("type"), "layer": op.get("layer"),
             "kernel": op.get("kernel") or ("fused into " + op["fused_into"] if op.get("fused_into") else None),
             "fused": " + ".join(name.rsplit("/", 1)[-1] for name in op.get("fused_ops") or []),
             "graph_flops": op.get("graph_flops"), "time_us": op.get("time_us"),
             "tf_estimated_us": op.get("tf_estimated_us"), "occurrences": op.get("occurrences")} for op in ops]
    return [Table(columns, rows, "TensorFlow ops with their kernels (xprof's op-stats view, which stays blank "
                                 "offline); sort by time to see the slowest.")]
