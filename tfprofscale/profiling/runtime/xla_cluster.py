"""``--jit-compile``: the step compiled by XLA, read from its optimized HLO and the profiler trace.

Compiled with XLA, the step runs as one cluster: the profiler's trace has no
TensorFlow kernels, only the HLO instructions XLA's CPU backend ran
(``convolution.1``, ``broadcast_maximum_fusion``, ``MatMul.4`` ...). The
optimized HLO (``experimental_get_compiler_ir(...)(stage="optimized_hlo")``)
names, in each instruction's metadata, the TensorFlow op it came from
(``op_name="functional_1/conv0_1/convolution"``), so an instruction's time
goes to that op's layer and phase; instructions without an op name (XLA's
own copies and parameters) stay unattributed, and the report says how much.
What TensorFlow does not expose: XLA's own cost analysis (``HloCostAnalysis``)
has no Python API in TensorFlow 2.21, so the FLOPs shown are tfprof's on the
graph before XLA; the cluster's bytes are those of its parameters and
results (``entry_computation_layout``).
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import numpy as np

from tfprofscale.profiling.runtime.kernel_trace import (
    read_trace_events,
    step_windows,
    union_length,
)

_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\S+)\s+(\w[\w\-]*)\(")
_OP_NAME = re.compile(r'op_name="([^"]+)"')
_SHAPE = re.compile(r"\b(pred|s8|s16|s32|s64|u8|u16|u32|u64|f16|bf16|f32|f64|c64|c128)\[([\d,]*)\]")
_ELEMENT_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4,
                  "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
NOT_EXPOSED = ("XLA's cost analysis (HloCostAnalysis) has no Python API in TensorFlow 2.21: FLOPs are tfprof's "
               "on the graph before XLA")


def optimized_hlo(traced: Any) -> str:
    """The optimized HLO text of the traced tf.function on its inputs."""
    return traced.source_function.experimental_get_compiler_ir(*traced.inputs)(stage="optimized_hlo")


def instruction_op_names(hlo: str) -> dict[str, str]:
    """HLO instruction name -> the TensorFlow op it came from (instructions with an ``op_name`` only)."""
    names = {}
    for line in hlo.splitlines():
        match, op_name = _INSTRUCTION.match(line), _OP_NAME.search(line)
        if match and op_name and op_name.group(1) != "XLA_Args":
            names[match.group(1)] = op_name.group(1)
    return names


def entry_summary(hlo: str) -> dict[str, int]:
    """The entry computation's instruction count and fusions, and its parameters' and results' bytes."""
    entry = hlo[hlo.find("\nENTRY"):] if "\nENTRY" in hlo else ""
    body = entry.split("\n}")[0].splitlines()[1:]
    opcodes = [match.group(3) for match in map(_INSTRUCTION.match, body) if match]
    layout = re.search(r"entry_computation_layout=\{\((.*)\)->(.*?)\}\s*(?:,|$)", hlo.splitlines()[0] if hlo else "")
    arguments, results = (layout.group(1), layout.group(2)) if layout else ("", "")
    return {"entry_instructions": len(opcodes), "fusions": opcodes.count("fusion"),
            "argument_bytes": _shape_bytes(arguments), "result_bytes": _shape_bytes(results)}


def _shape_bytes(text: str) -> int:
    total = 0
    for element, dims in _SHAPE.findall(text):
        count = int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1
        total += count * _ELEMENT_BYTES[element]
    return total


def instruction_times(events: list[dict[str, Any]], instructions: set[str]) -> dict[str, float]:
    """HLO instruction -> median over traced steps of its busy time (union over threads) in microseconds."""
    windows = step_windows(events)
    per_step: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(windows))
    spans: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for event in events:
        name = event.get("name")
        if event.get("ph") != "X" or name not in instructions:
            continue
        start, end = float(event["ts"]), float(event["ts"]) + float(event.get("dur", 0.0))
        for index, window in enumerate(windows):
            if window.start_us <= start < window.start_us + window.duration_us:
                spans[(name, index)].append((start, end))
    for (name, index), intervals in spans.items():
        per_step[name][index] = union_length(intervals)
    return {name: float(np.median(times)) for name, times in per_step.items()}


def add_xla_view(report: Any, traced: Any) -> None:
    """``report.xla`` and, from the trace's HLO instructions, per-layer (and per-phase) times."""
    try:
        hlo = optimized_hlo(traced)
    except Exception as error:  # noqa: BLE001 -- TensorFlow raises its own status errors when XLA cannot compile
        report.xla = {"lines": [f"no compiler IR: {type(error).__name__}: {str(error).splitlines()[0][:200]}"]}
        return
    names = instruction_op_names(hlo)
    view: dict[str, Any] = {**entry_summary(hlo), "flops": None, "flops_note": NOT_EXPOSED}
    view["lines"] = [(f"one cluster of {view['entry_instructions']} HLO instructions ({view['fusions']} fusions); "
                      f"parameters {view['argument_bytes']:,} B, results {view['result_bytes']:,} B"), NOT_EXPOSED]
    events = read_trace_events(report.trace_dir) if report.trace_dir else []
    times = instruction_times(events, set(names)) if events else {}
    if not times:
        view["lines"].append("per-layer time: cannot attribute (no HLO instruction of the cluster in the trace"
                             + ("" if report.trace_dir else ": run without --no-trace") + ")")
        report.xla = view
        return
    _apply_layer_times(report, traced, names, times, view)
    report.xla = view


def _apply_layer_times(report: Any, traced: Any, names: dict[str, str], times: dict[str, float],
                       view: dict[str, Any]) -> None:
    """Each instruction's time to its TensorFlow op's layer (and phase); the rest stays unattributed."""
    by_layer: dict[str, float] = defaultdict(float)
    by_phase: dict[tuple[str, str], float] = defaultdict(float)
    phase_of = getattr(traced, "phase_of", None)
    phase_totals: dict[str, float] = defaultdict(float)
    for instruction, time_us in times.items():
        layer = traced.layer_of(names[instruction])
        if phase_of is not None:
            phase_totals[phase_of(names[instruction]) or "unknown"] += time_us
        if layer is None:
            by_layer[""] += time_us
            continue
        by_layer[layer] += time_us
        if phase_of is not None:
            by_phase[(layer, phase_of(names[instruction]) or "")] += time_us
    total = sum(by_layer.values())
    for row in report.layers:
        row.time_us = by_layer.get(row.name, 0.0)
        row.time_share = row.time_us / total if total else None
        flops = (row.graph_flops or 0) + (row.graph_backward_flops or 0) + (row.graph_update_flops or 0)
        row.achieved_gflops = flops / (row.time_us * 1e3) if flops and row.time_us else None
        if phase_of is not None:
            row.forward_time_us, row.backward_time_us, row.update_time_us = (
                by_phase.get((row.name, phase), 0.0) for phase in ("forward", "backward", "update"))
    if phase_of is not None:
        report.totals.time_us_by_phase = dict(phase_totals)
    view["hlo_time_us"] = total
    view["unattributed_time_us"] = by_layer.get("", 0.0)
    view["lines"].append(f"per-layer time from {len(times)} HLO instructions by their TensorFlow op names: "
                         f"{total - by_layer.get('', 0.0):,.1f} of {total:,.1f} us/step attributed")
