"""Time models: a line per layer type, and a step-latency model fitted on a sweep.

Per layer type (``layer_type_fits``), document 002's model ``time_us =
slope * FLOPs + intercept_us``, fitted on relative errors (a 2 ms layer
does not outvote ten 50 us ones): the slope gives the achieved GFLOP/s,
the intercept the fixed cost per layer.

The latency model (``fit_latency_model``): step time = a fixed per-step
overhead + for each layer, ``sum(coefficient[type][feature] * feature)``
over the features of ``latency_features`` (roofline time against the
measured peaks, bytes beyond L2, op count). The coefficients are fitted to
measured step times, not to per-layer trace times, so the profiler's own
overhead stays out and the time between kernels is charged to the layers
that cause it. The fit minimises squared *relative* errors with
coefficients >= 0 (more work never saves time); a feature non-zero in
fewer than ``MIN_SUPPORT`` configurations is left out. Coefficients the
data cannot separate (``fitting.separable_columns``: in the generated CNN
every convolution is followed by one pooling layer, so their fixed costs
move freely between them) are tied, one coefficient for the feature of
both types, and the model says so (``ties``). Zero-cost layers
(``latency_features.is_free``) are priced at zero whether seen or not.

Measured step time of a configuration: its median step time (or another
statistic of ``STATISTICS``: on a loaded machine the fastest step is the
one that reproduces); with several repeats, the smallest of their medians
(the repeat least disturbed by other processes). Held-out validation is in ``tfprofscale.audit.validation``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tfprofscale.audit.fitting import fit_line, nonnegative_relative_least_squares, separable_columns
from tfprofscale.audit.latency_features import PER_LAYER_FEATURES, Peaks, is_free, latency_features
from tfprofscale.audit.latency_file import check_latency_fields
from tfprofscale.errors import InputError
from tfprofscale.inputs import read_text
from tfprofscale.output import write_text
from tfprofscale.profiling.runtime.machine_peaks import MachineTraits, machine_peaks, machine_traits

if TYPE_CHECKING:
    import pandas as pd

    from tfprofscale.records import LayerRow

LARGEST_RESIDUALS = 3
MIN_FIT_CONFIGS = 3
MIN_SUPPORT = 3
MEASURED = "median step time (ms); over repeats, the smallest median"
STATISTICS = ("median", "p10", "min")


def measured_text(statistic: str) -> str:
    """What a sample's measured time is, for the model file and the reports."""
    if statistic == "median":
        return MEASURED
    return f"{statistic} of the step times (ms); over repeats, the smallest"
OVERHEAD = ("step", "overhead")


@dataclass(frozen=True)
class LayerTypeFit:
    """``time_us = slope_us_per_flop * flops + intercept_us`` for one layer type (fitted on relative errors)."""

    layer_type: str
    slope_us_per_flop: float
    achieved_gflops: float | None
    intercept_us: float
    r2: float | None
    n: int
    largest_residuals: list[dict[str, Any]] = field(default_factory=list)
    r2_text: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Text-report lines: the fit, then its worst-predicted layers."""
        speed = f"{self.achieved_gflops:.1f} GFLOP/s" if self.achieved_gflops is not None else "no positive slope"
        fit = f"time = FLOPs / ({speed}) + {self.intercept_us:.1f} us; {self.r2_text}, n={self.n} (relative errors)"
        lines = [f"{self.layer_type}: {fit}"]
        for worst in self.largest_residuals:
            lines.append(f"  {worst['layer']} ({worst['config_id']}): measured {worst['measured_us']:.1f} us, "
                         f"line {worst['predicted_us']:.1f} us ({worst['relative_error']:+.0%})")
        return lines


def layer_type_fits(layers: "pd.DataFrame") -> list[LayerTypeFit]:
    """One time-vs-FLOPs line per layer type, from per-layer rows with a measured time.

    ``layers`` has the columns of layers.csv / ``Report.to_frame()``
    (``type``, ``name``, ``graph_flops``, ``analytic_flops``, ``time_us``;
    ``config_id`` optional). FLOPs are the graph's, else the formula's. A
    type needs 3 layers timed above 0 with 2 distinct FLOPs counts to be fitted.
    """
    frame = layers.copy()
    frame["flops"] = frame["graph_flops"].where(frame["graph_flops"].notna(), frame["analytic_flops"])
    frame = frame[frame["flops"].notna() & frame["time_us"].notna() & (frame["time_us"] > 0)]
    fits = []
    for layer_type, group in sorted(frame.groupby("type"), key=lambda item: str(item[0])):
        if len(group) >= 3 and group["flops"].nunique() >= 2:
            fits.append(_layer_type_fit(str(layer_type), group))
    return fits


def _layer_type_fit(layer_type: str, group: "pd.DataFrame") -> LayerTypeFit:
    flops, time_us = group["flops"].to_numpy(float), group["time_us"].to_numpy(float)
    line = fit_line(flops, time_us, relative=True)
    predicted = line.predict(flops)
    config_ids = group["config_id"] if "config_id" in group else [None] * len(group)
    residuals = [
        {"layer": name, "config_id": config_id, "measured_us": float(measured), "predicted_us": float(guess),
         "relative_error": float((guess - measured) / measured)}
        for name, config_id, measured, guess in zip(group["name"], config_ids, time_us, predicted)
    ]
    residuals.sort(key=lambda row: -abs(row["relative_error"]))
    return LayerTypeFit(layer_type, line.slope, 1e-3 / line.slope if line.slope > 0 else None,
                        line.intercept, line.r2, line.n, residuals[:LARGEST_RESIDUALS], line.r2_text)


@dataclass
class LatencyModel:
    """Step latency = overhead + per-layer-type linear functions of each layer's work."""

    features: tuple[str, ...]
    coefficients_us: dict[str, dict[str, float]]
    overhead_us: float
    free_layer_types: list[str]
    n_configs: int
    traits: MachineTraits
    peaks: Peaks
    ties: list[str] = field(default_factory=list)
    measured: str = MEASURED
    left_out_types: list[str] = field(default_factory=list)

    def left_out(self, row: "LayerRow") -> bool:
        """True when the fit could not separate the row's type: its time is inside the per-step overhead."""
        return not is_free(row) and row.type in self.left_out_types

    def covers(self, layers: Sequence["LayerRow"]) -> bool:
        """True when every layer is free or of a type seen in fitting."""
        return all(is_free(row) or row.type in self.coefficients_us for row in layers)

    def layer_times_us(self, layers: Sequence["LayerRow"]) -> list[float]:
        """Each layer's share of the predicted step time; InputError for a working type never fitted."""
        for row in layers:
            if not self.covers([row]):
                known = ", ".join(sorted(self.coefficients_us)) or "none"
                raise InputError(f"layer {row.name!r} is a {row.type}, a layer type the latency model was not "
                                 f"fitted on (fitted: {known})")
        return [self._layer_time_us(row) for row in layers]

    def _layer_time_us(self, row: "LayerRow") -> float:
        if is_free(row):
            return 0.0
        work, weights = latency_features(row, self.traits, self.peaks), self.coefficients_us[row.type]
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
                   Peaks(**data["peaks"]), list(data.get("ties", [])), data.get("measured", MEASURED),
                   list(data.get("left_out_types", [])))

    def save(self, path: str | Path) -> None:
        """Write the model as JSON (atomically)."""
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "LatencyModel":
        """Read a model written by ``save``; InputError if the file is not one."""
        text = read_text(path, "latency model")
        try:
            data = json.loads(text)
        except ValueError as error:
            raise InputError(f"{path} is not a latency model written by `tfprofscale fit`: {error}") from None
        check_latency_fields(data, str(path))
        return cls.from_dict(data)

    def lines(self) -> list[str]:
        """Text-report lines: the overhead, each type's non-zero coefficients, the ties."""
        lines = [f"Latency model fitted on {self.n_configs} configurations ({self.measured}):",
                 f"  per-step overhead: {self.overhead_us:.1f} us"]
        for layer_type, weights in sorted(self.coefficients_us.items()):
            terms = [_term(name, value) for name, value in weights.items() if value > 0]
            lines.append(f"  {layer_type}: " + (" + ".join(terms) if terms else "0"))
        lines += [f"  not separable: {tie}" for tie in self.ties]
        lines.append("  zero cost (identity at inference or no work): "
                     + ", ".join(sorted(set(self.free_layer_types) | {"Dropout", "Flatten", "Reshape", "InputLayer"})))
        return lines


def _term(feature: str, us_per_unit: float) -> str:
    if feature == "roofline_us":
        return f"{us_per_unit:.2f} x roofline time"
    if feature == "bytes_beyond_l2":
        return f"bytes beyond L2 / {1e-3 / us_per_unit:.1f} GB/s"
    return f"{us_per_unit:.2f} us per op"


@dataclass(frozen=True)
class ConfigSample:
    """One measured configuration: its layers and its step time (and, when known, its repeats and TF's estimate)."""

    config_id: str
    config: dict[str, Any]
    layers: list["LayerRow"]
    measured_ms: float
    graph_flops: int
    repeats: int = 1
    repeat_ms: tuple[float, ...] = ()
    tf_estimated_ms: float | None = None
    statistic: str = "median"


def fit_latency_model(samples: Sequence[ConfigSample], features: Sequence[str] = PER_LAYER_FEATURES,
                      traits: MachineTraits | None = None, peaks: Peaks | None = None) -> LatencyModel:
    """Fit overhead and per-type coefficients to the samples' step times (relative least squares, >= 0).

    ``traits`` and ``peaks`` default to this machine's: the one that measured the samples.
    """
    if len(samples) < MIN_FIT_CONFIGS:
        raise InputError(f"a latency model needs at least {MIN_FIT_CONFIGS} measured configurations, "
                         f"got {len(samples)}")
    traits, peaks = traits or machine_traits(), peaks or _machine_peaks()
    free, working = _split_layer_types(samples)
    columns = [OVERHEAD] + [(layer_type, name) for layer_type in working for name in features]
    design = np.array([_design_row(sample.layers, columns, traits, peaks) for sample in samples])
    measured_us = np.array([sample.measured_ms * 1e3 for sample in samples])
    separation = separable_columns(design, measured_us, lambda a, b: _same_feature(columns, a, b))
    grouped = np.stack([design[:, group].sum(axis=1) for group in separation.groups], axis=1)
    fitted = nonnegative_relative_least_squares(grouped, measured_us, min(MIN_SUPPORT, len(samples)))
    weights: dict[str, dict[str, float]] = {layer_type: {name: 0.0 for name in features} for layer_type in working}
    overhead = 0.0
    for group, value in zip(separation.groups, fitted):
        for column in group:
            if columns[column] == OVERHEAD:
                overhead = float(value)
            else:
                weights[columns[column][0]][columns[column][1]] = float(value)
    return LatencyModel(tuple(features), weights, overhead, free, len(samples), traits, peaks,
                        _tie_notes(columns, separation), measured_text(samples[0].statistic),
                        _left_out_types(columns, separation, working))


def _machine_peaks() -> Peaks:
    measured = machine_peaks()
    return Peaks(measured.flops_per_s, measured.bytes_per_s)


def _same_feature(columns: list[tuple[str, str]], a: int, b: int) -> bool:
    return OVERHEAD not in (columns[a], columns[b]) and columns[a][1] == columns[b][1]


def _tie_notes(columns: list[tuple[str, str]], separation: Any) -> list[str]:
    notes = []
    for group in separation.groups:
        if len(group) > 1:
            types = " and ".join(columns[j][0] for j in group)
            notes.append(f"{types}: one shared {columns[group[0]][1]} coefficient (they always occur in the "
                         "same proportion in the data)")
    for column in separation.dropped:
        notes.append(f"{' '.join(columns[column])}: left out, not separable from the rest")
    return notes


def _left_out_types(columns: list[tuple[str, str]], separation: Any, working: list[str]) -> list[str]:
    """The working layer types the fit left out: some column dropped as not separable, none fitted."""
    fitted = {columns[j][0] for group in separation.groups for j in group if columns[j] != OVERHEAD}
    dropped = {columns[j][0] for j in separation.dropped}
    return [layer_type for layer_type in working if layer_type in dropped and layer_type not in fitted]


def _split_layer_types(samples: Sequence[ConfigSample]) -> tuple[list[str], list[str]]:
    """(types whose every layer is free, the other types)."""
    every = {row.type for sample in samples for row in sample.layers}
    working = {row.type for sample in samples for row in sample.layers if not is_free(row)}
    return sorted(every - working), sorted(working)


def _design_row(layers: Sequence["LayerRow"], columns: list[tuple[str, str]], traits: MachineTraits,
                peaks: Peaks) -> list[float]:
    totals = {column: 0.0 for column in columns}
    totals[OVERHEAD] = 1.0
    for row in layers:
        if is_free(row):
            continue
        for name, value in latency_features(row, traits, peaks).items():
            if (row.type, name) in totals:
                totals[(row.type, name)] += value
    return [totals[column] for column in columns]
