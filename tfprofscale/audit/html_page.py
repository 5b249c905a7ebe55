"""The audit's HTML page (``audit --html``): the top divergences with their causes, the conventions table,
the per-layer-type time fits with their residuals, the held-out validation scatter, memory and the roofline."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tfprofscale.audit.analysis import Audit
from tfprofscale.audit.conventions import get_convention
from tfprofscale.audit.divergences import Divergence, largest_divergences
from tfprofscale.audit.plots import validation_pairs
from tfprofscale.audit.profiles import layers_frame, load_profiles
from tfprofscale.errors import InputError
from tfprofscale.report.html import charts
from tfprofscale.report.html.page import (
    Block,
    Chart,
    Column,
    Missing,
    Page,
    Section,
    Table,
    Tabs,
    write_page,
)
from tfprofscale.report.html.profile_charts import RooflineInput, roofline

DIVERGENCE_COLUMNS = [
    Column("rank", "#", format="int"), Column("factor", "Factor", "max(est/meas, meas/est)", format="fixed2"),
    Column("kind", "Kind", format="text"), Column("topic", "Topic", format="text"),
    Column("where", "Where", format="text"), Column("config_id", "Configuration", format="text"),
    Column("estimate", "Estimate", format="si"), Column("measured", "Measured", format="si"),
    Column("unit", "Unit", format="text"), Column("cause", "Cause", format="text")]


def write_audit_page(path: str | Path, audit: Audit) -> None:
    """Write the audit page to ``path`` (atomically); the per-layer times are read again from the audited reports."""
    try:
        layers = layers_frame(load_profiles(audit.source))
    except (InputError, ValueError, KeyError):  # the reports moved or changed since the audit: the fits lose
        layers = None                              # their points, not the page
    write_page(path, audit_page(audit, layers))


def audit_page(audit: Audit, layers: Any = None) -> Page:
    """The page of an audit; ``layers`` (a layers frame) gives the fits their points and residuals."""
    first = audit.profiles[0]
    peaks = audit.time.peaks
    facts = [("source", audit.source), ("kind", audit.kind), ("model", first.model),
             ("configurations", f"{len(audit.profiles)}" + (f" ({len(audit.failed_configs)} failed)"
                                                            if audit.failed_configs else "")),
             ("device", first.device), ("TensorFlow", first.tensorflow)]
    if peaks is not None:
        facts.append(("machine peaks", f"{peaks.flops_per_s / 1e9:.1f} GFLOP/s, {peaks.bytes_per_s / 1e9:.1f} GB/s"))
    return Page(f"Audit of {first.model} — tfprofscale", facts, list(audit.time.notes), [
        Section("Largest divergences", divergence_blocks(audit, largest_divergences(audit)),
                "Where an estimate and a measurement disagree most, each topic once at its worst place, with the "
                "cause; the documents' counting conventions are in the next section."),
        Section("Counting conventions", convention_blocks(audit)),
        Section("Time fits and residuals", fit_blocks(audit, layers)),
        Section("Held-out validation", validation_blocks(audit)),
        Section("Memory", memory_blocks(audit)),
        Section("Roofline", roofline_blocks(audit)),
    ])


def divergence_blocks(audit: Audit, found: list[Divergence]) -> list[Block]:
    """A bar per divergence (its factor, log axis, cause on hover) and the sortable table."""
    if not found:
        return [Missing("Divergences", "no estimate differs from its measurement")]
    rows = [{"id": f"{d.kind}:{d.topic}:{i}", "rank": i + 1, "factor": d.factor if math.isfinite(d.factor) else None,
             "kind": d.kind, "topic": d.topic, "where": d.where, "config_id": d.config_id, "estimate": d.estimate,
             "measured": d.measured, "unit": d.unit, "cause": d.cause} for i, d in enumerate(found)]
    finite = [row for row in rows if row["factor"] is not None]
    blocks: list[Block] = []
    if finite:
        labels = [f"{row['rank']}. {row['kind']}: {charts.short(row['topic'], 40)}" for row in finite]
        data = [{"type": "bar", "orientation": "h", "y": labels, "x": [row["factor"] for row in finite],
                 "marker": {"color": charts.colour(3)}, "customdata": [_hover(row) for row in finite],
                 "hovertemplate": "%{customdata}<extra>x%{x:.2f}</extra>"}]
        spec = charts.layout("", height=120 + 36 * len(finite), showlegend=False,
                             xaxis=charts.axis("factor between estimate and measurement", log=True),
                             yaxis=charts.axis("", autorange="reversed"), margin={"l": 300, "r": 20, "t": 10, "b": 50})
        blocks.append(Chart(charts.figure(data, spec), "Hover a bar for where it happens and its cause.",
                            spec["height"]))
    return blocks + [Table(DIVERGENCE_COLUMNS, rows, filterable=False)]


def _hover(row: dict[str, Any]) -> str:
    return (f"{row['where']} [{row['config_id']}]<br>estimate {charts.si(row['estimate'])}, measured "
            f"{charts.si(row['measured'])} {row['unit']}<br>cause: {charts.short(str(row['cause']), 140)}")


def convention_blocks(audit: Audit) -> list[Block]:
    """Every convention's model total against the graph, and every layer's count under each convention."""
    example = audit.profiles[0]
    columns = [Column("convention", "Convention", format="text"), Column("flops", "FLOPs", "count", format="si"),
               Column("graph_flops", "Graph", "same layers", format="si"), Column("ratio", "Ratio", format="ratio"),
               Column("exact", "Exact layers", format="text"), Column("causes", "Causes of the gap", format="text"),
               Column("definition", "Definition", format="text"), Column("source", "Source", format="text")]
    rows = [{"id": t.convention, "convention": t.convention, "flops": t.flops, "graph_flops": t.graph_flops,
             "ratio": t.ratio, "exact": f"{t.exact_layers}/{t.compared_layers}", "definition": t.definition,
             "causes": "; ".join(f"{c.cause} {c.flops:+,}" for c in t.causes if c.flops is not None),
             "source": t.source} for t in example.flops.totals]
    blocks: list[Block] = [Table(columns, rows, f"Model totals of {example.config_id}.", filterable=False)]
    series: dict[str, list[tuple[int, int, str]]] = {}
    for profile in audit.profiles:
        for layer in profile.flops.layers:
            for count in layer.counts:
                if layer.graph_flops and count.flops:
                    series.setdefault(count.convention, []).append(
                        (layer.graph_flops, count.flops, f"{layer.layer} ({layer.type}) [{profile.config_id}]"))
    if not series:
        return blocks + [Missing("Conventions against the graph", "no layer has both a graph count and a count")]
    values = [v for points in series.values() for x, y, _ in points for v in (x, y)]
    data = [charts.identity_line(min(values), max(values), "count = graph")]
    for index, (name, points) in enumerate(series.items()):
        data.append({"type": "scatter", "mode": "markers", "name": name, "x": [p[0] for p in points],
                     "y": [p[1] for p in points], "text": [p[2] for p in points],
                     "marker": {"color": charts.colour(index), "size": 7, "opacity": 0.7},
                     "hovertemplate": "%{text}<br>graph %{x:.4s}, " + name + " %{y:.4s}<extra></extra>"})
    spec = charts.layout("", height=480, xaxis=charts.axis("TensorFlow graph FLOPs per layer", log=True),
                         yaxis=charts.axis("count under the convention", log=True),
                         legend={"orientation": "v", "x": 1.01, "y": 1})
    names = ", ".join(f"{n}: {get_convention(n).definition}" for n in series if _known(n))
    return blocks + [Chart(charts.figure(data, spec), "Every layer's count under each convention against "
                                                      f"TensorFlow's graph count (click the legend to toggle). {names}",
                           480)]


def _known(name: str) -> bool:
    try:
        get_convention(name)
    except InputError:
        return False
    return True


def fit_blocks(audit: Audit, layers: Any) -> list[Block]:
    """Per layer type: measured time against FLOPs with the fitted line, and the relative residuals."""
    fits = audit.time.layer_type_fits
    if not fits:
        return [Missing("Time fits", "no layer type has 3 timed layers with 2 different FLOPs counts")]
    panes = []
    for fit in fits:
        points = _fit_points(layers, fit.layer_type)
        panes.append((f"{fit.layer_type} (R² {fit.r2:.3f})" if fit.r2 is not None else fit.layer_type,
                      [_fit_chart(fit, points)]))
    return [Tabs(panes)]


def _fit_points(layers: Any, layer_type: str) -> list[tuple[float, float, str]]:
    if layers is None or layers.empty:
        return []
    frame = layers[layers["type"] == layer_type]
    flops = frame["graph_flops"].where(frame["graph_flops"].notna(), frame["analytic_flops"])
    keep = flops.notna() & frame["time_us"].notna() & (frame["time_us"] > 0)
    ids = frame["config_id"] if "config_id" in frame else [""] * len(frame)
    return [(float(f), float(t), f"{n} [{c}]") for f, t, n, c, k in
            zip(flops, frame["time_us"], frame["name"], ids, keep) if k]


def _fit_chart(fit: Any, points: list[tuple[float, float, str]]) -> Chart | Missing:
    if not points:
        return Missing(fit.layer_type, "the audited reports could not be read again for the fit's points")
    xs = sorted(p[0] for p in points)
    line = [fit.slope_us_per_flop * x + fit.intercept_us for x in xs]
    residuals = [(fit.slope_us_per_flop * f + fit.intercept_us - t) / t for f, t, _ in points]
    speed = f"{fit.achieved_gflops:.1f} GFLOP/s" if fit.achieved_gflops else "no positive slope"
    data = [{"type": "scatter", "mode": "markers", "name": "layers", "x": [p[0] for p in points],
             "y": [p[1] for p in points], "text": [p[2] for p in points], "marker": {"color": charts.colour(0)},
             "hovertemplate": "%{text}<br>%{x:.4s} FLOPs, %{y:.1f} µs<extra></extra>"},
            {"type": "scatter", "mode": "lines", "name": f"fit: FLOPs / ({speed}) + {fit.intercept_us:.1f} µs",
             "x": xs, "y": line, "line": {"color": charts.colour(1)}, "hoverinfo": "skip"},
            {"type": "scatter", "mode": "markers", "name": "residual (line − measured) / measured",
             "x": [p[0] for p in points], "y": residuals, "text": [p[2] for p in points], "xaxis": "x2",
             "yaxis": "y2", "marker": {"color": charts.colour(3), "size": 6},
             "hovertemplate": "%{text}<br>%{y:+.1%}<extra></extra>"}]
    log = charts.spans_decades(xs)
    spec = charts.layout("", height=520, xaxis=charts.axis("", log=log, domain=[0, 1], anchor="y",
                                                           matches="x2", showticklabels=False),
                         yaxis=charts.axis("measured time (µs / step)", domain=[0.38, 1]),
                         xaxis2=charts.axis("FLOPs per step (graph, else formula)", log=log, anchor="y2"),
                         yaxis2=charts.axis("relative residual", domain=[0, 0.3], tickformat="+.0%"))
    return Chart(charts.figure(data, spec), f"{fit.layer_type}: {fit.n} layers, {fit.r2_text} (fitted on relative "
                                            "errors); below, each layer's relative residual.", 520)


def validation_blocks(audit: Audit) -> list[Block]:
    """Predicted against measured step time on held-out configurations, one tab per split, every predictor."""
    splits = validation_pairs(audit.time.validation)
    if not splits:
        why = ("a single profile has no held-out configurations" if audit.kind != "sweep" else
               "too few configurations for a held-out validation")
        return [Missing("Held-out validation", why)]
    return [Tabs([(name, [_validation_chart(pairs)]) for name, pairs in splits])]


def _validation_chart(pairs: list[dict[str, Any]]) -> Chart:
    measured = [p["measured_ms"] for p in pairs]
    predictors = list(dict.fromkeys(k for p in pairs for k in (p["predicted_ms"] or {})))
    low, high = min(measured) * 0.8, max(measured) * 1.25
    data = [{"type": "scatter", "mode": "lines", "x": [low, high, high, low], "y": [low * 0.9, high * 0.9,
                                                                                     high * 1.1, low * 1.1],
             "fill": "toself", "fillcolor": "rgba(44,162,95,0.15)", "line": {"width": 0}, "name": "±10%",
             "hoverinfo": "skip"}, charts.identity_line(low, high, "predicted = measured")]
    for index, predictor in enumerate(predictors):
        known = [p for p in pairs if (p["predicted_ms"] or {}).get(predictor) is not None]
        data.append({"type": "scatter", "mode": "markers", "name": predictor, "x": [p["measured_ms"] for p in known],
                     "y": [p["predicted_ms"][predictor] for p in known], "text": [p["config_id"] for p in known],
                     "visible": True if index in (0, 1) else "legendonly",
                     "marker": {"color": charts.colour(index), "size": 8, "symbol": "circle" if index == 0 else "x"},
                     "hovertemplate": "%{text}<br>measured %{x:.3f} ms, predicted %{y:.3f} ms<extra>" + predictor
                                      + "</extra>"})
    spec = charts.layout("", height=500, xaxis=charts.axis("measured step time (ms)", log=True),
                         yaxis=charts.axis("predicted step time (ms)", log=True),
                         legend={"orientation": "v", "x": 1.01, "y": 1})
    return Chart(charts.figure(data, spec), "Each held-out configuration: predicted against measured step time; "
                                            "click the legend to show the other predictors.", 500)


def memory_blocks(audit: Audit) -> list[Block]:
    """The memory estimate by term against the measured peak, per configuration."""
    profiles = [p for p in audit.profiles if p.memory.peak_bytes is not None]
    if not profiles:
        return [Missing("Memory", "no audited profile has a measured peak")]
    terms = list(dict.fromkeys(t for p in profiles for t in p.memory.estimate.terms))
    ids = [p.config_id for p in profiles]
    data = [{"type": "bar", "x": ids, "y": [p.memory.estimate.terms.get(term, 0) for p in profiles],
             "name": f"estimate: {term}", "marker": {"color": charts.colour(i)}, "offsetgroup": "estimate",
             "hovertemplate": "%{x}: " + term + " %{y:,} B<extra></extra>"} for i, term in enumerate(terms)]
    data.append({"type": "scatter", "mode": "markers", "x": ids, "y": [p.memory.peak_bytes for p in profiles],
                 "name": "measured peak", "marker": {"color": "#1f2933", "symbol": "line-ew-open", "size": 28,
                                                      "line": {"width": 3}},
                 "hovertemplate": "%{x}: measured %{y:,} B<extra></extra>"})
    spec = charts.layout("", height=440, barmode="stack", xaxis=charts.axis("configuration", type="category"),
                         yaxis=charts.bytes_axis("bytes", max(max(sum(p.memory.estimate.terms.values()),
                                                                      p.memory.peak_bytes) for p in profiles)))
    return [Chart(charts.figure(data, spec), "The memory estimate split into its terms (bars) against the measured "
                                            "peak (black line) of each configuration.", 440)]


def roofline_blocks(audit: Audit) -> list[Block]:
    """The roofline of the first configuration (the audit's peaks)."""
    peaks = audit.time.peaks
    if peaks is None or not audit.time.roofline:
        return [Missing("Roofline", "the time analysis did not run")]
    config_id, ops = next(iter(audit.time.roofline.items()))
    result = roofline(RooflineInput(peaks.to_dict(), [op.to_dict() for op in ops],
                                    [f"Configuration {config_id}."]), "no kernel was timed")
    return result
