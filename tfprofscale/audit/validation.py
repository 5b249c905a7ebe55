"""Held-out validation of the latency model, against an affine baseline and TensorFlow's cost model.

Splits: K folds over configurations, then for every parameter that varies,
leave each of its values out (e.g. train without the 10-layer models and
predict them); or explicit held-out groups (``held_out_validation``: inside
and outside the training range). Every predictor is fitted on the training
configurations only:

- the latency model (``tfprofscale.audit.latency``);
- the affine baseline: step time = fixed cost + time per graph FLOP (relative least squares, >= 0);
- TensorFlow's cost model as it is (Grappler's predicted step time, ``totals.tf_estimated_step_ms``);
- TensorFlow's cost model calibrated: fixed cost + a factor x its estimate, fitted like the baseline.

Errors are MAPE and the share within +-10%, next to the measurement's own
repeatability: how far the medians of one configuration's repeats are
apart (a predictor cannot be judged more finely than that). Repeats of a
configuration count as one configuration in every split.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tfprofscale.audit.fitting import nonnegative_relative_least_squares
from tfprofscale.audit.latency import (
    MIN_FIT_CONFIGS,
    STATISTICS,
    ConfigSample,
    LatencyModel,
    fit_latency_model,
)
from tfprofscale.audit.latency_features import Peaks
from tfprofscale.audit.machine_models import machine_key
from tfprofscale.errors import InputError
from tfprofscale.inputs import read_text
from tfprofscale.profiling.runtime.machine_peaks import MachineTraits, machine_peaks, machine_traits
from tfprofscale.records import Report
from tfprofscale.report.fields import check_report_fields

MIN_VALIDATION_CONFIGS = 10
FOLDS = 5
WITHIN = 0.10
LATENCY_MODEL = "latency model"
PREDICTORS = (LATENCY_MODEL, "affine: fixed + per FLOP", "TensorFlow cost model", "TensorFlow cost model, calibrated")
Predictor = Callable[[ConfigSample], "float | None"]


def affine_fit(train: Sequence[ConfigSample], work: Callable[[ConfigSample], float | None]) -> Predictor:
    """``step time = a + b * work(sample)`` with a, b >= 0 fitted on relative errors; None where work is unknown."""
    known = [s for s in train if work(s) is not None]
    if len(known) < MIN_FIT_CONFIGS:
        return lambda sample: None
    design = np.array([[1.0, float(work(s))] for s in known])
    fixed_ms, per_unit = nonnegative_relative_least_squares(design, np.array([s.measured_ms for s in known]))

    def predict(sample: ConfigSample) -> float | None:
        value = work(sample)
        return None if value is None else fixed_ms + per_unit * value

    return predict


def predictors(train: Sequence[ConfigSample], traits: MachineTraits, peaks: Peaks) -> dict[str, Predictor]:
    """Every predictor of PREDICTORS, fitted on ``train``."""
    model = fit_latency_model(train, traits=traits, peaks=peaks)
    return {
        LATENCY_MODEL: lambda s: model.predict_ms(s.layers) if model.covers(s.layers) else None,
        PREDICTORS[1]: affine_fit(train, lambda s: s.graph_flops),
        PREDICTORS[2]: lambda s: s.tf_estimated_ms,
        PREDICTORS[3]: affine_fit(train, lambda s: s.tf_estimated_ms),
    }


def load_sweep(out_dir: str | Path, statistic: str = "median", skip_unreadable: bool = False,
               machine: str | None = None, mode: str = "infer") -> list[ConfigSample]:
    """The finished configurations of a sweep directory (reports/*.json), repeats on one machine merged.

    ``statistic`` (one of STATISTICS) is the step time of a report that
    stands for it; over repeats, the smallest. An unreadable record is an
    InputError, or left out with ``skip_unreadable``. ``machine``: only those
    measured on the machine of this fingerprint (None: all). ``mode``: only
    the profiles of that mode (``infer``, or ``train`` from ``[sweep] mode``),
    so that inference and training steps are never fitted together.
    """
    if statistic not in STATISTICS:
        raise InputError(f"statistic {statistic!r}: must be one of {', '.join(STATISTICS)}")
    if not Path(out_dir).is_dir():
        raise InputError(f"sweep directory {out_dir} does not exist")
    runs: dict[str, list[ConfigSample]] = {}
    for path in sorted((Path(out_dir) / "reports").glob("*.json")):
        try:
            record = _read_record(path)
            wanted = record["status"] == "ok" and record.get("report") and machine in (None, machine_key(record))
            if wanted and record["report"].get("mode", "infer") == mode:
                key = json.dumps([record["config"], machine_key(record)], sort_keys=True, default=str)
                runs.setdefault(key, []).append(_sample(path, record, statistic))
        except InputError:
            if not skip_unreadable:
                raise
    return [replace(min(group, key=lambda s: s.measured_ms), repeats=len(group),
                    repeat_ms=tuple(s.measured_ms for s in group)) for group in runs.values()]


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(read_text(path, "sweep record"))
    except ValueError as error:
        raise InputError(f"{path} is not a sweep report record: {type(error).__name__}: {error}") from None
    missing = [key for key in ("config_id", "config", "status") if not isinstance(record, dict) or key not in record]
    if missing:
        raise InputError(f"{path} is not a sweep report record: no {', '.join(missing)}")
    return record


def _sample(path: Path, record: dict[str, Any], statistic: str) -> ConfigSample:
    check_report_fields(record["report"], f"{path}: its report")
    try:
        report = Report.from_dict(record["report"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: its report is not a profile report: {type(error).__name__}: {error}") from None
    return ConfigSample(record["config_id"], record["config"], computing_layers(report),
                        getattr(report.totals.step_time_ms, statistic), report.totals.graph_flops,
                        tf_estimated_ms=report.totals.tf_estimated_step_ms, statistic=statistic)


def computing_layers(report: Any) -> list[Any]:
    """The report's layer rows with only their computing ops listed, as ``predict`` sees them untraced.

    A traced report also lists the structural ops that ran as kernels
    (variable reads, reshapes); the latency model's per-op cost counts the
    computing graph ops only.
    """
    from tfprofscale.profiling.trace.tracing import STRUCTURAL_OP_TYPES

    types = {op.name: op.type for op in report.ops}
    return [replace(row, ops=[name for name in row.ops if types.get(name) not in STRUCTURAL_OP_TYPES])
            for row in report.layers]


@dataclass(frozen=True)
class Errors:
    """MAPE and share within +-10% (fractions) of one predictor over ``n`` configurations."""

    mape: float
    share_within: float
    n: int

    def text(self) -> str:
        """``MAPE x%, y% within ±10%``."""
        return f"MAPE {self.mape:6.1%}, {self.share_within:6.1%} within ±10%"


def error_summary(measured: Sequence[float], predicted: Sequence[float]) -> Errors:
    """MAPE and share within ±10% of predictions."""
    truth, guess = np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float)
    relative = np.abs(guess - truth) / truth
    return Errors(float(relative.mean()), float(np.mean(relative <= WITHIN + 1e-12)), len(truth))


@dataclass(frozen=True)
class Repeatability:
    """How far apart the medians of one configuration's repeats are: (max - min) / min, over configurations."""

    n_configs: int
    median_spread: float
    p90_spread: float

    def text(self) -> str:
        """One line."""
        return (f"measurement repeatability ({self.n_configs} configurations measured more than once): repeats "
                f"differ by a median {self.median_spread:.1%}, p90 {self.p90_spread:.1%}")


def repeatability(samples: Sequence[ConfigSample]) -> Repeatability | None:
    """The spread of repeat medians; None when no configuration was measured twice."""
    spreads = [(max(s.repeat_ms) - min(s.repeat_ms)) / min(s.repeat_ms) for s in samples if len(s.repeat_ms) > 1]
    if not spreads:
        return None
    return Repeatability(len(spreads), float(np.median(spreads)), float(np.percentile(spreads, 90)))


@dataclass(frozen=True)
class SplitValidation:
    """Held-out predictions of one split, by every predictor.

    ``n_train`` is the smallest training set of the split's folds;
    ``n_skipped`` counts held-out configurations the latency model left
    unpredicted (too few to train on, or a layer type it never saw);
    ``errors`` maps a predictor to its Errors (predictors with no
    prediction absent); ``pairs`` has one dict per predicted configuration.
    """

    name: str
    n_train: int
    n_test: int
    n_skipped: int
    errors: dict[str, Errors]
    pairs: list[dict[str, Any]]

    @property
    def model(self) -> Errors:
        """The latency model's errors."""
        return self.errors[LATENCY_MODEL]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return asdict(self)

    def lines(self) -> list[str]:
        """The split, then one line per predictor."""
        skipped = f" ({self.n_skipped} unpredicted)" if self.n_skipped else ""
        return ([f"{self.name}: train>={self.n_train}, test={self.n_test}{skipped}"]
                + [f"  {name:<36} {errors.text()}" for name, errors in self.errors.items()])


@dataclass(frozen=True)
class ValidationReport:
    """The latency model validated on held-out configurations, split several ways."""

    n_configs: int
    measured: str
    model: LatencyModel
    splits: list[SplitValidation]
    repeatability: Repeatability | None

    @property
    def groups(self) -> list[SplitValidation]:
        """The splits (named groups for ``held_out_validation``)."""
        return self.splits

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict."""
        return {"n_configs": self.n_configs, "measured": self.measured, "model": self.model.to_dict(),
                "splits": [split.to_dict() for split in self.splits],
                "repeatability": asdict(self.repeatability) if self.repeatability else None}

    def lines(self) -> list[str]:
        """Text-report lines: the model fitted on the training configurations, the repeatability, each split."""
        unknown = "measurement repeatability: unknown (no configuration measured twice)"
        noise = [self.repeatability.text() if self.repeatability else unknown]
        return (self.model.lines() + [f"Held-out validation ({self.n_configs} configurations):"] + noise
                + [line for split in self.splits for line in split.lines()])


def validate_sweep(out_dir: str | Path, statistic: str = "median") -> ValidationReport | None:
    """Held-out validation of the latency model on a sweep; None below MIN_VALIDATION_CONFIGS."""
    samples = load_sweep(out_dir, statistic, skip_unreadable=True)  # the audit names the records it skipped
    return validate_samples(samples) if len(samples) >= MIN_VALIDATION_CONFIGS else None


def validate_samples(samples: Sequence[ConfigSample], folds: int = FOLDS, traits: MachineTraits | None = None,
                     peaks: Peaks | None = None) -> ValidationReport:
    """K folds over configurations, then leave-one-value-out for every parameter that varies."""
    traits, peaks = traits or machine_traits(), peaks or _peaks()
    splits = [_split(f"configurations ({folds}-fold)", samples, _k_folds(len(samples), folds), traits, peaks)]
    for parameter in _varied_parameters(samples):
        values = sorted({json.dumps(s.config[parameter], default=str) for s in samples})
        groups = [[i for i, s in enumerate(samples) if json.dumps(s.config[parameter], default=str) == value]
                  for value in values]
        splits.append(_split(f"leave each {parameter} out", samples, groups, traits, peaks))
    model = fit_latency_model(samples, traits=traits, peaks=peaks)
    return ValidationReport(len(samples), model.measured, model,
                            [split for split in splits if split is not None], repeatability(samples))


def held_out_validation(train: Sequence[ConfigSample], held_out: dict[str, Sequence[ConfigSample]],
                        traits: MachineTraits | None = None, peaks: Peaks | None = None) -> ValidationReport:
    """Fit on ``train`` once; predict each named held-out group."""
    traits, peaks = traits or machine_traits(), peaks or _peaks()
    fitted = predictors(train, traits, peaks)
    splits = [_evaluate(name, len(train), list(group), fitted) for name, group in held_out.items()]
    everything = list(train) + [s for group in held_out.values() for s in group]
    model = fit_latency_model(train, traits=traits, peaks=peaks)
    return ValidationReport(len(everything), model.measured, model,
                            [split for split in splits if split is not None], repeatability(everything))


def _peaks() -> Peaks:
    measured = machine_peaks()
    return Peaks(measured.flops_per_s, measured.bytes_per_s)


def _k_folds(count: int, folds: int) -> list[list[int]]:
    order = np.random.default_rng(0).permutation(count)
    return [sorted(order[fold::folds].tolist()) for fold in range(min(folds, count))]


def _varied_parameters(samples: Sequence[ConfigSample]) -> list[str]:
    names = [name for name in samples[0].config if all(name in s.config for s in samples)]
    return [name for name in names if len({json.dumps(s.config[name], default=str) for s in samples}) > 1]


def _split(name: str, samples: Sequence[ConfigSample], test_groups: list[list[int]], traits: MachineTraits,
           peaks: Peaks) -> SplitValidation | None:
    pairs, train_sizes, skipped = [], [], 0
    for test in test_groups:
        train = [s for i, s in enumerate(samples) if i not in set(test)]
        held_out = [samples[i] for i in test]
        if len(train) < MIN_FIT_CONFIGS:
            skipped += len(held_out)
            continue
        result = _evaluate(name, len(train), held_out, predictors(train, traits, peaks))
        train_sizes.append(len(train))
        skipped += result.n_skipped if result else len(held_out)
        pairs += result.pairs if result else []
    return _summarise(name, min(train_sizes) if train_sizes else 0, pairs, skipped)


def _evaluate(name: str, n_train: int, held_out: list[ConfigSample],
              fitted: dict[str, Predictor]) -> SplitValidation | None:
    pairs = []
    for sample in held_out:
        guesses = {predictor: predict(sample) for predictor, predict in fitted.items()}
        if guesses[LATENCY_MODEL] is not None:
            pairs.append({"config_id": sample.config_id, "measured_ms": sample.measured_ms, "predicted_ms": guesses})
    return _summarise(name, n_train, pairs, len(held_out) - len(pairs))


def _summarise(name: str, n_train: int, pairs: list[dict[str, Any]], skipped: int) -> SplitValidation | None:
    if not pairs:
        return None
    errors = {}
    for predictor in PREDICTORS:
        known = [(p["measured_ms"], p["predicted_ms"][predictor]) for p in pairs
                 if p["predicted_ms"].get(predictor) is not None]
        if known:
            errors[predictor] = error_summary(*zip(*known))
    return SplitValidation(name, n_train, len(pairs), skipped, errors, pairs)
