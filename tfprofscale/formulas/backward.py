"""Backward-pass formulas: per layer type, the flops of dL/dX (input gradient) and dL/dW (weight gradient).

Registered like the forward formulas (``registry.formula_for``): one small
pure function per Keras layer type, reading the geometry the forward formula
recorded (``LayerCost.geometry``) and the layer's shapes (``LayerInfo``).
Conventions are in docs/training.md.
"""
from __future__ import annotations

from typing import Callable, Sequence

from tfprofscale.records import BackwardCost, LayerCost, LayerInfo

BackwardFunction = Callable[[LayerInfo, LayerCost, bool], BackwardCost]


def backward_formula_for(*layer_types: str) -> Callable[[BackwardFunction], BackwardFunction]:
    """Register a backward formula under one or more Keras layer class names."""
    raise NotImplementedError("train records: signature only, body follows")


def supported_backward_types() -> list[str]:
    """The Keras layer class names that have a backward formula."""
    raise NotImplementedError("train records: signature only, body follows")


def backward_cost(info: LayerInfo, cost: LayerCost, needs_input_grad: bool = True) -> BackwardCost:
    """Backward flops of one layer; ``needs_input_grad`` False gives ``input_grad_flops`` 0.

    An unsupported forward cost or an unregistered type gives a BackwardCost
    with both gradients None (``supported`` False), never 0.
    """
    raise NotImplementedError("train records: signature only, body follows")


def layers_needing_input_grad(layers: Sequence[LayerInfo]) -> dict[str, bool]:
    """Per layer name: whether some layer upstream of it (along ``inbound``) has trainable weights."""
    raise NotImplementedError("train records: signature only, body follows")


def backward_costs(layers: Sequence[LayerInfo], costs: Sequence[LayerCost]) -> list[BackwardCost]:
    """Backward costs of all layers, in order, each told whether its input needs a gradient."""
    raise NotImplementedError("train records: signature only, body follows")
