"""Buffers of one step from the traced graph's ops: when each is written, when it is last read, who owns it.

Over the graph's ops in execution (creation) order:

- an op whose output allocates (``OpTensor.bytes`` > 0) starts a buffer at
  its step; views (Reshape, Identity, Squeeze, ExpandDims ...) allocate
  nothing and keep the buffer they view alive while they are read;
- an element-wise op that is the last reader of an input of its size writes
  into that input's buffer (TensorFlow's buffer forwarding), so the buffer
  lives on instead of a new one; weights and the fed input are resident
  and never written into;
- a buffer lives until the last read of any tensor in it (to the end of the
  step for an output of the step).

Each buffer is a ``Span`` charged to the layer whose op wrote it first, and
``handed_on`` when another layer (or the step's caller) reads it: the rest
is what a layer holds inside (an attention layer's scores). The estimate
(``estimate.graph_span_peak``) takes the largest sum of live spans.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from tfprofscale.profiling.memory.layer_tensors import (ELEMENTWISE_OP_TYPES, LayerTensors, OpTensor,
                                                        graph_op_tensors, layer_tensors)

VIEW_OP_TYPES = frozenset({"Reshape", "Identity", "IdentityN", "Squeeze", "ExpandDims", "Snapshot", "StopGradient"})


@dataclass
class Span:
    """One buffer: first and last step it is live, its bytes, whether another layer reads it."""

    start: int
    end: int
    bytes: int
    handed_on: bool = False

    def as_list(self) -> list[int]:
        """``[start, end, bytes, handed_on]`` for the JSON report."""
        return [self.start, self.end, self.bytes, int(self.handed_on)]


def layer_spans(ops: list[OpTensor], outputs: Iterable[str] = ()) -> dict[str, list[Span]]:
    """The buffers each layer's ops write, over the whole step (see the module docstring)."""
    returned, last = set(outputs), len(ops) - 1
    readers: dict[str, list[int]] = {}
    for step, op in enumerate(ops):
        for source in op.inputs:
            readers.setdefault(source, []).append(step)
    spans: list[tuple[str | None, Span]] = []
    buffer_of: dict[str, int] = {}  # tensor (op name) -> index into spans
    sizes = {op.name: op.bytes for op in ops}
    for step, op in enumerate(ops):
        held = _shared_buffer(op, step, buffer_of, readers, sizes, spans)
        if held is None and op.bytes:
            spans.append((op.layer, Span(step, step, op.bytes)))
            held = len(spans) - 1
        if held is None:
            continue
        buffer_of[op.name] = held
        owner, span = spans[held]
        read_at = readers.get(op.name, [])
        span.end = max([span.end, *read_at] + ([last] if op.name in returned else []))
        span.handed_on |= op.name in returned or any(ops[s].layer != owner for s in read_at)
    found: dict[str, list[Span]] = {}
    for owner, span in spans:
        if owner is not None:
            found.setdefault(owner, []).append(span)
    return found


def _shared_buffer(op: OpTensor, step: int, buffer_of: dict[str, int], readers: dict[str, list[int]],
                   sizes: dict[str, int], spans: list[tuple[str | None, Span]]) -> int | None:
    """The buffer this op's output lives in when it allocates none of its own: a view's, or a forwarded input's
    (same bytes, and nothing reads that buffer after this op, through the input or a view of it)."""
    if op.type in VIEW_OP_TYPES and op.inputs:
        return buffer_of.get(op.inputs[0])
    if op.type not in ELEMENTWISE_OP_TYPES or not op.bytes:
        return None
    for source in op.inputs:
        held = buffer_of.get(source)
        if held is not None and sizes.get(source) == op.bytes and spans[held][1].end <= step \
                and max(readers.get(source, [step])) == step:
            return held
    return None


def annotate_rows(rows: list[Any], graph: Any, layer_of: Callable[[str], str | None], graph_outputs: Iterable[Any],
                  fused: Iterable[str] = ()) -> None:
    """Set each layer row's graph facts (``graph_inbound`` ...) from the traced graph; rows with no op get zeros."""
    op_tensors = graph_op_tensors(graph, layer_of, fused)
    outputs = [t.op.name for t in graph_outputs]
    facts = layer_tensors(op_tensors, outputs)
    spans = layer_spans(op_tensors, outputs)
    for row in rows:
        row.graph_spans = [span.as_list() for span in spans.get(row.name, [])]
        record = facts.get(row.name)
        if record is None:
            if row.type == "InputLayer":
                continue
            record = LayerTensors()  # no op of its own (folded away): it holds and reads nothing
        row.graph_inbound = list(record.graph_inbound)
        row.graph_output_bytes = record.graph_output_bytes
        row.internal_peak_bytes = record.internal_peak_bytes
        row.graph_order = record.graph_order
