"""The audit's figures (matplotlib, Agg backend).

- analytic against graph FLOPs: every layer of every configuration, one
  series per counting convention, on log axes with the line y = x;
- predicted against measured step time on held-out configurations (from
  the latency validation), with the +-10% band and the affine FLOPs baseline;
- the memory estimate against the measured peak, per configuration.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tfprofscale.audit.analysis import Audit
from tfprofscale.audit.validation import LATENCY_MODEL, PREDICTORS
from tfprofscale.output import atomic_path
from tfprofscale.report.units import bytes_formatter

#: The baseline drawn beside the latency model: an affine fit of time on FLOPs.
BASELINE = PREDICTORS[1]

#: Up to this many configurations the memory figure shows bars, beyond it a scatter.
MEMORY_BARS_MAX = 8
#: Configuration ids under the memory bars: at most this many characters a line, this many lines.
TICK_LABEL_WIDTH = 18
TICK_LABEL_LINES = 4
WITHIN = 0.10


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _identity_line(axis: Any, low: float, high: float) -> None:
    axis.plot([low, high], [low, high], color="black", linewidth=0.8, label="y = x")


def plot_flops(audit: Audit, path: str | Path) -> bool:
    """Convention counts against TensorFlow's graph count per layer; False if nothing to plot."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for profile in audit.profiles:
        for layer in profile.flops.layers:
            for count in layer.counts:
                if layer.graph_flops and count.flops:
                    xs, ys = series.setdefault(count.convention, ([], []))
                    xs.append(layer.graph_flops)
                    ys.append(count.flops)
    if not series:
        return False
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 6))
    markers = "os^vDPX*<>"
    for index, (name, (xs, ys)) in enumerate(series.items()):
        axis.scatter(xs, ys, s=22, marker=markers[index % len(markers)], alpha=0.7, label=name)
    values = [v for xs, ys in series.values() for v in xs + ys]
    _identity_line(axis, min(values), max(values))
    axis.set(xscale="log", yscale="log", xlabel="TensorFlow graph FLOPs per layer (tfprof)",
             ylabel="count under the convention", title="Analytic conventions against the graph count")
    axis.legend(fontsize=8)
    _save(figure, path)
    return True


def validation_pairs(validation: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """(split name, pairs of measured/predicted/baseline ms) from a latency ValidationReport."""
    if validation is None:
        return []
    return [(split["name"], split["pairs"]) for split in validation.to_dict().get("splits", []) if split.get("pairs")]


def plot_time(audit: Audit, path: str | Path) -> bool:
    """Held-out predicted against measured step time with the +-10% band; False without a validation."""
    splits = validation_pairs(audit.time.validation)
    if not splits:
        return False
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 6))
    measured_all = [pair["measured_ms"] for _, pairs in splits for pair in pairs]
    low, high = min(measured_all) * 0.8, max(measured_all) * 1.25
    axis.fill_between([low, high], [low * (1 - WITHIN), high * (1 - WITHIN)],
                      [low * (1 + WITHIN), high * (1 + WITHIN)], color="green", alpha=0.15, label="±10%")
    _identity_line(axis, low, high)
    for name, pairs in splits:
        axis.scatter(*_predicted(pairs, LATENCY_MODEL), s=18, label=name)
    first_name, first = splits[0]
    axis.scatter(*_predicted(first, BASELINE), s=14, marker="x", color="grey",
                 label=f"baseline, {BASELINE} ({first_name})")
    axis.set(xscale="log", yscale="log", xlabel="measured step time (ms)", ylabel="predicted step time (ms)",
             title="Latency model on held-out configurations")
    axis.legend(fontsize=7)
    _save(figure, path)
    return True


def _predicted(pairs: list[dict[str, Any]], predictor: str) -> tuple[list[float], list[float]]:
    """(measured ms, predicted ms) of the pairs ``predictor`` predicted (``predicted_ms`` maps predictor to ms)."""
    known = [(p["measured_ms"], p["predicted_ms"][predictor]) for p in pairs
             if p["predicted_ms"].get(predictor) is not None]
    return [float(m) for m, _ in known], [float(g) for _, g in known]


def plot_memory(audit: Audit, path: str | Path) -> bool:
    """Estimate (by term) against the measured peak; False when nothing was measured."""
    measured = [p for p in audit.profiles if p.memory.peak_bytes is not None]
    if not measured:
        return False
    plt = _pyplot()
    bars = len(measured) <= MEMORY_BARS_MAX
    figure, axis = plt.subplots(figsize=(1.2 * len(measured) + 6, 5) if bars else (7, 6))
    (_memory_bars if bars else _memory_scatter)(axis, measured)
    _save(figure, path)
    return True


def _memory_bars(axis: Any, profiles: list[Any]) -> None:
    positions = range(len(profiles))
    mib = 2 ** 20
    estimates = [p.memory.estimate for p in profiles]
    bottom = [0.0] * len(profiles)
    for label, values in (("parameters", [e.terms["parameters"] for e in estimates]),
                          ("input", [e.terms["input"] for e in estimates]),
                          ("live activations at the peak", [e.terms["activations"] for e in estimates]),
                          ("workspace at the peak", [e.workspace_bytes for e in estimates])):
        heights = [v / mib for v in values]
        axis.bar([x - 0.15 for x in positions], heights, 0.3, bottom=bottom, label=f"estimate: {label}")
        bottom = [b + h for b, h in zip(bottom, heights)]
    axis.bar([x + 0.15 for x in positions], [p.memory.peak_bytes / mib for p in profiles], 0.3,
             label="measured peak (weights + input + in-step)")
    axis.set_xticks(list(positions), [tick_label(p.config_id) for p in profiles], fontsize=7)
    axis.set_xlim(-0.6, len(profiles) - 0.4)
    axis.set(ylabel="MiB", title="Memory: estimate against the measured peak")
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _memory_scatter(axis: Any, profiles: list[Any]) -> None:
    peaks = [p.memory.peak_bytes for p in profiles]
    estimates = [p.memory.estimate.total_bytes for p in profiles]
    axis.scatter(peaks, estimates, s=18, label="estimate")
    _identity_line(axis, min(peaks + estimates), max(peaks + estimates))
    axis.set(xscale="log", yscale="log", xlabel="measured peak", ylabel="estimate",
             title="Memory: estimate against the measured peak")
    for scale in (axis.xaxis, axis.yaxis):
        scale.set_major_formatter(bytes_formatter())
    axis.legend(fontsize=8)


def _save(figure: Any, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, bbox_inches="tight")  # labels and the outside legend in full
    plt.close(figure)


def tick_label(config_id: str, width: int = TICK_LABEL_WIDTH, max_lines: int = TICK_LABEL_LINES) -> str:
    """A configuration id on a few short lines (broken after its commas); a longer one ends in an ellipsis."""
    lines: list[str] = []
    for part in config_id.split(","):
        if lines and len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += "," + part
        else:
            lines.append(part if len(part) <= width else part[:width - 1] + "…")
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + ["…"]
    return "\n".join(lines)


FIGURES = (
    ("audit_flops.png", plot_flops, "Analytic counts under each convention against TensorFlow's graph count, "
                                    "per layer (y = x is an exact match)."),
    ("audit_time.png", plot_time, "Predicted against measured step time on held-out configurations, "
                                  "with the ±10% band and the affine (fixed + per FLOP) baseline."),
    ("audit_memory.png", plot_memory, "Memory estimate (parameters + input + peak live activations + "
                                      "workspace) against the measured peak."),
)


def write_figures(audit: Audit, folder: str | Path) -> dict[str, Path]:
    """Draw every figure there is data for into ``folder``; {caption: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    try:
        for name, draw, caption in FIGURES:
            if draw(audit, folder / name):
                written[caption] = folder / name
    except BaseException:  # all or nothing: no figure of a half-drawn audit stays beside the sweep's own
        for path in written.values():
            path.unlink(missing_ok=True)
        raise
    return written
