"""The roofline of a profile for its HTML page, from the machine's cached peaks (never measured while rendering)."""
from __future__ import annotations

from typing import Any

from tfprofscale.audit.roofline import roofline_ops
from tfprofscale.records.report import Report
from tfprofscale.profiling.runtime.machine_peaks import MachinePeaks, cached_peaks
from tfprofscale.report.html.profile_charts import RooflineInput


def page_roofline(report: dict[str, Any], peaks: MachinePeaks | None = None) -> tuple[RooflineInput | None, str]:
    """The roofline input of ``report`` at ``peaks`` (default: the cached ones), or None and why not."""
    notes = []
    if peaks is None:
        peaks, stale = cached_peaks()
        if peaks is None:
            return None, f"the roofline needs the machine's measured peaks: {stale}"
        if stale:
            notes.append(f"The cached peaks are stale ({stale}); `audit --remeasure` measures them again.")
    ops = roofline_ops(Report.from_dict(report), peaks)
    return RooflineInput(peaks.to_dict(), [op.to_dict() for op in ops], notes), ""
