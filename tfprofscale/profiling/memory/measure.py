"""Memory stage: one traced Session step of the model with its variables, read into a MemoryRecord.

The traced function, inlined once (``TracedModel.inlined_graph_def()``,
shared with the cost model's shape-only graph), runs in a
``tf.compat.v1.Session`` whose variables are initialised once from the
model's own buffers (``session_graph``: no weight value is ever copied into
a GraphDef), once untraced (kernels and caches built) and once with
``FULL_TRACE``; its ``step_stats`` give every allocation (``step_memory``).
The Session runs ops one at a time so that the execution order, and the
peak, are the same from run to run, and without constant folding. Beside
the measurement: TensorFlow's own static estimate (Grappler's
``DeterminePeakMemoryUsage`` on the shape-only graph), the oneDNN scratch of
each kernel probed alone (``workspace_probe``, for the estimate) and the
process-wide allocator figures the runtime stage read. The weights' bytes
and the untrained-bias check are read from the captured variables.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfprofscale.errors import InputError
from tfprofscale.footprint import StageNeed, memory_stage_need, skip_reason
from tfprofscale.profiling.graph.shape_graph import (ShapeGraph, assigned_placeholders, captured_variables,
                                                     variable_bytes)
from tfprofscale.profiling.memory.estimate import estimate_memory, set_scoped_figures
from tfprofscale.profiling.memory.live_timeline import live_timeline
from tfprofscale.profiling.memory.memory_trace import run_memory_trace
from tfprofscale.profiling.memory.session_graph import session_graph
from tfprofscale.profiling.memory.step_memory import DEVICE, HOST, StepMemory, step_memory
from tfprofscale.profiling.memory.workspace_probe import kernel_scratch_bytes, largest_group_bytes, probe_key
from tfprofscale.records import LiveTensor, MemoryRecord

LIVE_AT_PEAK_LIMIT = 20


@dataclass
class MemoryMeasurement:
    """The memory record, per-layer allocated bytes and the warnings the stage raised."""

    record: MemoryRecord
    layer_bytes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def measure_memory(traced: Any, device: str, allocator_peak: int | None = None,
                   allocator_resident: int | None = None, layers: list[Any] | None = None,
                   max_memory: int | None = None) -> MemoryMeasurement:
    """Measure one step's memory of a TracedModel on ``device`` (``CPU:0`` or ``GPU:0``).

    ``layers`` (report rows with ``type`` and ``geometry``) name the
    kernels (convolutions, matrix products) whose oneDNN scratch is probed
    alone for the estimate.

    A model that cannot be run in a Session, or whose measurement would not
    fit in the memory available (or ``max_memory`` bytes, see footprint),
    still gets a record: its ``missing`` says why in one line, the estimates
    and allocator figures stay.
    """
    record = MemoryRecord(input_bytes=sum(int(np.prod(x.shape)) * x.dtype.size for x in traced.inputs),
                          allocator_peak_bytes=allocator_peak or None,
                          allocator_resident_bytes=allocator_resident if allocator_peak else None)
    try:
        record.missing = skip_reason(stage_need(traced, layers or []), max_memory)
        if record.missing is None:
            run_metadata = traced_session_step(traced)
    except InputError as error:
        record.missing = str(error)
    if record.missing is not None:
        return MemoryMeasurement(record)
    measurement = fill_record(record, step_memory(run_metadata), traced.layer_of, device,
                              weights_bytes=variable_bytes(traced.function))
    try:
        record.tf_estimated_peak_bytes = grappler_peak_bytes(traced.shape_graph(), device)
    except InputError:  # the cost model's warning says why; the static estimate stays unknown
        pass
    record.kernel_scratch = probed_kernel_scratch(layers or [])
    return measurement


def stage_need(traced: Any, layers: list[Any]) -> StageNeed:
    """What measuring will take beyond what the process holds (footprint.memory_stage_need)."""

    inlined = traced.inlined_graph_def()
    assigned = assigned_placeholders(inlined)
    assigned_bytes = sum(int(np.prod(v.shape)) * v.dtype.size
                         for name, v in captured_variables(traced.function).items() if name in assigned)
    activations = sum(row.activation_bytes or 0 for row in layers)
    probes = largest_group_bytes(list(probe_keys(layers).values()))
    return memory_stage_need(len(inlined.node), assigned_bytes, activations, probes)


def probe_keys(layers: list[Any]) -> dict[str, tuple[Any, ...]]:
    """{layer: its kernel's probe key} for the layers whose kernel can be probed alone."""

    keys = {row.name: probe_key(row.type, row.geometry) for row in layers}
    return {name: key for name, key in keys.items() if key is not None}


def traced_session_step(traced: Any) -> Any:
    """RunMetadata of one FULL_TRACE Session step of a TracedModel (after one untraced step).

    InputError, in one line, when the graph cannot be imported or run.
    """
    with session_graph(traced.function, traced.inlined_graph_def()) as graph:
        graph.run(traced.inputs, trace=False)
        return graph.run(traced.inputs).run_metadata


def fill_record(record: MemoryRecord, step: StepMemory, layer_of: Callable[[str], str | None],
                device: str, weights_bytes: int | None = None) -> MemoryMeasurement:
    """Peak, where it happens, what is live at it and per-layer bytes, from one step's records.

    ``weights_bytes`` (the variables' bytes) when known, else the persistent
    memory the records show (constants).
    """
    space = DEVICE if device.upper().startswith("GPU") else HOST
    peak = step.peak(space)
    record.measured_peak_bytes = peak.peak_bytes if step.allocations else None
    record.weights_bytes = weights_bytes if weights_bytes is not None else step.persistent_bytes.get(space, 0)
    record.peak_op = peak.peak_op
    record.peak_layer = layer_of(peak.peak_op) if peak.peak_op else None
    record.live_at_peak = [LiveTensor(a.tensor, a.op, layer_of(a.op), a.bytes)
                           for a in peak.live[:LIVE_AT_PEAK_LIMIT]]
    record.space_peaks = {name: step.peak(name).peak_bytes for name in step.spaces()}
    record.live_timeline = live_timeline((a for a in step.allocations if a.space == space), layer_of)
    workspace = sum(a.bytes for a in peak.live if a.is_workspace)
    record.measured_terms = {"parameters": record.weights_bytes, "input": record.input_bytes or 0,
                             "activations": peak.peak_bytes - workspace, "workspace": workspace}
    if record.measured_peak_bytes is None:
        record.missing = "the traced step logged no allocation records"
    layer_bytes: dict[str, int] = {}
    for allocation in step.allocations:
        layer = layer_of(allocation.op)
        if allocation.bytes > 0 and allocation.space == space and layer is not None:
            layer_bytes[layer] = layer_bytes.get(layer, 0) + allocation.bytes
    return MemoryMeasurement(record, layer_bytes)


def probed_kernel_scratch(layers: list[Any]) -> dict[str, int]:
    """{layer: bytes of scratch its kernel allocates when run alone} (see workspace_probe)."""
    keys = {row.name: probe_key(row.type, row.geometry) for row in layers}
    keys = {name: key for name, key in keys.items() if key is not None}
    try:
        probed = kernel_scratch_bytes(list(keys.values()))
    except (InputError, ValueError, TypeError):  # a geometry TensorFlow cannot build alone: no probe, no term
        return {}
    return {name: probed[key] for name, key in keys.items()}


def grappler_peak_bytes(graph: ShapeGraph, device: str) -> int | None:
    """TensorFlow's static peak (Grappler ``DeterminePeakMemoryUsage``) on ``device``; None if it fails."""
    from tensorflow.core.protobuf import device_properties_pb2
    from tensorflow.python.grappler import cluster, item

    kind = "GPU" if device.upper().startswith("GPU") else "CPU"
    name = f"/job:localhost/replica:0/task:0/device:{kind}:0"
    named = device_properties_pb2.NamedDevice(name=name, properties=device_properties_pb2.DeviceProperties(type=kind))
    try:
        peaks = cluster.Cluster(devices=[named]).DeterminePeakMemoryUsage(item.Item(graph.metagraph()))
    except Exception:  # Grappler raises its own status errors; the estimate is then unknown, not 0
        return None
    return int(peaks[name][0]) if name in peaks else None


def attach_memory(report: Any, measurement: MemoryMeasurement) -> None:
    """Put a measurement into a Report: its memory record, per-layer bytes, peak total, warnings, estimate."""
    record = report.memory = measurement.record
    for row in report.layers:
        row.measured_bytes = measurement.layer_bytes.get(row.name)
    report.totals.peak_bytes = total_peak_bytes(record)
    if record.allocator_peak_bytes is None:
        report.totals.resident_bytes = None
    report.warnings += measurement.warnings
    estimate = estimate_memory(report)
    set_scoped_figures(record, estimate)
    record.estimate_terms = dict(estimate.terms)
    record.estimated_peak_layer = estimate.peak_layer


def total_peak_bytes(record: MemoryRecord) -> int | None:
    """Weights + input + the measured transient peak; None when the step was not measured."""
    if record.measured_peak_bytes is None:
        return None
    return (record.weights_bytes or 0) + (record.input_bytes or 0) + record.measured_peak_bytes


def add_memory_trace(report: Any, model_or_path: Any, run_dir: Any, options: Any) -> None:
    """Run ``--memory-trace`` (see memory_trace.py); its folder, or why not, goes into the memory record."""
    record = report.memory
    if not isinstance(model_or_path, (str, os.PathLike)):
        record.memory_trace = "not run: --memory-trace rebuilds the model in a child process and needs a model file"
    elif run_dir is None:
        record.memory_trace = "not run: --memory-trace writes to the logdir, which --no-trace turns off"
    else:
        folder, why = run_memory_trace(str(model_or_path), run_dir, options.batch_size, options.params,
                                       options.weights)
        record.memory_trace = folder or f"not run: {why}"
