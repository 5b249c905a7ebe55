"""Three views of time side by side, per layer type: formulas via the roofline, TensorFlow's cost model, measured.

- formulas via the roofline: the formulas' FLOPs and bytes moved
  (``roofline.layer_bytes_moved``) at the measured machine peaks,
  ``max(FLOPs / peak FLOP/s, bytes / peak bytes/s)``: the fastest the layer
  could run if the formulas count its work;
- TensorFlow's cost model: Grappler's estimate of the layer's graph ops
  (``LayerRow.tf_estimated_us``), compute + memory time per op, run one
  after another;
- measured: the layer's kernel times from the trace (``LayerRow.time_us``).

Per layer type the three are summed over the layers (of every profile)
that have all three, and the estimate closest to the measurement, by the
factor ``max(estimate / measured, measured / estimate)``, is named. The
whole step is compared the same way: the roofline sum of every layer and
Grappler's predicted run time against the median step time.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

from tfprofscale.audit.roofline import layer_bytes_moved

if TYPE_CHECKING:
    from tfprofscale.profiling.runtime.machine_peaks import MachinePeaks
    from tfprofscale.records import LayerRow, Report

ROOFLINE = "formulas via the roofline"
TENSORFLOW = "TensorFlow's cost model"


@dataclass(frozen=True)
class TimeViews:
    """One layer type (or the whole step): the estimates and the measurement, in us per step, summed."""

    name: str
    n: int
    measured_us: float
    roofline_us: float
    tf_estimated_us: float

    @property
    def factors(self) -> dict[str, float]:
        """Each estimate's factor max(estimate / measured, measured / estimate); inf when one side is 0."""
        return {ROOFLINE: _factor(self.roofline_us, self.measured_us),
                TENSORFLOW: _factor(self.tf_estimated_us, self.measured_us)}

    @property
    def closest(self) -> str:
        """The estimate with the smallest factor."""
        return min(self.factors.items(), key=lambda item: item[1])[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict, with the factors and the closest estimate."""
        return {**asdict(self), "factors": self.factors, "closest": self.closest}

    def cells(self) -> list[str]:
        """Table cells: name, n, the three times, the factors, the closest."""
        factors = self.factors
        return [self.name, str(self.n), f"{self.measured_us:,.1f}", f"{self.roofline_us:,.1f}",
                f"{self.tf_estimated_us:,.1f}", _factor_text(factors[ROOFLINE]),
                _factor_text(factors[TENSORFLOW]), self.closest]


HEADER = ["layer type", "layers", "measured us", "roofline us", "TensorFlow us", "roofline factor",
          "TensorFlow factor", "closest"]


def _factor(estimate: float, measured: float) -> float:
    if estimate <= 0 or measured <= 0:
        return float("inf")
    return max(estimate / measured, measured / estimate)


def _factor_text(factor: float) -> str:
    return "x inf" if factor == float("inf") else f"x{factor:.2f}"


def roofline_time_us(row: "LayerRow", peaks: "MachinePeaks") -> float | None:
    """The layer's formula FLOPs and bytes at the machine's peaks, in us; None without a formula."""
    if row.analytic_flops is None or not row.supported:
        return None
    moved = layer_bytes_moved(row) or 0
    return max(row.analytic_flops / peaks.flops_per_s, moved / peaks.bytes_per_s) * 1e6


def layer_type_views(reports: Sequence["Report"], peaks: "MachinePeaks") -> list[TimeViews]:
    """Per layer type, the layers with all three views summed; largest measured time first.

    A type whose layers took no measured time (Flatten: a reshape, no kernel) has nothing to compare: left out.
    """
    sums: dict[str, list[float]] = {}
    for report in reports:
        for row in report.layers:
            roofline_us = roofline_time_us(row, peaks)
            if row.time_us is None or row.tf_estimated_us is None or roofline_us is None:
                continue
            total = sums.setdefault(row.type, [0, 0.0, 0.0, 0.0])
            total[0] += 1
            total[1] += row.time_us
            total[2] += roofline_us
            total[3] += row.tf_estimated_us
    views = [TimeViews(name, int(n), measured, roofline, tf) for name, (n, measured, roofline, tf) in sums.items()
             if measured > 0]
    return sorted(views, key=lambda view: -view.measured_us)


def step_views(reports: Sequence["Report"], peaks: "MachinePeaks") -> TimeViews | None:
    """The whole step: every layer's roofline time and Grappler's run time against the median step time."""
    known = [r for r in reports if r.totals.tf_estimated_step_ms is not None]
    if not known:
        return None
    roofline_us = sum(roofline_time_us(row, peaks) or 0.0 for r in known for row in r.layers)
    return TimeViews("whole step", len(known), sum(r.totals.step_time_ms.median for r in known) * 1e3,
                     roofline_us, sum(r.totals.tf_estimated_step_ms for r in known) * 1e3)
