"""The profile page's memory charts: live bytes over the step, the estimate's curve, the terms, the training ledger."""
from __future__ import annotations

from typing import Any

from tfprofscale.profiling.memory.estimate import layer_buffers, storages
from tfprofscale.report.html import charts
from tfprofscale.report.html.page import Chart, Column, Missing, Table

LEDGER_ORDER = ("weights", "gradients", "optimizer_slots", "saved_activations", "temporaries", "input_and_labels")


def estimate_curve(rows: list[Any], probed_scratch: dict[str, int] | None = None) -> list[tuple[str, int]]:
    """(layer, estimated in-step bytes) per layer in execution order: live outputs + the running layer's workspace.

    The same liveness ``profiling.memory.estimate.peak_live`` takes the maximum of (fed inputs excluded).
    """
    buffers = layer_buffers(rows, None, probed_scratch)
    _, first, last = storages(buffers)
    sizes = {name: buffers[first[name]].bytes for name in first}
    curve = []
    for step, running in enumerate(buffers):
        live = sum(sizes[name] for name in first if first[name] <= step <= last[name])
        curve.append((running.name, live + sum(running.workspace.values())))
    return curve


def live_bytes(memory: dict[str, Any] | None, curve: list[tuple[str, int]] | None) -> list[Chart | Missing]:
    """Measured live bytes per op over the step with the peak marked, and the estimate's curve beside it."""
    timeline = (memory or {}).get("live_timeline") or []
    if not timeline:
        why = _why_no_timeline(memory)
        if not curve:
            return [Missing("Live bytes over the step", why)]
        return [_estimate_only(curve), Missing("Measured live bytes", why)]
    xs = list(range(len(timeline)))
    values = [point["live_bytes"] for point in timeline]
    peak = max(range(len(values)), key=values.__getitem__)
    data = [{"type": "scatter", "mode": "lines", "x": xs, "y": values, "name": "measured (allocation records)",
             "line": {"color": charts.colour(0), "width": 1.5, "shape": "hv"}, "fill": "tozeroy",
             "fillcolor": "rgba(47,111,222,0.12)",
             "text": [f"{p['op']}<br>layer {p.get('layer') or '(none)'}" for p in timeline],
             "hovertemplate": "%{text}<br>live %{y:,} B<extra></extra>"}]
    if curve:
        data.append(_aligned_estimate(curve, timeline))
    live = (memory or {}).get("live_at_peak") or []
    tensors = "<br>".join(f"{t['tensor']} ({charts.binary_bytes(t['bytes'])})" for t in live[:8])
    data.append({"type": "scatter", "mode": "markers+text", "x": [peak], "y": [values[peak]],
                 "name": "measured peak", "text": [f"peak {charts.binary_bytes(values[peak])}"],
                 "textposition": "top center", "marker": {"color": charts.FLAGGED, "size": 11, "symbol": "diamond"},
                 "customdata": [f"{timeline[peak]['op']}<br>live at the peak:<br>{tensors}"],
                 "hovertemplate": "%{customdata}<extra>peak %{y:,} B</extra>"})
    spec = charts.layout("", height=430, xaxis=charts.axis("allocation step (ops in execution order)"),
                         yaxis=charts.bytes_axis("in-step live bytes (weights and fed input excluded)",
                                                 max(values + [value for _, value in curve or []])))
    caption = ("The running sum of the traced step's allocation records, one point per op (its highest value), "
               "with the peak marked (hover it for the tensors live there); the dashed line is the formula "
               "estimate's live activations + workspace, layer by layer, placed at each layer's first op.")
    return [Chart(charts.figure(data, spec), caption, height=430)]


def _why_no_timeline(memory: dict[str, Any] | None) -> str:
    if memory is None:
        return "this report has no memory record (memory was not measured)"
    if memory.get("missing"):
        return f"memory was not measured: {memory['missing']}"
    if memory.get("measured_peak_bytes") is not None:
        return "this report predates the live-bytes timeline (only the peak and the tensors live at it were kept)"
    return "the traced step logged no allocation records"


def _aligned_estimate(curve: list[tuple[str, int]], timeline: list[dict[str, Any]]) -> dict[str, Any]:
    first_step: dict[str, int] = {}
    for index, point in enumerate(timeline):
        if point.get("layer") is not None:
            first_step.setdefault(point["layer"], index)
    placed = sorted((first_step[name], value, name) for name, value in curve if name in first_step)
    return {"type": "scatter", "mode": "lines+markers", "x": [x for x, _, _ in placed],
            "y": [value for _, value, _ in placed], "name": "formula estimate (per layer)",
            "line": {"color": charts.colour(1), "dash": "dash", "shape": "hv"}, "marker": {"size": 4},
            "text": [name for _, _, name in placed], "hovertemplate": "%{text}<br>estimate %{y:,} B<extra></extra>"}


def _estimate_only(curve: list[tuple[str, int]]) -> Chart:
    data = [{"type": "scatter", "mode": "lines+markers", "x": [name for name, _ in curve],
             "y": [value for _, value in curve], "name": "formula estimate",
             "line": {"color": charts.colour(1), "shape": "hv"},
             "hovertemplate": "%{x}<br>estimate %{y:,} B<extra></extra>"}]
    spec = charts.layout("", height=380, xaxis=charts.axis("layer (execution order)", tickangle=-60),
                         yaxis=charts.bytes_axis("estimated live bytes", max(value for _, value in curve)))
    return Chart(charts.figure(data, spec), "The formula estimate's live activations + workspace per layer.", 380)


def live_at_peak_table(memory: dict[str, Any] | None) -> list[Table]:
    """The tensors live at the measured peak, largest first."""
    live = (memory or {}).get("live_at_peak") or []
    if not live:
        return []
    columns = [Column("tensor", "Tensor", format="text"), Column("op", "Op", format="text"),
               Column("layer", "Layer", format="text"), Column("bytes", "Size", "bytes", format="bytes")]
    rows = [{"id": f"{t['tensor']}#{i}", **t} for i, t in enumerate(live)]
    return [Table(columns, rows, f"The {len(rows)} largest tensors live at the measured peak "
                                 f"(op {memory.get('peak_op')}, layer {memory.get('peak_layer')}).", filterable=False)]


def terms(memory: dict[str, Any] | None) -> list[Chart | Missing]:
    """Measured and estimated peak memory, each split into its terms (stacked bars)."""
    if memory is None:
        return [Missing("Peak memory by term", "this report has no memory record")]
    sources = {"measured": memory.get("measured_terms") or {}, "formula estimate": memory.get("estimate_terms") or {}}
    sources = {name: values for name, values in sources.items() if values}
    if not sources:
        return [Missing("Peak memory by term", memory.get("missing") or "neither a measurement nor an estimate")]
    return [_stacked(sources, "Peak memory (weights + input + in-step peak) split into terms; TensorFlow's static "
                              "estimate (Grappler) is "
                     + charts.binary_bytes(memory.get("tf_estimated_peak_bytes")) + ".")]


def ledger(report: dict[str, Any]) -> list[Chart | Missing]:
    """A training step's memory ledger as stacked bars, estimated and (where records tell) measured."""
    if report.get("mode") != "train":
        return []
    raw = (report.get("memory") or {}).get("ledger")
    sources = ledger_sources(raw)
    if not sources:
        return [Missing("Training memory ledger", "this training report has no memory ledger")]
    total = raw.get("total_measured_bytes") if isinstance(raw, dict) else None
    measured = f" The measured peak of the step: {charts.binary_bytes(total)}." if total else ""
    return [_stacked(sources, "The training step's memory: weights, gradients, optimizer slots, saved activations, "
                              "temporaries, input and labels; measured where the allocation records tell." + measured)]


def ledger_sources(raw: Any) -> dict[str, dict[str, float]]:
    """{source: {term: bytes}} from a ledger given as ``Ledger.as_dict()`` ({"lines": [{"term",
    "estimated_bytes", "measured_bytes", "note"}]}), {term: bytes}, {term: {source: bytes}},
    {source: {term: bytes}} or [{"term", source...}]."""
    if not raw:
        return {}
    if isinstance(raw, dict) and isinstance(raw.get("lines"), list):  # Ledger.as_dict()
        raw = raw["lines"]
    if isinstance(raw, list):
        raw = {entry.get("term") or entry.get("name"): {k.removesuffix("_bytes"): v for k, v in entry.items()
                                                        if k not in ("term", "name", "note")}
               for entry in raw if isinstance(entry, dict)}
    if not isinstance(raw, dict):
        return {}
    if all(isinstance(v, (int, float)) or v is None for v in raw.values()):
        return {"estimated": {k: v for k, v in raw.items() if v is not None}}
    inner_keys = {key for value in raw.values() if isinstance(value, dict) for key in value}
    if inner_keys & {"estimated", "measured", "estimate"}:
        found: dict[str, dict[str, float]] = {}
        for term, value in raw.items():
            for source, number in (value or {}).items() if isinstance(value, dict) else ():
                if isinstance(number, (int, float)):
                    found.setdefault(source, {})[term] = number
        return found
    return {source: {k: v for k, v in value.items() if isinstance(v, (int, float))}
            for source, value in raw.items() if isinstance(value, dict)}


def _stacked(sources: dict[str, dict[str, float]], caption: str) -> Chart:
    names = list(sources)
    order = [t for t in LEDGER_ORDER if any(t in v for v in sources.values())]
    order += [t for v in sources.values() for t in v if t not in order]
    order = list(dict.fromkeys(order))
    data = [{"type": "bar", "orientation": "h", "y": names, "x": [sources[s].get(term, 0) for s in names],
             "name": term.replace("_", " "), "marker": {"color": charts.colour(i)},
             "hovertemplate": "%{y}: " + term.replace("_", " ") + " %{x:,} B<extra></extra>"}
            for i, term in enumerate(order)]
    spec = charts.layout("", height=150 + 50 * len(names), barmode="stack",
                         xaxis=charts.bytes_axis("bytes", max(sum(v.values()) for v in sources.values())),
                         yaxis=charts.axis(""),
                         legend={"orientation": "h", "y": -0.45})
    return Chart(charts.figure(data, spec), caption, height=spec["height"])
