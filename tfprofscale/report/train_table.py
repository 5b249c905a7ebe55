"""The printed parts of a ``--train`` profile and of ``--memory-budget``: per-phase columns, the ledger, the batch.

In train mode a row shows the graph's FLOPs and the kernels' time split into
forward (the layer's own ops), backward (its ``gradient_tape/...`` ops: the
error signal it passes down and its weight gradients) and update (the
optimizer's ops on its variables), and the formulas' forward + backward.
"""
from __future__ import annotations

from typing import Any

from tfprofscale.report.units import INDENT, UNSUPPORTED, binary_bytes, short_name, si

TRAIN_COLUMNS = (
    ("Layer (type)", 30, "<"), ("Output shape", 18, "<"), ("Params", 10, ">"),
    ("Fwd FLOPs", 10, ">"), ("Bwd FLOPs", 10, ">"), ("Upd FLOPs", 10, ">"), ("Formula f+b", 12, ">"),
    ("Fwd us", 10, ">"), ("Bwd us", 10, ">"), ("Upd us", 9, ">"), ("Share", 7, ">"), ("Memory", 11, ">"),
)


def mode_header(report: Any) -> str:
    """The header's tail: the mode (train) and the Keras dtype policy when it is not plain float32."""
    parts = []
    if report.mode == "train":
        parts.append("TRAIN step")
    if report.precision_policy and report.precision_policy != "float32":
        parts.append(f"policy {report.precision_policy}")
    if report.xla is not None:
        parts.append("XLA (jit_compile)")
    return "".join(f"  {part}" for part in parts)


def train_cells(row: Any) -> tuple[str, ...]:
    """One layer's cells in train mode."""
    formula = (None if row.forward_flops is None or row.input_grad_flops is None or row.weight_grad_flops is None
               else row.forward_flops + row.input_grad_flops + row.weight_grad_flops)
    return (
        f"{INDENT * row.depth}{short_name(row)} ({row.type})", "(" + ", ".join(map(str, row.output_shape)) + ")",
        f"{row.params:,}", si(row.graph_flops), si(row.graph_backward_flops), si(row.graph_update_flops),
        si(formula), _us(row.forward_time_us, row.time_us), _us(row.backward_time_us, row.time_us),
        _us(row.update_time_us, row.time_us),
        "" if row.time_share is None else f"{100 * row.time_share:.1f}%",
        "" if row.measured_bytes is None else binary_bytes(row.measured_bytes),
    )


def _us(value: float | None, total: float | None) -> str:
    if total is None:
        return UNSUPPORTED
    return f"{value or 0.0:,.1f}"


def train_lines(report: Any) -> list[str]:
    """Lines after the totals: the train step's setup, FLOPs and time by phase, the ledger, the batch limits."""
    lines = _step_lines(report) if report.mode == "train" else []
    if report.memory is not None and report.memory.ledger:
        lines += ledger_lines(report.memory.ledger)
    lines += batch_lines(report)
    if report.xla is not None:
        lines += [f"XLA:           {line}" for line in report.xla.get("lines", [])]
    return lines


def _step_lines(report: Any) -> list[str]:
    t = report.totals
    phases = t.graph_flops_by_phase or {}
    lines = [f"Train step:    {report.train_setup}",
             (f"Train FLOPs:   graph forward {si(phases.get('forward'))} + loss {si(phases.get('loss'))}"
             f" + backward {si(phases.get('backward'))} + update {si(phases.get('update'))}"
             f" = {si(t.graph_train_flops)}; train/forward {_ratio(t.train_to_forward)}"),
             (f"               formulas: train {si(t.train_flops)} (forward + dL/dX + dL/dW + update),"
             f" update {si(t.update_flops)}")]
    if t.time_us_by_phase:
        times = t.time_us_by_phase
        lines.append("Phase time:    " + "  ".join(f"{phase} {times.get(phase, 0.0):,.1f} us"
                                                   for phase in ("forward", "loss", "backward", "update")))
    return lines


def _ratio(value: float | None) -> str:
    return UNSUPPORTED if value is None else f"{value:.2f}"


def ledger_lines(ledger: dict[str, Any]) -> list[str]:
    """The train-step memory ledger as a small table: term, estimated, measured."""
    lines = [f"Ledger:        {'term':<20} {'estimated':>12} {'measured':>12}"]
    for line in ledger["lines"]:
        measured = line.get("measured_bytes")
        lines.append(f"               {line['term']:<20} {binary_bytes(line['estimated_bytes']):>12}"
                     f" {'-' if measured is None else binary_bytes(measured):>12}"
                     + (f"  {line['note']}" if line.get("note") else ""))
    total, measured = ledger.get("total_estimated_bytes"), ledger.get("total_measured_bytes")
    ratio = f"  (estimate/measured {total / measured:.3f})" if total and measured else ""
    lines.append(f"               {'total':<20} {binary_bytes(total):>12} {binary_bytes(measured):>12}{ratio}")
    peak = ledger.get("peak")
    if peak:
        ratio = f"  (estimate/measured {peak['estimated_peak_bytes'] / measured:.3f})" if measured else ""
        lines.append(f"               {'peak (step walked)':<20} {binary_bytes(peak['estimated_peak_bytes']):>12}"
                     f" {binary_bytes(measured):>12}{ratio}  {peak['phase']} at {peak['layer']}")
    return lines


def batch_lines(report: Any) -> list[str]:
    """``--memory-budget``: the largest batch and its peaks; ``--target-batch``: the accumulation plan."""
    found, plan = report.max_batch, report.accumulation
    lines = []
    if found is not None and found.get("batch_size") is not None:
        lines.append(f"Max batch:     {found['batch_size']} within {binary_bytes(found['budget_bytes'])}: measured peak"
                     f" {binary_bytes(found['measured_peak_bytes'])} (estimated"
                     f" {binary_bytes(found['estimated_peak_bytes'])}); batch {found['batch_size'] + 1}:"
                     f" {binary_bytes(found.get('next_batch_measured_peak_bytes'))}")
    elif found is not None:
        lines.append(f"Max batch:     none within {binary_bytes(found['budget_bytes'])}: {found.get('reason')}")
    if plan is not None:
        step = plan.get("step_time_ms")
        lines.append(f"Accumulation:  batch {plan['target_batch']} = {plan['steps']} x micro-batch {plan['micro_batch']}"
                     f", accumulators +{binary_bytes(plan['extra_bytes'])}, step"
                     f" {UNSUPPORTED if step is None else f'{step:.2f} ms'} x {plan['steps']}")
    return lines
