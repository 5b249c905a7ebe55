"""The Report: three views of a model's cost, per layer, per op, in total, and its step-time statistics.

Built by the pipeline from the outputs of the other stages; written as JSON
(the contract in DESIGN.md), CSV (per layer) or a pandas DataFrame.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfprofscale import output
from tfprofscale.records.memory import LiveStep, LiveTensor, MemoryRecord

if TYPE_CHECKING:
    from tfprofscale.profiling.runtime.timing import Rounds, StopRule


@dataclass(frozen=True)
class StepTimes:
    """Statistics of per-step wall times, in milliseconds.

    From timed rounds (``from_rounds``): ``median`` is the median of the
    rounds' median step times and ``ci_low``/``ci_high`` bound it at
    ``ci_confidence``; ``p10``, ``p90``, ``min``, ``cv`` and ``mean`` describe
    all ``n`` timed steps; ``rounds`` of ``steps_per_round`` steps were run;
    ``stopped_by`` says why timing ended (``precision`` or ``time budget``);
    ``threads`` and ``load_start``/``load_end`` (1-minute load average)
    describe the conditions. Over several processes (``--processes``, see
    ``profiling/runtime/across_processes``) the statistics are medians over the
    processes, the interval is the 95% prediction interval for the median
    another run of N processes reports (``interval_scope`` says which interval it is),
    ``processes`` lists each process's figures (or why it died), and
    ``this_process_median`` is the profiling process's own median (the
    profiler overhead's base).
    """

    median: float
    p10: float
    p90: float
    min: float
    cv: float
    n: int
    mean: float | None = None
    rounds: int | None = None
    steps_per_round: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_confidence: float | None = None
    target_ci: float | None = None
    stopped_by: str | None = None
    threads: dict[str, Any] | None = None
    load_start: float | None = None
    load_end: float | None = None
    interval_scope: str | None = None
    processes: list[dict[str, Any]] | None = None
    processes_requested: int | None = None
    processes_contributed: int | None = None
    between_process_cv: float | None = None
    this_process_median: float | None = None

    @property
    def ci_width(self) -> float | None:
        """Relative width of the median's confidence interval, (high - low) / median."""
        if self.ci_low is None or self.ci_high is None or self.median <= 0:
            return None
        return (self.ci_high - self.ci_low) / self.median

    @classmethod
    def from_rounds(cls, rounds: Rounds, rule: StopRule, **conditions: Any) -> "StepTimes":
        """Statistics of timed rounds (times in seconds), with the conditions they ran in."""
        import numpy as np

        steps = cls.from_seconds(rounds.step_seconds)
        return cls(
            median=float(np.median(rounds.round_medians)) * 1e3, p10=steps.p10, p90=steps.p90, min=steps.min,
            cv=steps.cv, n=rounds.steps, mean=steps.mean, rounds=len(rounds.round_medians),
            steps_per_round=rounds.steps_per_round,
            ci_low=None if rounds.ci_low is None else rounds.ci_low * 1e3,
            ci_high=None if rounds.ci_high is None else rounds.ci_high * 1e3,
            ci_confidence=rule.confidence, target_ci=rule.target_ci, stopped_by=rounds.stopped_by,
            interval_scope="within one process", **conditions,
        )

    @classmethod
    def from_seconds(cls, seconds: list[float]) -> "StepTimes":
        """Statistics of a list of step durations given in seconds."""
        import numpy as np

        ms = np.asarray(seconds, dtype=float) * 1e3
        mean = float(ms.mean())
        return cls(
            median=float(np.median(ms)), p10=float(np.percentile(ms, 10)),
            p90=float(np.percentile(ms, 90)), min=float(ms.min()),
            cv=float(ms.std() / mean) if mean > 0 else 0.0, n=len(ms), mean=mean,
        )


@dataclass(frozen=True)
class KernelTime:
    """One kernel the runtime executed: median self time per step, runs per step, and each step's time."""

    name: str
    kernel_type: str
    time_us: float
    occurrences: float
    per_step_us: tuple[float, ...] = ()


@dataclass
class OpRow:
    """One op: its graph FLOPs, the kernel that ran it and its time per step."""

    name: str
    type: str
    layer: str | None
    graph_flops: int | None
    time_us: float | None
    occurrences: float | None
    kernel: str | None = None
    fused_ops: list[str] = field(default_factory=list)
    fused_into: str | None = None
    tf_estimated_us: float | None = None
    flops_source: str | None = None
    executions: int | None = 1
    time_source: str | None = None
    charged_layer: str | None = None
    fused_layers: list[str] = field(default_factory=list)
    merged_into: str | None = None

    @property
    def timed_layer(self) -> str | None:
        """The layer this op's kernel time is charged to (``charged_layer`` when a fused kernel moved it)."""
        return self.charged_layer or self.layer
    phase: str | None = None  # --train: forward, loss, backward or update


@dataclass
class LayerRow:
    """One layer: analytic, graph and runtime cost side by side."""

    name: str
    type: str
    output_shape: list[int]
    params: int
    analytic_flops: int | None
    analytic_macs: int | None
    graph_flops: int | None
    activation_bytes: int
    time_us: float | None
    achieved_gflops: float | None
    time_share: float | None = None
    receptive_field: int | None = None
    supported: bool = True
    inbound: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    kernels: list[str] = field(default_factory=list)
    uncounted_ops: list[str] = field(default_factory=list)
    analytic_terms: dict[str, int] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    depth: int = 0
    measured_bytes: int | None = None
    tf_estimated_us: float | None = None
    timed_ops: list[str] = field(default_factory=list)
    self_time_us: float | None = None
    time_notes: list[str] = field(default_factory=list)
    graph_inbound: list[str] = field(default_factory=list)
    graph_output_bytes: int | None = None
    internal_peak_bytes: int | None = None
    graph_order: int | None = None
    graph_spans: list[list[int]] | None = None
    # --train only (profiling/train_views.py): formulas, graph FLOPs and kernel time by phase
    forward_flops: int | None = None
    input_grad_flops: int | None = None
    weight_grad_flops: int | None = None
    update_flops: int | None = None
    graph_backward_flops: int | None = None
    graph_update_flops: int | None = None
    forward_time_us: float | None = None
    backward_time_us: float | None = None
    update_time_us: float | None = None


@dataclass
class Totals:
    """Whole-model figures; ``step_time_ms`` is per inference step."""

    params: int
    analytic_flops: int | None
    analytic_macs: int | None
    graph_flops: int
    activation_bytes: int
    analytic_memory_bytes: int
    peak_bytes: int | None
    resident_bytes: int | None
    step_time_ms: StepTimes
    traced_step_time_ms: StepTimes | None = None
    profiler_overhead: float | None = None
    kernel_time_us: float | None = None
    unattributed_time_us: float | None = None
    unsupported_layers: list[str] = field(default_factory=list)
    accuracy: float | None = None
    formula_coverage: float | None = None
    kernel_coverage: float | None = None
    tf_estimated_step_ms: float | None = None
    covered_graph_flops: int | None = None
    tfprof_flops: int | None = None
    graph_flops_by_source: dict[str, int] = field(default_factory=dict)
    uncounted_op_types: dict[str, int] = field(default_factory=dict)
    busy_time_us: float | None = None
    concurrency: float | None = None
    # --train only (profiling/train_views.py)
    train_flops: int | None = None
    graph_train_flops: int | None = None
    train_to_forward: float | None = None
    update_flops: int | None = None
    graph_flops_by_phase: dict[str, int] = field(default_factory=dict)
    time_us_by_phase: dict[str, float] = field(default_factory=dict)


@dataclass
class Report:
    """A profile of one model at one batch size."""

    model: str
    params: dict[str, Any]
    batch_size: int
    tensorflow: str
    device: str
    totals: Totals
    layers: list[LayerRow]
    ops: list[OpRow]
    trace_dir: str | None = None
    predictions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    memory: MemoryRecord | None = None
    mode: str = "infer"
    train_setup: str | None = None
    precision_policy: str | None = None
    max_batch: dict[str, Any] | None = None
    accumulation: dict[str, Any] | None = None
    xla: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict of DESIGN.md's profile contract."""
        return _jsonable(asdict(self))

    def write_json(self, path: str | Path) -> None:
        """Write the report as JSON to ``path`` (atomically: the old file or the whole new one)."""
        output.write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def write_csv(self, path: str | Path) -> None:
        """Write the per-layer table as CSV to ``path`` (atomically)."""
        rows = [_flat_layer(row) for row in self.layers]
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["name"])
        writer.writeheader()
        writer.writerows(rows)
        output.write_text(path, buffer.getvalue())

    def to_frame(self) -> Any:
        """The per-layer table as a pandas DataFrame, one row per layer."""
        import pandas as pd

        return pd.DataFrame([_flat_layer(row) for row in self.layers])

    def ops_frame(self) -> Any:
        """The per-op table as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([asdict(op) for op in self.ops])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        """A Report back from its JSON dict."""
        totals = dict(data["totals"])
        totals["step_time_ms"] = StepTimes(**_known(StepTimes, totals["step_time_ms"]))
        if totals.get("traced_step_time_ms"):
            totals["traced_step_time_ms"] = StepTimes(**_known(StepTimes, totals["traced_step_time_ms"]))
        return cls(
            model=data["model"], params=data["params"], batch_size=data["batch_size"],
            tensorflow=data["tensorflow"], device=data["device"],
            totals=Totals(**_known(Totals, totals)),
            layers=[LayerRow(**_known(LayerRow, row)) for row in data["layers"]],
            ops=[OpRow(**_known(OpRow, row)) for row in data["ops"]],
            trace_dir=data.get("trace_dir"), predictions=data.get("predictions", []),
            warnings=list(data.get("warnings", [])), memory=_memory_record(data.get("memory")),
            **{key: data[key] for key in TRAIN_REPORT_KEYS if key in data},
        )


#: Report keys of a ``--train`` / ``--memory-budget`` / ``--jit-compile`` profile, kept by ``from_dict``.
TRAIN_REPORT_KEYS = ("mode", "train_setup", "precision_policy", "max_batch", "accumulation", "xla")


def _memory_record(data: dict[str, Any] | None) -> MemoryRecord | None:
    if data is None:
        return None
    record = MemoryRecord(**_known(MemoryRecord, data))
    record.live_at_peak = [LiveTensor(**_known(LiveTensor, tensor)) for tensor in data.get("live_at_peak", [])]
    record.live_timeline = [LiveStep(**_known(LiveStep, step)) for step in data.get("live_timeline", [])]
    return record


def _known(record: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(record)}
    return {k: v for k, v in data.items() if k in names}


def _flat_layer(row: LayerRow) -> dict[str, Any]:
    flat = asdict(row)
    flat["output_shape"] = "x".join(str(d) for d in row.output_shape)
    for key in ("inbound", "ops", "kernels", "uncounted_ops", "timed_ops", "graph_inbound"):
        flat[key] = " ".join(flat[key])
    flat["time_notes"] = "; ".join(flat["time_notes"])
    flat["graph_spans"] = json.dumps(flat["graph_spans"])
    for key in ("analytic_terms", "geometry"):
        flat[key] = json.dumps(flat[key], sort_keys=True)
    return flat


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
