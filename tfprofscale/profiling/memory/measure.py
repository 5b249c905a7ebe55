"""Memory stage: one traced Session step of the frozen model, read into a MemoryRecord.

The frozen function (``TracedModel.frozen()``, shared with the cost model)
runs in a ``tf.compat.v1.Session`` once untraced (kernels and caches built)
and once with ``FULL_TRACE``; its ``step_stats`` give every allocation
(``step_memory``). The Session runs ops one at a time
(``inter_op_parallelism_threads=1``) so that the execution order, and the
peak, are the same from run to run, and without constant folding (neither
Grappler's nor the classic optimizer's): in the real function the weights
are variables, which cannot be folded; folded, the frozen constants would
be copied, BatchNormalization folded into the convolutions and BiasAdds
with an all-zero bias dropped, and folding takes seconds on large models.
Beside the measurement: TensorFlow's own static estimate (Grappler's
``DeterminePeakMemoryUsage`` on the same frozen graph), the oneDNN scratch
of each kernel probed alone (``workspace_probe``, for the estimate) and the
process-wide allocator figures the runtime stage read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from tfprofscale.errors import InputError
from tfprofscale.profiling.memory.frozen import FrozenGraph
from tfprofscale.records import LiveTensor, MemoryRecord
from tfprofscale.profiling.memory.live_timeline import live_timeline
from tfprofscale.profiling.memory.step_memory import DEVICE, HOST, StepMemory, step_memory

LIVE_AT_PEAK_LIMIT = 20


@dataclass
class MemoryMeasurement:
    """The memory record, per-layer allocated bytes and the warnings the stage raised."""

    record: MemoryRecord
    layer_bytes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def measure_memory(traced: Any, device: str, allocator_peak: int | None = None,
                   allocator_resident: int | None = None, layers: list[Any] | None = None) -> MemoryMeasurement:
    """Measure one step's memory of a TracedModel on ``device`` (``CPU:0`` or ``GPU:0``).

    ``layers`` (report rows with ``type`` and ``geometry``) name the
    kernels (convolutions, matrix products) whose oneDNN scratch is probed
    alone for the estimate.

    A model that cannot be frozen or run in a Session still gets a record:
    its ``missing`` says why in one line, the estimates and allocator figures stay.
    """
    record = MemoryRecord(input_bytes=sum(int(np.prod(x.shape)) * x.dtype.size for x in traced.inputs),
                          allocator_peak_bytes=allocator_peak or None,
                          allocator_resident_bytes=allocator_resident if allocator_peak else None)
    try:
        frozen = traced.frozen()
        run_metadata = traced_session_step(frozen, traced.inputs)
    except InputError as error:
        record.missing = str(error)
        return MemoryMeasurement(record)
    measurement = fill_record(record, step_memory(run_metadata), traced.layer_of, device)
    record.tf_estimated_peak_bytes = grappler_peak_bytes(frozen, device)
    record.kernel_scratch = probed_kernel_scratch(layers or [])
    measurement.warnings += zero_bias_warnings(frozen, traced.layer_of)
    return measurement


def fill_record(record: MemoryRecord, step: StepMemory, layer_of: Callable[[str], str | None],
                device: str) -> MemoryMeasurement:
    """Peak, where it happens, what is live at it and per-layer bytes, from one step's records."""
    space = DEVICE if device.upper().startswith("GPU") else HOST
    peak = step.peak(space)
    record.measured_peak_bytes = peak.peak_bytes if step.allocations else None
    record.weights_bytes = step.persistent_bytes.get(space, 0)
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
    from tfprofscale.profiling.memory.workspace_probe import kernel_scratch_bytes, probe_key

    keys = {row.name: probe_key(row.type, row.geometry) for row in layers}
    keys = {name: key for name, key in keys.items() if key is not None}
    try:
        probed = kernel_scratch_bytes(list(keys.values()))
    except (InputError, ValueError, TypeError):  # a geometry TensorFlow cannot build alone: no probe, no term
        return {}
    return {name: probed[key] for name, key in keys.items()}


def traced_session_step(frozen: FrozenGraph, inputs: tuple[Any, ...]) -> Any:
    """RunMetadata of one FULL_TRACE Session step of the frozen graph (after one untraced step).

    Ops are placed by the Session's default (on the GPU when there is one).
    InputError, in one line, when the graph cannot be imported or run.
    """
    feeds = {name: np.asarray(value) for name, value in zip(frozen.input_names, inputs)}
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    run_metadata = tf.compat.v1.RunMetadata()
    try:
        with tf.compat.v1.Session(graph=frozen.graph(), config=session_config()) as session:
            session.run(frozen.output_names, feeds)
            session.run(frozen.output_names, feeds, options=options, run_metadata=run_metadata)
    except (tf.errors.OpError, ValueError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"cannot run the frozen graph in a Session: {type(error).__name__}: {first_line}") from None
    return run_metadata


def session_config() -> Any:
    """One op at a time, no constant folding (the weights are variables in the real function)."""
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=1, allow_soft_placement=True)
    config.graph_options.rewrite_options.constant_folding = rewriter_config_pb2.RewriterConfig.OFF
    config.graph_options.optimizer_options.opt_level = tf.compat.v1.OptimizerOptions.L0  # nor the classic folding
    config.graph_options.optimizer_options.do_function_inlining = True
    return config


def grappler_peak_bytes(frozen: FrozenGraph, device: str) -> int | None:
    """TensorFlow's static peak (Grappler ``DeterminePeakMemoryUsage``) on ``device``; None if it fails."""
    from tensorflow.core.protobuf import device_properties_pb2
    from tensorflow.python.grappler import cluster, item

    kind = "GPU" if device.upper().startswith("GPU") else "CPU"
    name = f"/job:localhost/replica:0/task:0/device:{kind}:0"
    named = device_properties_pb2.NamedDevice(name=name, properties=device_properties_pb2.DeviceProperties(type=kind))
    try:
        peaks = cluster.Cluster(devices=[named]).DeterminePeakMemoryUsage(item.Item(frozen.metagraph()))
    except Exception:  # Grappler raises its own status errors; the estimate is then unknown, not 0
        return None
    return int(peaks[name][0]) if name in peaks else None


def zero_bias_warnings(frozen: FrozenGraph, layer_of: Callable[[str], str | None]) -> list[str]:
    """One warning when BiasAdd biases are all zero (untrained weights): the measurement is of those values."""
    nodes = {node.name: node for node in frozen.graph_def.node}
    zero_layers = []
    for node in frozen.graph_def.node:
        if node.op != "BiasAdd" or len(node.input) < 2:
            continue
        bias = _through_identities(nodes, node.input[1])
        if bias is not None and bias.op == "Const" and not tf.make_ndarray(bias.attr["value"].tensor).any():
            zero_layers.append(layer_of(node.name) or node.name)
    if not zero_layers:
        return []
    shown = ", ".join(zero_layers[:5]) + (f" and {len(zero_layers) - 5} more" if len(zero_layers) > 5 else "")
    return [f"untrained weights: the biases of {shown} are all zero; these initial values are what was measured, "
            "and TensorFlow's graph optimizer merges identical constant tensors, so the weights held can be fewer "
            "bytes than the parameters (give --weights for the trained model)"]


def _through_identities(nodes: dict[str, Any], input_name: str) -> Any:
    """The node an input comes from, looking through Identity nodes (frozen ReadVariableOps)."""
    node = nodes.get(input_name.split(":")[0].lstrip("^"))
    while node is not None and node.op == "Identity" and node.input:
        node = nodes.get(node.input[0].split(":")[0].lstrip("^"))
    return node


def attach_memory(report: Any, measurement: MemoryMeasurement) -> None:
    """Put a measurement into a Report: its memory record, per-layer bytes, peak total, warnings, estimate."""
    from tfprofscale.profiling.memory.estimate import estimate_memory

    record = report.memory = measurement.record
    for row in report.layers:
        row.measured_bytes = measurement.layer_bytes.get(row.name)
    report.totals.peak_bytes = total_peak_bytes(record)
    if record.allocator_peak_bytes is None:
        report.totals.resident_bytes = None
    report.warnings += measurement.warnings
    estimate = estimate_memory(report)
    record.estimated_peak_bytes = estimate.total_bytes
    record.estimate_terms = dict(estimate.terms)
    record.estimated_peak_layer = estimate.peak_layer


def total_peak_bytes(record: MemoryRecord) -> int | None:
    """Weights + input + the measured transient peak; None when the step was not measured."""
    if record.measured_peak_bytes is None:
        return None
    return (record.weights_bytes or 0) + (record.input_bytes or 0) + record.measured_peak_bytes


def add_memory_trace(report: Any, model_or_path: Any, run_dir: Any, options: Any) -> None:
    """Run ``--memory-trace`` (see memory_trace.py); its folder, or why not, goes into the memory record."""
    from tfprofscale.profiling.memory.memory_trace import run_memory_trace

    record = report.memory
    if not isinstance(model_or_path, (str, os.PathLike)):
        record.memory_trace = "not run: --memory-trace rebuilds the model in a child process and needs a model file"
    elif run_dir is None:
        record.memory_trace = "not run: --memory-trace writes to the logdir, which --no-trace turns off"
    else:
        folder, why = run_memory_trace(str(model_or_path), run_dir, options.batch_size, options.params,
                                       options.weights)
        record.memory_trace = folder or f"not run: {why}"
