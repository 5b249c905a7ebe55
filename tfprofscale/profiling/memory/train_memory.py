"""Memory of one training step: the allocation records of one traced step, and the ledger.

A training step assigns its variables, so it is not frozen: its concrete
function runs in a Session with the variables re-created as VarHandleOps
(``session_graph``), once untraced (kernels built, and the Session's own
copy of every variable made: TensorFlow copies a shared buffer before its
first write) and once with ``FULL_TRACE``. The records' running sum is the
step's transient peak (activations kept for the backward pass, error
signals, gradients, the optimizer's temporaries, kernel scratch); around it
stay every variable the step holds (weights and optimizer state, known
exactly from the captured variables) and the fed inputs and labels. So the
measured train-step peak is variables + inputs + labels + transient peak.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from tfprofscale.errors import InputError
from tfprofscale.profiling.memory.measure import MemoryMeasurement, fill_record
from tfprofscale.profiling.memory.step_memory import HOST, StepMemory, step_memory
from tfprofscale.profiling.trace.train_step import BACKWARD, UPDATE

#: Ops that hand their input's buffer on (no allocation of their own).
PASS_THROUGH_OP_TYPES = frozenset({"Identity", "IdentityN", "Reshape", "Squeeze", "ExpandDims", "StopGradient"})
from tfprofscale.formulas.optimizers import optimizer_spec
from tfprofscale.profiling.memory.ledger import measured_ledger_terms
from tfprofscale.profiling.memory.session_graph import session_graph
from tfprofscale.profiling.memory.train_peak import estimate_train_ledger
from tfprofscale.records import Ledger, MemoryRecord


def tensor_bytes(tensors: Any) -> int:
    """Bytes of a sequence of tensors or arrays."""
    return sum(int(np.prod(t.shape)) * t.dtype.size for t in tensors)


def variable_bytes(variables: Any) -> int:
    """Bytes of Keras (or tf) variables at their dtypes."""
    import tensorflow as tf

    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


def train_step_metadata(traced: Any) -> tuple[Any, int]:
    """The RunMetadata of one traced Session step of the train step, and the bytes of its variables.

    SessionGraphError (an InputError, one line) when the step cannot run in a Session.
    """

    with session_graph(traced.function) as graph:
        graph.run(traced.inputs, trace=False)
        step = graph.run(traced.inputs)
        held = sum(variable.bytes for variable in graph.variables)
    return step.run_metadata, held


def traced_train_step(traced: Any) -> tuple[StepMemory, int]:
    """The allocation records of one traced Session step of the train step, and the bytes of its variables."""
    run_metadata, held = train_step_metadata(traced)
    return step_memory(run_metadata), held


def measured_train_peak(traced: Any, device: str = "CPU:0") -> int:
    """Variables + inputs + labels + the transient peak of one traced step, in bytes."""
    memory, held = traced_train_step(traced)
    space = "device" if device.upper().startswith("GPU") else "host"
    return held + tensor_bytes(traced.inputs) + memory.peak(space).peak_bytes


def measure_train_memory(traced: Any, device: str, metadata: tuple[Any, int] | None = None
                         ) -> tuple[MemoryMeasurement, StepMemory | None]:
    """The memory record of one traced train step (its ``missing`` says why when the step cannot run).

    ``metadata``: a ``train_step_metadata`` result to read instead of running a step here.
    """
    count = len(traced.inputs) - traced.label_count
    record = MemoryRecord(input_bytes=tensor_bytes(traced.inputs))
    try:
        run_metadata, held = metadata or train_step_metadata(traced)
    except InputError as error:
        record.missing = str(error)
        return MemoryMeasurement(record), None
    memory = step_memory(run_metadata)
    measurement = fill_record(record, memory, traced.layer_of, device)
    record.weights_bytes = held
    record.measured_terms = {
        "weights": variable_bytes(traced.keras_model.weights),
        "optimizer state": held - variable_bytes(traced.keras_model.weights),
        "input": tensor_bytes(traced.inputs[:count]), "labels": tensor_bytes(traced.inputs[count:]),
        **{key: value for key, value in record.measured_terms.items() if key in ("activations", "workspace")},
    }
    return measurement, memory


def train_ledger(traced: Any, costs: Any, record: MemoryRecord, memory: StepMemory | None,
                 total_measured: int | None, policy: str | None) -> Ledger:
    """The ledger estimated by the formulas (memory/ledger.py), measured terms filled from the step."""

    count = len(traced.inputs) - traced.label_count
    ledger = estimate_train_ledger(traced.layers, costs, optimizer_spec(traced.keras_model.optimizer), traced.batch_size,
                             policy, input_bytes=tensor_bytes(traced.inputs[:count]),
                             label_bytes=tensor_bytes(traced.inputs[count:]))
    if memory is None:
        return ledger
    ledger = measured_ledger_terms(ledger, memory.allocations, total_measured)
    known = {"weights": record.measured_terms.get("weights"),
             "optimizer slots": record.measured_terms.get("optimizer state"),
             "input and labels": record.input_bytes,
             **held_at_peak(memory, traced.phase_of, weight_gradient_ops(traced))}
    lines = tuple(replace(line, measured_bytes=known[line.term]) if known.get(line.term) is not None else line
                  for line in ledger.lines)
    return replace(ledger, lines=lines, total_measured_bytes=total_measured)


def held_at_peak(memory: StepMemory, phase_of: Callable[[str], str | None], gradient_ops: set[str],
                 space: str = HOST) -> dict[str, int]:
    """The transient peak split by what its live tensors are, so the three lines add up to it.

    ``saved activations``: outputs of forward (and loss) ops still live;
    ``gradients``: the weight gradients (outputs of ``gradient_ops``);
    ``temporaries``: error signals (other gradient-op outputs), kernel scratch and the
    optimizer's intermediate tensors. The Session's executor interleaves the phases (an
    update can run before the last gradient is made), so the split is taken at the peak itself.
    """
    held = {"saved activations": 0, "gradients": 0, "temporaries": 0}
    for allocation in memory.peak(space).live:
        phase = phase_of(allocation.op)
        if allocation.is_workspace or phase == UPDATE:
            held["temporaries"] += allocation.bytes
        elif phase == BACKWARD:
            held["gradients" if allocation.op in gradient_ops else "temporaries"] += allocation.bytes
        else:
            held["saved activations"] += allocation.bytes
    return held


def weight_gradient_ops(traced: Any) -> set[str]:
    """The backward ops whose outputs are the weight gradients the update reads (through reshapes and identities)."""
    gradients: set[str] = set()
    for op in traced.graph.get_operations():
        if traced.phase_of(op.name) != UPDATE:
            continue
        for tensor in op.inputs:
            producer = tensor.op
            while producer.type in PASS_THROUGH_OP_TYPES and producer.inputs:
                producer = producer.inputs[0].op
            if traced.phase_of(producer.name) == BACKWARD:
                gradients.add(producer.name)
    return gradients
