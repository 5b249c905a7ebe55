"""The hand formulas of tfprofscale.analytic, against hand arithmetic and tfprof.

Numbers are worked out in the tests themselves, or come from an independent
route: TensorFlow's own profiler (tfprof) on the traced graph, and a
convolution of ones that counts the kernel taps landing inside the input.
"""
from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.graph_counting import tfprof_op_flops
from tests.graph_counting import trace as trace_scopes
from tests.layer_harness import info_of
from tfprofscale.formulas.analytic import analyze_layers, layer_cost, supported_layer_types
from tfprofscale.records import LayerInfo


def chain_infos(model: keras.Model, batch: int) -> list[LayerInfo]:
    """LayerInfos of a model whose layers form one chain, each fed by the one before."""
    names = [layer.name for layer in model.layers]
    return [info_of(layer, batch, tuple(names[i - 1:i])) for i, layer in enumerate(model.layers)]


def single_layer_cost(layer: keras.layers.Layer, input_shape: tuple[int, ...], batch: int = 1):
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    return layer_cost(info_of(model.layers[1], batch))


# ------------------------------------------------------- a CNN worked by hand


@pytest.fixture(scope="module")
def two_layer_cnn_costs():
    """Conv2D 3x3x32 VALID ReLU on 28x28x1, MaxPool 2, Flatten, Dense 10; batch 1."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs)
    return dict(zip([layer.name for layer in model.layers], analyze_layers(chain_infos(model, 1))))


def test_hand_worked_cnn_params(two_layer_cnn_costs):
    costs = two_layer_cnn_costs
    assert costs["conv"].params == 3 * 3 * 1 * 32 + 32 == 320
    assert costs["pool"].params == 0
    assert costs["flatten"].params == 0
    assert costs["logits"].params == (13 * 13 * 32) * 10 + 10 == 54_090


def test_hand_worked_cnn_macs_and_flops(two_layer_cnn_costs):
    conv, pool, flatten, dense = (two_layer_cnn_costs[n] for n in ("conv", "pool", "flatten", "logits"))
    conv_outputs = 26 * 26 * 32
    assert conv.macs == conv_outputs * 3 * 3 * 1 == 194_688
    assert conv.terms["bias_adds"] == conv_outputs
    assert conv.terms["activations"] == conv_outputs * 1          # relu: one max per element
    assert conv.flops == 2 * 194_688 + 21_632 + 21_632 == 432_640
    pool_outputs = 13 * 13 * 32
    assert pool.macs == 0
    assert pool.flops == (2 * 2) * pool_outputs == 21_632          # TF: window area per output
    assert pool.terms["comparisons"] == (2 * 2 - 1) * pool_outputs  # document 004
    assert (flatten.flops, flatten.macs) == (0, 0)
    assert dense.macs == 5408 * 10 == 54_080
    assert dense.flops == 2 * 54_080 + 10 == 108_170                # linear: no activation flops


def test_hand_worked_cnn_output_elements_and_bytes(two_layer_cnn_costs):
    costs = two_layer_cnn_costs
    assert costs["image"].output_elements == 28 * 28 * 1
    assert costs["image"].activation_bytes == 28 * 28 * 1 * 4
    assert costs["conv"].output_elements == 26 * 26 * 32 == 21_632
    assert costs["conv"].activation_bytes == 21_632 * 4 == 86_528
    assert costs["pool"].activation_bytes == 13 * 13 * 32 * 4 == 21_632
    assert costs["flatten"].output_elements == 5408
    assert costs["flatten"].activation_bytes == 0                   # a view of the pool output
    assert costs["logits"].activation_bytes == 10 * 4


def test_hand_worked_cnn_receptive_field(two_layer_cnn_costs):
    costs = two_layer_cnn_costs
    assert (costs["image"].receptive_field, costs["image"].jump) == (1, 1)
    assert (costs["conv"].receptive_field, costs["conv"].jump) == (1 + (3 - 1) * 1, 1)
    assert (costs["pool"].receptive_field, costs["pool"].jump) == (3 + (2 - 1) * 1, 1 * 2)
    assert costs["flatten"].receptive_field == 4
    # Dense over the flattened 13x13 map: a kernel of the whole map, r + (13 - 1) * j.
    assert costs["logits"].receptive_field == 4 + (13 - 1) * 2 == 28


# ------------------------------------------------- agreement with tfprof


def graph_flops_per_layer(model: keras.Model, input_shape: tuple[int, ...]) -> dict[str, int]:
    """tfprof's float_ops summed over the ops under each layer's recorded name scope."""
    traced = trace_scopes(model, [tf.TensorSpec(input_shape, tf.float32)])
    op_flops = tfprof_op_flops(traced.graph)
    return {name: sum(flops for op, flops in op_flops.items() if op.startswith(scope + "/"))
            for name, scope in traced.scopes.items()}


#: Layers whose activation TensorFlow's profiler counts too (Softmax, 5 per element).
TF_COUNTS_ACTIVATION = {"dense_softmax", "softmax_layer"}


@pytest.fixture(scope="module")
def traced_zoo():
    """Branches from one 12x12x3 input, batch 2: analytic costs and tfprof counts per layer."""
    inputs = keras.Input((12, 12, 3))
    layers = keras.layers
    branches = [
        layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_same_s1"),
        layers.Conv2D(5, 3, strides=2, padding="same", name="conv_same_s2"),
        layers.Conv2D(4, (3, 5), name="conv_valid_s1"),
        layers.Conv2D(4, 3, strides=2, name="conv_valid_s2"),
        layers.Conv2D(4, 3, strides=(2, 1), padding="same", use_bias=False, name="conv_same_s21"),
        layers.Conv2D(4, 3, dilation_rate=2, padding="same", name="conv_dilated_same"),
        layers.Conv2D(3, 3, dilation_rate=2, name="conv_dilated_valid"),
        layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise"),
        layers.MaxPooling2D(3, strides=2, padding="same", name="max_pool_same"),
        layers.AveragePooling2D(2, name="avg_pool"),
        layers.BatchNormalization(name="batch_norm"),
        layers.GlobalAveragePooling2D(name="gap"),
        layers.Dense(4, name="dense_pointwise"),
        layers.ReLU(name="relu_layer"),
    ]
    outputs = [branch(inputs) for branch in branches]
    x = layers.MaxPooling2D(2, name="max_pool")(inputs)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(6, activation="relu", name="dense_relu")(x)
    x = layers.Dense(3, activation="softmax", name="dense_softmax")(x)
    outputs += [x, layers.Softmax(name="softmax_layer")(x)]
    model = keras.Model(inputs, outputs)
    costs = {layer.name: layer_cost(info_of(layer, batch=2)) for layer in model.layers}
    return model, costs, graph_flops_per_layer(model, (2, 12, 12, 3))


COUNTED_BY_TFPROF = [
    "conv_same_s1", "conv_same_s2", "conv_valid_s1", "conv_valid_s2", "conv_same_s21",
    "conv_dilated_same", "conv_dilated_valid", "depthwise", "max_pool_same", "avg_pool",
    "batch_norm", "gap", "dense_pointwise", "relu_layer", "max_pool", "flatten",
    "dense_relu", "dense_softmax", "softmax_layer",
]


@pytest.mark.parametrize("name", COUNTED_BY_TFPROF)
def test_flops_agree_with_tfprof(traced_zoo, name):
    _, costs, graph_flops = traced_zoo
    cost = costs[name]
    uncounted_activations = 0 if name in TF_COUNTS_ACTIVATION else cost.terms.get("activations", 0)
    assert cost.flops - uncounted_activations == graph_flops[name]


def test_tfprof_counts_are_not_vacuous(traced_zoo):
    _, _, graph_flops = traced_zoo
    conv_same_s1 = 2 * (2 * 12 * 12 * 4) * (3 * 3 * 3) + 2 * 12 * 12 * 4   # Conv2D + BiasAdd
    assert graph_flops["conv_same_s1"] == conv_same_s1
    assert graph_flops["max_pool"] == (2 * 2) * (2 * 6 * 6 * 3)


def test_params_equal_keras_count_params(traced_zoo):
    model, costs, _ = traced_zoo
    for layer in model.layers:
        assert costs[layer.name].params == layer.count_params(), layer.name


def test_flops_are_the_sum_of_the_non_diagnostic_terms_and_geometry_is_json(traced_zoo):
    _, costs, _ = traced_zoo
    for name, cost in costs.items():
        additive = {k: v for k, v in cost.terms.items() if k not in ("padded_taps", "comparisons")}
        assert cost.flops == sum(additive.values()), name
        json.dumps(cost.geometry)


def test_conv_geometry_is_complete(traced_zoo):
    _, costs, _ = traced_zoo
    assert costs["conv_same_s21"].geometry == {
        "batch": 2, "in_h": 12, "in_w": 12, "in_channels": 3, "out_h": 6, "out_w": 12,
        "out_channels": 4, "kernel_h": 3, "kernel_w": 3, "stride_h": 2, "stride_w": 1,
        "dilation_h": 1, "dilation_w": 1, "padding": "same", "groups": 1, "use_bias": False,
        "activation": "linear", "activation_flops_per_element": 0, "data_format": "channels_last"}


def test_batch_norm_at_inference_by_hand(traced_zoo):
    _, costs, _ = traced_zoo
    elements, channels = 2 * 12 * 12 * 3, 3
    cost = costs["batch_norm"]
    assert cost.macs == elements                        # one scale-and-shift per element
    assert cost.flops == 2 * elements + channels * (1 + 2 + 1 + 1 + 1)  # +eps, rsqrt, *gamma, mean*a, beta-
    assert cost.params == 4 * channels                  # gamma, beta, moving mean, moving variance


def test_global_average_pooling_by_hand(traced_zoo):
    _, costs, _ = traced_zoo
    assert costs["gap"].flops == 2 * 3 * ((12 * 12 - 1) + 1)   # per (batch, channel): adds + divide


def test_known_divergence_dilated_conv_on_a_size_not_divisible_by_the_dilation():
    """TF runs dilation as SpaceToBatchND + Conv2D on a grid padded to a multiple of 2."""
    inputs = keras.Input((7, 7, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, dilation_rate=2, padding="same",
                                                    use_bias=False, name="dilated")(inputs))
    cost = layer_cost(info_of(model.layers[1], batch=1))
    assert cost.flops == 2 * (7 * 7 * 4) * (3 * 3 * 3) == 10_584
    assert graph_flops_per_layer(model, (1, 7, 7, 3))["dilated"] == 2 * (8 * 8 * 4) * (3 * 3 * 3)


def test_known_divergence_grouped_conv_is_invisible_to_tfprof():
    """Keras runs grouped convolutions on CPU in a nested XLA function tfprof does not enter."""
    inputs = keras.Input((5, 5, 4))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, groups=2, name="grouped")(inputs))
    cost = layer_cost(info_of(model.layers[1], batch=1))
    assert cost.flops == 2 * (3 * 3 * 4) * (3 * 3 * 2) + 3 * 3 * 4
    assert graph_flops_per_layer(model, (1, 5, 5, 4))["grouped"] == 3 * 3 * 4   # the BiasAdd only


# ---------------------------------------------------------------- padded taps


def test_padded_taps_same_3x3_on_3x3_by_hand():
    cost = single_layer_cost(keras.layers.Conv2D(1, 3, padding="same"), (3, 3, 1))
    # Per axis the three outputs see 2, 3, 2 real rows: 7 * 7 real taps out of 9 * 9.
    assert cost.macs == 3 * 3 * 3 * 3 == 81
    assert cost.terms["padded_taps"] == 81 - 7 * 7 == 32


def test_padded_taps_same_stride_2_pads_after_only():
    cost = single_layer_cost(keras.layers.Conv2D(2, 3, strides=2, padding="same"), (4, 4, 1))
    # Out 2x2, total pad (2-1)*2 + 3 - 4 = 1, all after: outputs see 3 and 2 real rows.
    assert cost.macs == 2 * 2 * 2 * 3 * 3 == 72
    assert cost.terms["padded_taps"] == 72 - 2 * (3 + 2) * (3 + 2) == 22   # Cout * real_h * real_w


def test_valid_convolution_has_no_padded_taps():
    cost = single_layer_cost(keras.layers.Conv2D(2, 3), (6, 6, 2))
    assert cost.terms["padded_taps"] == 0


@pytest.mark.parametrize("size, kernel, strides, dilation", [
    ((5, 7), (3, 3), (1, 1), (1, 1)),
    ((6, 6), (5, 3), (2, 2), (1, 1)),
    ((7, 5), (3, 2), (3, 2), (1, 1)),
    ((9, 8), (3, 3), (1, 1), (2, 3)),
    ((2, 3), (4, 4), (1, 1), (1, 1)),
])
def test_padded_taps_match_a_convolution_of_ones(size, kernel, strides, dilation):
    """Convolving ones with ones sums, per output, the taps that land inside the input."""
    layer = keras.layers.Conv2D(1, kernel, strides=strides, dilation_rate=dilation, padding="same",
                                use_bias=False, kernel_initializer="ones")
    cost = single_layer_cost(layer, (*size, 1))
    real_taps = int(layer(np.ones((1, *size, 1), np.float32)).numpy().sum())
    assert cost.terms["padded_taps"] == cost.macs - real_taps


# ------------------------------------------------------------ other layers


def test_grouped_convolution_by_hand():
    cost = single_layer_cost(keras.layers.Conv2D(6, 3, groups=3), (5, 5, 3))
    assert cost.macs == 3 * 3 * 6 * (3 * 3 * (3 // 3)) == 486   # Hout*Wout*Cout * Kh*Kw*Cin/groups
    assert cost.params == 3 * 3 * 1 * 6 + 6 == 60
    assert cost.geometry["groups"] == 3


def test_dense_on_a_sequence_multiplies_every_row():
    cost = single_layer_cost(keras.layers.Dense(3), (5, 6), batch=2)
    assert cost.geometry["rows"] == 2 * 5
    assert cost.macs == (2 * 5) * 6 * 3 == 180
    assert cost.flops == 2 * 180 + 2 * 5 * 3


def test_embedding_is_a_gather():
    cost = single_layer_cost(keras.layers.Embedding(10, 3), (7,))
    assert (cost.flops, cost.macs, cost.params) == (0, 0, 10 * 3)
    assert cost.activation_bytes == 7 * 3 * 4


@pytest.mark.parametrize("layer", [keras.layers.Flatten(), keras.layers.Dropout(0.5),
                                   keras.layers.Reshape((12, 2))])
def test_views_cost_nothing_and_allocate_nothing(layer):
    cost = single_layer_cost(layer, (4, 3, 2))
    assert cost.supported
    assert (cost.flops, cost.macs, cost.activation_bytes) == (0, 0, 0)
    assert cost.output_elements == 4 * 3 * 2


@pytest.mark.parametrize("layer, per_element", [
    (keras.layers.Activation("sigmoid"), 4), (keras.layers.Activation("linear"), 0),
    (keras.layers.Activation("tanh"), 1), (keras.layers.LeakyReLU(), 2),
    (keras.layers.ReLU(max_value=6.0), 2), (keras.layers.Softmax(), 5),
])
def test_activation_layers_count_per_element(layer, per_element):
    cost = single_layer_cost(layer, (3, 4))
    assert cost.flops == cost.terms["activations"] == 3 * 4 * per_element


def test_dtype_bytes_default_to_the_compute_dtype_and_can_be_overridden():
    layer = keras.layers.Dense(5, dtype="mixed_float16")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layer(inputs))
    info = info_of(model.layers[1], batch=4)
    assert layer_cost(info).activation_bytes == 4 * 5 * 2
    assert layer_cost(info, dtype_bytes=8).activation_bytes == 4 * 5 * 8


# ------------------------------------------------------------- unsupported


class Doubling(keras.layers.Layer):
    def call(self, x):
        return 2 * x


@pytest.mark.parametrize("layer, input_shape, params", [
    (keras.layers.RNN(keras.layers.StackedRNNCells([keras.layers.LSTMCell(4)])), (5, 3), 4 * (4 * (3 + 4) + 4)),
    (Doubling(), (4, 4, 2), 0),
    (keras.layers.Conv2D(2, 3, activation=lambda x: x * x), (5, 5, 1), 3 * 3 * 1 * 2 + 2),
])
def test_unsupported_layers_are_none_not_zero(layer, input_shape, params):
    cost = single_layer_cost(layer, input_shape)
    assert not cost.supported
    assert cost.flops is None and cost.macs is None
    assert cost.params == params
    assert cost.output_elements == math.prod(layer.output.shape[1:])
    assert cost.activation_bytes == cost.output_elements * 4


def test_receptive_field_is_unknown_after_an_unsupported_layer():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, name="before")(inputs)
    x = Doubling(name="custom")(x)
    x = keras.layers.Conv2D(2, 3, name="after")(x)
    costs = analyze_layers(chain_infos(keras.Model(inputs, x), 1))
    assert [c.receptive_field for c in costs] == [1, 3, None, None]


def test_receptive_field_grows_with_stride_and_dilation():
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(2, 3, strides=2)(inputs)           # r = 3, j = 2
    x = keras.layers.Conv2D(2, 3)(x)                           # r = 3 + 2 * 2 = 7
    x = keras.layers.Conv2D(2, 3, dilation_rate=2)(x)          # r = 7 + 2 * 2 * 2 = 15
    x = keras.layers.MaxPooling2D(2)(x)                        # r = 15 + 1 * 2 = 17, j = 4
    x = keras.layers.Conv2D(2, (1, 5))(x)                      # w: 17 + 4 * 4 = 33 (h stays 17)
    costs = analyze_layers(chain_infos(keras.Model(inputs, x), 1))
    assert [(c.receptive_field, c.jump) for c in costs[1:]] == [(3, 2), (7, 2), (15, 2), (17, 4), (33, 4)]


def test_dense_without_a_spatial_map_has_no_receptive_field():
    inputs = keras.Input((20,))
    x = keras.layers.Dense(4)(inputs)
    costs = analyze_layers(chain_infos(keras.Model(inputs, x), 1))
    assert costs[1].receptive_field is None
    assert costs[1].flops == 2 * 20 * 4 + 4


def test_the_required_layer_types_have_formulas():
    required = {"Conv2D", "DepthwiseConv2D", "Dense", "MaxPooling2D", "AveragePooling2D",
                "GlobalAveragePooling2D", "Embedding", "Flatten", "Reshape", "Dropout",
                "InputLayer", "ReLU", "Activation", "LeakyReLU", "Softmax", "BatchNormalization"}
    assert required <= set(supported_layer_types())
