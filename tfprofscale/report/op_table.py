"""The per-op views xprof's Profile tab would show (they stay blank offline), printed from the Report.

xprof's overview, op-stats and roofline pages load Google Charts from the
internet, so on a machine without it they show nothing; the trace viewer
works offline. ``render_ops`` prints what op-stats and the overview would
have shown: the top-N kernels by time per step, with the graph ops fused
into each, their graph FLOPs and achieved GFLOP/s, then the time by kernel
type.
"""
from __future__ import annotations

from collections import defaultdict

from tfprofscale.records import OpRow, Report
from tfprofscale.report.units import si

UNSUPPORTED = "unsupported"
COLUMNS = (("Op (kernel)", 44, "<"), ("Layer", 18, "<"), ("Fused graph ops", 28, "<"),
           ("FLOPs graph", 12, ">"), ("Time us/step", 13, ">"), ("Share", 7, ">"), ("GFLOP/s", 8, ">"))


def timed_ops(report: Report) -> list[OpRow]:
    """The ops that ran as kernels (time known, not fused into another), slowest first."""
    ran = [op for op in report.ops if op.time_us is not None and op.fused_into is None and op.kernel]
    return sorted(ran, key=lambda op: -(op.time_us or 0.0))


def kernel_flops(op: OpRow, report: Report) -> int | None:
    """Graph FLOPs of a kernel: its own op and the ops fused into it; None if tfprof counted none of them."""
    by_name = {row.name: row for row in report.ops}
    counts = [by_name[name].graph_flops for name in [op.name, *op.fused_ops] if name in by_name]
    known = [count for count in counts if count is not None]
    return sum(known) if known else None


def render_ops(report: Report, top: int) -> str:
    """The ``top`` kernels by time per step, then the time by kernel type (xprof's op-stats and overview)."""
    ops = timed_ops(report)
    if not ops:
        return "Ops: no profiler trace, so no per-op times (run without --no-trace)."
    total_us = sum(op.time_us or 0.0 for op in ops)
    width = sum(w + 1 for _, w, _ in COLUMNS)
    lines = [f"Top {min(top, len(ops))} of {len(ops)} kernels by time per step "
             f"(Share: of the {total_us:,.1f} us/step all kernels took)", "=" * width,
             _line(tuple(name for name, _, _ in COLUMNS)), "-" * width]
    lines += [_line(_cells(op, report, total_us)) for op in ops[:top]]
    lines += ["=" * width, *by_kernel_type(ops, total_us)]
    return "\n".join(lines)


def _cells(op: OpRow, report: Report, total_us: float) -> tuple[str, ...]:
    flops = kernel_flops(op, report)
    time_us = op.time_us or 0.0
    return (_fit(f"{op.name} ({op.kernel})", 44), _fit(op.layer or "(no layer)", 18),
            _fit(", ".join(name.rsplit("/", 1)[-1] for name in op.fused_ops) or "-", 28),
            UNSUPPORTED if flops is None else si(flops), f"{time_us:,.1f}",
            f"{100 * time_us / total_us:.1f}%" if total_us else "",
            f"{flops / (time_us * 1e3):.2f}" if flops and time_us else "")


def by_kernel_type(ops: list[OpRow], total_us: float) -> list[str]:
    """One line per kernel type: kernels, occurrences per step, time per step and its share."""
    time_us: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for op in ops:
        time_us[op.kernel or op.type] += op.time_us or 0.0
        count[op.kernel or op.type] += 1
    lines = ["Time by kernel type:"]
    for kernel, spent in sorted(time_us.items(), key=lambda item: -item[1]):
        share = f" ({100 * spent / total_us:.1f}%)" if total_us else ""
        lines.append(f"  {kernel:<36} {count[kernel]:>4} kernel(s)  {spent:>12,.1f} us/step{share}")
    return lines


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _line(cells: tuple[str, ...]) -> str:
    return " ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, COLUMNS)).rstrip()
