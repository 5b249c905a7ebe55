"""The printed form of a Report: Keras' ``model.summary()`` with cost columns."""
from __future__ import annotations

from tfprofscale.profiling.report import LayerRow, Report

COLUMNS = (
    ("Layer (type)", 30, "<"), ("Output shape", 18, "<"), ("Params", 10, ">"),
    ("FLOPs formula", 14, ">"), ("FLOPs graph", 12, ">"), ("Activations", 12, ">"),
    ("Time us/step", 13, ">"), ("GFLOP/s", 8, ">"), ("Share", 7, ">"), ("Memory", 11, ">"),
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
        "" if row.measured_bytes is None else binary_bytes(row.measured_bytes),
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
        *_memory_lines(report),
        f"Step time:     median {steps.median:.3f} ms  p10 {steps.p10:.3f}  p90 {steps.p90:.3f}"
        f"  min {steps.min:.3f}  cv {100 * steps.cv:.1f}%  n={steps.n}",
    ]
    if t.unsupported_layers:
        lines.append(f"No formula:    {', '.join(t.unsupported_layers)} (excluded from formula totals)")
    if t.traced_step_time_ms is not None:
        lines.append(
            f"Profiler:      traced step median {t.traced_step_time_ms.median:.3f} ms, overhead x{t.profiler_overhead:.2f};"
            f" kernels account for {t.kernel_time_us:,.1f} us/step"
            + (f" ({100 * t.kernel_time_us / (1e3 * t.traced_step_time_ms.median):.0f}% of the traced step)"
               if t.traced_step_time_ms.median else "")
        )
    if t.accuracy is not None:
        lines.append(f"Accuracy:      {100 * t.accuracy:.2f}% on the test split")
    if report.trace_dir:
        lines.append(f"Trace:         {report.trace_dir}  (tensorboard --logdir <logdir>, Profile tab)")
    return lines


def _memory_lines(report: Report) -> list[str]:
    """Measured peak, where it happens, and the estimates beside it (see tfprofscale.profiling.memory)."""
    m, t = report.memory, report.totals
    if m is None:
        return [f"Memory:        allocator peak {binary_bytes(t.peak_bytes)} (process-wide)"]
    if m.measured_peak_bytes is None:
        lines = [f"Memory:        not measured: {m.missing}"]
    else:
        where = f"{m.peak_layer or 'no layer'} (op {m.peak_op})" if m.peak_op else "n/a"
        lines = [f"Memory:        peak {binary_bytes(t.peak_bytes)} = weights {binary_bytes(m.weights_bytes)}"
                 f" + input {binary_bytes(m.input_bytes)} + in-step {binary_bytes(m.measured_peak_bytes)},"
                 f" at {where}"]
    lines.append(f"               estimates: formula {binary_bytes(m.estimated_peak_bytes)}"
                 f" (peak at {m.estimated_peak_layer or 'n/a'})"
                 f"  TensorFlow (Grappler, static) {binary_bytes(m.tf_estimated_peak_bytes)}")
    lines.append(f"               allocator (process-wide): peak {binary_bytes(m.allocator_peak_bytes)},"
                 f" resident before the step {binary_bytes(m.allocator_resident_bytes)}")
    if m.memory_trace:
        lines.append(f"Memory trace:  {m.memory_trace}  (BFC CPU allocator, untimed: TensorBoard's Memory Profile)")
    return lines


def _ratio(analytic: int | None, graph: int | None) -> str:
    if not analytic or not graph:
        return ""
    return f"  formulas/graph {analytic / graph:.3f}"
