"""Which step-time statistic another process reproduces best: ``fit``'s choice of what to fit.

For every configuration of a sweep measured in more than one process (its
repeats, each in a fresh process, and the per-process figures of
``--processes``), the spread of each statistic (median, p10, min) between the
processes is its coefficient of variation (sample standard deviation over
mean); a statistic's spread on the sweep is the median of these over the
configurations. ``fit`` fits to the statistic with the smallest spread unless
``--statistic`` names one; a sweep with no configuration measured twice
gives no spread, and ``fit`` keeps the median.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfprofscale.audit.latency import STATISTICS
from tfprofscale.audit.machine_models import machine_key

DEFAULT_WITHOUT_SPREAD = "median"


@dataclass(frozen=True)
class StatisticSpreads:
    """Median between-process CV of each statistic, over the configurations measured in >= 2 processes."""

    spreads: dict[str, float]
    configurations: int

    def best(self) -> str:
        """The statistic with the smallest spread (the median without any)."""
        if not self.spreads:
            return DEFAULT_WITHOUT_SPREAD
        return min(STATISTICS, key=lambda name: (self.spreads[name], STATISTICS.index(name)))

    def line(self, chosen: str, named: bool) -> str:
        """What was measured and which statistic the fit uses, and why."""
        if not self.spreads:
            return (f"Between-process spread: unknown (no configuration was measured in more than one process: "
                    f"sweep repeats = 2 or processes = 2 measure it); fitting to the {chosen}")
        shown = ", ".join(f"{name} {100 * self.spreads[name]:.1f}%" for name in STATISTICS)
        why = "as --statistic asks" if named else "the smallest spread"
        return (f"Between-process spread (CV, median over {self.configurations} configurations measured in >= 2 "
                f"processes): {shown}; fitting to the {chosen} ({why})")


def per_process_values(report: dict[str, Any]) -> list[dict[str, float]]:
    """The statistics of each process that timed a report: its ``processes`` entries, else the report itself."""
    steps = (report.get("totals") or {}).get("step_time_ms") or {}
    entries = [entry for entry in steps.get("processes") or [] if "median" in entry]
    sources = entries or [steps]
    return [{name: float(source[name]) for name in STATISTICS if source.get(name) is not None} for source in sources]


def statistic_spreads(out_dir: str | Path, machine: str | None = None) -> StatisticSpreads:
    """The between-process spread of every statistic on a sweep directory's finished configurations."""
    processes: dict[str, list[dict[str, float]]] = {}
    for path in sorted((Path(out_dir) / "reports").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("status") != "ok" or not record.get("report"):
            continue
        if machine not in (None, machine_key(record)):
            continue
        key = json.dumps([record.get("config"), machine_key(record)], sort_keys=True, default=str)
        processes.setdefault(key, []).extend(per_process_values(record["report"]))
    return spreads_of(list(processes.values()))


def spreads_of(configurations: list[list[dict[str, float]]]) -> StatisticSpreads:
    """Median over configurations (those with >= 2 processes having every statistic > 0) of each statistic's CV."""
    usable = [[values for values in runs if all(values.get(name, 0) > 0 for name in STATISTICS)]
              for runs in configurations]
    usable = [runs for runs in usable if len(runs) >= 2]
    if not usable:
        return StatisticSpreads({}, 0)
    spreads = {name: float(np.median([_cv([values[name] for values in runs]) for runs in usable]))
               for name in STATISTICS}
    return StatisticSpreads(spreads, len(usable))


def _cv(values: list[float]) -> float:
    mean = float(np.mean(values))
    return float(np.std(values, ddof=1) / mean) if mean > 0 else 0.0
