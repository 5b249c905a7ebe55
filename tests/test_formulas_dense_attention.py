"""Dense, EinsumDense and attention formulas: by hand, and against the traced graph.

The independent count of a layer is tfprof on its ops plus the Einsum ops
tfprof has no statistics for, counted with numpy (tests/graph_counting.py).
Terms TensorFlow runs but tfprof does not count (Tanh, selects) are named per case.
"""
from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from tests.graph_counting import einsum_flops, info_of, select_elements, tfprof_flops, trace
from tfprofscale.formulas.analytic import layer_cost

L = keras.layers
B = 2


def _one_layer(make_layer, shapes, call=lambda layer, inputs: layer(*inputs), dtypes=None):
    dtypes = dtypes or ["float32"] * len(shapes)
    inputs = [keras.Input(shape[1:], dtype=dtype) for shape, dtype in zip(shapes, dtypes)]
    layer = make_layer()
    model = keras.Model(inputs, call(layer, inputs))
    traced = trace(model, [tf.TensorSpec(shape, dtype) for shape, dtype in zip(shapes, dtypes)])
    scope = traced.scopes[layer.name]
    return (layer, layer_cost(info_of(layer, B)), tfprof_flops(traced.graph, scope), einsum_flops(traced.graph, scope),
            select_elements(traced.graph, scope))


def _as_list(layer, inputs):
    return layer(list(inputs))


def _masked_pair(layer, inputs):
    embedded = L.Embedding(10, 6, mask_zero=True)(inputs[0])
    return layer([embedded, embedded])


def _masked_query(layer, inputs):
    ids, = inputs
    embedded = L.Embedding(10, 8, mask_zero=True)(ids)
    return layer(embedded, embedded)


#: name -> (layer factory, input shapes, call, dtypes, terms tfprof does not count, or their flops)
CASES = {
    "einsum_dense_matmul": (lambda: L.EinsumDense("abc,cde->abde", (5, 3, 4), bias_axes="de"),
                            [(B, 5, 6)], None, None, ()),
    "einsum_dense_einsum": (lambda: L.EinsumDense("abcd,de->abce", (2, 3, 3), bias_axes="e"),
                            [(B, 2, 3, 5)], None, None, ()),
    "einsum_dense_ellipsis": (lambda: L.EinsumDense("...b,bc->...c", 7, activation="relu"),
                              [(B, 4, 5)], None, None, ("activations",)),
    "dense_4d": (lambda: L.Dense(6), [(B, 3, 4, 5)], None, None, ()),
    "mha_self": (lambda: L.MultiHeadAttention(2, 4), [(B, 6, 8), (B, 6, 8)], None, None, ()),
    "mha_cross": (lambda: L.MultiHeadAttention(3, 2, value_dim=5, use_bias=False, output_shape=7),
                  [(B, 4, 8), (B, 6, 5)], None, None, ()),
    "mha_key": (lambda: L.MultiHeadAttention(2, 3), [(B, 4, 8), (B, 6, 5), (B, 6, 7)], None, None, ()),
    "mha_causal": (lambda: L.MultiHeadAttention(2, 4), [(B, 6, 8), (B, 6, 8)],
                   lambda layer, inputs: layer(*inputs, use_causal_mask=True), None, ("mask_selects",)),
    "mha_query_mask": (lambda: L.MultiHeadAttention(2, 4), [(B, 6)], _masked_query, ["int32"], ("mask_selects",)),
    "mha_returning_scores": (lambda: L.MultiHeadAttention(2, 4), [(B, 6, 8), (B, 6, 8)],
                             lambda layer, inputs: layer(*inputs, return_attention_scores=True), None, ()),
    "mha_dropout": (lambda: L.MultiHeadAttention(2, 4, dropout=0.1), [(B, 6, 8), (B, 6, 8)], None, None, ()),
    "mha_dropout_causal": (lambda: L.MultiHeadAttention(2, 4, dropout=0.1), [(B, 6, 8), (B, 6, 8)],
                           lambda layer, inputs: layer(*inputs, use_causal_mask=True), None, ("mask_selects",)),
    "mha_axes": (lambda: L.MultiHeadAttention(2, 3, attention_axes=(2,)), [(B, 3, 4, 8), (B, 3, 5, 8)],
                 None, None, ()),
    "mha_gate": (lambda: L.MultiHeadAttention(2, 3, use_gate=True), [(B, 4, 8), (B, 5, 8)], None, None,
                 4 * (B * 4 * 2 * 3)),    # the gate's sigmoid, 4 per element of (B, Tq, H, V)
    "gqa": (lambda: L.GroupQueryAttention(3, 4, 2), [(B, 4, 8), (B, 5, 8)], None, None, ()),
    "attention_dot": (lambda: L.Attention(), [(B, 4, 6), (B, 5, 6)], _as_list, None, ()),
    "attention_dot_scaled": (lambda: L.Attention(use_scale=True), [(B, 4, 6), (B, 5, 6)], _as_list, None, ()),
    "attention_concat": (lambda: L.Attention(use_scale=True, score_mode="concat"), [(B, 4, 6), (B, 5, 6)],
                         _as_list, None, ("tanh",)),
    "attention_causal": (lambda: L.Attention(), [(B, 4, 6), (B, 4, 6)],
                         lambda layer, inputs: layer(list(inputs), use_causal_mask=True), None, ("mask_selects",)),
    "attention_keras_masks": (lambda: L.Attention(), [(B, 5)], _masked_pair, ["int32"],
                              ("mask_selects", "query_mask_selects")),
    "additive": (lambda: L.AdditiveAttention(), [(B, 4, 6), (B, 5, 6)], _as_list, None, ("tanh",)),
    "additive_unscaled": (lambda: L.AdditiveAttention(use_scale=False), [(B, 4, 6), (B, 5, 3), (B, 5, 6)],
                          _as_list, None, ("tanh",)),
}


@pytest.fixture(scope="module")
def zoo():
    results = {}
    for name, (make, shapes, call, dtypes, _) in CASES.items():
        results[name] = _one_layer(make, shapes, call or (lambda layer, inputs: layer(*inputs)), dtypes)
    return results


def _uncounted(cost, name):
    terms = CASES[name][4]
    return terms if isinstance(terms, int) else sum(cost.terms[term] for term in terms)


@pytest.mark.parametrize("name", list(CASES))
def test_flops_agree_with_tfprof_plus_einsums(zoo, name):
    _, cost, tfprof, einsums, _ = zoo[name]
    assert cost.supported, cost.geometry
    assert cost.flops - _uncounted(cost, name) == tfprof + einsums


@pytest.mark.parametrize("name", list(CASES))
def test_select_terms_equal_the_selects_in_the_graph(zoo, name):
    cost, selects = zoo[name][1], zoo[name][4]
    assert cost.terms.get("mask_selects", 0) + cost.terms.get("query_mask_selects", 0) == selects


@pytest.mark.parametrize("name", list(CASES))
def test_params_equal_keras_count_params(zoo, name):
    layer, cost, _, _, _ = zoo[name]
    assert cost.params == layer.count_params()


def test_the_graph_really_runs_einsums_tfprof_cannot_see(zoo):
    assert zoo["mha_self"][3] == 2 * (2 * B * 2 * 6 * 6 * 4)          # scores and weighted sum
    assert zoo["einsum_dense_einsum"][3] == 2 * (B * 2 * 3 * 3 * 5)


# ------------------------------------------------------------ by hand


def test_einsum_dense_by_hand(zoo):
    _, cost, _, _, _ = zoo["einsum_dense_matmul"]           # abc,cde->abde on (2, 5, 6), kernel (6, 3, 4)
    outputs = B * 5 * 3 * 4
    assert cost.macs == outputs * 6 == 720                # each output sums over c = 6
    assert cost.terms == {"multiply_adds": 1440, "bias_adds": outputs, "activations": 0}
    assert cost.params == 6 * 3 * 4 + 3 * 4 == 84
    assert cost.geometry["summed_indices"] == {"c": 6}


def test_einsum_dense_with_ellipsis_by_hand(zoo):
    _, cost, _, _, _ = zoo["einsum_dense_ellipsis"]         # ...b,bc->...c on (2, 4, 5), 7 outputs, relu
    assert cost.macs == (B * 4 * 7) * 5 == 280
    assert cost.flops == 2 * 280 + B * 4 * 7 * 1          # no bias; relu one per output


def test_dense_on_4d_input_by_hand(zoo):
    _, cost, _, _, _ = zoo["dense_4d"]
    assert cost.macs == (B * 3 * 4) * 5 * 6 == 720
    assert cost.flops == 2 * 720 + B * 3 * 4 * 6


def test_self_attention_by_hand(zoo):
    """B=2, T=6, E=8, H=2, K=V=4: scores 2*B*H*T^2*K and the weighted sum the same."""
    _, cost, _, _, _ = zoo["mha_self"]
    projection = 2 * B * 6 * 8 * (2 * 4) + B * 6 * (2 * 4)   # matmul + bias, for each of q, k, v and output
    scores = B * 2 * 6 * 6
    assert cost.terms == {
        "query_projection": projection, "key_projection": projection, "value_projection": projection,
        "output_projection": projection,
        "scale": scores,                                       # the fused path scales the logits
        "scores": 2 * B * 2 * 6 ** 2 * 4, "mask_selects": 0,
        "softmax": 5 * scores, "weighted_sum": 2 * B * 2 * 6 ** 2 * 4}
    assert cost.flops == 4 * 1632 + 2 * 1152 + 144 + 720 == 9696
    assert cost.macs == 4 * (B * 6 * 8 * 8) + 2 * (B * 2 * 36 * 4) == 4224


def test_cross_attention_with_other_lengths_and_dims_by_hand(zoo):
    """Tq=4 (E=8), Tk=6 (E=5), H=3, K=2, V=5, no bias, output 7."""
    _, cost, _, _, _ = zoo["mha_cross"]
    assert cost.terms["query_projection"] == 2 * B * 4 * 8 * (3 * 2) == 768
    assert cost.terms["key_projection"] == 2 * B * 6 * 5 * (3 * 2) == 720
    assert cost.terms["value_projection"] == 2 * B * 6 * 5 * (3 * 5) == 1800
    assert cost.terms["scores"] == 2 * B * 3 * 4 * 6 * 2 == 576
    assert cost.terms["weighted_sum"] == 2 * B * 3 * 4 * 6 * 5 == 1440
    assert cost.terms["output_projection"] == 2 * B * 4 * (3 * 5) * 7 == 1680


def test_a_causal_mask_adds_one_select_per_score(zoo):
    _, cost, _, _, _ = zoo["mha_causal"]
    assert cost.terms["mask_selects"] == B * 2 * 6 * 6
    assert cost.flops == 9696 + 144


@pytest.mark.parametrize("name", ["mha_dropout", "mha_returning_scores"])
def test_dropout_or_returned_scores_take_the_unfused_path_that_scales_the_query(zoo, name):
    _, cost, _, _, _ = zoo[name]
    assert cost.terms["scale"] == B * 6 * 2 * 4           # projected query elements, not scores
    assert cost.flops == 9696 - 144 + 96


def test_the_unfused_path_masks_before_and_after_the_softmax(zoo):
    _, cost, _, _, _ = zoo["mha_dropout_causal"]
    assert cost.terms["mask_selects"] == 2 * (B * 2 * 6 * 6)


def test_attention_axes_treat_the_other_axes_as_batch(zoo):
    """Query (3, 4, 8), value (3, 5, 8), attention over axis 2: 2*3 = 6 'batches' of 4 x 5 scores."""
    _, cost, _, _, _ = zoo["mha_axes"]
    assert cost.terms["scores"] == 2 * (B * 3) * 2 * 4 * 5 * 3 == 1440
    assert cost.terms["softmax"] == 5 * (B * 3) * 2 * 4 * 5


def test_grouped_query_attention_by_hand(zoo):
    """4 query heads share 2 key/value heads of 3: k and v are projected to 2 heads only."""
    _, cost, _, _, _ = zoo["gqa"]
    assert cost.terms["query_projection"] == 2 * B * 4 * 8 * (4 * 3) + B * 4 * (4 * 3) == 1632
    assert cost.terms["key_projection"] == 2 * B * 5 * 8 * (2 * 3) + B * 5 * (2 * 3) == 1020
    assert cost.terms["scores"] == 2 * B * 4 * 4 * 5 * 3 == 960


def test_masked_luong_attention_by_hand(zoo):
    """Value mask: scores - 1e9 and a select per score; query mask: a select per output element."""
    _, cost, _, _, _ = zoo["attention_keras_masks"]
    scores = B * 5 * 5
    assert (cost.terms["mask_offsets"], cost.terms["mask_selects"]) == (scores, scores)
    assert cost.terms["query_mask_selects"] == B * 5 * 6


def test_luong_and_bahdanau_attention_by_hand(zoo):
    """Tq=4, Tv=5, dim=6: dot scores 2*B*Tq*Tv*dim; additive: add, scale, tanh per (q, k, feature)."""
    dot = zoo["attention_dot"][1]
    assert dot.flops == 2 * B * 4 * 5 * 6 + 5 * B * 4 * 5 + 2 * B * 4 * 5 * 6 == 1160
    additive = zoo["additive"][1]
    pairs = B * 4 * 5 * 6
    assert additive.terms["query_key_adds"] == additive.terms["scale"] == additive.terms["tanh"] == pairs
    assert additive.terms["feature_sum"] == B * 4 * 5 * (6 - 1)


# ------------------------------------------------------------ unsupported


def test_einsum_dense_with_an_unknown_activation_is_unsupported_not_zero():
    inputs = keras.Input((4, 5))
    layer = L.EinsumDense("abc,cd->abd", (4, 3), activation=lambda x: x * x)
    keras.Model(inputs, layer(inputs))
    cost = layer_cost(info_of(layer, B))
    assert not cost.supported and cost.flops is None and cost.macs is None


def test_attention_over_an_unknown_key_length_is_unsupported_not_negative():
    query, value = keras.Input((4, 8)), keras.Input((None, 8))
    layer = L.MultiHeadAttention(2, 4)
    keras.Model([query, value], layer(query, value))
    info = info_of(layer, B)
    cost = layer_cost(type(info)(info.name, info.type, ((B, 4, 8), (B, -1, 8)), (B, 4, 8), layer=layer))
    assert not cost.supported and cost.flops is None


# ------------------------------------------------------------ LoRA and quantized


@pytest.mark.parametrize("make, shape, kernel_elements", [
    (lambda: L.Dense(4), (B, 3, 5), 5 * 4),
    (lambda: L.EinsumDense("abc,cde->abde", (3, 2, 4), bias_axes="e"), (B, 3, 5), 5 * 2 * 4),
])
def test_lora_rebuilds_the_kernel_every_call(make, shape, kernel_elements):
    """kernel + (alpha / r) * A @ B: 2 * kernel * r for the product, a multiply and an add per kernel element."""
    inputs = keras.Input(shape[1:])
    layer = make()
    outputs = layer(inputs)
    layer.enable_lora(2)
    model = keras.Model(inputs, outputs)
    traced = trace(model, [tf.TensorSpec(shape)])
    cost = layer_cost(info_of(layer, B))
    assert cost.terms["lora_product"] == 2 * kernel_elements * 2
    assert cost.terms["lora_merge"] == 2 * kernel_elements
    assert cost.flops == tfprof_flops(traced.graph, traced.scopes[layer.name]) + einsum_flops(
        traced.graph, traced.scopes[layer.name])
    assert cost.params == layer.count_params()


def test_a_quantized_dense_is_unsupported_not_zero():
    inputs = keras.Input((5,))
    layer = L.Dense(4)
    model = keras.Model(inputs, layer(inputs))
    model.quantize("int8")
    cost = layer_cost(info_of(layer, B))
    assert not cost.supported and cost.flops is None
