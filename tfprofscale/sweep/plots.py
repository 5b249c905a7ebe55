"""The figures of a sweep (matplotlib, Agg canvas, PNG).

From the rows of results.csv and layers.csv: document 000's scaling lines
(time, peak memory, FLOPs and parameters against each swept parameter),
document 001's boxplots and Pearson correlation heatmap, and document 002's
per-layer-type fit of measured time against FLOPs. Figures are built as
``matplotlib.figure.Figure`` objects (no pyplot state), then saved.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter

from tfprofscale.audit.fitting import LinearFit, fit_line
from tfprofscale.output import atomic_path
from tfprofscale.report.units import bytes_formatter
from tfprofscale.sweep.figures import NamedFigure, SavedFigure
from tfprofscale.sweep.memory_plot import memory_figure

TIME_COLUMN = "step_time_median_ms"
SCALING_METRICS = (  # column, panel title, axis label with unit, tick formatter unit
    (TIME_COLUMN, "Inference time", "median step time (ms)", None),
    ("peak_bytes", "Peak memory", "weights + input + in-step peak", "B"),
    ("graph_flops", "FLOPs", "FLOPs per step (TensorFlow graph)", ""),
    ("params", "Parameters", "parameters (count)", ""),
)
CORRELATION_METRICS = (TIME_COLUMN, "peak_bytes", "graph_flops", "params", "activation_bytes", "accuracy")
DECADES_RATIO = 20.0


@dataclass(frozen=True)
class LayerTypeFit:
    """Measured layer time (µs) against FLOPs for one layer type: the line and the marginal rate."""

    layer_type: str
    fit: LinearFit
    gflops_per_s: float | None
    flops: list[float]
    time_us: list[float]

    @property
    def median_relative_error(self) -> float:
        """The median over the layers of |line - measured| / measured: what the fit (on relative errors) minimises."""
        measured = np.asarray(self.time_us, dtype=float)
        return float(np.median(np.abs(self.fit.predict(self.flops) - measured) / measured))


def sweep_figures(results: list[dict[str, Any]], layers: list[dict[str, Any]], parameters: list[str],
                  model: str = "") -> list[NamedFigure]:
    """Every figure the successful configurations allow (none if no configuration succeeded)."""
    frame = pd.DataFrame(results)
    if frame.empty or "status" not in frame:
        return []
    frame = frame[frame["status"] == "ok"].reset_index(drop=True)
    swept = swept_parameters(frame, parameters)
    prefix = f"{model}: " if model else ""
    figures = [_scaling_figure(frame, name, swept, prefix) for name in swept]
    if swept:
        figures.append(_boxplot_figure(frame, swept, prefix))
    correlation = _correlation_figure(frame, swept, prefix)
    fits = layer_time_fits(layers)
    memory = memory_figure(frame, prefix)
    return (figures + ([correlation] if correlation else []) + ([_layer_fit_figure(fits, prefix)] if fits else [])
            + ([memory] if memory else []))


def save_figures(figures: list[NamedFigure], plots_dir: Path) -> list[SavedFigure]:
    """Write each figure to ``plots_dir/<name>.png``."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    for named in figures:
        path = plots_dir / f"{named.name}.png"
        with atomic_path(path) as temporary:
            FigureCanvasAgg(named.figure).print_png(str(temporary))
        saved.append(SavedFigure(path, named.figure.get_suptitle(), named.description))
    return saved


def swept_parameters(frame: pd.DataFrame, parameters: list[str]) -> list[str]:
    """The parameters that take more than one value among the rows."""
    return [name for name in parameters if name in frame and frame[name].nunique(dropna=True) > 1]


def layer_time_fits(layers: list[dict[str, Any]]) -> list[LayerTypeFit]:
    """A line time_us = slope * graph_flops + intercept per layer type with >= 2 distinct FLOPs.

    Fitted on relative errors, as the audit's latency model is: every layer
    counts the same, so the largest layers do not set the intercept above the
    small ones. Layers without a measured time or without counted FLOPs are left out.
    Types come in order of total measured time, largest first.
    """
    frame = pd.DataFrame(layers)
    if frame.empty or "time_us" not in frame:
        return []
    frame = frame.assign(time_us=pd.to_numeric(frame["time_us"]), graph_flops=pd.to_numeric(frame["graph_flops"]))
    frame = frame[(frame["graph_flops"] > 0) & (frame["time_us"] > 0)]
    fits = []
    for layer_type, group in frame.groupby("type"):
        if group["graph_flops"].nunique() < 2:
            continue
        fit = fit_line(group["graph_flops"], group["time_us"], relative=True)
        rate = 1e-3 / fit.slope if fit.slope > 0 else None  # µs per FLOP -> GFLOP/s
        fits.append(LayerTypeFit(str(layer_type), fit, rate, list(group["graph_flops"]), list(group["time_us"])))
    return sorted(fits, key=lambda f: -sum(f.time_us))


def scaling_slice(frame: pd.DataFrame, name: str, swept: list[str]) -> tuple[str | None, dict[str, Any], pd.DataFrame]:
    """What a scaling plot of ``name`` shows: the parameter drawn as one line per value (None: one line), the
    other swept parameters held at their first value, and the rows that match them."""
    others = [other for other in swept if other != name]
    series = others[swept.index(name) % len(others)] if others else None
    fixed = {other: frame[other].iloc[0] for other in others if other != series}
    subset = frame
    for other, value in fixed.items():
        subset = subset[subset[other] == value]
    return series, fixed, subset


def _scaling_figure(frame: pd.DataFrame, name: str, swept: list[str], prefix: str) -> NamedFigure:
    series, fixed, subset = scaling_slice(frame, name, swept)
    order = list(dict.fromkeys(frame[name]))
    figure = Figure(figsize=(12, 8.5), layout="constrained")
    axes = figure.subplots(2, 2).ravel()
    for ax, (column, title, label, unit) in zip(axes, SCALING_METRICS):
        for series_value, group in (subset.groupby(series, sort=False) if series else [(None, subset)]):
            line = group.groupby(name, sort=False)[column].median()
            bars = _p10_p90(group, name) if column == TIME_COLUMN else None
            _plot_line(ax, line, order, str(series_value) if series else "measured", bars)
        _axis(ax, title, _parameter_label(name), label, unit, frame[name])
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", title=series or "")
    fixed_text = ", ".join(f"{k} = {v}" for k, v in fixed.items())
    figure.suptitle(f"{prefix}cost against {name}" + (f" (fixed: {fixed_text})" if fixed_text else ""))
    description = (f"Median step time (bars: p10 to p90 of the timed rounds), measured peak memory, graph FLOPs "
                   f"and parameter count against {name}"
                   + (f", one line per value of {series}" if series else "")
                   + (f", with {fixed_text}" if fixed_text else "") + " (document 000's figures).")
    return NamedFigure(f"scaling_{name}", figure, description)


def _p10_p90(group: pd.DataFrame, name: str) -> pd.DataFrame | None:
    """Per value of ``name``: the median of the configurations' p10 and p90 step times (None if not recorded)."""
    columns = ["step_time_p10_ms", "step_time_p90_ms"]
    if not all(column in group for column in columns) or group[columns].isna().any().any():
        return None
    return group.groupby(name, sort=False)[columns].median()


def _plot_line(ax: Any, line: pd.Series, order: list[Any], label: str, bars: pd.DataFrame | None = None) -> None:
    """``line`` (y by parameter value) at numeric x, or at the values' places in ``order``; ``bars``: low/high."""
    if _numeric(order):
        line = line.sort_index()
        positions = np.asarray(line.index, dtype=float)
    else:
        line = line.reindex([value for value in order if value in line.index])
        positions = np.asarray([order.index(value) for value in line.index], dtype=float)
    y = line.to_numpy(dtype=float)
    if bars is None:
        ax.plot(positions, y, marker="o", label=label)
        return
    low, high = (bars.reindex(line.index)[column].to_numpy(dtype=float) for column in bars.columns)
    ax.errorbar(positions, y, yerr=np.clip([y - low, high - y], 0, None), marker="o", capsize=3, label=label)


def _numeric(values: Any) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)


def _axis(ax: Any, title: str, xlabel: str, ylabel: str, unit: str | None, x_values: pd.Series) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    distinct = list(dict.fromkeys(x_values))
    if _numeric(distinct):
        if _spans_decades(distinct):
            ax.set_xscale("log")
        ax.set_xticks(sorted(float(v) for v in distinct), [str(v) for v in sorted(distinct)])
        ax.minorticks_off()
    else:
        ax.set_xticks(range(len(distinct)), [str(v) for v in distinct])
    y_values = [float(y) for line in ax.get_lines() for y in line.get_ydata() if math.isfinite(float(y))]
    if _spans_decades(y_values):
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 1.1 * max(y_values) if y_values and max(y_values) > 0 else 1)
    if unit == "B":  # bytes in binary units, as the table prints them, on linear and log axes
        ax.yaxis.set_major_formatter(bytes_formatter())
    elif unit is not None and ax.get_yscale() == "linear":
        ax.yaxis.set_major_formatter(EngFormatter(unit=unit))


def _spans_decades(values: Any) -> bool:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v)) and float(v) > 0]
    return len(finite) > 1 and max(finite) / min(finite) >= DECADES_RATIO


def _parameter_label(name: str) -> str:
    return "batch size (examples per step)" if name == "batch_size" else f"{name} (model parameter)"


def _boxplot_figure(frame: pd.DataFrame, swept: list[str], prefix: str) -> NamedFigure:
    columns = min(3, len(swept))
    rows = math.ceil(len(swept) / columns)
    figure = Figure(figsize=(5.5 * columns, 4.5 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    generator = np.random.default_rng(0)
    times = frame[TIME_COLUMN].astype(float)
    statistic = "median"
    for ax, name in zip(axes, swept):
        values = list(dict.fromkeys(frame[name]))
        groups = [times[frame[name] == value].to_numpy() for value in values]
        ax.boxplot(groups, positions=range(len(values)), widths=0.5, showfliers=False,
                   patch_artist=True, boxprops={"facecolor": "lightsteelblue"})
        for position, group in enumerate(groups):
            jitter = generator.uniform(-0.12, 0.12, size=len(group))
            ax.scatter(position + jitter, group, s=14, color="dimgray", alpha=0.8, zorder=3)
        ax.set_xticks(range(len(values)), [str(v) for v in values])
        ax.set_title(f"by {name}")
        ax.set_xlabel(_parameter_label(name))
        ax.set_ylabel(f"{statistic} step time (ms)")
        ax.grid(True, axis="y", alpha=0.3)
        if _spans_decades(times):
            ax.set_yscale("log")
    for ax in axes[len(swept):]:
        ax.set_visible(False)
    legend = [Patch(facecolor="lightsteelblue", edgecolor="black", label="quartiles, whiskers at 1.5 IQR"),
              Line2D([], [], color="tab:orange", label="median"),
              Line2D([], [], marker="o", linestyle="", color="dimgray", label="one configuration")]
    figure.legend(handles=legend, loc="outside lower center", ncols=3)
    figure.suptitle(f"{prefix}{statistic} step time for each value of each parameter")
    description = (f"The {statistic} step time (ms) of every configuration grouped by each parameter's value "
                   "(document 001's boxplots, with each configuration's median step time instead of its mean, "
                   "which one slow step can move): the box is the spread over the other parameters, its line "
                   "their median, the points are the configurations.")
    return NamedFigure("boxplots", figure, description)


def _correlation_figure(frame: pd.DataFrame, swept: list[str], prefix: str) -> NamedFigure | None:
    candidates = [name for name in swept if _numeric(frame[name])] + list(CORRELATION_METRICS)
    numbers = frame[[c for c in candidates if c in frame]].apply(pd.to_numeric, errors="coerce")
    numbers = numbers[[c for c in numbers if numbers[c].nunique(dropna=True) > 1]]
    if numbers.shape[1] < 2:
        return None
    matrix = numbers.corr(method="pearson")
    size = 1.1 * len(matrix) + 3
    figure = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(matrix.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    for (row, column), value in np.ndenumerate(matrix.to_numpy()):
        ax.text(column, row, "" if np.isnan(value) else f"{0.0 if abs(value) < 0.005 else value:.2f}",
                ha="center", va="center",
                color="white" if abs(value) > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(matrix)), matrix.columns, rotation=40, ha="right")
    ax.set_yticks(range(len(matrix)), matrix.index)
    ax.set_xlabel("parameter or metric")
    ax.set_ylabel("parameter or metric")
    ax.set_title(f"over {len(numbers)} successful configurations")
    colorbar = figure.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label("Pearson correlation r")
    figure.suptitle(f"{prefix}Pearson correlation of parameters and metrics")
    description = (f"Pearson correlation between the swept parameters and the measured metrics over the "
                   f"{len(numbers)} successful configurations (document 001's heatmap); 1 and -1 are "
                   f"perfectly linear relations, 0 none.")
    return NamedFigure("correlation", figure, description)


def _layer_fit_figure(fits: list[LayerTypeFit], prefix: str) -> NamedFigure:
    columns = min(3, len(fits))
    rows = math.ceil(len(fits) / columns)
    figure = Figure(figsize=(5.5 * columns, 4.6 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax, layer_fit in zip(axes, fits):
        _draw_fit(ax, layer_fit)
    for ax in axes[len(fits):]:
        ax.set_visible(False)
    figure.suptitle(f"{prefix}measured layer time against FLOPs, per layer type (document 002)")
    description = ("Measured time per step of every layer against its FLOPs, one panel per layer type, with the "
                   "line time = slope x FLOPs + intercept fitted on relative errors (every layer counts the same, "
                   "as in the audit's latency model); 1/slope is the marginal rate in GFLOP/s and the median "
                   "relative error how far the line is from a typical layer (document 002's linear model).")
    return NamedFigure("layer_time_vs_flops", figure, description)


def _draw_fit(ax: Any, layer_fit: LayerTypeFit) -> None:
    flops = np.asarray(layer_fit.flops, dtype=float)
    ax.scatter(flops, layer_fit.time_us, s=16, alpha=0.7, label=f"layers (n = {layer_fit.fit.n})")
    log_axes = _spans_decades(flops) and _spans_decades(layer_fit.time_us)
    xs = np.geomspace(flops.min(), flops.max(), 200) if log_axes else np.linspace(flops.min(), flops.max(), 200)
    ys = layer_fit.fit.predict(xs)
    keep = ys > 0 if log_axes else np.ones_like(ys, dtype=bool)
    ax.plot(xs[keep], ys[keep], color="crimson", label=_fit_label(layer_fit))
    if log_axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(min(layer_fit.time_us) / 2, max(layer_fit.time_us) * 2)
    else:
        ax.xaxis.set_major_formatter(EngFormatter())
    ax.set_title(layer_fit.layer_type)
    ax.set_xlabel("FLOPs per step (TensorFlow graph count)")
    ax.set_ylabel("measured time per step (µs)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def _fit_label(layer_fit: LayerTypeFit) -> str:
    error = f"median error {100 * layer_fit.median_relative_error:.1f}%"
    if layer_fit.gflops_per_s is None:
        return f"fit: slope <= 0 (time does not grow with FLOPs), {error}"
    return f"fit: {layer_fit.gflops_per_s:.1f} GFLOP/s, intercept {round(layer_fit.fit.intercept)} µs, {error}"
