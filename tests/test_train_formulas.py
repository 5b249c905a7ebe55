"""Backward formulas and optimizer specs, pinned by hand and checked against tfprof and Keras itself.

Counts are flops (a multiply-add is 2). A layer's backward splits into dL/dX
(input_grad) and dL/dW (weight_grad); the gradient through the layer's own
activation is charged to weight_grad when the layer has trainable weights.
"""
from __future__ import annotations

import re

import keras
import pytest
import tensorflow as tf

from tests.layer_harness import info_of
from tfprofscale.errors import InputError
from tfprofscale.formulas.analytic import analyze_layers, layer_cost
from tfprofscale.formulas.backward import backward_cost, backward_costs, layers_needing_input_grad
from tfprofscale.formulas.optimizers import make_optimizer, optimizer_spec


def chain(model: keras.Model, batch: int):
    names = [layer.name for layer in model.layers]
    infos = [info_of(layer, batch, tuple(names[i - 1:i])) for i, layer in enumerate(model.layers)]
    return infos, analyze_layers(infos)


def by_name(model: keras.Model, batch: int) -> dict:
    infos, costs = chain(model, batch)
    return {info.name: b for info, b in zip(infos, backward_costs(infos, costs))}


def single(layer: keras.layers.Layer, input_shape: tuple[int, ...], batch: int = 1):
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    info = info_of(model.layers[1], batch)
    return backward_cost(info, layer_cost(info), needs_input_grad=True)


def dense_chain() -> keras.Model:
    inputs = keras.Input((6,))
    x = keras.layers.Dense(4, activation="relu", name="d1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="d2")(x), name="mlp")


def small_cnn() -> keras.Model:
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="c2")(x)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="d")(x), name="cnn")


def test_dense_chain_by_hand():
    costs = by_name(dense_chain(), batch=2)
    # d1, the first layer: no input gradient. dW = X^T dY: 2 * (2 rows * 6 in * 4 out) = 96;
    # bias: 2*4 outputs - 4 = 4 adds; relu gradient: 8 outputs * 1 = 8.  96 + 4 + 8 = 108
    assert (costs["d1"].input_grad_flops, costs["d1"].weight_grad_flops) == (0, 108)
    # d2: dX = dY W^T: 2 * (2 * 4 * 3) = 48; dW 48 + bias 2*3 - 3 = 3 -> 51
    assert (costs["d2"].input_grad_flops, costs["d2"].weight_grad_flops) == (48, 51)


def test_small_cnn_by_hand():
    costs = by_name(small_cnn(), batch=2)
    # c1 (first layer, no dL/dX): MACs = 2 * 6*6 * 3 out * 3*3 * 2 in = 3888 -> dW 7776;
    # bias 216 outputs - 3 = 213; relu 216.  7776 + 213 + 216 = 8205
    assert (costs["c1"].input_grad_flops, costs["c1"].weight_grad_flops) == (0, 8205)
    # pool: one add per output (2*3*3*3 = 54); TensorFlow's recomputed maxima 4 taps * 54 = 216 (diagnostic)
    assert (costs["pool"].input_grad_flops, costs["pool"].weight_grad_flops) == (54, 0)
    assert costs["pool"].terms["diagnostic.argmax_recompute"] == 216
    # c2: 2 * 3*3 * 4 out * 3*3 * 3 in = 1944 MACs -> 3888 each way; bias 72 - 4 = 68
    assert (costs["c2"].input_grad_flops, costs["c2"].weight_grad_flops) == (3888, 3888 + 68)
    assert (costs["flat"].input_grad_flops, costs["flat"].weight_grad_flops) == (0, 0)
    # d: 2 rows * 36 * 5 = 360 MACs -> 720 each way; bias 10 - 5 = 5
    assert (costs["d"].input_grad_flops, costs["d"].weight_grad_flops) == (720, 725)


@pytest.mark.parametrize("layer, input_shape, expected", [
    # groups=2: out 2x2x6, MACs = 4 * 6 * 9 * (4 / 2) = 432 -> 864; bias 24 - 6 = 18
    (keras.layers.Conv2D(6, 3, groups=2), (4, 4, 4), (864, 864 + 18)),
    # stride 2, VALID: out 2x2x2, MACs = 8 outputs * 9 taps * 1 channel = 72 -> 144; bias 8 - 2 = 6
    (keras.layers.Conv2D(2, 3, strides=2), (5, 5, 1), (144, 144 + 6)),
    # depthwise, multiplier 2: out 2x2x6, MACs = 24 * 9 = 216 -> 432; bias 24 - 6 = 18
    (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (4, 4, 3), (432, 432 + 18)),
    # transposed, stride 2: every input (2*2*3) times 9 taps times 2 filters = 216 MACs -> 432; out 5x5x2: bias 50 - 2
    (keras.layers.Conv2DTranspose(2, 3, strides=2), (2, 2, 3), (432, 432 + 48)),
    # separable: depthwise 4 positions * 2 ch * 9 = 72 MACs (144), pointwise 4 * 3 * 2 = 24 MACs (48);
    # dX = depthwise input grad 144; dW = pointwise 48 + its input grad 48 (needed by the depthwise kernel's)
    # + depthwise 144 + bias 12 - 3 = 9 -> 249
    (keras.layers.SeparableConv2D(3, 3), (4, 4, 2), (144, 249)),
    # Conv1D, causal: out 5x2, MACs = 10 * 3 taps * 4 in = 120 -> 240; bias 10 - 2 = 8
    (keras.layers.Conv1D(2, 3, padding="causal"), (5, 4), (240, 248)),
])
def test_convolution_kinds_by_hand(layer, input_shape, expected):
    cost = single(layer, input_shape)
    assert (cost.input_grad_flops, cost.weight_grad_flops) == expected


def test_lstm_back_through_time_by_hand():
    cost = single(keras.layers.LSTM(4), (3, 2))
    # rows = 3 steps * 1 * 4 units = 12; input MACs 12 * 4 gates * 2 = 96, recurrent 12 * 4 * 4 = 192
    # dX = 2 * 96 = 192
    assert cost.input_grad_flops == 192
    # dW 192 + dU 384 + bias 12*4 - 16 = 32 + dh through time 384 + cell 12 * (7 + 2*3 tanh + 3*3 sigmoid) = 264
    assert cost.weight_grad_flops == 192 + 384 + 32 + 384 + 264
    matmuls = sum(v for k, v in cost.terms.items() if k.endswith(("matmul_grad", "kernel_grad", "through_time")))
    assert matmuls == 2 * (2 * 96 + 2 * 192)   # backward matmuls = 2x the forward's


def test_pooling_and_normalization_by_hand():
    # average 2x2 on 4x4x1: 4 outputs * 4 taps * 2 (scale and add, as tfprof counts AvgPoolGrad) = 32
    assert single(keras.layers.AveragePooling2D(2), (4, 4, 1)).input_grad_flops == 32
    # global average over 3x3x2: the Mean gradient divides each of the 18 input elements
    assert single(keras.layers.GlobalAveragePooling2D(), (3, 3, 2)).input_grad_flops == 18
    # batch norm on 2x2x3 = 12 elements: dX 5 * 12 = 60; dW = x_hat 24 + the sums 36 = 60
    bn = single(keras.layers.BatchNormalization(), (2, 2, 3))
    assert (bn.input_grad_flops, bn.weight_grad_flops) == (60, 60)
    # layer norm, 8 elements: dX 8*8 + gamma 8 = 72; dW gamma 16 + beta 8 + x_hat 16 = 40
    ln = single(keras.layers.LayerNormalization(), (2, 4))
    assert (ln.input_grad_flops, ln.weight_grad_flops) == (72, 40)


def test_frozen_layer_and_first_layer_need_nothing_upstream():
    inputs = keras.Input((6,))
    frozen = keras.layers.Dense(4, name="frozen", trainable=False)
    x = keras.layers.Activation("tanh", name="act")(frozen(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    infos, _ = chain(model, 2)
    assert layers_needing_input_grad(infos) == {model.layers[0].name: False, "frozen": False, "act": False,
                                                "head": False}
    costs = by_name(model, 2)
    assert (costs["frozen"].input_grad_flops, costs["frozen"].weight_grad_flops) == (0, 0)
    assert (costs["act"].input_grad_flops, costs["act"].weight_grad_flops) == (0, 0)
    # head: no dX; dW = 2 * 2*4*3 = 48 + bias 3
    assert (costs["head"].input_grad_flops, costs["head"].weight_grad_flops) == (0, 51)


def test_layer_without_backward_formula_is_none_not_zero():
    cost = single(keras.layers.UpSampling2D(interpolation="bilinear"), (2, 2, 1))
    assert not cost.supported and cost.input_grad_flops is None and cost.weight_grad_flops is None
    lam = single(keras.layers.Lambda(lambda t: t * 2), (3,))
    assert not lam.supported and lam.flops is None


# -- independent route: tfprof on the gradient ops of a real traced train step ---------------------------


def tfprof_gradient_flops(model: keras.Model, batch: int, output_units: int) -> dict[str, dict[str, int]]:
    """Per layer, per gradient op type: tfprof's FLOPs of the live ops under ``gradient_tape/<model>/<layer>``."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    from tfprofscale.profiling.graph.function_library import live_ops

    optimizer = keras.optimizers.SGD()

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = keras.losses.MeanSquaredError()(y, model(x, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    graph = step.get_concrete_function(tf.TensorSpec((batch, *model.input_shape[1:])),
                                       tf.TensorSpec((batch, output_units))).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    flops: dict[str, int] = {}

    def walk(node):
        flops[node.name] = node.total_float_ops - sum(child.total_float_ops for child in node.children)
        for child in node.children:
            walk(child)

    walk(model_analyzer.profile(graph, cmd="graph", options=options))
    live, found = live_ops(graph), {}
    for op in graph.get_operations():
        match = re.match(rf"gradient_tape/{model.name}(?:_\d+)?/(\w+?)(?:_\d+)?/", op.name)
        if match and op.name in live and flops.get(op.name):
            per_type = found.setdefault(match.group(1), {})
            per_type[op.type] = per_type.get(op.type, 0) + flops[op.name]
    return found


def _counted_by_tfprof(cost) -> int:
    """Our terms tfprof also counts: matmuls, convolution backprops, bias gradients, pooling gradients
    (not the activation gradient: tfprof has no statistics for ReluGrad)."""
    return sum(v for k, v in cost.terms.items()
               if not k.endswith("activation_grad") and not k.startswith("diagnostic.")) \
        + cost.terms.get("diagnostic.argmax_recompute", 0)


def test_dense_chain_against_tfprof():
    model = dense_chain()
    graph = tfprof_gradient_flops(model, batch=2, output_units=3)
    ours = by_name(model, 2)
    assert graph["d1"] == {"MatMul": 96, "BiasAddGrad": 4}          # no dX MatMul runs for the first layer
    assert graph["d2"] == {"MatMul": 96, "BiasAddGrad": 3}
    for name in ("d1", "d2"):
        assert sum(graph[name].values()) == _counted_by_tfprof(ours[name])


def test_small_cnn_against_tfprof():
    model = small_cnn()
    graph = tfprof_gradient_flops(model, batch=2, output_units=5)
    ours = by_name(model, 2)
    # the first conv's Conv2DBackpropInput is in the graph but feeds nothing: not live, not counted
    assert graph["c1"] == {"Conv2DBackpropFilter": 7776, "BiasAddGrad": 213}
    assert graph["pool"] == {"MaxPoolGrad": 54 + 216}
    assert graph["c2"] == {"Conv2DBackpropInput": 3888, "Conv2DBackpropFilter": 3888, "BiasAddGrad": 68}
    for name in ("c1", "pool", "c2", "d"):
        assert sum(graph[name].values()) == _counted_by_tfprof(ours[name]), name


# -- optimizers ----------------------------------------------------------------------------------------

O = keras.optimizers


@pytest.mark.parametrize("make, slots, update_flops", [
    (lambda: O.SGD(), 0, 2),                                  # v -= g * lr
    (lambda: O.SGD(momentum=0.9), 1, 4),                      # m = m*mu - g*lr (3); v += m (1)
    (lambda: O.SGD(momentum=0.9, nesterov=True), 1, 7),       # m (3); v += m*mu - g*lr (4)
    (lambda: O.Adam(), 2, 12),                                # m 3, v 4, v -= m*alpha / (sqrt(v) + eps) 5
    (lambda: O.Adam(amsgrad=True), 3, 13),                    # + max(v_hat, v)
    (lambda: O.AdamW(), 2, 15),                               # + weight decay v -= v * wd * lr (3)
    (lambda: O.RMSprop(), 1, 9),                              # s 4, lr*g / sqrt(s + eps) 4, v -= 1
    (lambda: O.RMSprop(momentum=0.9, centered=True), 3, 16),  # + centered 5 + momentum 2
    (lambda: O.Adagrad(), 1, 7), (lambda: O.Adadelta(), 2, 17), (lambda: O.Adamax(), 2, 11),
    (lambda: O.Nadam(), 2, 18), (lambda: O.Lion(), 1, 9),
    (lambda: O.Adam(use_ema=True), 3, 15),                    # + EMA average (3)
    (lambda: O.SGD(gradient_accumulation_steps=4), 1, 4),     # + accumulator; (g + acc) / steps (2)
    (lambda: O.LossScaleOptimizer(O.Adam()), 2, 15),          # + unscale and finiteness check (3)
])
def test_optimizer_slots_against_keras(make, slots, update_flops):
    model = dense_chain()
    optimizer = make()
    spec = optimizer_spec(optimizer)
    assert (spec.slots_per_variable, spec.update_flops_per_element) == (slots, update_flops)
    optimizer.build(model.trainable_variables)
    # independent route: what Keras really allocated
    assert len(optimizer.variables) == spec.scalar_variables + slots * len(model.trainable_variables)


def test_make_optimizer_choices_and_unknown_name():
    assert type(make_optimizer("momentum")).__name__ == "SGD" and make_optimizer("momentum").momentum == 0.9
    assert type(make_optimizer("adamw")).__name__ == "AdamW"
    with pytest.raises(InputError, match=r"unknown --optimizer 'adagrad'; choose one of sgd, momentum, adam"):
        make_optimizer("adagrad")


def test_gru_by_hand():
    cost = single(keras.layers.GRU(3), (2, 2))
    # rows = 2 steps * 3 units = 6, gates 3: input MACs 6*3*2 = 36, recurrent 6*3*3 = 54. dX = 72
    assert cost.input_grad_flops == 72
    # dW 72 + dU 108 + bias (reset_after: 2 rows of 9) 18 gate elements * 2 - 18 = 18 + through time 108
    # + cell 6 * (9 + tanh 3 + 2 sigmoids 6) = 108
    assert cost.weight_grad_flops == 72 + 108 + 18 + 108 + 108


def test_wrappers_by_hand():
    # TimeDistributed(Dense(3)) over 4 steps of 2 features: per step dX 2*2*3 = 12, dW 12; bias sums
    # 4 steps * 3 outputs - 3 = 9
    wrapped = single(keras.layers.TimeDistributed(keras.layers.Dense(3)), (4, 2))
    assert (wrapped.input_grad_flops, wrapped.weight_grad_flops) == (48, 48 + 9)
    # Bidirectional(SimpleRNN(2)), 3 steps of 2: per direction rows 6, input MACs 12, recurrent 12:
    # dX 24; dW 24 + dU 24 + bias 6 - 2 = 4 + through time 24 + cell 6 * (1 + tanh 3) = 24 -> 100.
    # Two directions, and the two input gradients summed: 3 * 2 = 6 adds
    both = single(keras.layers.Bidirectional(keras.layers.SimpleRNN(2)), (3, 2))
    assert (both.input_grad_flops, both.weight_grad_flops) == (2 * 24 + 6, 2 * 100)


def test_embedding_and_merges_by_hand():
    tokens = keras.Input((5,), dtype="int32")
    embedding = keras.layers.Embedding(10, 4)
    model = keras.Model(tokens, embedding(tokens))
    cost = backward_cost(info_of(model.layers[1], 2), layer_cost(info_of(model.layers[1], 2)))
    # no gradient for ids; dW: one add per gathered element, 2 * 5 * 4 = 40
    assert (cost.input_grad_flops, cost.weight_grad_flops) == (0, 40)
    a, b = keras.Input((4,)), keras.Input((4,))
    merged = keras.Model([a, b], keras.layers.Multiply()([a, b]))
    info = info_of(merged.layers[2], 1)
    # each input's gradient is dy times the other: 2 inputs * 4 elements = 8
    assert backward_cost(info, layer_cost(info)).input_grad_flops == 8


def test_multi_head_attention_by_hand():
    query = keras.Input((2, 4))
    attention = keras.layers.MultiHeadAttention(num_heads=1, key_dim=2)
    model = keras.Model(query, attention(query, query))
    info = info_of(model.layers[1], 1)
    cost = backward_cost(info, layer_cost(info), needs_input_grad=True)
    # projections q, k, v: (1, 2, 4) -> (1, 2, 1, 2): 4 outputs * 4 = 16 MACs = 32 flops each way, bias 4 - 2 = 2;
    # output (1, 2, 1, 2) -> (1, 2, 4): 8 outputs * 2 = 16 MACs = 32, bias 8 - 4 = 4.
    # dX: the three projections' input gradients, 3 * 32 = 96
    assert cost.input_grad_flops == 96
    # core, S = 1 head * 2 * 2 = 4 scores: 2 * scores (2*4*2 = 16) + 2 * weighted sum (16) + softmax 4*4
    # + scale 4 = 84; output projection's input gradient 32; dW 3 * (32 + 2) + 32 + 4 = 138
    assert cost.weight_grad_flops == 84 + 32 + 138


def test_keras_operations_by_hand():
    from tfprofscale.profiling.trace.tracing import trace

    inputs = keras.Input((3, 4))
    dense = keras.layers.Dense(4, name="dense")(inputs)
    product = (dense + inputs) * dense
    scores = keras.ops.matmul(product, keras.ops.transpose(dense, (0, 2, 1)))
    model = keras.Model(inputs, keras.ops.mean(keras.ops.relu(scores), axis=-1))
    traced = trace(model, 1)
    costs = backward_costs(traced.layers, analyze_layers(traced.layers))
    found = {info.type: (cost.input_grad_flops, cost.weight_grad_flops) for info, cost in zip(traced.layers, costs)}
    assert found["ops.Add"] == (0, 0)            # passes dy on
    assert found["ops.Multiply"] == (24, 0)      # dy times the other operand, for each: 2 * 12 elements
    assert found["ops.Transpose"] == (0, 0)
    assert found["ops.Matmul"] == (144, 0)       # (3x4) @ (4x3): 36 MACs = 72 flops, once per operand
    assert found["ops.Relu"] == (9, 0)           # 3x3 outputs
    assert found["ops.Mean"] == (9, 0)           # a divide per input element
