"""What each layer's ops really allocate, read from the traced graph: per-layer facts for composite and
attention layers (the estimate itself runs on ``graph_liveness``'s buffers, built from the same ops).

A layer's output shape says nothing of what it holds while it runs (an
attention layer's query, key, value and score tensors), and a composite
layer (a block of sublayers, a subclassed ``call``) has no Keras graph of
its own to say which sublayer feeds which. The traced graph's ops say both.
Per layer, in the graph's execution order:

- ``graph_inbound``: the layers whose ops' outputs its ops read;
- ``graph_output_bytes``: the bytes of its ops' outputs read outside the
  layer (by another layer's op, or returned by the step): what it hands on;
- ``internal_peak_bytes``: what it holds while it runs beyond what it hands
  on: the largest sum of its live tensors (its temporaries, outputs read only
  by its own ops, from writer to last reader; what it hands on, from writer to
  its last op) minus what it hands on;
- ``graph_order``: the position of its last op (when what it hands on is ready).

Tensors that allocate nothing are left out: views and reads of variables
(``STRUCTURAL_OP_TYPES``: Reshape, Identity, ReadVariableOp ...), constants,
and the outputs of ops fused into a kernel named after a later op (oneDNN
writes only the fused kernel's output). Ops inside function bodies (a While
loop) are not walked: the estimate names recurrent layers as unmodelled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from tfprofscale.profiling.trace.tracing import STRUCTURAL_OP_TYPES


#: Ops TensorFlow lets write into an input buffer of the same size that nothing reads afterwards.
ELEMENTWISE_OP_TYPES = frozenset({
    "Neg", "Mul", "AddV2", "Add", "Sub", "RealDiv", "Div", "Erf", "Erfc", "Tanh", "Sigmoid", "Relu", "Relu6",
    "Elu", "Selu", "LeakyRelu", "Exp", "Log", "Sqrt", "Rsqrt", "Square", "Pow", "Maximum", "Minimum",
    "Softplus", "Abs", "BiasAdd", "SquaredDifference", "Reciprocal", "Gelu", "Softmax",
})


@dataclass
class LayerTensors:
    """One layer's ops' tensors, from the graph (see the module docstring)."""

    graph_inbound: list[str] = field(default_factory=list)
    graph_output_bytes: int = 0
    internal_peak_bytes: int = 0
    graph_order: int = 0


@dataclass(frozen=True)
class OpTensor:
    """One graph op: its layer, the ops it reads, the bytes its outputs allocate."""

    name: str
    layer: str | None
    inputs: tuple[str, ...]
    bytes: int
    type: str = ""


def graph_op_tensors(graph: Any, layer_of: Callable[[str], str | None], fused: Iterable[str] = ()) -> list[OpTensor]:
    """The graph's ops in execution (creation) order with the bytes their outputs allocate."""
    fused = set(fused)
    found = []
    for op in graph.get_operations():
        allocates = op.type not in STRUCTURAL_OP_TYPES and op.name not in fused
        found.append(OpTensor(op.name, layer_of(op.name), tuple(t.op.name for t in op.inputs),
                              sum(_tensor_bytes(t) for t in op.outputs) if allocates else 0, op.type))
    return found


def _tensor_bytes(tensor: Any) -> int:
    shape = tensor.shape
    if shape.rank is None or not shape.is_fully_defined() or tensor.dtype.name in ("resource", "variant", "string"):
        return 0
    return math.prod(shape.as_list()) * tensor.dtype.size


def layer_tensors(ops: list[OpTensor], outputs: Iterable[str] = ()) -> dict[str, LayerTensors]:
    """Per layer: inbound layers, bytes handed on, peak of its own temporaries, order (see the module docstring)."""
    returned = set(outputs)
    index = {op.name: i for i, op in enumerate(ops)}
    readers: dict[str, list[int]] = {}
    for step, op in enumerate(ops):
        for source in op.inputs:
            readers.setdefault(source, []).append(step)
    layers: dict[str, LayerTensors] = {}
    own: dict[str, list[int]] = {}
    for step, op in enumerate(ops):
        if op.layer is None:
            continue
        record = layers.setdefault(op.layer, LayerTensors())
        record.graph_order = step
        own.setdefault(op.layer, []).append(step)
        for source in op.inputs:
            producer = ops[index[source]].layer if source in index else None
            if producer is not None and producer != op.layer and producer not in record.graph_inbound:
                record.graph_inbound.append(producer)
        escapes = op.name in returned or any(ops[s].layer != op.layer for s in readers.get(op.name, []))
        if escapes:
            record.graph_output_bytes += op.bytes
    for layer, steps in own.items():
        layers[layer].internal_peak_bytes = _internal_peak(ops, steps, readers, returned, index)
    return layers


def _internal_peak(ops: list[OpTensor], steps: list[int], readers: dict[str, list[int]], returned: set[str],
                   index: dict[str, int]) -> int:
    """What a layer holds while it runs beyond what it hands on: the largest sum of its live tensors (its
    temporaries from writer to last reader, what it hands on from writer to its end) minus what it hands on.

    An element-wise op writes into an input of its size that it is the last
    reader of (TensorFlow's buffer forwarding): the result shares that
    input's buffer, counted once (not at all when the buffer came from
    another layer, which counts it).
    """
    layer, end = ops[steps[0]].layer, steps[-1]
    spans: dict[str, list[int]] = {}
    storage: dict[str, str | None] = {}  # tensor -> the span holding its buffer (None: a buffer from outside)
    handed_on = 0
    for step in steps:
        op = ops[step]
        read_at = readers.get(op.name, [])
        internal = all(ops[s].layer == layer for s in read_at) and bool(read_at) and op.name not in returned
        handed_on += 0 if internal else op.bytes
        source = _forwarded_input(op, step, ops, readers, index)
        if source is not None:
            held = storage.get(source) if ops[index[source]].layer == layer else None
            storage[op.name] = held
            if held is not None:
                spans[held][1] = max(read_at) if internal else end
            continue
        if op.bytes:
            spans[op.name] = [step, max(read_at) if internal else end, op.bytes]
            storage[op.name] = op.name
    peak = max((sum(size for start, stop, size in spans.values() if start <= step <= stop) for step in steps),
               default=0)
    return max(0, peak - handed_on)


def _forwarded_input(op: OpTensor, step: int, ops: list[OpTensor], readers: dict[str, list[int]],
                     index: dict[str, int]) -> str | None:
    """The input an element-wise op can write into: same bytes, read last by this op."""
    if op.type not in ELEMENTWISE_OP_TYPES or not op.bytes:
        return None
    for source in op.inputs:
        producer = ops[index[source]] if source in index else None
        if producer is not None and producer.bytes == op.bytes and max(readers.get(source, [step])) == step:
            return source
    return None
