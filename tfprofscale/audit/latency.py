"""Time models: a line per layer type, and a step-latency model fitted on a sweep.

Per layer type (``layer_type_fits``), document 002's model ``time_us =
slope * FLOPs + intercept_us``: the slope gives the achieved GFLOP/s, the
intercept the fixed cost per layer.

The latency model (``fit_latency_model``): step time = a fixed per-step
overhead + for each layer, a linear function of its work whose
coefficients depend on its type. The work (``roofline.layer_features``): FLOPs with
the channel dimension rounded up to the vector width (oneDNN computes
channels in blocks of 16 floats on AVX-512: 8 filters cost what 16 do);
bytes moved (``roofline.layer_bytes_moved``) and the bytes beyond the L2
and the L3 cache sizes (a hinge at each: what does not fit streams from
the next level, more slowly); output elements; output positions (elements
per channel: N*H*W, or a Dense layer's rows); 1 (a fixed cost per layer).
Vector width and cache sizes are the fitting machine's, kept in the model.
The coefficients are fitted to measured step times, not to per-layer trace
times, so the profiler's own overhead stays out and the time between
kernels is charged to the layers that cause it; the fit minimises squared
*relative* errors with coefficients >= 0 (more work never saves time),
and a feature non-zero in fewer than ``MIN_SUPPORT`` configurations is left
out (one configuration just past the L3 size cannot price the L3 hinge).
Layer types with no FLOPs and no parameters (InputLayer, Flatten) cost 0.

Measured step time of a configuration: its median step time; with several
repeats, the smallest of their medians (the repeat least disturbed by other
processes). Held-out validation is in ``tfprofscale.audit.validation``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tfprofscale.errors import InputError
from tfprofscale.audit.fitting import fit_line
from tfprofscale.audit.roofline import MachineTraits, layer_features, machine_traits

if TYPE_CHECKING:
    import pandas as pd

    from tfprofscale.profiling.report import LayerRow

LAYER_FEATURES = ("blocked_flops", "bytes_moved", "bytes_beyond_l2", "bytes_beyond_l3",
                  "output_elements", "output_positions", "layers")
LARGEST_RESIDUALS = 3
MIN_FIT_CONFIGS = 3
MIN_SUPPORT = 3
MEASURED = "median step time (ms); over repeats, the smallest median"


@dataclass(frozen=True)
class LayerTypeFit:
    """``time_us = slope_us_per_flop * flops + intercept_us`` for one layer type."""

    layer_type: str
    slope_us_per_flop: float
    achieved_gflops: float | None
    intercept_us: float
    r2: float | None
    n: int
    largest_residuals: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Text-report lines: the fit, then its worst-predicted layers."""
        speed = f"{self.achieved_gflops:.1f} GFLOP/s" if self.achieved_gflops is not None else "no positive slope"
        r2 = f"{self.r2:.3f}" if self.r2 is not None else "unsupported"
        lines = [f"{self.layer_type}: time = FLOPs / ({speed}) + {self.intercept_us:.1f} us; R² {r2}, n={self.n}"]
        for worst in self.largest_residuals:
            lines.append(f"  {worst['layer']} ({worst['config_id']}): measured {worst['measured_us']:.1f} us, "
                         f"line {worst['predicted_us']:.1f} us ({worst['relative_error']:+.0%})")
        return lines


def layer_type_fits(layers: "pd.DataFrame") -> list[LayerTypeFit]:
    """One time-vs-FLOPs line per layer type, from per-layer rows with a measured time.

    ``layers`` has the columns of layers.csv / ``Report.to_frame()``
    (``type``, ``name``, ``graph_flops``, ``analytic_flops``, ``time_us``;
    ``config_id`` optional). FLOPs are the graph's, else the formula's. A
    type needs 3 timed layers with 2 distinct FLOPs counts to be fitted.
    """
    frame = layers.copy()
    frame["flops"] = frame["graph_flops"].where(frame["graph_flops"].notna(), frame["analytic_flops"])
    frame = frame[frame["flops"].notna() & frame["time_us"].notna()]
    fits = []
    for layer_type, group in sorted(frame.groupby("type"), key=lambda item: str(item[0])):
        if len(group) >= 3 and group["flops"].nunique() >= 2:
            fits.append(_layer_type_fit(str(layer_type), group))
    return fits


def _layer_type_fit(layer_type: str, group: "pd.DataFrame") -> LayerTypeFit:
    flops, time_us = group["flops"].to_numpy(float), group["time_us"].to_numpy(float)
    line = fit_line(flops, time_us)
    predicted = line.predict(flops)
    config_ids = group["config_id"] if "config_id" in group else [None] * len(group)
    residuals = [
        {"layer": name, "config_id": config_id, "measured_us": float(measured), "predicted_us": float(guess),
         "relative_error": float((guess - measured) / measured)}
        for name, config_id, measured, guess in zip(group["name"], config_ids, time_us, predicted) if measured > 0
    ]
    residuals.sort(key=lambda row: -abs(row["relative_error"]))
    return LayerTypeFit(layer_type, line.slope, 1e-3 / line.slope if line.slope > 0 else None,
                        line.intercept, line.r2, line.n, residuals[:LARGEST_RESIDUALS])


@dataclass
class LatencyModel:
    """Step latency = overhead + per-layer-type linear functions of each layer's work."""

    features: tuple[str, ...]
    coefficients_us: dict[str, dict[str, float]]
    overhead_us: float
    free_layer_types: list[str]
    n_configs: int
    traits: MachineTraits
    measured: str = MEASURED

    def covers(self, layers: Sequence["LayerRow"]) -> bool:
        """True when every layer's type was seen in fitting."""
        return all(row.type in self.coefficients_us or row.type in self.free_layer_types for row in layers)

    def layer_times_us(self, layers: Sequence["LayerRow"]) -> list[float]:
        """Each layer's share of the predicted step time; InputError for a type never fitted."""
        for row in layers:
            if not self.covers([row]):
                known = ", ".join(sorted(self.coefficients_us)) or "none"
                raise InputError(f"layer {row.name!r} is a {row.type}, a layer type the latency model was not "
                                 f"fitted on (fitted: {known})")
        return [self._layer_time_us(row) for row in layers]

    def _layer_time_us(self, row: "LayerRow") -> float:
        if row.type in self.free_layer_types:
            return 0.0
        work, weights = layer_features(row, self.traits), self.coefficients_us[row.type]
        return sum(weights.get(name, 0.0) * work[name] for name in self.features)

    def predict_ms(self, layers: Sequence["LayerRow"]) -> float:
        """Predicted step time in milliseconds."""
        return (self.overhead_us + sum(self.layer_times_us(layers))) / 1e3

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (the model file's content)."""
        return {"kind": "tfprofscale latency model", **asdict(self), "features": list(self.features)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LatencyModel":
        """A model back from ``to_dict``'s output."""
        return cls(tuple(data["features"]), data["coefficients_us"], data["overhead_us"],
                   list(data["free_layer_types"]), data["n_configs"], MachineTraits(**data["traits"]),
                   data.get("measured", MEASURED))

    def save(self, path: str | Path) -> None:
        """Write the model as JSON (atomically)."""
        from tfprofscale.output import write_text

        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "LatencyModel":
        """Read a model written by ``save``; InputError if the file is not one."""
        from tfprofscale.audit.latency_file import check_latency_fields
        from tfprofscale.inputs import read_text

        text = read_text(path, "latency model")
        try:
            data = json.loads(text)
        except ValueError as error:
            raise InputError(f"{path} is not a latency model written by `tfprofscale fit`: {error}") from None
        check_latency_fields(data, str(path))
        return cls.from_dict(data)

    def lines(self) -> list[str]:
        """Text-report lines: the overhead and each type's non-zero coefficients."""
        lines = [f"Latency model fitted on {self.n_configs} configurations ({self.measured}):",
                 f"  per-step overhead: {self.overhead_us:.1f} us"]
        for layer_type, weights in sorted(self.coefficients_us.items()):
            terms = [_term(name, value) for name, value in weights.items() if value > 0]
            lines.append(f"  {layer_type}: " + (" + ".join(terms) if terms else "0"))
        if self.free_layer_types:
            lines.append(f"  no work, no time: {', '.join(self.free_layer_types)}")
        return lines


_RATE_FEATURES = {"flops": ("FLOPs", "GFLOP/s"), "blocked_flops": ("blocked FLOPs", "GFLOP/s"),
                  "bytes_moved": ("bytes", "GB/s"), "bytes_beyond_l2": ("bytes beyond L2", "GB/s"),
                  "bytes_beyond_l3": ("bytes beyond L3", "GB/s")}


def _term(feature: str, us_per_unit: float) -> str:
    if feature in _RATE_FEATURES:
        name, unit = _RATE_FEATURES[feature]
        return f"{name} / {1e-3 / us_per_unit:.1f} {unit}"
    if feature == "layers":
        return f"{us_per_unit:.1f} us per layer"
    return f"{us_per_unit * 1e3:.3f} ns per {feature.removesuffix('s').replace('_', ' ')}"


@dataclass(frozen=True)
class ConfigSample:
    """One measured configuration: its layers and its step time."""

    config_id: str
    config: dict[str, Any]
    layers: list["LayerRow"]
    measured_ms: float
    graph_flops: int
    repeats: int = 1


def fit_latency_model(samples: Sequence[ConfigSample], features: Sequence[str] = LAYER_FEATURES,
                      traits: MachineTraits | None = None) -> LatencyModel:
    """Fit overhead and per-type coefficients to the samples' step times (relative least squares, >= 0).

    ``traits`` default to this machine's: the one that measured the samples.
    """
    if len(samples) < MIN_FIT_CONFIGS:
        raise InputError(f"a latency model needs at least {MIN_FIT_CONFIGS} measured configurations, "
                         f"got {len(samples)}")
    traits = traits or machine_traits()
    free, working = _split_layer_types(samples)
    columns = [(layer_type, name) for layer_type in working for name in features]
    design = np.array([_design_row(sample.layers, columns, traits) for sample in samples])
    measured_us = np.array([sample.measured_ms * 1e3 for sample in samples])
    coefficients = nonnegative_relative_least_squares(design, measured_us, min(MIN_SUPPORT, len(samples)))
    weights: dict[str, dict[str, float]] = {layer_type: {} for layer_type in working}
    for (layer_type, name), value in zip(columns, coefficients[1:]):
        weights[layer_type][name] = float(value)
    return LatencyModel(tuple(features), weights, float(coefficients[0]), free, len(samples), traits)


def _split_layer_types(samples: Sequence[ConfigSample]) -> tuple[list[str], list[str]]:
    """(types whose every layer has no parameters and 0 FLOPs, the other types)."""
    def works(row: "LayerRow") -> bool:
        return bool(row.params) or (row.graph_flops if row.graph_flops is not None else row.analytic_flops) != 0

    every = {row.type for sample in samples for row in sample.layers}
    working = {row.type for sample in samples for row in sample.layers if works(row)}
    return sorted(every - working), sorted(working)


def _design_row(layers: Sequence["LayerRow"], columns: list[tuple[str, str]],
                traits: MachineTraits) -> list[float]:
    totals = {column: 0.0 for column in columns}
    for row in layers:
        for name, value in layer_features(row, traits).items():
            if (row.type, name) in totals:
                totals[(row.type, name)] += value
    return [1.0] + [totals[column] for column in columns]


def nonnegative_relative_least_squares(design: np.ndarray, target: np.ndarray,
                                       min_support: int = 1) -> np.ndarray:
    """Coefficients >= 0 minimising sum(((design @ c - target) / target) ** 2).

    Least squares on scaled columns, refitted without the columns whose
    coefficient came out negative until none does (those get 0). A column
    non-zero in fewer than ``min_support`` rows gets 0: so few rows cannot
    tell its cost apart from noise.
    """
    scale = np.abs(design).max(axis=0)
    scale[scale == 0] = 1.0
    scaled = design / scale / target[:, None]
    active = [j for j in range(design.shape[1]) if np.count_nonzero(design[:, j]) >= min_support]
    solution = np.zeros(design.shape[1])
    while active:
        fitted, *_ = np.linalg.lstsq(scaled[:, active], np.ones(len(target)), rcond=None)
        if np.all(fitted >= 0):
            solution[active] = fitted
            break
        active = [j for j, value in zip(active, fitted) if value >= 0]
    return solution / scale
