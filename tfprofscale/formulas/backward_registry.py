"""The backward formulas' registry: one small function per Keras layer type, and how its parts are charged.

A backward formula returns the work of one layer's backward pass for the
whole batch in three parts, by what needs it:

- ``input``: only dL/dX needs it (a Dense layer's ``dY @ W^T``);
- ``weight``: only dL/dW needs it (``X^T @ dY``, the bias gradient);
- ``shared``: both need it (the gradient through the layer's own activation,
  an attention core's or a recurrent layer's steps back through time).

``compose`` charges ``shared`` to the weight gradient when the layer has
trainable weights, else to the input gradient when that is needed, else to
nothing. Term values are flops (a multiply-add is 2); ``diagnostics`` describe
work that is not added (as the forward's ``padded_taps``). A layer outside a
formula's reach raises ``NoBackward``: unsupported (None), never 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from tfprofscale.records import BackwardCost, LayerCost, LayerInfo

#: Flops per element of the gradient through an activation, the multiply by dy included, as TensorFlow's
#: gradient functions compute it from the saved output y (or input x):
#: relu ``dy * (y > 0)`` 1; relu6 two comparisons; leaky_relu a comparison and a multiply; elu
#: ``dy * (y + alpha)`` where negative (3); selu one more scale; sigmoid ``dy * y * (1 - y)`` 3; tanh
#: ``dy * (1 - y^2)`` 3; softmax ``y * (dy - sum(dy * y))`` 4; log_softmax ``dy - exp(y) * sum(dy)`` 4;
#: softplus ``dy * sigmoid(x)`` 5; exponential ``dy * y`` 1; silu (TF's custom gradient)
#: ``dy * s * (1 + x * (1 - s))`` with s = sigmoid(x) recomputed: 8; hard_sigmoid a range test and a scale (3).
ACTIVATION_GRAD_FLOPS_PER_ELEMENT: dict[str, int] = {
    "linear": 0, "relu": 1, "relu6": 2, "leaky_relu": 2, "elu": 3, "selu": 4, "sigmoid": 3, "tanh": 3,
    "softmax": 4, "log_softmax": 4, "softplus": 5, "exponential": 1, "silu": 8, "hard_sigmoid": 3,
}


class NoBackward(Exception):
    """The layer's configuration is outside what its backward formula covers."""


@dataclass(frozen=True)
class BackwardParts:
    """A layer's backward terms (flops) by what needs them: dL/dX only, dL/dW only, or both."""

    input: dict[str, int] = field(default_factory=dict)
    weight: dict[str, int] = field(default_factory=dict)
    shared: dict[str, int] = field(default_factory=dict)
    diagnostics: dict[str, int] = field(default_factory=dict)
    note: str | None = None


BackwardFunction = Callable[[LayerInfo, LayerCost], BackwardParts]
_BACKWARD: dict[str, BackwardFunction] = {}


def backward_formula_for(*layer_types: str) -> Callable[[BackwardFunction], BackwardFunction]:
    """Register a backward formula under one or more Keras layer class names."""
    def register(formula: BackwardFunction) -> BackwardFunction:
        for layer_type in layer_types:
            _BACKWARD[layer_type] = formula
        return formula
    return register


def registered_backward_types() -> list[str]:
    return sorted(_BACKWARD)


def backward_parts(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """The registered formula's parts for ``info``; NoBackward when there is none or it does not apply."""
    if not cost.supported or info.type not in _BACKWARD:
        raise NoBackward(f"{info.type} {info.name!r} has no backward formula")
    return _BACKWARD[info.type](info, cost)


def has_trainable_weights(layer: Any) -> bool:
    return bool(getattr(layer, "trainable_weights", None))


def compose(info: LayerInfo, cost: LayerCost, needs_input_grad: bool) -> BackwardCost:
    """The layer's BackwardCost: its formula's parts charged as the module docstring says."""
    trainable = has_trainable_weights(info.layer)
    if info.layer is not None and not trainable and not needs_input_grad and not _is_composite_row(info):
        return BackwardCost(info.type, True, 0, 0, note="no gradient: no trainable weights, and no input gradient needed")
    unsupported = _unsupported_reason(info, cost)
    if unsupported:
        return BackwardCost(info.type, False, None, None, note=unsupported)
    try:
        parts = _BACKWARD[info.type](info, cost)
    except NoBackward as reason:
        return BackwardCost(info.type, False, None, None, note=str(reason))
    weight_terms = _nonzero({**parts.weight, **parts.shared}) if trainable else {}
    input_terms = _nonzero({**parts.input, **({} if trainable else parts.shared)}) if needs_input_grad else {}
    terms = {**{f"input_grad.{k}": v for k, v in input_terms.items()},
             **{f"weight_grad.{k}": v for k, v in weight_terms.items()},
             **{f"diagnostic.{k}": v for k, v in parts.diagnostics.items()}}
    return BackwardCost(info.type, True, sum(input_terms.values()), sum(weight_terms.values()), terms, parts.note)


def _nonzero(terms: dict[str, int]) -> dict[str, int]:
    return {name: value for name, value in terms.items() if value}


def _is_composite_row(info: LayerInfo) -> bool:
    return not hasattr(info.layer, "trainable_weights")


def _unsupported_reason(info: LayerInfo, cost: LayerCost) -> str | None:
    if not cost.supported:
        return f"no forward formula: {cost.geometry.get('unsupported_reason', info.type)}"
    if info.type not in _BACKWARD:
        return f"no backward formula for layer type {info.type}"
    return None


def activation_grad_flops(name: str, elements: int) -> dict[str, int]:
    """``{"activation_grad": flops}`` through the named activation on ``elements`` (empty for linear)."""
    if name not in ACTIVATION_GRAD_FLOPS_PER_ELEMENT:
        raise NoBackward(f"activation {name!r} has no backward count")
    per_element = ACTIVATION_GRAD_FLOPS_PER_ELEMENT[name]
    return {"activation_grad": per_element * elements} if per_element else {}


def bias_grad_flops(outputs: int, bias_size: int) -> dict[str, int]:
    """The bias gradient sums dy over everything but the bias axes: ``outputs - bias_size`` adds
    (TensorFlow's profiler counts ``BiasAddGrad`` the same)."""
    return {"bias_grad": outputs - bias_size} if bias_size else {}


def elements(shape: tuple[int, ...]) -> int:
    return math.prod(shape)
