"""The sweep's figures as interactive plotly charts: the same figures as plots.py, hover naming each configuration."""
from __future__ import annotations

from typing import Any

import pandas as pd

from tfprofscale.report.html import charts
from tfprofscale.report.html.page import Chart
from tfprofscale.sweep.memory_plot import ESTIMATES
from tfprofscale.sweep.plots import (
    CORRELATION_METRICS,
    SCALING_METRICS,
    TIME_COLUMN,
    LayerTypeFit,
    _numeric,
    _parameter_label,
    scaling_slice,
)

PANEL_DOMAINS = (([0, 0.45], [0.6, 0.96]), ([0.55, 1], [0.6, 0.96]), ([0, 0.45], [0, 0.36]), ([0.55, 1], [0, 0.36]))


def scaling_chart(frame: pd.DataFrame, name: str, swept: list[str]) -> Chart:
    """Time (p10-p90 bars), peak memory, graph FLOPs and parameters against ``name``, one line per series value."""
    series, fixed, subset = scaling_slice(frame, name, swept)
    groups = list(subset.groupby(series, sort=False)) if series else [(None, subset)]
    data, spec = [], charts.layout("", height=700, legend={"title": {"text": series or ""}, "orientation": "v",
                                                            "x": 1.01, "y": 1}, margin={"l": 70, "r": 20, "t": 20,
                                                                                        "b": 50})
    categorical = not _numeric(list(dict.fromkeys(frame[name])))
    for panel, ((column, title, label, unit), (x_domain, y_domain)) in enumerate(zip(SCALING_METRICS, PANEL_DOMAINS)):
        suffix = "" if panel == 0 else str(panel + 1)
        for index, (value, group) in enumerate(groups):
            data.append(_series_trace(group, name, column, panel, suffix, index,
                                      "measured" if series is None else f"{series}={value}"))
        log_x = not categorical and charts.spans_decades(frame[name])
        values = pd.to_numeric(subset[column], errors="coerce")
        ticks = {} if categorical else {"tickmode": "array", "tickvals": sorted(set(frame[name]))}
        spec[f"xaxis{suffix}"] = charts.axis(_parameter_label(name), log=log_x, domain=x_domain,
                                             anchor=f"y{suffix}", type="category" if categorical else
                                             ("log" if log_x else "linear"), **ticks)
        spec[f"yaxis{suffix}"] = charts.axis(label, log=charts.spans_decades(values), domain=y_domain,
                                             anchor=f"x{suffix}", exponentformat="SI", ticksuffix=unit or "")
        spec.setdefault("annotations", []).append(
            {"text": f"<b>{title}</b>", "xref": "paper", "yref": "paper", "x": sum(x_domain) / 2,
             "y": y_domain[1] + 0.01, "yanchor": "bottom", "showarrow": False, "xanchor": "center"})
    fixed_text = ", ".join(f"{k} = {v}" for k, v in fixed.items())
    caption = (f"Median step time (bars: p10 to p90 of the timed steps), measured peak memory, graph FLOPs and "
               f"parameters against {name}" + (f", one line per value of {series} (click the legend to hide or "
                                               f"show a line)" if series else "")
               + (f", with {fixed_text}" if fixed_text else "") + ". Hover a point for its configurations.")
    return Chart(charts.figure(data, spec), caption, height=700)


def _series_trace(group: pd.DataFrame, name: str, column: str, panel: int, suffix: str, index: int,
                  label: str) -> dict[str, Any]:
    points = group.groupby(name, sort=True)
    xs = list(points.groups)
    ys = [pd.to_numeric(points.get_group(x)[column], errors="coerce").median() for x in xs]
    ids = ["<br>".join(points.get_group(x)["config_id"].astype(str)) for x in xs]
    trace: dict[str, Any] = {"type": "scatter", "mode": "lines+markers", "x": xs, "y": ys, "name": label,
                             "legendgroup": label, "showlegend": panel == 0, "xaxis": f"x{suffix}",
                             "yaxis": f"y{suffix}", "marker": {"color": charts.colour(index)},
                             "line": {"color": charts.colour(index)}, "customdata": ids,
                             "hovertemplate": "%{customdata}<br>" + name + "=%{x}: %{y:.4s}<extra>" + label
                                              + "</extra>"}
    if column == TIME_COLUMN and {"step_time_p10_ms", "step_time_p90_ms"} <= set(group.columns):
        low = [pd.to_numeric(points.get_group(x)["step_time_p10_ms"], errors="coerce").median() for x in xs]
        high = [pd.to_numeric(points.get_group(x)["step_time_p90_ms"], errors="coerce").median() for x in xs]
        trace["error_y"] = {"type": "data", "symmetric": False, "array": [max(0.0, h - y) for h, y in zip(high, ys)],
                            "arrayminus": [max(0.0, y - lo) for lo, y in zip(low, ys)], "thickness": 1.2, "width": 4}
    return trace


def boxplot_chart(frame: pd.DataFrame, swept: list[str]) -> Chart:
    """Each configuration's median step time grouped by each parameter's value (box + every point)."""
    data, spec = [], charts.layout("", height=420, showlegend=False, boxmode="group")
    width = 1 / len(swept)
    for panel, name in enumerate(swept):
        suffix = "" if panel == 0 else str(panel + 1)
        data.append({"type": "box", "x": [str(v) for v in frame[name]], "y": frame[TIME_COLUMN].astype(float).tolist(),
                     "boxpoints": "all", "jitter": 0.4, "pointpos": 0, "name": name, "xaxis": f"x{suffix}",
                     "yaxis": f"y{suffix}", "text": frame["config_id"].astype(str).tolist(),
                     "marker": {"color": charts.colour(panel), "size": 5},
                     "hovertemplate": "%{text}<br>%{y:.3f} ms<extra></extra>"})
        spec[f"xaxis{suffix}"] = charts.axis(_parameter_label(name), domain=[panel * width + 0.03,
                                                                              (panel + 1) * width - 0.03],
                                             anchor=f"y{suffix}", type="category")
        spec[f"yaxis{suffix}"] = charts.axis("median step time (ms)" if panel == 0 else "", anchor=f"x{suffix}",
                                             log=charts.spans_decades(frame[TIME_COLUMN]))
    caption = ("Each configuration's median step time grouped by each parameter's value: the box spans the other "
               "parameters' quartiles, the points are the configurations (hover for their ids).")
    return Chart(charts.figure(data, spec), caption, height=420)


def correlation_chart(frame: pd.DataFrame, swept: list[str]) -> Chart | None:
    """Pearson correlation of the numeric swept parameters and the measured metrics."""
    candidates = [name for name in swept if _numeric(frame[name])] + list(CORRELATION_METRICS)
    numbers = frame[[c for c in candidates if c in frame]].apply(pd.to_numeric, errors="coerce")
    numbers = numbers[[c for c in numbers if numbers[c].nunique(dropna=True) > 1]]
    if numbers.shape[1] < 2:
        return None
    matrix = numbers.corr(method="pearson").round(3)
    labels = list(matrix.columns)
    data = [{"type": "heatmap", "z": matrix.to_numpy().tolist(), "x": labels, "y": labels, "zmin": -1, "zmax": 1,
             "colorscale": "RdBu", "reversescale": True, "colorbar": {"title": {"text": "Pearson r"}},
             "text": [[f"{v:.2f}" for v in row] for row in matrix.to_numpy()], "texttemplate": "%{text}",
             "hovertemplate": "%{y} vs %{x}: r = %{z:.3f}<extra></extra>"}]
    spec = charts.layout("", height=120 + 48 * len(labels), xaxis=charts.axis("", tickangle=-35),
                         yaxis=charts.axis("", autorange="reversed"))
    return Chart(charts.figure(data, spec), f"Pearson correlation over {len(numbers)} successful configurations; "
                                            "1 and -1 are perfectly linear relations, 0 none.", spec["height"])


def layer_fit_chart(fits: list[LayerTypeFit]) -> Chart:
    """Measured layer time against FLOPs per layer type, with each type's least-squares line (toggle in legend)."""
    data = []
    for index, fit in enumerate(fits):
        rate = "no positive slope" if fit.gflops_per_s is None else f"{fit.gflops_per_s:.1f} GFLOP/s"
        r2 = "n/a" if fit.fit.r2 is None else f"{fit.fit.r2:.3f}"
        data.append({"type": "scatter", "mode": "markers", "x": fit.flops, "y": fit.time_us, "name": fit.layer_type,
                     "legendgroup": fit.layer_type, "marker": {"color": charts.colour(index), "size": 6,
                                                                "opacity": 0.7},
                     "hovertemplate": fit.layer_type + ": %{x:.4s} FLOPs, %{y:.1f} µs<extra></extra>"})
        low, high = min(fit.flops), max(fit.flops)
        xs = [low + (high - low) * i / 40 for i in range(41)]
        ys = [float(fit.fit.predict(x)) for x in xs]
        data.append({"type": "scatter", "mode": "lines", "x": xs, "y": ys, "legendgroup": fit.layer_type,
                     "name": f"{fit.layer_type} fit: {rate}, R² {r2}", "line": {"color": charts.colour(index)},
                     "hovertemplate": f"{fit.layer_type} line: {rate}, intercept {fit.fit.intercept:.0f} µs, "
                                      f"R² {r2}<extra></extra>"})
    flops = [x for fit in fits for x in fit.flops]
    times = [y for fit in fits for y in fit.time_us]
    spec = charts.layout("", height=520, legend={"orientation": "v", "x": 1.01, "y": 1},
                         xaxis=charts.axis("FLOPs per step (TensorFlow graph count)", log=charts.spans_decades(flops),
                                           exponentformat="SI"),
                         yaxis=charts.axis("measured time per step (µs)", log=charts.spans_decades(times)))
    caption = ("Every layer of every configuration, measured time against FLOPs, one colour per layer type, with "
               "the least-squares line time = slope x FLOPs + intercept (1/slope: the marginal GFLOP/s).")
    return Chart(charts.figure(data, spec), caption, height=520)


def memory_chart(frame: pd.DataFrame) -> Chart | None:
    """Each configuration's estimated peaks against the measured one."""
    numbers = frame.reindex(columns=["config_id", "peak_bytes", *(c for c, _, _ in ESTIMATES)])
    numbers = numbers[pd.to_numeric(numbers["peak_bytes"], errors="coerce") > 0]
    if numbers.empty or numbers["estimated_peak_bytes"].isna().all():
        return None
    measured = pd.to_numeric(numbers["peak_bytes"], errors="coerce")
    data = []
    values = list(measured)
    for index, (column, label, marker) in enumerate(ESTIMATES):
        present = numbers[numbers[column].notna()]
        estimate = pd.to_numeric(present[column], errors="coerce")
        values += list(estimate)
        data.append({"type": "scatter", "mode": "markers", "x": pd.to_numeric(present["peak_bytes"]).tolist(),
                     "y": estimate.tolist(), "name": label, "text": present["config_id"].astype(str).tolist(),
                     "marker": {"symbol": "circle" if marker == "o" else "x", "size": 8, "color": charts.colour(index)},
                     "hovertemplate": "%{text}<br>measured %{x:.4s}B, estimated %{y:.4s}B<extra></extra>"})
    positive = [v for v in values if v and v > 0]
    log = charts.spans_decades(positive)
    data.insert(0, charts.identity_line(min(positive), max(positive)))
    spec = charts.layout("", height=480, xaxis=charts.axis("measured peak (bytes)", log=log, exponentformat="SI"),
                         yaxis=charts.axis("estimated peak (bytes)", log=log, exponentformat="SI"))
    return Chart(charts.figure(data, spec), "Estimated peak memory against the measured one (weights + input + "
                                            "the in-step peak) per configuration; on the dashed line they agree.", 480)
