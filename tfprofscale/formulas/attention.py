"""Attention layers: projections, query-key scores, softmax, weighted sum of values.

For S = (batch) * heads * Tq * Tk score elements, dot-product attention costs
``scores = 2 * S * key_dim`` and ``weighted_sum = 2 * S * value_dim`` flops,
``softmax = 5 * S`` (as TensorFlow counts Softmax), one multiply per scaled
element and one select per masked score. The projections of
MultiHeadAttention and GroupQueryAttention are EinsumDense sublayers, costed
by that formula through the registry. Dropout does nothing at inference;
building masks (comparisons of booleans) is not floating-point work. Every
output sees every attended position, so the receptive field after attention
is the whole map (unknown for sequences).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass
from typing import Any

from tfprofscale.formulas.activations import ACTIVATION_FLOPS_PER_ELEMENT
from tfprofscale.formulas.dense import einsum_dense_output_shape
from tfprofscale.formulas.calls import call_arguments, call_uses_mask, masked_inputs
from tfprofscale.formulas.registry import Formula, NoFormula, formula_for, layer_cost
from tfprofscale.records import LayerCost, LayerInfo, Shape

SOFTMAX_FLOPS_PER_ELEMENT = ACTIVATION_FLOPS_PER_ELEMENT["softmax"][0]
_MASK_ARGUMENTS = ("mask", "attention_mask", "query_mask", "value_mask", "key_mask")


@dataclass(frozen=True)
class _Scores:
    """The sizes of a dot-product attention: scores are batch x heads x Tq x Tk."""

    batch: int
    heads: int
    query_positions: int
    key_positions: int
    key_dim: int
    value_dim: int

    @property
    def elements(self) -> int:
        return self.batch * self.heads * self.query_positions * self.key_positions


def _dot_product_terms(scores: _Scores, scaled_elements: int, mask_selects_per_score: int) -> dict[str, int]:
    """softmax(scale * Q K^T, mask) V, the part shared by every dot-product attention."""
    return {"scale": scaled_elements,
            "scores": 2 * scores.elements * scores.key_dim,
            "mask_selects": mask_selects_per_score * scores.elements,
            "softmax": SOFTMAX_FLOPS_PER_ELEMENT * scores.elements,
            "weighted_sum": 2 * scores.elements * scores.value_dim}


# ------------------------------------------------- multi-head and grouped-query


@formula_for("MultiHeadAttention")
def _multi_head_attention(info: LayerInfo) -> Formula:
    """Projections + scores 2*B*H*Tq*Tk*K + softmax + weighted sum 2*B*H*Tq*Tk*V + output projection.

    ``attention_axes`` pick the positions attended over; the other inner axes
    of the query act as more batch. Keras scales the logits (S multiplies)
    when it runs the fused dot-product path (rank-3 inputs, no dropout, no
    returned scores), else the projected query.
    """
    layer = info.layer
    shapes = _query_value_key_shapes(info)
    query_inner, key_inner = shapes["query"][1:-1], shapes["value"][1:-1]
    attended = [axis - 1 for axis in layer._attention_axes]
    free = [axis for axis in range(len(query_inner)) if axis not in attended]
    scores = _Scores(batch=info.output_shape[0] * math.prod(query_inner[a] for a in free),
                     heads=layer.num_heads,
                     query_positions=math.prod(query_inner[a] for a in attended),
                     key_positions=math.prod(key_inner[a] for a in attended),
                     key_dim=layer.key_dim, value_dim=layer.value_dim)
    fused = len(query_inner) == 1 and layer.dropout == 0 and not _returns_scores(layer)
    projected_query = info.output_shape[0] * math.prod(query_inner) * layer.num_heads * layer.key_dim
    return _projected_attention(
        info, shapes, scores,
        scaled_elements=scores.elements if fused else projected_query,
        mask_selects_per_score=(1 if fused else 2) * _is_masked(layer, layer._sliding_window),
        geometry={"attention_axes": list(layer._attention_axes), "fused_dot_product": fused})


@formula_for("GroupedQueryAttention")
def _group_query_attention(info: LayerInfo) -> Formula:
    """As MultiHeadAttention with query heads sharing fewer key/value heads (repeated, not computed)."""
    layer = info.layer
    shapes = _query_value_key_shapes(info)
    batch, query_positions = shapes["query"][0], shapes["query"][1]
    scores = _Scores(batch=batch, heads=layer.num_query_heads, query_positions=query_positions,
                     key_positions=shapes["value"][1], key_dim=layer.head_dim, value_dim=layer.head_dim)
    fused = layer.dropout == 0 and not _returns_scores(layer)
    return _projected_attention(
        info, shapes, scores,
        scaled_elements=scores.elements if fused else batch * query_positions * layer.num_query_heads * layer.head_dim,
        mask_selects_per_score=(1 if fused else 2) * _is_masked(layer, layer.sliding_window),
        geometry={"key_value_heads": layer.num_key_value_heads, "fused_dot_product": fused})


def _projected_attention(info: LayerInfo, shapes: dict[str, Shape], scores: _Scores, scaled_elements: int,
                         mask_selects_per_score: int, geometry: dict[str, Any]) -> Formula:
    layer = info.layer
    projections = {"query_projection": _sublayer_cost(layer._query_dense, shapes["query"]),
                   "key_projection": _sublayer_cost(layer._key_dense, shapes["key"]),
                   "value_projection": _sublayer_cost(layer._value_dense, shapes["value"])}
    attended = _output_dense_input_shape(layer, shapes["query"])
    gate_terms = {}
    if getattr(layer, "_gate_dense", None) is not None:
        projections["gate_projection"] = _sublayer_cost(layer._gate_dense, shapes["query"])
        gate_terms = {"gate_multiply": math.prod(attended)}
    projections["output_projection"] = _sublayer_cost(layer._output_dense, attended)
    core = _dot_product_terms(scores, scaled_elements, mask_selects_per_score)
    return Formula(
        terms={**{name: cost.flops for name, cost in projections.items()}, **core, **gate_terms},
        macs=sum(cost.macs for cost in projections.values())
        + scores.elements * (scores.key_dim + scores.value_dim),
        params=sum(cost.params for cost in projections.values()),
        geometry={**asdict(scores), "score_elements": scores.elements,
                  "query_shape": list(shapes["query"]), "key_shape": list(shapes["key"]),
                  "value_shape": list(shapes["value"]), "use_bias": bool(layer.use_bias),
                  "masked": mask_selects_per_score > 0, **geometry},
        mixes_all_positions=True)


def _output_dense_input_shape(layer: Any, query_shape: Shape) -> Shape:
    """(batch, query positions ..., heads, value_dim): what the output projection reads."""
    projected = einsum_dense_output_shape(layer._query_dense, query_shape)
    value_dim = getattr(layer, "value_dim", None) or layer.head_dim
    return (*projected[:-1], value_dim)


def _sublayer_cost(sublayer: Any, input_shape: Shape) -> LayerCost:
    output_shape = einsum_dense_output_shape(sublayer, input_shape)
    cost = layer_cost(LayerInfo(name=sublayer.name, type=type(sublayer).__name__,
                                input_shapes=(input_shape,), output_shape=output_shape, layer=sublayer))
    if not cost.supported:
        raise NoFormula(f"sublayer {sublayer.name!r}: {cost.geometry.get('unsupported_reason')}")
    return cost


def _query_value_key_shapes(info: LayerInfo) -> dict[str, Shape]:
    """Shapes of ``call(query, value, key=None)``, batch fixed; key defaults to value."""
    batch = info.output_shape[0]
    args, kwargs = call_arguments(info.layer)
    if args or kwargs:
        bound = inspect.signature(info.layer.call).bind_partial(*args, **kwargs).arguments
        shapes = {name: (batch, *bound[name].shape[1:]) for name in ("query", "value", "key")
                  if bound.get(name) is not None}
    else:
        shapes = dict(zip(("query", "value", "key"), info.input_shapes))
    if any(d is None or d < 0 for shape in shapes.values() for d in shape):
        raise NoFormula(f"attention inputs {shapes} are not fully known")
    return {"key": shapes["value"], **shapes}


def _returns_scores(layer: Any) -> bool:
    return bool(call_arguments(layer)[1].get("return_attention_scores"))


def _is_masked(layer: Any, sliding_window: int | None) -> bool:
    use_causal_mask = bool(call_arguments(layer)[1].get("use_causal_mask"))
    return use_causal_mask or sliding_window is not None or call_uses_mask(layer, _MASK_ARGUMENTS)


# ------------------------------------------------- Luong and Bahdanau attention


@formula_for("Attention")
def _attention(info: LayerInfo) -> Formula:
    """Luong: scores = Q K^T (``dot``) or sum(tanh(Q + K)) (``concat``); softmax; weights V."""
    layer, (query, value, _key) = info.layer, _query_value_key(info)
    scores = _Scores(batch=query[0], heads=1, query_positions=query[1], key_positions=value[1],
                     key_dim=query[-1], value_dim=value[-1])
    if layer.score_mode == "dot":
        score_terms = {"scores": 2 * scores.elements * scores.key_dim,
                       "scale": scores.elements if layer.use_scale else 0}
        macs = scores.elements * scores.key_dim
    else:
        score_terms = _concat_score_terms(scores, scaled=layer.use_scale, weighted=True)
        macs = 0
    return _unprojected_attention(info, scores, score_terms, macs)


@formula_for("AdditiveAttention")
def _additive_attention(info: LayerInfo) -> Formula:
    """Bahdanau: scores = sum(scale * tanh(Q + K)) over the features; softmax; weights V."""
    query, value, _ = _query_value_key(info)
    scores = _Scores(batch=query[0], heads=1, query_positions=query[1], key_positions=value[1],
                     key_dim=query[-1], value_dim=value[-1])
    return _unprojected_attention(info, scores, _concat_score_terms(scores, scaled=True, weighted=False), macs=0)


def _concat_score_terms(scores: _Scores, scaled: bool, weighted: bool) -> dict[str, int]:
    """Q + K broadcast to (B, Tq, Tk, dim), tanh, optional scale, summed over dim."""
    pairs = scores.elements * scores.key_dim
    return {"query_key_adds": pairs,
            "scale": pairs if scaled else 0,
            "tanh": pairs * ACTIVATION_FLOPS_PER_ELEMENT["tanh"][0],
            "feature_sum": scores.elements * (scores.key_dim - 1),
            "score_weight": scores.elements if weighted else 0}


def _unprojected_attention(info: LayerInfo, scores: _Scores, score_terms: dict[str, int], macs: int) -> Formula:
    layer = info.layer
    masked = masked_inputs(layer) + [False, False]
    query_masked = masked[0]
    value_masked = bool(call_arguments(layer)[1].get("use_causal_mask")) or masked[1]
    terms = {**score_terms,
             "mask_offsets": scores.elements if value_masked else 0,
             "mask_selects": scores.elements if value_masked else 0,
             "softmax": SOFTMAX_FLOPS_PER_ELEMENT * scores.elements,
             "weighted_sum": 2 * scores.elements * scores.value_dim,
             "query_mask_selects": math.prod(info.output_shape) if query_masked else 0}
    return Formula(terms=terms, macs=macs + scores.elements * scores.value_dim,
                   params=int(layer.count_params()),
                   geometry={**asdict(scores), "score_elements": scores.elements,
                             "score_mode": getattr(layer, "score_mode", "additive"),
                             "use_scale": bool(layer.use_scale), "masked": value_masked or query_masked},
                   mixes_all_positions=True)


def _query_value_key(info: LayerInfo) -> tuple[Shape, Shape, Shape]:
    if len(info.input_shapes) < 2:
        raise NoFormula(f"{info.type} {info.name!r} needs [query, value] inputs, got {info.input_shapes}")
    query, value = info.input_shapes[0], info.input_shapes[1]
    key = info.input_shapes[2] if len(info.input_shapes) > 2 else value
    if any(d is None or d < 0 for shape in (query, value, key) for d in shape):
        raise NoFormula(f"{info.type} {info.name!r}: input shapes {info.input_shapes} are not fully known")
    return query, value, key
