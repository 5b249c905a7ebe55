"""The profile page's charts: time beside FLOPs per layer, the time and FLOPs hierarchy, roofline, TF's estimate."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tfprofscale.report.html import charts
from tfprofscale.report.html.layer_table import ancestors, short_name
from tfprofscale.report.html.page import Chart, Missing


@dataclass
class RooflineInput:
    """What the roofline needs: the machine's cached peaks (a dict) and every kernel's bound (OpBound dicts)."""

    peaks: dict[str, Any]
    ops: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def kernels_by_layer(report: dict[str, Any]) -> dict[str, list[str]]:
    """Per layer: each kernel that ran, with the graph ops fused into it (``_MklNativeFusedConv2D: conv + BiasAdd``)."""
    found: dict[str, list[str]] = {}
    for op in report.get("ops") or []:
        if op.get("fused_into") is not None or op.get("layer") is None or not op.get("occurrences"):
            continue
        fused = [name.rsplit("/", 1)[-1] for name in op.get("fused_ops") or []]
        kernel = op.get("kernel") or op.get("type")
        text = f"{kernel} [{op['name'].rsplit('/', 1)[-1]}" + (" + " + " + ".join(fused) if fused else "") + "]"
        if op.get("time_us") is not None:
            text += f" {op['time_us']:.1f} µs"
        found.setdefault(op["layer"], []).append(text)
    return found


def leaf_layers(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Layers that are not the parent of another layer, in execution order."""
    layers = report.get("layers") or []
    parents = {layer.get("parent") for layer in layers}
    return [layer for layer in layers if layer["name"] not in parents]


def layer_bars(report: dict[str, Any], kernels: dict[str, list[str]]) -> list[Chart | Missing]:
    """Time per layer above formula and graph FLOPs per layer, sharing the layer axis; kernels on hover."""
    layers = leaf_layers(report)
    if not layers:
        return [Missing("Time and FLOPs per layer", "the report has no layers")]
    names = [layer["name"] for layer in layers]
    hover = [f"{layer['name']} ({layer.get('type')})<br>" + "<br>".join(kernels.get(layer["name"], ["no kernel ran"]))
             for layer in layers]
    timed = any(layer.get("time_us") is not None for layer in layers)
    panels = ([("time_us", "time (µs / step)", "measured kernel time")] if timed else []) + [
        ("analytic_flops", "formula FLOPs / step", "hand formula (multiply-add = 2)"),
        ("graph_flops", "graph FLOPs / step", "TensorFlow's graph count")]
    data = []
    for index, (key, _, name) in enumerate(panels):
        values = [layer.get(key) if key != "analytic_flops" or layer.get("supported", True) else None
                  for layer in layers]
        data.append({"type": "bar", "x": names, "y": values, "name": name, "marker": {"color": charts.colour(index)},
                     "xaxis": "x", "yaxis": "y" if index == 0 else f"y{index + 1}", "customdata": hover,
                     "hovertemplate": "%{customdata}<br><b>%{y:.4s}</b><extra>" + name + "</extra>"})
    share = 1.0 / len(panels)
    spec = charts.layout("", height=180 + 170 * len(panels), bargap=0.15, showlegend=False,
                         margin={"l": 80, "r": 20, "t": 16, "b": 120})
    spec["xaxis"] = charts.axis("layer (execution order)", tickangle=-60, showticklabels=len(names) <= 120,
                                anchor=f"y{len(panels)}" if len(panels) > 1 else "y")
    for index, (key, title, _) in enumerate(panels):
        top = 1 - index * share
        spec["yaxis" if index == 0 else f"yaxis{index + 1}"] = charts.axis(
            title, domain=[top - share + 0.06, top], exponentformat="SI", anchor="x")
    caption = ("Per layer, in execution order: measured kernel time, the formula's FLOPs and TensorFlow's graph "
               "FLOPs, one panel each on a shared layer axis (drag to zoom, double-click to reset). Hover names the "
               "kernels that ran for the layer and the graph ops fused into each.")
    blocks: list[Chart | Missing] = [Chart(charts.figure(data, spec), caption, height=spec["height"])]
    if not timed:
        blocks.append(Missing("Time per layer", "no profiler trace was taken (--no-trace), so no layer has a time"))
    return blocks


def hierarchy(report: dict[str, Any]) -> list[Chart | Missing]:
    """Sunbursts of time and of graph FLOPs (buttons turn them into treemaps): by nesting, else by layer type."""
    layers = leaf_layers(report)
    nested = any(layer.get("depth", 0) > 0 for layer in layers)
    data, titles = [], []
    measures = [("time_us", "time (µs / step)"), ("graph_flops", "graph FLOPs / step")]
    measures = [(key, title) for key, title in measures if any((layer.get(key) or 0) > 0 for layer in layers)]
    if not measures:
        return [Missing("Where time and FLOPs go", "no layer has a measured time or counted FLOPs")]
    for index, (key, title) in enumerate(measures):
        ids, labels, parents, values = _tree(layers, key, nested, report.get("model") or "model")
        left = index / len(measures)
        data.append({"type": "sunburst", "ids": ids, "labels": labels, "parents": parents, "values": values,
                     "branchvalues": "total", "maxdepth": 3, "name": title, "insidetextorientation": "radial",
                     "hovertemplate": "%{id}<br>%{value:.4s} (%{percentRoot:.1%} of all)<extra>" + title + "</extra>",
                     "domain": {"x": [left + 0.02, left + 1 / len(measures) - 0.02], "y": [0, 0.92]}})
        titles.append({"text": f"<b>{title}</b>", "x": left + 0.5 / len(measures), "y": 1.0, "xref": "paper",
                       "yref": "paper", "showarrow": False, "xanchor": "center"})
    spec = charts.layout("", height=520, annotations=titles, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         updatemenus=[SHAPE_BUTTONS])
    how = "by nested model" if nested else "by layer type (the model is flat)"
    return [Chart(charts.figure(data, spec), f"Share of the step's kernel time and of the graph FLOPs, {how}; click "
                                             "a ring or a box to zoom into it, the centre or the path above to zoom "
                                             "out; Treemap shows many small layers better.", height=520)]


#: Plotly's own buttons that restyle the hierarchy charts between a sunburst and a treemap (same data).
SHAPE_BUTTONS = {"type": "buttons", "direction": "right", "x": 0.0, "y": 1.06, "xanchor": "left", "yanchor": "bottom",
                 "showactive": True, "active": 0, "pad": {"r": 4, "t": 0},
                 "buttons": [{"label": "Sunburst", "method": "restyle", "args": ["type", "sunburst"]},
                             {"label": "Treemap", "method": "restyle", "args": ["type", "treemap"]}]}


def _tree(layers: list[dict[str, Any]], key: str, nested: bool, root: str) -> tuple[list, list, list, list]:
    """Sunburst ids, labels, parents and values (groups sum their children: branchvalues 'total')."""
    totals: dict[str, float] = {root: 0.0}
    parent_of: dict[str, str] = {root: ""}
    leaves = []
    for layer in layers:
        value = float(layer.get(key) or 0)
        if value <= 0:
            continue
        groups = [f"{root}/{path}" for path in ancestors(layer.get("parent"))] if nested \
            else [f"{root}/{layer.get('type')}"]
        chain = [root] + groups
        for up, path in zip(chain, groups):
            parent_of.setdefault(path, up)
        node = f"{chain[-1]}/{short_name(layer['name'], layer.get('parent'))}"
        parent_of[node] = chain[-1]
        leaves.append(node)
        for path in chain + [node]:
            totals[path] = totals.get(path, 0.0) + value
    ids = list(parent_of)
    return (ids, [path.rsplit("/", 1)[-1] for path in ids], [parent_of[path] for path in ids],
            [totals[path] for path in ids])


def roofline(roof: RooflineInput | None, why_not: str) -> list[Chart | Missing]:
    """Every timed kernel at (FLOP per byte, achieved FLOP/s) under the measured roofs; flagged kernels marked."""
    if roof is None:
        return [Missing("Roofline", why_not)]
    placed = [op for op in roof.ops if op.get("arithmetic_intensity") and op.get("measured_us")]
    if not placed:
        return [Missing("Roofline", "no timed kernel has both counted FLOPs and an estimate of the bytes it moves")]
    peak_flops, peak_bytes = roof.peaks["flops_per_s"], roof.peaks["bytes_per_s"]
    intensities = [op["arithmetic_intensity"] for op in placed]
    low = min(min(intensities), peak_flops / peak_bytes) / 4
    high = max(max(intensities), peak_flops / peak_bytes) * 4
    xs = [low * (high / low) ** (i / 60) for i in range(61)]
    roofs = {"type": "scatter", "mode": "lines", "x": xs, "y": [min(peak_flops, x * peak_bytes) for x in xs],
             "name": f"measured roofs: {peak_flops / 1e9:.1f} GFLOP/s, {peak_bytes / 1e9:.1f} GB/s",
             "line": {"color": "#1f2933", "width": 2}, "hoverinfo": "skip"}
    data = [roofs]
    for flagged, name, style in ((False, "kernel", {"color": charts.colour(0), "size": 8, "opacity": 0.75}),
                                 (True, "flagged: faster than its bound (counted work too large)",
                                  {"color": charts.FLAGGED, "size": 12, "symbol": "x"})):
        group = [op for op in placed if bool(op.get("flagged")) == flagged]
        if not group:
            continue
        data.append({"type": "scatter", "mode": "markers", "name": name, "marker": style,
                     "x": [op["arithmetic_intensity"] for op in group],
                     "y": [op["flops"] / (op["measured_us"] * 1e-6) for op in group],
                     "text": [_roofline_hover(op) for op in group], "hovertemplate": "%{text}<extra></extra>"})
    spec = charts.layout("", height=480, xaxis=charts.axis("arithmetic intensity (FLOP / byte moved)", log=True),
                         yaxis=charts.axis("achieved FLOP/s (kernel FLOPs / measured time)", log=True,
                                           exponentformat="SI"))
    unplaced = len(roof.ops) - len(placed)
    caption = ("Each timed kernel with counted FLOPs and an estimate of its bytes (input read + output written + "
               "parameters read, at least traffic), under the machine's measured roofs (cached peaks, never "
               "measured while rendering)." + _cache_note(roof.peaks)
               + (f" {unplaced} kernels with unknown bytes are not placed." if unplaced
                                                else "") + (" " + " ".join(roof.notes) if roof.notes else ""))
    return [Chart(charts.figure(data, spec), caption, height=480)]


def _cache_note(peaks: dict[str, Any]) -> str:
    cache = peaks.get("cache_bytes")
    if not cache:
        return ""
    return (f" Up to the last-level cache ({cache / 2**20:.0f} MiB) a kernel's bytes can come from cache, so its "
            "bound is the compute roof alone: such kernels may sit above the memory roof without being flagged.")


def _roofline_hover(op: dict[str, Any]) -> str:
    share = op.get("share_of_bound")
    return (f"{op['name']} [{op.get('kernel')}]<br>layer {op.get('layer')}<br>{op['flops']:,} FLOPs, "
            f"{op.get('bytes_moved') or 0:,} B<br>measured {op['measured_us']:.1f} µs, bound "
            f"{op['roofline_time_us']:.1f} µs ({op.get('bound')})"
            + (f"<br>{share:.0%} of the roofline" if share is not None else ""))


def cost_model(report: dict[str, Any]) -> list[Chart | Missing]:
    """TensorFlow's cost-model (Grappler) estimate per layer against the measured time."""
    layers = [layer for layer in leaf_layers(report)
              if (layer.get("tf_estimated_us") or 0) > 0 and (layer.get("time_us") or 0) > 0]
    if not layers:
        has_estimate = any(layer.get("tf_estimated_us") for layer in report.get("layers") or [])
        why = ("no layer has a measured time (no profiler trace)" if has_estimate else
               "TensorFlow's cost model did not run (--no-cost-model) or estimated no layer")
        return [Missing("TensorFlow's estimate against the measurement", why)]
    measured = [layer["time_us"] for layer in layers]
    estimated = [layer["tf_estimated_us"] for layer in layers]
    low, high = min(measured + estimated) / 1.5, max(measured + estimated) * 1.5
    point = {"type": "scatter", "mode": "markers", "x": measured, "y": estimated, "name": "layer",
             "marker": {"color": charts.colour(1), "size": 8, "opacity": 0.8},
             "text": [f"{layer['name']} ({layer.get('type')})<br>measured {m:.1f} µs, estimated {e:.1f} µs "
                      f"(x{e / m:.2f})" for layer, m, e in zip(layers, measured, estimated)],
             "hovertemplate": "%{text}<extra></extra>"}
    spec = charts.layout("", height=440, xaxis=charts.axis("measured kernel time (µs / step)", log=True),
                         yaxis=charts.axis("TensorFlow's estimate (µs / step, Grappler)", log=True))
    total = report.get("totals", {}).get("tf_estimated_step_ms")
    caption = ("Per layer, the time TensorFlow's analytical cost model (Grappler MeasureCosts, at this machine's "
               "measured peaks) predicts against the measured kernel time; on the dashed line they agree."
               + (f" Whole step: estimated {total:.3f} ms." if total is not None else ""))
    return [Chart(charts.figure([charts.identity_line(low, high), point], spec), caption, height=440)]


def finite(value: Any) -> bool:
    """A number that is not None, NaN or infinite."""
    return isinstance(value, (int, float)) and math.isfinite(value)
