"""Backward-pass formulas: per layer, the flops of dL/dX (input gradient) and dL/dW (weight gradient).

The entry point of the backward families (``backward_layers``: dense,
convolutions, pooling, normalization, activations, merges, views, embeddings;
``backward_ops``: Keras operation rows; ``backward_sequences``: attention,
recurrent, wrappers), registered like the
forward formulas with ``backward_formula_for`` and charged as
``backward_registry`` says. A layer needs no input gradient when nothing
upstream of it has trainable weights (the first layer of a model, a layer
after frozen ones); a layer with neither costs 0. Conventions: docs/training.md.
"""
from __future__ import annotations

from typing import Sequence

from tfprofscale.formulas import analytic  # noqa: F401  (registers the forward formulas the backward ones read)
from tfprofscale.formulas import backward_layers, backward_ops, backward_sequences  # noqa: F401  (register them)
from tfprofscale.formulas.backward_registry import (ACTIVATION_GRAD_FLOPS_PER_ELEMENT, backward_formula_for, compose,
                                                    has_trainable_weights, registered_backward_types)
from tfprofscale.records import BackwardCost, LayerCost, LayerInfo

__all__ = ["ACTIVATION_GRAD_FLOPS_PER_ELEMENT", "backward_cost", "backward_costs", "backward_formula_for",
           "layers_needing_input_grad", "supported_backward_types"]


def supported_backward_types() -> list[str]:
    """The Keras layer class names that have a backward formula."""
    return registered_backward_types()


def backward_cost(info: LayerInfo, cost: LayerCost, needs_input_grad: bool = True) -> BackwardCost:
    """Backward flops of one layer; ``needs_input_grad`` False gives ``input_grad_flops`` 0.

    An unsupported forward cost or an unregistered type gives a BackwardCost
    with both gradients None (``supported`` False), never 0 -- unless the layer
    has no trainable weights and needs no input gradient (then both are 0).
    """
    return compose(info, cost, needs_input_grad)


def layers_needing_input_grad(layers: Sequence[LayerInfo]) -> dict[str, bool]:
    """Per layer name: whether some layer upstream of it (along ``inbound``) has trainable weights.

    ``layers`` must be in execution order (as traced). An inbound name that is
    not among ``layers`` is assumed to need a gradient (the safe side).
    """
    trainable_upstream: dict[str, bool] = {}   # the layer itself or anything before it is trainable
    needs: dict[str, bool] = {}
    for info in layers:
        needs[info.name] = any(trainable_upstream.get(name, True) for name in info.inbound)
        trainable_upstream[info.name] = needs[info.name] or has_trainable_weights(info.layer)
    return needs


def backward_costs(layers: Sequence[LayerInfo], costs: Sequence[LayerCost]) -> list[BackwardCost]:
    """Backward costs of all layers, in order, each told whether its input needs a gradient."""
    needs = layers_needing_input_grad(layers)
    return [backward_cost(info, cost, needs[info.name]) for info, cost in zip(layers, costs, strict=True)]
