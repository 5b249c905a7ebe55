"""The training step's views: FLOPs and time per layer split into forward, backward and update.

Graph: every op of the traced step has a phase (``TrainTraced.phase_of``)
and a layer (the one it computes, differentiates or updates), so tfprof's
counts and the kernels' times split per layer and phase. In train mode a
row's ``graph_flops`` is its forward FLOPs (what inference counts, so that
formulas and graph still compare like for like), with ``graph_backward_flops``
and ``graph_update_flops`` beside it; ``time_us`` is the layer's whole time in
the step. Formulas: the forward formula (``forward_flops``), the backward
formulas (``input_grad_flops``, ``weight_grad_flops``: formulas/backward.py)
and the optimizer's per-element update count times the layer's trainable
parameters (``update_flops``: formulas/optimizers.py).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tfprofscale.formulas.backward import backward_costs
from tfprofscale.formulas.optimizers import optimizer_spec
from tfprofscale.profiling.trace.tracing import STRUCTURAL_OP_TYPES
from tfprofscale.profiling.trace.train_step import (
    BACKWARD,
    FORWARD,
    LOSS,
    PHASES,
    UPDATE,
)
from tfprofscale.records import LayerCost, LayerInfo


def add_train_views(report: Any, traced: Any, stats: Any, costs: Sequence[LayerCost]) -> None:
    """Fill a Report of a traced training step with the per-phase views and the train totals."""
    for op in report.ops:
        op.phase = traced.phase_of(op.name)
    flops, uncounted = _graph_flops_by_layer_phase(stats, traced)
    times = _time_by_layer_phase(report.ops)
    for row in report.layers:
        row.graph_flops = None if row.name in uncounted else flops[row.name].get(FORWARD, 0)
        row.graph_backward_flops = flops[row.name].get(BACKWARD, 0)
        row.graph_update_flops = flops[row.name].get(UPDATE, 0)
        if row.time_us is not None:
            row.forward_time_us, row.backward_time_us, row.update_time_us = (
                times[row.name].get(phase, 0.0) for phase in (FORWARD, BACKWARD, UPDATE))
            step_flops = sum(flops[row.name].values())
            row.achieved_gflops = step_flops / (row.time_us * 1e3) if step_flops and row.time_us else None
    _add_formulas(report.layers, traced, costs)
    _train_totals(report, stats, traced, times)
    report.mode = "train"
    report.train_setup = traced.setup.description if traced.setup is not None else None


def _graph_flops_by_layer_phase(stats: Any, traced: Any) -> tuple[dict[str, dict[str, int]], set[str]]:
    """layer -> phase -> counted FLOPs; and the layers whose forward computing ops nobody counted (None, not 0)."""
    flops: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    computing: dict[str, bool] = defaultdict(bool)
    counted: dict[str, bool] = defaultdict(bool)
    for op in stats.ops:
        layer, phase = traced.layer_of(op.name), traced.phase_of(op.name)
        if layer is None or phase is None:
            continue
        if phase == FORWARD and op.type not in STRUCTURAL_OP_TYPES and op.runs:
            computing[layer] = True
            counted[layer] |= op.flops is not None
        flops[layer][phase] += op.flops or 0
    uncounted = {layer for layer in computing if not counted[layer]}
    return flops, uncounted


def _time_by_layer_phase(ops: Sequence[Any]) -> dict[str, dict[str, float]]:
    """layer (None: no layer) -> phase -> kernel microseconds per step."""
    times: dict[Any, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for op in ops:
        if op.time_us and op.phase is not None:
            times[op.layer][op.phase] += op.time_us
    return times


def _add_formulas(rows: Sequence[Any], traced: Any, costs: Sequence[LayerCost]) -> None:
    """Forward, input-gradient, weight-gradient and update FLOPs by the formulas, per layer."""

    backward = backward_costs(traced.layers, costs)
    spec = optimizer_spec(traced.keras_model.optimizer)
    for row, info, cost, grads in zip(rows, traced.layers, costs, backward):
        row.forward_flops = cost.flops
        row.input_grad_flops, row.weight_grad_flops = grads.input_grad_flops, grads.weight_grad_flops
        row.update_flops = spec.update_flops_per_element * trainable_elements(info)


def trainable_elements(info: LayerInfo) -> int:
    """Elements of the layer's trainable variables (0 for a composite's own-work row: its weights are unknown here)."""
    layer = info.layer
    weights = getattr(layer, "trainable_weights", None) or []
    return sum(int(getattr(w, "size", 0) or _elements(w.shape)) for w in weights)


def _elements(shape: Sequence[Any]) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def _train_totals(report: Any, stats: Any, traced: Any, times: dict[Any, dict[str, float]]) -> None:
    """Graph FLOPs and time per phase, the formulas' train FLOPs and the train-to-forward ratio."""
    totals = report.totals
    by_phase: dict[str, int] = {phase: 0 for phase in PHASES}
    for op in stats.ops:
        phase = traced.phase_of(op.name)
        if phase is not None:
            by_phase[phase] += op.flops or 0
    totals.graph_flops_by_phase = by_phase
    totals.graph_train_flops = stats.total_flops
    totals.graph_flops = by_phase[FORWARD]
    covered = sum(row.graph_flops or 0 for row in report.layers if row.supported)
    totals.covered_graph_flops = covered
    totals.formula_coverage = covered / by_phase[FORWARD] if by_phase[FORWARD] else None
    totals.train_to_forward = stats.total_flops / by_phase[FORWARD] if by_phase[FORWARD] else None
    if totals.traced_step_time_ms is not None:
        totals.time_us_by_phase = {phase: sum(layer.get(phase, 0.0) for layer in times.values())
                                   for phase in (FORWARD, LOSS, BACKWARD, UPDATE)}
    parts = [(row.forward_flops, row.input_grad_flops, row.weight_grad_flops, row.update_flops)
             for row in report.layers if row.supported]
    totals.update_flops = sum(row.update_flops or 0 for row in report.layers)
    if parts and all(value is not None for part in parts for value in part) and len(parts) == len(report.layers):
        totals.train_flops = sum(sum(part) for part in parts)
