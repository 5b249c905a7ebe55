"""Keras operations that are not layers: the rows typed ``ops.<ClassName>``.

A Functional model records ``x + y``, ``keras.ops.multiply(a, b)`` or
``keras.ops.einsum(...)`` as operations, not layers; each becomes a row typed
``ops.Add``, ``ops.Multiply``, ``ops.Einsum`` (``profiling.nesting``). Their
formulas are registered under those names only, so that a layer's formula
never applies to an operation of the same class name. Shapes are the ones
recorded while tracing (``LayerInfo.input_shapes`` / ``output_shape``), so
broadcasting is already in them: an element-wise operation does its work once
per *output* element, whatever its inputs' shapes (a Python scalar operand is
not recorded as an input). The operation's own configuration (an Einsum's
subscripts, Gelu's ``approximate``) is read from ``info.layer.operation``.
"""
from __future__ import annotations

import math
import re
from typing import Any

from tfprofscale.formulas.activation_layers import activation_formula
from tfprofscale.formulas.activations import ACTIVATION_FLOPS_PER_ELEMENT
from tfprofscale.formulas.registry import Formula, NoFormula, formula_for
from tfprofscale.profiling.graph.op_statistics import einsum_flops_of
from tfprofscale.records import LayerInfo

#: Element-wise operations of two operands (arithmetic, comparisons, logic): one operation per output
#: element, named by this term.
BINARY_TERMS = {"Add": "adds", "Subtract": "subtracts", "Multiply": "multiplies", "Divide": "divides",
                "TrueDivide": "divides", "DivideNoNan": "divides", "FloorDivide": "divides", "Mod": "divides",
                "Maximum": "comparisons_max", "Minimum": "comparisons_min", "Power": "powers",
                "Hypot": "hypots", "Arctan2": "arctans",
                "Equal": "compares", "NotEqual": "compares", "Greater": "compares", "GreaterEqual": "compares",
                "Less": "compares", "LessEqual": "compares", "LogicalAnd": "logicals", "LogicalOr": "logicals",
                "LogicalXor": "logicals", "Where": "selects"}

#: Element-wise operations of one operand, and their operations per element (as TensorFlow counts Rsqrt: 2;
#: clip is a maximum and a minimum).
UNARY_FLOPS_PER_ELEMENT = {
    "Negative": 1, "Absolute": 1, "Abs": 1, "Fabs": 1, "Square": 1, "Sqrt": 1, "Cbrt": 1, "Rsqrt": 2,
    "Reciprocal": 1, "Exp": 1, "Exp2": 1, "Expm1": 1, "Log": 1, "Log1p": 1, "Log2": 1, "Log10": 1,
    "Sign": 1, "Floor": 1, "Ceil": 1, "Round": 1, "Trunc": 1, "Sin": 1, "Cos": 1, "Tan": 1,
    "Sinh": 1, "Cosh": 1, "Erf": 1, "Erfc": 1, "LogicalNot": 1, "Clip": 2}

#: Reductions: one operation per input element that is folded into another (``in - out``);
#: Mean then divides each output once.
REDUCTION_TERMS = {"Sum": "adds", "Mean": "adds", "Prod": "multiplies", "Max": "comparisons_max",
                   "Amax": "comparisons_max", "Min": "comparisons_min", "Amin": "comparisons_min"}

#: Views: the output is the input's memory (no work, no new memory).
VIEWS = ("Reshape", "ExpandDims", "Squeeze", "Ravel", "View", "StopGradient")

#: Copies: a new output, no arithmetic.
COPIES = ("Concatenate", "Stack", "Hstack", "Vstack", "Transpose", "Moveaxis", "Swapaxes", "Tile", "Repeat",
          "BroadcastTo", "GetItem", "Slice", "Take", "TakeAlongAxis", "Pad", "Flip", "Roll", "Cast",
          "ConvertToTensor", "Copy")


def _op_types(*names: str) -> list[str]:
    return [f"ops.{name}" for name in names]


def _operation(info: LayerInfo) -> Any:
    return getattr(info.layer, "operation", None)


def _elements(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _class_name(info: LayerInfo) -> str:
    return info.type.removeprefix("ops.")


@formula_for(*_op_types(*BINARY_TERMS))
def _binary(info: LayerInfo) -> Formula:
    """One operation per output element (broadcast operands and scalars included)."""
    elements = _elements(info.output_shape)
    return Formula(terms={BINARY_TERMS[_class_name(info)]: elements}, macs=0, params=0,
                   geometry={"elements": elements, "inputs": len(info.input_shapes)})


@formula_for(*_op_types(*UNARY_FLOPS_PER_ELEMENT))
def _unary(info: LayerInfo) -> Formula:
    """A fixed number of operations per output element."""
    per_element, elements = UNARY_FLOPS_PER_ELEMENT[_class_name(info)], _elements(info.output_shape)
    return Formula(terms={"elementwise": per_element * elements}, macs=0, params=0,
                   geometry={"elements": elements, "flops_per_element": per_element})


@formula_for(*_op_types(*REDUCTION_TERMS))
def _reduction(info: LayerInfo) -> Formula:
    """``in - out`` pairwise operations (each output folds its inputs); Mean adds a divide per output."""
    folded_in, outputs = _elements(_single_input(info)), _elements(info.output_shape)
    terms = {REDUCTION_TERMS[_class_name(info)]: folded_in - outputs}
    if _class_name(info) == "Mean":
        terms["divides"] = outputs
    return Formula(terms=terms, macs=0, params=0, geometry={"input_elements": folded_in, "elements": outputs})


@formula_for(*_op_types("Matmul"))
def _matmul(info: LayerInfo) -> Formula:
    """multiply-adds = output elements * contracted length (the first operand's last axis)."""
    if len(info.input_shapes) != 2:
        raise NoFormula(f"{info.type} {info.name!r}: {len(info.input_shapes)} recorded operands, not 2")
    contracted, elements = info.input_shapes[0][-1], _elements(info.output_shape)
    multiply_adds = elements * contracted
    return Formula(terms={"multiply_adds": 2 * multiply_adds}, macs=multiply_adds, params=0,
                   geometry={"contracted": contracted, "elements": elements})


@formula_for(*_op_types("Tensordot", "Dot", "Inner", "Outer", "Vdot"))
def _tensor_product(info: LayerInfo) -> Formula:
    """Products of operands that share no batch axis. With ``c`` the contracted length, the operands hold
    ``free_a * c`` and ``c * free_b`` elements and the output ``free_a * free_b``, so
    ``c = sqrt(a * b / out)`` from the shapes alone; multiply-adds = out * c (outer: c = 1, products only)."""
    if len(info.input_shapes) != 2:
        raise NoFormula(f"{info.type} {info.name!r}: {len(info.input_shapes)} recorded operands, not 2")
    first, second = (_elements(shape) for shape in info.input_shapes)
    outputs = _elements(info.output_shape)
    contracted = math.isqrt(first * second // outputs)
    if contracted * contracted * outputs != first * second:
        raise NoFormula(f"{info.type} {info.name!r}: shapes {info.input_shapes} -> {info.output_shape} "
                        "are not a product without shared axes")
    if contracted == 1:
        return Formula(terms={"products": outputs}, macs=0, params=0, geometry={"contracted": 1, "elements": outputs})
    return Formula(terms={"multiply_adds": 2 * outputs * contracted}, macs=outputs * contracted, params=0,
                   geometry={"contracted": contracted, "elements": outputs})


@formula_for(*_op_types("Einsum"))
def _einsum(info: LayerInfo) -> Formula:
    """One product per combination of all indices; each is a multiply-add (2) where an index is summed."""
    subscripts = getattr(_operation(info), "subscripts", None)
    flops = einsum_flops_of(subscripts, [list(s) for s in info.input_shapes]) if subscripts else None
    if flops is None:
        raise NoFormula(f"{info.type} {info.name!r}: no subscripts for its {len(info.input_shapes)} operands")
    contracts = len(info.input_shapes) == 2 and _sums_an_index(subscripts)
    return Formula(terms={"multiply_adds" if contracts else "products": flops},
                   macs=flops // 2 if contracts else 0, params=0,
                   geometry={"subscripts": subscripts, "elements": _elements(info.output_shape)})


def _sums_an_index(subscripts: str) -> bool:
    inputs, _, output = subscripts.replace(" ", "").partition("->")
    return bool(set(inputs.replace("...", "").replace(",", "")) - set(output))


def activation_name(class_name: str, operation: Any = None) -> str | None:
    """The ``ACTIVATION_FLOPS_PER_ELEMENT`` key of an activation operation (``LeakyRelu`` -> ``leaky_relu``)."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower()
    if name == "gelu" and getattr(operation, "approximate", False):
        name = "gelu_approximate"
    return name if name in ACTIVATION_FLOPS_PER_ELEMENT else None


_ACTIVATION_OPS = ("Relu", "Relu6", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "LogSigmoid",
                   "SparseSigmoid", "Tanh", "HardTanh", "TanhShrink", "HardShrink", "SoftShrink", "Threshold",
                   "Softplus", "SparsePlus", "Squareplus", "Softsign", "Silu", "HardSilu", "Gelu", "Glu",
                   "Softmax", "LogSoftmax")


@formula_for(*_op_types(*_ACTIVATION_OPS))
def _activation(info: LayerInfo) -> Formula:
    """The activation tables' operations per output element (``formulas.activations``)."""
    name = activation_name(_class_name(info), _operation(info))
    if name is None:
        raise NoFormula(f"{info.type} {info.name!r}: no per-element count")
    return activation_formula(info, name)


@formula_for(*_op_types(*VIEWS))
def _view(info: LayerInfo) -> Formula:
    """A view of the input: no work, no new memory."""
    return Formula(terms={}, macs=0, params=0, allocates_output=False)


@formula_for(*_op_types(*COPIES))
def _copy(info: LayerInfo) -> Formula:
    """A rearranged copy of the inputs: no arithmetic, a new output."""
    return Formula(terms={}, macs=0, params=0, geometry={"elements": _elements(info.output_shape)})


def _single_input(info: LayerInfo) -> tuple[int, ...]:
    if len(info.input_shapes) != 1:
        raise NoFormula(f"{info.type} {info.name!r}: {len(info.input_shapes)} recorded inputs, not 1")
    return info.input_shapes[0]
