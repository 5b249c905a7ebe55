"""Held-out validation of the latency model on a sweep, against "time proportional to FLOPs".

Splits: K folds over configurations, then for every parameter that varies,
leave each of its values out (e.g. train without the 10-layer models and
predict them). Errors are MAPE and the share of predictions within +-10%,
next to the same figures for the FLOPs-only baseline. Repeats of a
configuration count as one configuration in every split.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tfprofscale.errors import InputError
from tfprofscale.audit.latency import MEASURED, MIN_FIT_CONFIGS, ConfigSample, LatencyModel, fit_latency_model
from tfprofscale.audit.roofline import MachineTraits, machine_traits

MIN_VALIDATION_CONFIGS = 10
FOLDS = 5
WITHIN = 0.10


def flops_proportional_baseline(train: Sequence[ConfigSample]) -> Callable[[ConfigSample], float]:
    """The baseline "step time = k * total graph FLOPs", k fitted on relative errors."""
    ratios = np.array([s.graph_flops / s.measured_ms for s in train], dtype=float)
    k_ms_per_flop = ratios.sum() / (ratios ** 2).sum() if np.any(ratios) else 0.0
    return lambda sample: k_ms_per_flop * sample.graph_flops


def load_sweep(out_dir: str | Path, machine: str | None = None) -> list[ConfigSample]:
    """The finished configurations of a sweep directory (reports/*.json), repeats on one machine merged.

    ``machine``: only those measured on the machine of this fingerprint (None: all).
    """
    from tfprofscale.audit.machine_models import machine_key

    if not Path(out_dir).is_dir():
        raise InputError(f"sweep directory {out_dir} does not exist")
    runs: dict[str, list[ConfigSample]] = {}
    for path in sorted((Path(out_dir) / "reports").glob("*.json")):
        record = _read_record(path)
        if record["status"] == "ok" and record.get("report") and machine in (None, machine_key(record)):
            key = json.dumps([record["config"], machine_key(record)], sort_keys=True, default=str)
            runs.setdefault(key, []).append(_sample(path, record))
    return [replace(min(group, key=lambda s: s.measured_ms), repeats=len(group)) for group in runs.values()]


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path} is not a sweep report record: {type(error).__name__}: {error}") from None
    missing = [key for key in ("config_id", "config", "status") if not isinstance(record, dict) or key not in record]
    if missing:
        raise InputError(f"{path} is not a sweep report record: no {', '.join(missing)}")
    return record


def _sample(path: Path, record: dict[str, Any]) -> ConfigSample:
    from tfprofscale.profiling.report import Report

    try:
        report = Report.from_dict(record["report"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: its report is not a profile report: {type(error).__name__}: {error}") from None
    return ConfigSample(record["config_id"], record["config"], report.layers, report.totals.step_time_ms.median,
                        report.totals.graph_flops)


@dataclass(frozen=True)
class SplitValidation:
    """Held-out predictions of one split, against the FLOPs-proportional baseline.

    ``mape`` and ``share_within_10pct`` are fractions; ``n_train`` is the
    smallest training set of the split's folds; ``n_skipped`` counts held-out
    configurations left unpredicted (too few to train on, or a layer type no
    training configuration had); ``pairs`` has one dict per predicted one
    (config_id, measured_ms, predicted_ms, baseline_ms).
    """

    name: str
    n_train: int
    n_test: int
    n_skipped: int
    mape: float
    share_within_10pct: float
    baseline_mape: float
    baseline_share_within_10pct: float
    pairs: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return asdict(self)

    def lines(self) -> list[str]:
        """One text line."""
        skipped = f" ({self.n_skipped} unpredicted)" if self.n_skipped else ""
        return [f"{self.name:<28} train>={self.n_train:<4} test={self.n_test:<4}{skipped} "
                f"model: MAPE {self.mape:6.1%}, {self.share_within_10pct:6.1%} within ±10%   "
                f"FLOPs baseline: MAPE {self.baseline_mape:6.1%}, {self.baseline_share_within_10pct:6.1%} within ±10%"]


@dataclass(frozen=True)
class ValidationReport:
    """The latency model validated on held-out configurations of a sweep, split several ways."""

    n_configs: int
    measured: str
    model: LatencyModel
    splits: list[SplitValidation]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return {"n_configs": self.n_configs, "measured": self.measured, "model": self.model.to_dict(),
                "splits": [split.to_dict() for split in self.splits]}

    def lines(self) -> list[str]:
        """Text-report lines: the model fitted on every configuration, then each split."""
        return (self.model.lines() + [f"Held-out validation ({self.n_configs} configurations):"]
                + [line for split in self.splits for line in split.lines()])


def error_summary(measured: Sequence[float], predicted: Sequence[float]) -> tuple[float, float]:
    """(MAPE, share within ±10%) of predictions, both fractions."""
    truth, guess = np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float)
    relative = np.abs(guess - truth) / truth
    return float(relative.mean()), float(np.mean(relative <= WITHIN))


def validate_sweep(out_dir: str | Path) -> ValidationReport | None:
    """Held-out validation of the latency model on a sweep; None below MIN_VALIDATION_CONFIGS."""
    samples = load_sweep(out_dir)
    return validate_samples(samples) if len(samples) >= MIN_VALIDATION_CONFIGS else None


def validate_samples(samples: Sequence[ConfigSample], folds: int = FOLDS,
                     traits: MachineTraits | None = None) -> ValidationReport:
    """K folds over configurations, then leave-one-value-out for every parameter that varies."""
    traits = traits or machine_traits()
    splits = [_split(f"configurations ({folds}-fold)", samples, _k_folds(len(samples), folds), traits)]
    for parameter in _varied_parameters(samples):
        values = sorted({json.dumps(s.config[parameter], default=str) for s in samples})
        groups = [[i for i, s in enumerate(samples) if json.dumps(s.config[parameter], default=str) == value]
                  for value in values]
        splits.append(_split(f"leave each {parameter} out", samples, groups, traits))
    return ValidationReport(len(samples), MEASURED, fit_latency_model(samples, traits=traits),
                            [split for split in splits if split is not None])


def _k_folds(count: int, folds: int) -> list[list[int]]:
    order = np.random.default_rng(0).permutation(count)
    return [sorted(order[fold::folds].tolist()) for fold in range(min(folds, count))]


def _varied_parameters(samples: Sequence[ConfigSample]) -> list[str]:
    names = [name for name in samples[0].config if all(name in s.config for s in samples)]
    return [name for name in names if len({json.dumps(s.config[name], default=str) for s in samples}) > 1]


def _split(name: str, samples: Sequence[ConfigSample], test_groups: list[list[int]],
           traits: MachineTraits) -> SplitValidation | None:
    pairs, train_sizes, skipped = [], [], 0
    for test in test_groups:
        train = [s for i, s in enumerate(samples) if i not in set(test)]
        held_out = [samples[i] for i in test]
        if len(train) < MIN_FIT_CONFIGS:
            skipped += len(held_out)
            continue
        model, baseline = fit_latency_model(train, traits=traits), flops_proportional_baseline(train)
        train_sizes.append(len(train))
        predictable = [s for s in held_out if model.covers(s.layers)]
        skipped += len(held_out) - len(predictable)
        pairs += [{"config_id": s.config_id, "measured_ms": s.measured_ms,
                   "predicted_ms": model.predict_ms(s.layers), "baseline_ms": baseline(s)} for s in predictable]
    if not pairs:
        return None
    measured = [pair["measured_ms"] for pair in pairs]
    return SplitValidation(name, min(train_sizes), len(pairs), skipped,
                           *error_summary(measured, [pair["predicted_ms"] for pair in pairs]),
                           *error_summary(measured, [pair["baseline_ms"] for pair in pairs]), pairs)
