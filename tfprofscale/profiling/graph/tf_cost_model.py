"""TensorFlow's own cost model: Grappler's analytical estimate of every op, a fourth view of time.

The traced graph with every variable a one-value constant of its shape
(``TracedModel.shape_graph()``, see shape_graph.py: Grappler reads shapes,
never values) goes to Grappler as an ``Item``; ``Cluster.MeasureCosts`` on a *virtual*
cluster runs TensorFlow's ``OpLevelCostEstimator`` and ``VirtualScheduler``
instead of the graph. Per op that estimator charges

    compute time = operations / (num_cores * frequency)     (1 operation per core per cycle)
    memory time  = (input + output bytes) / bandwidth
    execution    = compute + memory                       (no overlap, Grappler's default)

and the scheduler places the ops one after another on the device: the
predicted run time is the end of the last op (with one device, the sum).

The virtual device is this machine as the roofline measured it
(``profiling.runtime.machine_peaks``): ``num_cores`` the CPUs, ``frequency``
chosen so that ``num_cores * frequency`` equals the measured peak FLOP/s
(an effective frequency: Grappler's CPU model has no vector width),
``bandwidth`` the measured streaming bandwidth, caches read from sysfs.
Made-up properties are far off: 2 cores at 2.5 GHz predict 1.57 s for a
~30 ms ResNet50 step.

Where the numbers come from: the predicted run time is ``MeasureCosts``'
run time; per-op compute and memory time come from the returned
``OpPerformance`` protos, which TensorFlow truncates to whole microseconds
(an op under 1 us shows 0 / 0). Per-op execution time: for graphs of up to
``TIMELINE_MAX_NODES`` nodes from the scheduler's timeline (``step_stats``,
nanoseconds), which costs a second simulated run; for larger graphs from
the protos (whole microseconds, an error of under 1 us per op on ops that
mostly take far longer). On ResNet50 (1,831 nodes) the timeline doubled
MeasureCosts' time. Ops are keyed by their graph name, which
the shape-only graph keeps, so they join the report's op rows by name and its layers by
the traced scopes. The estimate is of the graph as written: oneDNN's fusions
happen later, at run time.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfprofscale.errors import InputError
from tfprofscale.footprint import cost_model_need, skip_reason
from tfprofscale.profiling.runtime.machine_peaks import machine_peaks, under_load_warning

if TYPE_CHECKING:
    from tfprofscale.profiling.graph.shape_graph import ShapeGraph
    from tfprofscale.profiling.runtime.machine_peaks import MachinePeaks
    from tfprofscale.profiling.trace.tracing import TracedModel
    from tfprofscale.records import Report

DEVICE_NAME = "/job:localhost/replica:0/task:0/device:CPU:0"
TIMELINE_MAX_NODES = 400


@dataclass(frozen=True)
class VirtualCpu:
    """The properties Grappler's virtual CPU is given (its units: MHz, KB/s, bytes)."""

    num_cores: int
    frequency_mhz: float
    bandwidth_kb_per_s: float
    l1_cache_bytes: int = 0
    l2_cache_bytes: int = 0
    l3_cache_bytes: int = 0

    @property
    def flops_per_s(self) -> float:
        """Grappler's CPU peak: one operation per core per cycle."""
        return self.num_cores * self.frequency_mhz * 1e6

    @property
    def bytes_per_s(self) -> float:
        """Grappler's memory bandwidth."""
        return self.bandwidth_kb_per_s * 1e3

    def named_device(self) -> Any:
        """The ``NamedDevice`` proto for ``Cluster(devices=[...])``."""
        from tensorflow.core.protobuf import device_properties_pb2

        properties = device_properties_pb2.DeviceProperties(
            type="CPU", num_cores=self.num_cores, frequency=int(round(self.frequency_mhz)),
            bandwidth=int(round(self.bandwidth_kb_per_s)), l1_cache_size=self.l1_cache_bytes,
            l2_cache_size=self.l2_cache_bytes, l3_cache_size=self.l3_cache_bytes)
        return device_properties_pb2.NamedDevice(name=DEVICE_NAME, properties=properties)


def virtual_cpu(peaks: MachinePeaks, cores: int | None = None) -> VirtualCpu:
    """This machine as Grappler's CPU: the measured peaks spread over its cores, its caches."""
    cores = cores or os.cpu_count() or 1
    return VirtualCpu(num_cores=cores, frequency_mhz=peaks.flops_per_s / cores / 1e6,
                      bandwidth_kb_per_s=peaks.bytes_per_s / 1e3, l1_cache_bytes=cache_bytes(1) or 0,
                      l2_cache_bytes=cache_bytes(2) or 0, l3_cache_bytes=cache_bytes(3) or 0)


def cache_bytes(level: int, cpu_dir: str | Path = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """Size of the data (or unified) cache at ``level`` from sysfs; None if not described."""
    for index in sorted(Path(cpu_dir).glob("index*")):
        try:
            if int((index / "level").read_text()) != level or (index / "type").read_text().strip() == "Instruction":
                continue
            size = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
        return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
    return None


@dataclass(frozen=True)
class OpEstimate:
    """Grappler's estimate for one graph op, in microseconds (compute/memory: None when not reported)."""

    name: str
    type: str
    estimated_us: float
    compute_us: float | None
    memory_us: float | None


@dataclass(frozen=True)
class CostEstimate:
    """Grappler's estimate for a whole graph: per op, and the predicted run time of one step."""

    ops: list[OpEstimate]
    run_time_ms: float
    device: VirtualCpu

    def by_name(self) -> dict[str, OpEstimate]:
        """Op estimates keyed by graph op name."""
        return {op.name: op for op in self.ops}


class CostModelError(Exception):
    """Grappler could not estimate the graph (one line saying why)."""


def estimate_costs(graph: ShapeGraph, device: VirtualCpu) -> CostEstimate:
    """Grappler's analytical estimate of the shape-only graph on ``device``; CostModelError if it fails."""
    try:
        return _measure_costs(graph.metagraph(), device)
    except Exception as error:  # Grappler raises many error types (shape inference, placement, protobuf)
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise CostModelError(f"{type(error).__name__}: {first_line}") from None


def _measure_costs(metagraph: Any, device: VirtualCpu) -> CostEstimate:
    from tensorflow.python.grappler import cluster as grappler_cluster
    from tensorflow.python.grappler import item as grappler_item

    item = grappler_item.Item(metagraph)
    timeline = len(metagraph.graph_def.node) <= TIMELINE_MAX_NODES
    cluster = grappler_cluster.Cluster(devices=[device.named_device()], disable_timeline=not timeline)
    try:
        op_performances, run_time_s, step_stats = cluster.MeasureCosts(item)
    finally:
        cluster.Shutdown()
    ops = _timeline_ops(step_stats, op_performances) if timeline else _performance_ops(op_performances)
    return CostEstimate(ops, run_time_s * 1e3, device)


def _timeline_ops(step_stats: Any, op_performances: list[Any]) -> list[OpEstimate]:
    """Execution time from the timeline nodes (ns); compute/memory split from the OpPerformance (ns)."""
    split = {perf.node: perf for perf in op_performances}
    return [OpEstimate(name=node.node_name, type=node.timeline_label, estimated_us=node.op_end_rel_nanos / 1e3,
                       compute_us=_us(split.get(node.node_name), "compute_time"),
                       memory_us=_us(split.get(node.node_name), "memory_time"))
            for device_stats in step_stats.dev_stats for node in device_stats.node_stats]


def _performance_ops(op_performances: list[Any]) -> list[OpEstimate]:
    """Everything from the OpPerformance protos (whole microseconds)."""
    return [OpEstimate(name=perf.node, type=perf.op.op, estimated_us=perf.compute_cost / 1e3,
                       compute_us=perf.compute_time / 1e3, memory_us=perf.memory_time / 1e3)
            for perf in op_performances]


def _us(performance: Any | None, field_name: str) -> float | None:
    return getattr(performance, field_name) / 1e3 if performance is not None else None


def apply_estimates(report: Report, estimate: CostEstimate, layer_of: Callable[[str], str | None]) -> None:
    """Fill ``ops[].tf_estimated_us``, per-layer sums and ``totals.tf_estimated_step_ms``.

    A layer's sum covers every graph op Grappler priced in the layer's
    scope, including ops the report does not list (reshapes, identities).
    """
    by_name = estimate.by_name()
    for op in report.ops:
        if op.name in by_name:
            op.tf_estimated_us = by_name[op.name].estimated_us
    per_layer: dict[str, float] = {}
    for op in estimate.ops:
        layer = layer_of(op.name)
        if layer is not None:
            per_layer[layer] = per_layer.get(layer, 0.0) + op.estimated_us
    for row in report.layers:
        row.tf_estimated_us = per_layer.get(row.name)
    report.totals.tf_estimated_step_ms = estimate.run_time_ms


def add_tf_estimates(report: Report, traced: TracedModel, peaks: MachinePeaks | None = None,
                     max_memory: int | None = None) -> None:
    """Run Grappler on the traced model and fill the report; on failure a warning and nulls, never a traceback.

    Skipped, with one warning, when its estimated need (``footprint.cost_model_need``)
    would not fit in the memory available or under ``max_memory`` bytes.
    """
    skipped = skip_reason(cost_model_need(len(traced.graph.get_operations())), max_memory)
    if skipped is not None:
        report.warnings.append(f"TensorFlow's cost model (Grappler) not run: {skipped}; tf_estimated_* left null")
        return
    try:
        if peaks is None:
            peaks = machine_peaks()
            busy = under_load_warning(peaks)
            report.warnings += [f"TensorFlow's cost model priced the ops at these peaks: {busy}"] if busy else []
        estimate = estimate_costs(traced.shape_graph(), virtual_cpu(peaks))
    except (CostModelError, InputError) as error:
        report.warnings.append(f"TensorFlow's cost model (Grappler) could not estimate this graph: {error}; "
                               "tf_estimated_* left null")
        return
    apply_estimates(report, estimate, traced.layer_of)
