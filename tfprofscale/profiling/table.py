"""The printed form of a Report: Keras' ``model.summary()`` with cost columns."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tfprofscale.profiling.report import LayerRow, Report
from tfprofscale.profiling.shares import SHARE_DEFINITION

if TYPE_CHECKING:
    from tfprofscale.profiling.report import Totals
    from tfprofscale.profiling.runtime import StepTimes

COLUMNS = (
    ("Layer (type)", 30, "<"), ("Output shape", 18, "<"), ("Params", 10, ">"),
    ("FLOPs formula", 14, ">"), ("FLOPs graph", 12, ">"), ("Activations", 12, ">"),
    ("Time us/step", 13, ">"), ("GFLOP/s", 8, ">"), ("Share", 7, ">"),
)


def si(value: float | None, unit: str = "") -> str:
    """``1234567`` as ``1.23M``; None as ``n/a``."""
    if value is None:
        return "n/a"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{prefix}{unit}"
    return f"{value:.0f}{unit}" if float(value).is_integer() else f"{value:.2f}{unit}"


def binary_bytes(value: int | None) -> str:
    """Bytes as B / KiB / MiB / GiB."""
    if value is None:
        return "n/a"
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} B"


def _cells(row: LayerRow) -> tuple[str, ...]:
    return (
        f"{row.name} ({row.type})", "(" + ", ".join(map(str, row.output_shape)) + ")",
        f"{row.params:,}", si(row.analytic_flops) if row.supported else "unsupported",
        si(row.graph_flops), binary_bytes(row.activation_bytes),
        "n/a" if row.time_us is None else f"{row.time_us:,.1f}",
        "" if row.achieved_gflops is None else f"{row.achieved_gflops:.2f}",
        "" if row.time_share is None else f"{100 * row.time_share:.1f}%",
    )


def _line(cells: tuple[str, ...]) -> str:
    return " ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, COLUMNS)).rstrip()


def render(report: Report) -> str:
    """The whole report as text: header, per-layer table, totals."""
    width = sum(width + 1 for _, width, _ in COLUMNS)
    header = (f'Model "{report.model}"  batch {report.batch_size}  on {report.device}'
              f"  TensorFlow {report.tensorflow}")
    lines = [header, "=" * width, _line(tuple(name for name, _, _ in COLUMNS)), "-" * width]
    lines += [_line(_cells(row)) for row in report.layers]
    lines += ["=" * width, *_totals_lines(report)]
    return "\n".join(lines)


def _totals_lines(report: Report) -> list[str]:
    t = report.totals
    steps = t.step_time_ms
    lines = [
        f"Params:        {t.params:,}",
        f"FLOPs:         formulas {si(t.analytic_flops)}  graph (tfprof) {si(t.graph_flops)}"
        + _ratio(t.analytic_flops, t.graph_flops) + "   (multiply-add = 2)",
        f"MACs:          formulas {si(t.analytic_macs)}",
        f"Memory:        allocator peak {binary_bytes(t.peak_bytes)} (resident before the step "
        f"{binary_bytes(t.resident_bytes)})  formula params+activations {binary_bytes(t.analytic_memory_bytes)}",
        f"Step time:     median {steps.median:.3f} ms  p10 {steps.p10:.3f}  p90 {steps.p90:.3f}"
        f"  min {steps.min:.3f}  cv {100 * steps.cv:.1f}%  n={steps.n}",
        *_conditions_lines(steps),
    ]
    if t.unsupported_layers:
        lines.append(f"No formula:    {', '.join(t.unsupported_layers)} (excluded from formula totals)")
    if t.traced_step_time_ms is not None:
        lines += _profiler_lines(t)
    if t.accuracy is not None:
        lines.append(f"Accuracy:      {100 * t.accuracy:.2f}% on the test split")
    if report.trace_dir:
        lines.append(f"Trace:         {report.trace_dir}  (tensorboard --logdir {_logdir_of(report.trace_dir)}, "
                     "Profile tab)")
    lines += [f"Warning:       {warning}" for warning in report.warnings]
    return lines


def _conditions_lines(steps: "StepTimes") -> list[str]:
    """How the step time was measured: rounds, the median's interval, threads, load."""
    if not steps.rounds:
        return []
    width = steps.ci_width
    interval = ("" if width is None else f"; median {100 * (steps.ci_confidence or 0):.0f}% interval "
                f"{steps.ci_low:.3f}-{steps.ci_high:.3f} ms ({100 * width:.1f}% wide)")
    threads = steps.threads or {}
    load = ("" if steps.load_start is None or steps.load_end is None
            else f"; load average {steps.load_start:.2f} -> {steps.load_end:.2f}")
    return [f"Timing:        {steps.rounds} rounds x {steps.steps_per_round} steps{interval}, stopped by "
            f"{steps.stopped_by}",
            f"Conditions:    threads intra-op {threads.get('intra_op') or 'default'}, inter-op "
            f"{threads.get('inter_op') or 'default'} ({threads.get('cpus')} CPUs){load}"]


def _profiler_lines(t: "Totals") -> list[str]:
    """The traced steps: overhead, kernel time, busy time, coverage, concurrency, and what Share means."""
    overhead = "n/a" if t.profiler_overhead is None else f"x{t.profiler_overhead:.2f}"
    lines = [f"Profiler:      traced step median {t.traced_step_time_ms.median:.3f} ms, overhead {overhead}"]
    if t.kernel_time_us is not None and t.busy_time_us is not None:
        coverage = "" if t.kernel_coverage is None else f" ({100 * t.kernel_coverage:.0f}% of the traced step)"
        concurrency = "" if t.concurrency is None else f"; concurrency x{t.concurrency:.2f}"
        lines.append(f"Kernels:       busy {t.busy_time_us:,.1f} us/step{coverage}; self times sum to "
                     f"{t.kernel_time_us:,.1f} us/step{concurrency} (medians over the traced steps)")
    lines.append(f"               {SHARE_DEFINITION}")
    return lines


def _logdir_of(trace_dir: str) -> str:
    """The TensorBoard logdir of a run's trace folder (``<logdir>/<run>/plugins/profile/<stamp>``)."""
    parts = Path(trace_dir).parts
    if "plugins" in parts:
        return str(Path(*parts[:parts.index("plugins")]).parent) or "."
    return trace_dir


def _ratio(analytic: int | None, graph: int | None) -> str:
    if not analytic or not graph:
        return ""
    return f"  formulas/graph {analytic / graph:.3f}"
