"""Backward formulas of attention and recurrent layers, and of the wrappers Bidirectional and TimeDistributed.

Attention, S score elements: back through ``P V`` (dP = dO V^T and dV = P^T dO:
the weighted sum's multiply-adds twice), the softmax (4 per score), the
scale and mask selects (as many as forward), ``Q K^T`` (dQ and dK: the scores'
multiply-adds twice); each EinsumDense projection by the dense rule.

Recurrent, T steps: back through time each step repeats the forward's
matmuls twice (dX = dZ W^T and dW = X^T dZ for the input product, dh = dZ U^T
and dU = h^T dZ for the recurrent one), so the backward matmuls are 2x the
forward's; plus the cell's element-wise gradients per state element and step,
the bias gradient and, with a mask, the forward's selects again.
"""
from __future__ import annotations

from typing import Any

from tfprofscale.formulas.backward_registry import (ACTIVATION_GRAD_FLOPS_PER_ELEMENT, BackwardParts, NoBackward,
                                                    backward_formula_for, backward_parts, compose, elements)
from tfprofscale.formulas.activations import keras_activation_name
from tfprofscale.formulas.dense import einsum_dense_output_shape
from tfprofscale.formulas.registry import layer_cost
from tfprofscale.records import BackwardCost, LayerCost, LayerInfo, Shape

SOFTMAX_GRAD_FLOPS_PER_ELEMENT = ACTIVATION_GRAD_FLOPS_PER_ELEMENT["softmax"]


def _core_terms(cost: LayerCost) -> dict[str, int]:
    """The dot-product core back from its output to the projected Q, K and V."""
    terms, scores = cost.terms, cost.geometry["score_elements"]
    return {"weighted_sum_grads": 2 * terms["weighted_sum"], "softmax_grad": SOFTMAX_GRAD_FLOPS_PER_ELEMENT * scores,
            "scale_grad": terms.get("scale", 0), "mask_selects": terms.get("mask_selects", 0),
            "score_grads": 2 * terms["scores"]}


@backward_formula_for("MultiHeadAttention", "GroupedQueryAttention")
def _projected_attention(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """The query, key and value projections' input gradients are dL/dX; the output projection's input
    gradient and the core are needed by every weight gradient (shared). The adds that merge the three
    input gradients when query, key and value are one tensor are not counted."""
    layer, geometry = info.layer, cost.geometry
    if getattr(layer, "dropout", 0):
        raise NoBackward(f"{info.type} {info.name!r} with dropout has no backward formula")
    shapes = {"query": tuple(geometry["query_shape"]), "key": tuple(geometry["key_shape"]),
              "value": tuple(geometry["value_shape"])}
    projected = einsum_dense_output_shape(layer._query_dense, shapes["query"])
    value_dim = getattr(layer, "value_dim", None) or layer.head_dim
    attended = (*projected[:-1], value_dim)
    inputs, weights, shared = {}, {}, dict(_core_terms(cost))
    for name in ("query", "key", "value"):
        part = _sublayer_backward(getattr(layer, f"_{name}_dense"), shapes[name])
        inputs[f"{name}_projection_input_grad"] = part.input_grad_flops
        weights[f"{name}_projection_weight_grad"] = part.weight_grad_flops
    output = _sublayer_backward(layer._output_dense, attended)
    shared["output_projection_input_grad"] = output.input_grad_flops
    weights["output_projection_weight_grad"] = output.weight_grad_flops
    if getattr(layer, "_gate_dense", None) is not None:
        raise NoBackward(f"{info.type} {info.name!r} with a gate has no backward formula")
    return BackwardParts(input=inputs, weight=weights, shared=shared)


def _sublayer_backward(sublayer: Any, input_shape: Shape) -> BackwardCost:
    info = LayerInfo(name=sublayer.name, type=type(sublayer).__name__, input_shapes=(input_shape,),
                     output_shape=einsum_dense_output_shape(sublayer, input_shape), layer=sublayer)
    backward = compose(info, layer_cost(info), needs_input_grad=True)
    if not backward.supported:
        raise NoBackward(f"sublayer {sublayer.name!r}: {backward.note}")
    return backward


@backward_formula_for("Attention")
def _dot_attention(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Luong ``dot`` scores: the core back to Q, K and V; a trainable scale gets sum(dS * scores) (2 per score)."""
    if cost.geometry.get("score_mode") != "dot" or info.layer.dropout:
        raise NoBackward(f"Attention {info.name!r}: only score_mode='dot' without dropout has a backward formula")
    weight = {"scale_grad": 2 * cost.geometry["score_elements"]} if info.layer.use_scale else {}
    return BackwardParts(input=_core_terms(cost), weight=weight)


# -- recurrent -----------------------------------------------------------------------------------------


def _grad_per_element(function: Any) -> int:
    name = keras_activation_name(function)
    if name not in ACTIVATION_GRAD_FLOPS_PER_ELEMENT:
        raise NoBackward(f"recurrent activation {name or function!r} has no backward count")
    return ACTIVATION_GRAD_FLOPS_PER_ELEMENT[name]


def _lstm_cell_grad(cell: Any) -> int:
    """Per state element and step: do = dh tanh(c) (1); dc += dh o tanh'(c) (2 + act'); di, dg, df and
    dc_prev are one multiply each (4); the three gate sigmoids' and the candidate tanh's gradients."""
    return 7 + 2 * _grad_per_element(cell.activation) + 3 * _grad_per_element(cell.recurrent_activation)


def _gru_cell_grad(cell: Any) -> int:
    """Per state element and step: h = z h' + (1 - z) hh gives dz, dh' and dhh (2 each); the reset product
    (2); dh' gathers the recurrent product's gradient (1); two sigmoids' and the candidate's gradients."""
    return 9 + _grad_per_element(cell.activation) + 2 * _grad_per_element(cell.recurrent_activation)


def _simple_cell_grad(cell: Any) -> int:
    """The activation's gradient, and dh' gathering the recurrent product's gradient (1)."""
    return 1 + _grad_per_element(cell.activation)


_CELL_GRADS = {"LSTMCell": _lstm_cell_grad, "ConvLSTMCell": _lstm_cell_grad,
               "GRUCell": _gru_cell_grad, "SimpleRNNCell": _simple_cell_grad}


@backward_formula_for("LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
def _recurrent(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    cell, geometry = info.layer.cell, cost.geometry
    if type(cell).__name__ not in _CELL_GRADS:
        raise NoBackward(f"recurrent cell {type(cell).__name__} has no backward formula")
    if getattr(cell, "dropout", 0) or getattr(cell, "recurrent_dropout", 0):
        raise NoBackward(f"{info.type} {info.name!r} with dropout has no backward formula")
    rows = geometry["steps"] * geometry["batch"] * geometry["state_elements"]
    input_macs = rows * geometry["gates"] * geometry["input_fan_in"]
    recurrent_macs = rows * geometry["gates"] * geometry["recurrent_fan_in"]
    return BackwardParts(
        input={"input_matmul_grad": 2 * input_macs},
        weight={"kernel_grad": 2 * input_macs, "recurrent_kernel_grad": 2 * recurrent_macs,
                **_recurrent_bias_grad(cell, rows * geometry["gates"])},
        shared={"state_grad_through_time": 2 * recurrent_macs,
                "cell_grad": rows * _CELL_GRADS[type(cell).__name__](cell),
                **({"mask_selects": cost.terms["mask_selects"]} if cost.terms.get("mask_selects") else {})})


def _recurrent_bias_grad(cell: Any, gate_elements: int) -> dict[str, int]:
    """Sum of the gates' gradients over steps and batch: ``gate elements * bias rows - bias size`` adds
    (a GRU with ``reset_after`` has two bias rows)."""
    bias = getattr(cell, "bias", None)
    if not getattr(cell, "use_bias", False) or bias is None:
        return {}
    size = elements(tuple(bias.shape))
    bias_rows = bias.shape[0] if len(bias.shape) == 2 else 1
    return {"bias_grad": gate_elements * bias_rows - size}


_MERGE_GRAD_PER_ELEMENT = {"concat": 0, None: 0, "sum": 0, "mul": 2, "ave": 1}


@backward_formula_for("Bidirectional")
def _bidirectional(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """Both directions by their own formula, the merge's gradient, and the sum of the two input gradients."""
    layer, input_shape = info.layer, info.input_shapes[0]
    parts = [_inner_parts(info, inner, input_shape) for inner in (layer.forward_layer, layer.backward_layer)]
    merged = elements(_inner_output(layer.forward_layer, input_shape))
    merge = {"merge_grad": _MERGE_GRAD_PER_ELEMENT[layer.merge_mode] * merged}
    return BackwardParts(
        input={**_summed(p.input for p in parts), "direction_input_sum": elements(input_shape)},
        weight=_summed(p.weight for p in parts),
        shared={**_summed(p.shared for p in parts), **merge})


@backward_formula_for("TimeDistributed")
def _time_distributed(info: LayerInfo, cost: LayerCost) -> BackwardParts:
    """The inner layer's backward on one step's slice, times the steps; its bias gradient also sums
    over the steps (``(steps - 1) * bias size`` more adds)."""
    steps, input_shape = cost.geometry["steps"], info.input_shapes[0]
    inner_layer = info.layer.layer
    inner = _inner_parts(info, inner_layer, (input_shape[0], *input_shape[2:]))
    bias = getattr(inner_layer, "bias", None)
    across = {"bias_grad_across_steps": (steps - 1) * elements(tuple(bias.shape))} if bias is not None else {}
    return BackwardParts(_times(inner.input, steps), {**_times(inner.weight, steps), **across},
                         _times(inner.shared, steps), _times(inner.diagnostics, steps))


def _times(terms: dict[str, int], steps: int) -> dict[str, int]:
    return {name: steps * value for name, value in terms.items()}


def _inner_output(inner: Any, input_shape: Shape) -> Shape:
    output = inner.compute_output_shape(input_shape)
    while isinstance(output, (list, tuple)) and output and isinstance(output[0], (list, tuple)):
        output = output[0]
    return tuple(output)


def _inner_parts(info: LayerInfo, inner: Any, input_shape: Shape) -> BackwardParts:
    inner_info = LayerInfo(name=f"{info.name}/{inner.name}", type=type(inner).__name__,
                           input_shapes=(input_shape,), output_shape=_inner_output(inner, input_shape), layer=inner)
    return backward_parts(inner_info, layer_cost(inner_info))


def _summed(term_dicts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for terms in term_dicts:
        for name, value in terms.items():
            total[name] = total.get(name, 0) + value
    return total
