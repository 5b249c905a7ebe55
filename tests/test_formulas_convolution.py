"""Convolutions in 1, 2 and 3 dimensions: hand arithmetic, and tfprof on the traced graph.

Every number is worked out in the test (the arithmetic is visible) or comes
from TensorFlow's profiler counting the same layer's graph ops, or from a
convolution of ones (which counts the kernel taps that land inside the input).
"""
from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.layer_harness import branches, chain_costs, costed, single_layer_cost
from tfprofscale.audit import conventions

layers = keras.layers


@pytest.fixture(scope="module")
def zoo_1d():
    """Branches from one (8 steps, 3 channels) input, batch 2."""
    return costed(branches((8, 3), [
        layers.Conv1D(4, 3, name="conv1d_valid"),
        layers.Conv1D(4, 3, padding="causal", activation="relu", name="conv1d_causal"),
        layers.Conv1D(4, 3, dilation_rate=2, padding="same", name="conv1d_dilated"),
        layers.Conv1D(5, 3, strides=2, padding="same", use_bias=False, name="conv1d_strided"),
        layers.Conv1D(4, 3, data_format="channels_first", name="conv1d_channels_first"),
        layers.Conv1D(6, 3, groups=3, name="conv1d_grouped"),
        layers.DepthwiseConv1D(3, depth_multiplier=2, padding="same", name="depthwise1d"),
        layers.SeparableConv1D(4, 3, depth_multiplier=2, name="separable1d"),
        layers.Conv1DTranspose(4, 3, strides=2, padding="same", name="transpose1d_same"),
        layers.Conv1DTranspose(4, 3, strides=2, name="transpose1d_valid"),
    ]), batch=2)


@pytest.fixture(scope="module")
def zoo_2d():
    """Branches from one 6x6x3 input, batch 1."""
    return costed(branches((6, 6, 3), [
        layers.SeparableConv2D(4, 3, depth_multiplier=2, padding="same", name="separable2d"),
        layers.SeparableConv2D(5, 3, strides=2, activation="relu6", name="separable2d_s2"),
        layers.Conv2D(4, 3, data_format="channels_first", name="conv2d_channels_first"),
        layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="transpose2d_same"),
        layers.Conv2DTranspose(4, 3, strides=2, name="transpose2d_valid"),
    ]), batch=1)


@pytest.fixture(scope="module")
def zoo_3d():
    """Branches from one 4x4x4 volume of 2 channels, batch 1."""
    return costed(branches((4, 4, 4, 2), [
        layers.Conv3D(4, 3, name="conv3d"),
        layers.Conv3D(3, 2, strides=2, padding="same", activation="sigmoid", name="conv3d_s2"),
        layers.Conv3DTranspose(2, 3, strides=2, name="transpose3d"),
    ]), batch=1)


def tfprof_comparable(cost) -> int:
    """The formula's FLOPs less its activation: TensorFlow has no FLOPs statistics for Relu, Relu6, Sigmoid."""
    return cost.flops - cost.terms.get("activations", 0)


@pytest.mark.parametrize("name", ["conv1d_valid", "conv1d_causal", "conv1d_dilated", "conv1d_strided",
                                  "conv1d_channels_first", "depthwise1d", "separable1d", "transpose1d_same"])
def test_1d_flops_agree_with_tfprof(zoo_1d, name):
    assert tfprof_comparable(zoo_1d.costs[name]) == zoo_1d.graph_flops[name]


@pytest.mark.parametrize("name", ["separable2d", "separable2d_s2", "conv2d_channels_first", "transpose2d_same"])
def test_2d_flops_agree_with_tfprof(zoo_2d, name):
    assert tfprof_comparable(zoo_2d.costs[name]) == zoo_2d.graph_flops[name]


@pytest.mark.parametrize("name", ["conv3d", "conv3d_s2"])
def test_3d_flops_agree_with_tfprof(zoo_3d, name):
    assert tfprof_comparable(zoo_3d.costs[name]) == zoo_3d.graph_flops[name]


def test_tfprof_counts_are_not_vacuous(zoo_1d, zoo_3d):
    assert zoo_1d.graph_flops["conv1d_valid"] == 2 * (2 * 6 * 4) * (3 * 3) + 2 * 6 * 4   # Conv2D + BiasAdd
    assert zoo_3d.graph_flops["conv3d"] == 2 * (2 * 2 * 2 * 4) * (3 * 3 * 3 * 2) + 2 * 2 * 2 * 4


def test_params_equal_keras_count_params():
    for layer in _built_layers():
        assert single_layer_cost(layer, _INPUTS[layer.name]).params == layer.count_params(), layer.name


_INPUTS = {"c1": (8, 3), "sep1": (8, 3), "dw1": (8, 3), "t1": (8, 3), "sep2": (6, 6, 3), "t2": (6, 6, 3),
           "c3": (4, 4, 4, 2), "t3": (4, 4, 4, 2), "g2": (5, 5, 4)}


def _built_layers():
    return [layers.Conv1D(4, 3, name="c1"), layers.SeparableConv1D(4, 3, depth_multiplier=2, name="sep1"),
            layers.DepthwiseConv1D(3, depth_multiplier=2, name="dw1"), layers.Conv1DTranspose(4, 3, name="t1"),
            layers.SeparableConv2D(4, 3, depth_multiplier=2, name="sep2"), layers.Conv2DTranspose(4, 3, name="t2"),
            layers.Conv3D(4, 3, name="c3"), layers.Conv3DTranspose(2, 3, name="t3"),
            layers.Conv2D(6, 3, groups=2, name="g2")]


# ------------------------------------------------------------------ by hand


def test_conv1d_by_hand(zoo_1d):
    cost = zoo_1d.costs["conv1d_valid"]
    outputs = 2 * 6 * 4                                   # batch 2, 8 - 3 + 1 = 6 steps, 4 filters
    assert cost.macs == outputs * 3 * 3 == 432            # kernel 3 x 3 input channels
    assert cost.flops == 2 * 432 + outputs == 912
    assert cost.params == 3 * 3 * 4 + 4 == 40


def test_causal_conv1d_pads_before_only(zoo_1d):
    cost = zoo_1d.costs["conv1d_causal"]
    # 8 outputs; left padding 2: positions 0 and 1 see 1 and 2 real taps, the other 6 see 3.
    assert cost.macs == 2 * 8 * 4 * 3 * 3 == 576
    assert cost.terms["padded_taps"] == 2 * 4 * 3 * (8 * 3 - (1 + 2 + 6 * 3)) == 72
    assert cost.terms["activations"] == 2 * 8 * 4      # relu


def test_channels_first_conv1d_reads_the_channel_axis_first(zoo_1d):
    cost = zoo_1d.costs["conv1d_channels_first"]
    # Input (8, 3) channels_first: 8 channels of 3 steps; kernel 3 -> 1 step.
    assert cost.geometry["in_channels"] == 8 and cost.geometry["in_l"] == 3 and cost.geometry["out_l"] == 1
    assert cost.macs == 2 * 1 * 4 * 3 * 8 == 192


def test_depthwise_conv1d_by_hand(zoo_1d):
    cost = zoo_1d.costs["depthwise1d"]
    assert cost.macs == 2 * 8 * (3 * 2) * 3 == 288          # batch * steps * (Cin * multiplier) * kernel
    assert cost.params == 3 * 3 * 2 + 3 * 2 == 24
    assert cost.geometry["depth_multiplier"] == 2 and cost.geometry["groups"] == 3


def test_separable_conv1d_names_its_depthwise_and_pointwise_parts(zoo_1d):
    cost = zoo_1d.costs["separable1d"]
    depthwise = 2 * 6 * (3 * 2) * 3                          # 6 steps, 6 maps, kernel 3: 216
    pointwise = 2 * 6 * 4 * (3 * 2)                          # 4 filters over 6 maps: 288
    assert cost.terms["depthwise_multiply_adds"] == 2 * depthwise
    assert cost.terms["pointwise_multiply_adds"] == 2 * pointwise
    assert cost.macs == depthwise + pointwise == 504
    assert cost.params == 3 * 6 + 6 * 4 + 4 == 46


def test_separable_conv2d_by_hand(zoo_2d):
    cost = zoo_2d.costs["separable2d_s2"]
    # 6x6, kernel 3, stride 2, VALID -> 2x2; depth_multiplier 1: 3 middle maps, 5 filters.
    assert cost.macs == 2 * 2 * 3 * 9 + 2 * 2 * 5 * 3 == 168
    assert cost.terms["activations"] == 2 * 2 * 5 * 2        # relu6: 2 per element, not in TensorFlow's count


def test_conv3d_by_hand(zoo_3d):
    cost = zoo_3d.costs["conv3d"]
    assert cost.macs == (2 * 2 * 2 * 4) * (3 * 3 * 3 * 2) == 1728
    assert cost.params == 27 * 2 * 4 + 4 == 220
    assert {k: cost.geometry[k] for k in ("in_d", "in_h", "in_w", "kernel_d", "out_d")} == {
        "in_d": 4, "in_h": 4, "in_w": 4, "kernel_d": 3, "out_d": 2}


def test_grouped_conv1d_by_hand():
    cost = single_layer_cost(layers.Conv1D(6, 3, groups=3), (7, 3))
    assert cost.macs == 5 * 6 * 3 * (3 // 3) == 90          # steps * Cout * kernel * Cin/groups
    assert cost.params == 3 * 1 * 6 + 6 == 24


def test_transposed_conv_scatters_every_input_through_the_kernel(zoo_1d, zoo_2d):
    assert zoo_1d.costs["transpose1d_valid"].macs == 2 * 8 * 3 * 3 * 4 == 576      # N * L * Cin * k * Cout
    assert zoo_2d.costs["transpose2d_valid"].macs == 1 * 36 * 3 * 9 * 4 == 3888
    assert zoo_2d.costs["transpose2d_valid"].terms["bias_adds"] == 13 * 13 * 4      # (6 - 1) * 2 + 3 = 13


# ------------------------------------------------------ where TensorFlow differs


def test_valid_transposed_conv_tensorflow_counts_output_positions_over_stride(zoo_1d, zoo_2d):
    """Conv2DBackpropInput is counted as 2 * output elements * k * Cin / stride: with VALID padding the
    output (in - 1) * s + k exceeds in * s, so TensorFlow counts more than the scattered products."""
    steps = (8 - 1) * 2 + 3                                                     # 17
    graph_1d = 2 * (2 * steps * 4) * 3 * 3 // 2 + 2 * steps * 4
    assert zoo_1d.graph_flops["transpose1d_valid"] == graph_1d == 1224 + 136
    assert zoo_1d.costs["transpose1d_valid"].flops == 2 * 576 + 136
    graph_2d = 2 * (13 * 13 * 4) * 9 * 3 // (2 * 2) + 13 * 13 * 4
    assert zoo_2d.graph_flops["transpose2d_valid"] == graph_2d


def test_3d_transposed_conv_is_invisible_to_tfprof(zoo_3d):
    """Conv3DBackpropInputV2 has no FLOPs statistics: only the bias add is counted."""
    cost = zoo_3d.costs["transpose3d"]
    out = (4 - 1) * 2 + 3                                                        # 9 per axis
    assert "Conv3DBackpropInputV2" in zoo_3d.op_types["transpose3d"]
    assert zoo_3d.graph_flops["transpose3d"] == out ** 3 * 2 == cost.terms["bias_adds"]
    assert cost.macs == 4 ** 3 * 2 * 27 * 2


def test_grouped_conv1d_runs_in_a_nested_function_the_graph_count_enters(zoo_1d):
    """tfprof alone counts only the bias add outside the call; the function body's conv is counted too."""
    cost = zoo_1d.costs["conv1d_grouped"]
    assert "StatefulPartitionedCall" in zoo_1d.op_types["conv1d_grouped"]
    assert cost.terms["bias_adds"] == 2 * 6 * 6
    assert cost.macs == 2 * 6 * 6 * 3 * 1
    assert zoo_1d.graph_flops["conv1d_grouped"] == 2 * (2 * 6 * 6 * 3 * 1) + 2 * 6 * 6


# ------------------------------------------------------------ padded taps, fields


@pytest.mark.parametrize("layer, input_shape", [
    (layers.Conv1D(1, 4, padding="causal", dilation_rate=2), (9, 1)),
    (layers.Conv1D(1, 3, strides=2, padding="same"), (8, 1)),
    (layers.Conv3D(1, 3, padding="same"), (3, 4, 5, 1)),
    (layers.Conv3D(1, (2, 3, 3), strides=2, padding="same"), (5, 5, 4, 1)),
])
def test_padded_taps_match_a_convolution_of_ones(layer, input_shape):
    layer.use_bias = False
    cost = single_layer_cost(layer, input_shape)
    layer.kernel.assign(np.ones(layer.kernel.shape, np.float32))
    real_taps = int(layer(np.ones((1, *input_shape), np.float32)).numpy().sum())
    assert cost.terms["padded_taps"] == cost.macs - real_taps


def test_receptive_field_of_a_1d_stack():
    inputs = keras.Input((40, 2))
    x = layers.Conv1D(2, 3, strides=2)(inputs)              # r = 3, j = 2
    x = layers.Conv1D(2, 3, dilation_rate=2)(x)             # r = 3 + 2 * 2 * 2 = 11
    x = layers.MaxPooling1D(2)(x)                           # r = 11 + 1 * 2 = 13, j = 4
    x = layers.GlobalAveragePooling1D()(x)                  # map of (40-3)//2+1 = 19 - 4 = 15 // 2 = 7: 13 + 6 * 4
    costs = chain_costs(keras.Model(inputs, x))
    assert [(c.receptive_field, c.jump) for c in costs[1:]] == [(3, 2), (11, 2), (13, 4), (13 + 6 * 4, 28)]


def test_receptive_field_of_a_3d_stack_and_its_end_at_a_transposed_conv():
    inputs = keras.Input((8, 8, 8, 1))
    x = layers.Conv3D(2, 3, strides=2, padding="same")(inputs)   # r = 3, j = 2
    x = layers.Conv3D(2, (1, 3, 3))(x)                          # (3, 7, 7)
    x = layers.Conv3DTranspose(2, 2, strides=2)(x)              # resamples: unknown
    costs = chain_costs(keras.Model(inputs, x))
    assert [c.receptive_field for c in costs[1:]] == [3, 7, None]


# ------------------------------------------------------------- conventions


@pytest.mark.parametrize("zoo_name, name", [("zoo_1d", "conv1d_causal"), ("zoo_1d", "depthwise1d"),
                                            ("zoo_3d", "conv3d"), ("zoo_3d", "conv3d_s2")])
def test_tensorflow_convention_reproduces_tfprof(request, zoo_name, name):
    zoo = request.getfixturevalue(zoo_name)
    cost = zoo.costs[name]
    assert conventions.count("flops", cost.layer_type, cost.geometry, cost.terms) == zoo.graph_flops[name]


def test_document_004_convention_on_a_3d_conv(zoo_3d):
    cost = zoo_3d.costs["conv3d"]
    # c*d*h*w + 1 per output: 2 * 27 taps + 1, over 2 * 2 * 2 * 4 outputs
    assert conventions.count("ops_fma", "Conv3D", cost.geometry, cost.terms) == (2 * 27 + 1) * 32
