"""The sweep's memory figure: each configuration's estimates against its measured peak."""
from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from tfprofscale.report.units import bytes_formatter
from tfprofscale.sweep.figures import NamedFigure

ESTIMATES = (("estimated_peak_bytes", "formula estimate (parameters + input + live activations + workspace)", "o"),
             ("tf_estimated_peak_bytes", "TensorFlow's static estimate (Grappler)", "x"))


def memory_figure(frame: pd.DataFrame, prefix: str = "") -> Any:
    """A NamedFigure of estimated against measured peak bytes; None when no configuration has both."""
    numbers = frame.reindex(columns=["peak_bytes", *(column for column, _, _ in ESTIMATES)])
    numbers = numbers.apply(pd.to_numeric, errors="coerce").dropna(subset=["peak_bytes"])
    numbers = numbers[numbers["peak_bytes"] > 0]
    if numbers.empty or numbers["estimated_peak_bytes"].isna().all():
        return None
    figure = Figure(figsize=(7, 6), layout="constrained")
    ax = figure.subplots()
    for column, label, marker in ESTIMATES:
        present = numbers.dropna(subset=[column])
        ax.scatter(present["peak_bytes"], present[column], marker=marker, s=24, label=label)
    values = numbers.stack()
    low, high = values[values > 0].min(), values.max()
    ax.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--", label="estimate = measured")
    if high / low > 20:
        ax.set(xscale="log", yscale="log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(bytes_formatter())
    ax.set(xlabel="measured peak: weights + input + in-step transient", ylabel="estimated peak")
    ax.legend(fontsize=8)
    figure.suptitle(f"{prefix}Memory: estimates against the measured peak")
    description = (f"Estimated peak memory against the measured one (weights + input + the in-step peak of "
                   f"the allocation records) for {len(numbers)} configurations; on the dashed line they agree.")
    return NamedFigure("memory_estimate_vs_measured", figure, description)
