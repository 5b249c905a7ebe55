"""Backward formulas of the Keras operations that are not layers (rows typed ``ops.<ClassName>``).

Operands' gradients as TensorFlow's gradient functions compute them: an add
passes dy on, a subtract negates it for its second operand (1 per element), a
multiply multiplies dy by the other operand for each (2), a divide ``dy / y``
and ``-dy x / y^2`` (4); an operand broadcast to the output sums its gradient
back (``output - operand`` elements adds). A matrix product or a contracting
einsum of two operands costs its forward multiply-adds once per operand.
Views and copies pass dy on (0); a broadcast, tile or repeat sums it back.
Unary operations other than the activations have no formula here (None).
"""
from __future__ import annotations

from tfprofscale.formulas.backward_registry import (BackwardParts, NoBackward, activation_grad_flops,
                                                    backward_formula_for, elements)
from tfprofscale.formulas.keras_ops import COPIES, VIEWS, activation_name
from tfprofscale.records import LayerCost, LayerInfo

_BINARY_GRAD_PER_ELEMENT = {"Add": 0, "Subtract": 1, "Multiply": 2, "Divide": 4, "TrueDivide": 4}
_SUMMED_BACK = ("BroadcastTo", "Tile", "Repeat")
_ACTIVATION_OPS = ("Relu", "Relu6", "LeakyRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid", "Tanh", "Softplus",
                   "Silu", "Softmax", "LogSoftmax")


def _types(*names: str) -> list[str]:
    return [f"ops.{name}" for name in names]


def _name(info: LayerInfo) -> str:
    return info.type.removeprefix("ops.")


@backward_formula_for(*_types(*_BINARY_GRAD_PER_ELEMENT))
def _binary(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    outputs = elements(info.output_shape)
    per_output = _BINARY_GRAD_PER_ELEMENT[_name(info)]
    broadcast = sum(outputs - elements(shape) for shape in info.input_shapes)
    terms = {"operand_grads": per_output * outputs} if per_output else {}
    return BackwardParts(input={**terms, **({"broadcast_sums": broadcast} if broadcast else {})})


@backward_formula_for(*_types("Matmul", "Einsum"))
def _product(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    if len(info.input_shapes) != 2 or "multiply_adds" not in cost.terms:
        raise NoBackward(f"{info.type} {info.name!r}: only a contraction of two operands has a backward formula")
    return BackwardParts(input={"operand_grads": 2 * cost.terms["multiply_adds"]})


@backward_formula_for(*_types(*VIEWS, *(name for name in COPIES if name not in _SUMMED_BACK + ("Take", "TakeAlongAxis"))))
def _pass_through(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    return BackwardParts()


@backward_formula_for(*_types(*_SUMMED_BACK))
def _summed_back(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    return BackwardParts(input={"gradient_sum": elements(info.output_shape) - elements(info.input_shapes[0])})


@backward_formula_for(*_types("Sum", "Mean"))
def _reduction(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Sum broadcasts dy back (0); Mean also divides it, once per input element."""
    return BackwardParts(input={"gradient_spread": elements(info.input_shapes[0])} if _name(info) == "Mean" else {})


@backward_formula_for(*_types(*_ACTIVATION_OPS))
def _activation(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    name = activation_name(_name(info))
    if name is None:
        raise NoBackward(f"{info.type} {info.name!r} has no backward count")
    return BackwardParts(input=activation_grad_flops(name, elements(info.output_shape)))
