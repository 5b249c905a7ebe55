"""The largest divergences of an audit: every estimate against its measurement, ranked by factor.

An estimate is set against its measurement (a convention's count of a layer
or of the whole model against the graph, the memory model against the
allocator peak, kernel time against step time, a layer-type time fit against
a layer's time, an op's roofline bound against its time) and ranked by the
factor max(estimate / measured, measured / estimate), each topic once (at its
worst layer and configuration), each with its cause. Documents' counting
conventions are ranked apart from the divergences a user can act on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tfprofscale.audit.analysis import Audit, ProfileAudit, TimeAudit
from tfprofscale.audit.conventions import TENSORFLOW
from tfprofscale.profiling.runtime.measurement_checks import FASTER_THAN_PEAK

#: A layer whose formula-vs-graph gap is under this share of the model's graph FLOPs is not ranked.
NEGLIGIBLE_LAYER_SHARE = 0.01


@dataclass
class Divergence:
    """An estimate against a measurement: what (``topic``), where, the factor between them, the cause."""

    kind: str
    topic: str
    where: str
    config_id: str | None
    estimate: float
    measured: float
    unit: str
    factor: float
    cause: str



#: Conventions whose gap to the graph a user can act on (a formula of ours that misses work); the
#: others are other documents' ways of counting, shown in their own section, not among the headline.
ACTIONABLE_CONVENTIONS = frozenset({"formula"})


def largest_divergences(audit: Audit, count: int = 5, conventions: bool = False) -> list[Divergence]:
    """The ``count`` largest estimate/measurement factors, each topic at its worst place and configuration.

    Without ``conventions``: the divergences a user can act on (documents' counting conventions left
    out); with it: only those conventions, each once.
    """
    worst: dict[tuple[str, str], Divergence] = {}
    candidates = [d for p in audit.profiles for d in [*_flops_divergences(p), *_runtime_divergences(p)]]
    for candidate in candidates + _time_divergences(audit.time):
        key = (candidate.kind, candidate.topic)
        if is_counting_convention(candidate) != conventions:
            continue
        if candidate.factor > 1 and (key not in worst or candidate.factor > worst[key].factor):
            worst[key] = candidate
    return sorted(worst.values(), key=lambda d: -d.factor)[:count]


def is_counting_convention(divergence: Divergence) -> bool:
    """True for a document's counting convention against the graph (not something to fix in the model)."""
    name = divergence.topic.removeprefix("convention ")
    return divergence.kind == "flops" and name not in ACTIONABLE_CONVENTIONS


def divergence_factor(estimate: float, measured: float) -> float:
    """max(estimate / measured, measured / estimate); infinite when only one of them is 0."""
    if estimate <= 0 and measured <= 0:
        return 1.0
    if estimate <= 0 or measured <= 0:
        return math.inf
    return max(estimate / measured, measured / estimate)


def _cause_text(causes: list[tuple[str, float | None]], unit: str) -> str:
    ranked = sorted((c for c in causes if c[1]), key=lambda c: -abs(c[1]))[:2]
    return "; ".join(f"{label}: {value:+,.0f} {unit}" for label, value in ranked) or "no named cause"


def _flops_divergences(p: ProfileAudit) -> list[Divergence]:
    """Per convention: its model total, and every layer it counts (not 0) whose gap is not negligible."""
    found = [Divergence("flops", f"convention {t.convention}", "model total", p.config_id, t.flops, t.graph_flops,
                        "FLOPs", divergence_factor(t.flops, t.graph_flops),
                        _cause_text([(c.cause, c.flops) for c in t.causes], "FLOPs"))
             for t in p.flops.totals if t.convention != TENSORFLOW and t.graph_flops]
    for layer in p.flops.layers:
        for c in layer.counts:
            if c.convention == TENSORFLOW or not c.flops or not layer.graph_flops \
                    or abs(c.difference) < NEGLIGIBLE_LAYER_SHARE * p.flops.graph_flops:
                continue
            found.append(Divergence(
                "flops", f"convention {c.convention}", f"{layer.layer} ({layer.type})", p.config_id, c.flops,
                layer.graph_flops, "FLOPs", divergence_factor(c.flops, layer.graph_flops),
                _cause_text([(cause.cause, cause.flops) for cause in c.causes], "FLOPs")))
    return found


def _runtime_divergences(p: ProfileAudit) -> list[Divergence]:
    found, memory, cover = [], p.memory, p.coverage
    if memory.peak_bytes is not None:
        found.append(Divergence(
            "memory", "parameters + input + peak live activations + workspace vs measured peak", "model", p.config_id,
            memory.estimate.total_bytes, memory.peak_bytes, "B",
            divergence_factor(memory.estimate.total_bytes, memory.peak_bytes),
            _cause_text([(c.cause, c.bytes) for c in memory.causes], "B")))
    if cover is not None:
        found.append(Divergence(
            "coverage", "per-op kernel time vs traced step time", "step", p.config_id, cover.kernel_time_us,
            cover.traced_step_time_us, "us", divergence_factor(cover.kernel_time_us, cover.traced_step_time_us),
            f"{cover.outside_kernels_us:,.0f} us per step outside any op kernel: framework overhead "
            "(function dispatch, executor scheduling) and idle gaps"))
    return found


def _time_divergences(time: TimeAudit) -> list[Divergence]:
    found = []
    for fit in time.layer_type_fits:
        for r in getattr(fit, "largest_residuals", None) or []:
            found.append(Divergence(
                "time", f"time = a*FLOPs + b of {fit.layer_type}", r["layer"], r.get("config_id"), r["predicted_us"],
                r["measured_us"], "us", divergence_factor(r["predicted_us"], r["measured_us"]),
                f"the {fit.layer_type} line misses this layer by {r['relative_error']:+.0%}: "
                "its time is not proportional to its FLOPs"))
    for config_id, ops in time.roofline.items():
        found += [Divergence("roofline", f"roofline bound of {op.kernel or op.name}", op.name, config_id,
                             op.roofline_time_us, op.measured_us, "us", op.share_of_bound, _roofline_cause(op))
                  for op in ops if op.flagged and op.share_of_bound is not None]
    return found


def _roofline_cause(op: Any) -> str:
    if op.bound == "memory":
        return ("faster than the memory roof allows for its estimated bytes: the bytes moved are over-estimated, "
                "or its data stayed in caches faster than the measured copy bandwidth")
    return (f"{op.measured_us:.1f} us measured, {op.roofline_time_us:.1f} us at the measured peak FLOP/s for its "
            f"counted FLOPs: {FASTER_THAN_PEAK}")
