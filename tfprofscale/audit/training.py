"""The training step audited: backward against forward per layer type, and the ledger against measurement.

Per layer type, over the train-mode profiles: graph FLOPs of the backward
pass against the forward (TensorFlow's count; the textbook says ~2 for
Dense and convolutions, 1 for the first layer, which needs no input
gradient), the formulas' ratio beside it, and the kernels' time per FLOP of
each pass (backward kernels are often slower per FLOP: Conv2DBackpropFilter
reduces over the batch). The ledger: each term's estimate against what the
allocation records measured, and the totals (the goal is within 5%).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PassRatio:
    """Backward against forward for one layer type, summed over its layers in the train profiles."""

    layer_type: str
    layers: int
    forward_flops: int
    backward_flops: int
    formula_forward_flops: int | None
    formula_backward_flops: int | None
    forward_time_us: float | None
    backward_time_us: float | None

    @property
    def flops_ratio(self) -> float | None:
        """Graph backward / forward FLOPs."""
        return self.backward_flops / self.forward_flops if self.forward_flops else None

    @property
    def formula_ratio(self) -> float | None:
        """The formulas' (dL/dX + dL/dW) / forward."""
        if not self.formula_forward_flops or self.formula_backward_flops is None:
            return None
        return self.formula_backward_flops / self.formula_forward_flops

    def ns_per_flop(self, backward: bool) -> float | None:
        """Kernel nanoseconds per graph FLOP of the forward or backward pass."""
        time_us, flops = ((self.backward_time_us, self.backward_flops) if backward
                          else (self.forward_time_us, self.forward_flops))
        return time_us * 1e3 / flops if time_us and flops else None


@dataclass
class LedgerCheck:
    """One ledger term of one profile: estimate, measurement and their factor."""

    config_id: str
    term: str
    estimated_bytes: int
    measured_bytes: int | None

    @property
    def factor(self) -> float | None:
        """estimate / measured (None without a measurement)."""
        return self.estimated_bytes / self.measured_bytes if self.measured_bytes else None


@dataclass
class TrainAudit:
    """The train-mode part of an audit (empty lists when no profile is of a training step)."""

    pass_ratios: list[PassRatio] = field(default_factory=list)
    ledger: list[LedgerCheck] = field(default_factory=list)
    train_to_forward: dict[str, float | None] = field(default_factory=dict)


def train_audit(profiles: Sequence[tuple[str, Any]]) -> TrainAudit:
    """The audit of the train-mode reports among ``(config_id, report)`` pairs."""
    trained = [(config_id, report) for config_id, report in profiles if getattr(report, "mode", "infer") == "train"]
    audit = TrainAudit()
    if not trained:
        return audit
    audit.pass_ratios = pass_ratios([report for _, report in trained])
    for config_id, report in trained:
        audit.train_to_forward[config_id] = report.totals.train_to_forward
        audit.ledger += ledger_checks(config_id, report)
    return audit


def pass_ratios(reports: Sequence[Any]) -> list[PassRatio]:
    """Backward against forward per layer type (layers with forward graph FLOPs only)."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for report in reports:
        for row in report.layers:
            if row.graph_flops:
                groups[row.type].append(row)
    return [_pass_ratio(layer_type, rows) for layer_type, rows in sorted(groups.items())]


def _pass_ratio(layer_type: str, rows: list[Any]) -> PassRatio:
    formulas = [row for row in rows if row.forward_flops is not None and row.input_grad_flops is not None
                and row.weight_grad_flops is not None]
    complete = len(formulas) == len(rows)
    timed = all(row.forward_time_us is not None for row in rows)
    return PassRatio(
        layer_type=layer_type, layers=len(rows), forward_flops=sum(row.graph_flops for row in rows),
        backward_flops=sum(row.graph_backward_flops or 0 for row in rows),
        formula_forward_flops=sum(row.forward_flops for row in formulas) if complete else None,
        formula_backward_flops=sum(row.input_grad_flops + row.weight_grad_flops for row in formulas)
        if complete else None,
        forward_time_us=sum(row.forward_time_us for row in rows) if timed else None,
        backward_time_us=sum(row.backward_time_us or 0.0 for row in rows) if timed else None)


def ledger_checks(config_id: str, report: Any) -> list[LedgerCheck]:
    """Each ledger term of one profile, its total as the term ``total`` and, when computed, the walked peak
    (``Ledger.peak``) as ``peak (step walked)``, both against the measured peak."""
    ledger = report.memory.ledger if report.memory is not None else None
    if not ledger:
        return []
    checks = [LedgerCheck(config_id, line["term"], line["estimated_bytes"], line.get("measured_bytes"))
              for line in ledger["lines"]]
    checks.append(LedgerCheck(config_id, "total", ledger["total_estimated_bytes"], ledger.get("total_measured_bytes")))
    if ledger.get("estimated_peak_bytes"):
        checks.append(LedgerCheck(config_id, "peak (step walked)", ledger["estimated_peak_bytes"],
                                  ledger.get("total_measured_bytes")))
    return checks
