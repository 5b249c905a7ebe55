"""FLOPs statistics of our own, for ops that do work but TensorFlow registers none for.

Modelled on TensorFlow's ``flops_registry``: one small function per op type,
registered by a decorator, reading shapes from the graph the op is in. These
figures are ours, not TensorFlow's: every op row says which it carries
(``flops_source`` "tfprofscale" here, "tfprof" for TensorFlow's own).

Conventions are TensorFlow's: a multiply-add counts 2 (MatMul = 2*m*n*k).
"""
from __future__ import annotations

import math
import string
from typing import Any, Callable

#: Who counted an op's FLOPs.
TENSORFLOW = "tfprof"
OURS = "tfprofscale"

StatisticsFunction = Callable[[Any, Any], "int | None"]
_STATISTICS: dict[str, StatisticsFunction] = {}


def statistics_for(*op_types: str) -> Callable[[StatisticsFunction], StatisticsFunction]:
    """Register our FLOPs statistics ``(graph, node_def) -> flops`` for op types."""
    def register(function: StatisticsFunction) -> StatisticsFunction:
        for op_type in op_types:
            _STATISTICS[op_type] = function
        return function
    return register


def our_op_types() -> list[str]:
    """The op types we count ourselves."""
    return sorted(_STATISTICS)


def our_flops(graph: Any, node_def: Any) -> int | None:
    """Our FLOPs for one op, or None when we have no statistics for it (or its shapes are unknown)."""
    function = _STATISTICS.get(node_def.op)
    return function(graph, node_def) if function is not None else None


def _input_shape(graph: Any, node_def: Any, index: int) -> list[int] | None:
    name = node_def.input[index]
    tensor = graph.get_tensor_by_name(name if ":" in name else name + ":0")
    if tensor.shape.rank is None or not tensor.shape.is_fully_defined():
        return None
    return [int(d) for d in tensor.shape]


def _output_shape(graph: Any, node_def: Any) -> list[int] | None:
    tensor = graph.get_operation_by_name(node_def.name).outputs[0]
    if tensor.shape.rank is None or not tensor.shape.is_fully_defined():
        return None
    return [int(d) for d in tensor.shape]


@statistics_for("Einsum")
def einsum_flops(graph: Any, node_def: Any) -> int | None:
    """One product per combination of all indices; with a summed index each is a multiply-add (2)."""
    shapes = [_input_shape(graph, node_def, i) for i in range(len(node_def.input))
              if not node_def.input[i].startswith("^")]
    if any(shape is None for shape in shapes):
        return None
    equation = node_def.attr["equation"].s.decode()
    return einsum_flops_of(equation, shapes)


def einsum_flops_of(equation: str, shapes: list[list[int]]) -> int | None:
    """FLOPs of ``tf.einsum(equation, *operands)`` with operands of ``shapes`` (one or two operands)."""
    inputs_text, _, output_text = equation.replace(" ", "").partition("->")
    operands = [_labelled(spec, len(shape)) for spec, shape in zip(inputs_text.split(","), shapes)]
    if len(operands) > 2:
        return None
    sizes: dict[str, int] = {}
    for labels, shape in zip(operands, shapes):
        for label, size in zip(labels, shape):
            sizes[label] = max(sizes.get(label, 1), size)
    broadcast = "".join(label for label in _ELLIPSIS_LABELS if label in sizes)
    summed = set(sizes) - set(output_text.replace("...", broadcast))
    products = math.prod(sizes.values())
    if len(operands) == 2:
        return 2 * products if summed else products
    return products if summed else 0


#: Labels standing for the dimensions an ellipsis covers, right-aligned as broadcasting aligns them.
_ELLIPSIS_LABELS = string.digits


def _labelled(spec: str, rank: int) -> str:
    """``spec`` with ``...`` replaced by one digit label per dimension it covers."""
    if "..." not in spec:
        return spec
    covered = rank - (len(spec) - 3)
    return spec.replace("...", _ELLIPSIS_LABELS[len(_ELLIPSIS_LABELS) - covered:])


@statistics_for("MaxPool3D", "AvgPool3D")
def pool3d_flops(graph: Any, node_def: Any) -> int | None:
    """Window volume per output element, as TensorFlow counts MaxPool and AvgPool in 2-D."""
    output = _output_shape(graph, node_def)
    if output is None:
        return None
    window = list(node_def.attr["ksize"].list.i)
    return math.prod(window) * math.prod(output)
