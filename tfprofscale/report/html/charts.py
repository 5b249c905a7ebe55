"""Plotly figure specs (plain dicts: plotly.js draws them) shared by the pages: layouts, axes, colours, hover text."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

COLOURS = ("#2f6fde", "#e8833a", "#2ca25f", "#c23b5e", "#7b61c9", "#8c6d31", "#17a2b8", "#7f7f7f",
           "#bcbd22", "#e377c2")
FLAGGED = "#d62728"
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, DejaVu Sans, sans-serif", "size": 12}


def layout(title: str = "", **extra: Any) -> dict[str, Any]:
    """A plain white layout with a title, compact margins and hover labels that keep long names."""
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        "font": FONT, "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "margin": {"l": 70, "r": 20, "t": 40 if title else 16, "b": 60},
        "hoverlabel": {"namelength": -1, "align": "left"},
        "legend": {"orientation": "h", "y": -0.18},
    }
    base.update(extra)
    return base


def axis(title: str, log: bool = False, **extra: Any) -> dict[str, Any]:
    """An axis with its title (name and unit), light grid, log scale on request."""
    found: dict[str, Any] = {"title": {"text": title}, "gridcolor": "#e6ebf1", "zerolinecolor": "#cbd2d9",
                             "automargin": True}
    if log:
        found.update(type="log", dtick=1)  # a label per power of ten, not plotly's 2 and 5 between them
    found.update(extra)
    return found


def figure(data: list[dict[str, Any]], layout_spec: dict[str, Any]) -> dict[str, Any]:
    """A figure dict as plotly.js takes it."""
    return {"data": data, "layout": layout_spec}


def colour(index: int) -> str:
    """The ``index``-th series colour."""
    return COLOURS[index % len(COLOURS)]


def spans_decades(values: Iterable[float | None], ratio: float = 20.0) -> bool:
    """True when the positive values span more than ``ratio`` (then a log axis reads better)."""
    positive = [float(v) for v in values if v is not None and float(v) > 0]
    return len(positive) > 1 and max(positive) / min(positive) >= ratio


def si(value: float | None, unit: str = "") -> str:
    """``1234567`` as ``1.23 M``+unit; None as ``unsupported`` (the printed table's word)."""
    if value is None:
        return "unsupported"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}".strip() if float(value).is_integer() else f"{value:.2f} {unit}".strip()


def binary_bytes(value: float | None) -> str:
    """Bytes as B / KiB / MiB / GiB; None as ``unsupported``."""
    if value is None:
        return "unsupported"
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{int(value)} B"


NICE_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


def bytes_axis(title: str, top: float, ticks: int = 6, **extra: Any) -> dict[str, Any]:
    """A linear axis of bytes from 0 with ticks at round binary sizes (``2 MiB``), as the page's text writes them.

    Plotly only knows SI prefixes (``2M`` = 2,000,000), which would put ``MB`` on
    the axis beside ``MiB`` in the labels: the ticks are given instead.
    """
    top = max(float(top or 0), 1.0)
    scale, unit = next(((s, u) for s, u in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")) if top >= s), (1, "B"))
    size = top / scale  # under 1024 but in GiB
    step = next((n for n in NICE_STEPS if size / n <= ticks), NICE_STEPS[-1] * math.ceil(size / NICE_STEPS[-1] / ticks))
    values = [k * step * scale for k in range(int(top / (step * scale)) + 2)]
    return axis(title, tickmode="array", tickvals=values, ticktext=[f"{k * step:g} {unit}" for k in range(len(values))],
                rangemode="tozero", **extra)


def identity_line(low: float, high: float, name: str = "estimate = measured") -> dict[str, Any]:
    """The dashed y = x line from ``low`` to ``high``."""
    return {"type": "scatter", "mode": "lines", "x": [low, high], "y": [low, high], "name": name,
            "line": {"color": "#7f7f7f", "dash": "dash", "width": 1}, "hoverinfo": "skip"}


def short(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"
