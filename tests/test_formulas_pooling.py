"""Pooling and resizing in 1, 2 and 3 dimensions: hand arithmetic, and tfprof on the traced graph."""
from __future__ import annotations

import keras
import pytest

from tests.layer_harness import branches, chain_costs, costed, single_layer_cost
from tfprofscale.formulas.pooling import interpolation_flops_per_output

layers = keras.layers


@pytest.fixture(scope="module")
def zoo_1d():
    """Branches from one (8 steps, 3 channels) input, batch 2."""
    return costed(branches((8, 3), [
        layers.MaxPooling1D(2, name="max1d"),
        layers.AveragePooling1D(3, strides=2, padding="same", name="avg1d_same"),
        layers.GlobalMaxPooling1D(name="global_max1d"),
        layers.GlobalAveragePooling1D(keepdims=True, name="global_avg1d"),
        layers.ZeroPadding1D((1, 2), name="pad1d"),
        layers.Cropping1D((2, 1), name="crop1d"),
        layers.UpSampling1D(3, name="up1d"),
    ]), batch=2)


@pytest.fixture(scope="module")
def zoo_2d():
    """Branches from one 6x6x3 input, batch 1."""
    return costed(branches((6, 6, 3), [
        layers.MaxPooling2D(3, strides=2, padding="same", name="max2d_same"),
        layers.MaxPooling2D(2, data_format="channels_first", name="max2d_channels_first"),
        layers.AveragePooling2D((2, 3), name="avg2d"),
        layers.GlobalMaxPooling2D(name="global_max2d"),
        layers.GlobalAveragePooling2D(data_format="channels_first", name="global_avg2d_channels_first"),
        layers.ZeroPadding2D(1, name="pad2d"),
        layers.Cropping2D(((1, 0), (2, 1)), name="crop2d"),
        layers.UpSampling2D(2, name="up2d"),
        layers.UpSampling2D(2, interpolation="bilinear", name="up2d_bilinear"),
    ]), batch=1)


@pytest.fixture(scope="module")
def zoo_3d():
    """Branches from one 4x4x4 volume of 2 channels, batch 1."""
    return costed(branches((4, 4, 4, 2), [
        layers.MaxPooling3D(2, name="max3d"),
        layers.AveragePooling3D(2, name="avg3d"),
        layers.GlobalMaxPooling3D(name="global_max3d"),
        layers.GlobalAveragePooling3D(name="global_avg3d"),
        layers.ZeroPadding3D(1, name="pad3d"),
        layers.Cropping3D(1, name="crop3d"),
        layers.UpSampling3D(2, name="up3d"),
    ]), batch=1)


@pytest.mark.parametrize("zoo_name, name", [
    ("zoo_1d", "max1d"), ("zoo_1d", "avg1d_same"), ("zoo_1d", "global_avg1d"), ("zoo_1d", "pad1d"),
    ("zoo_1d", "crop1d"), ("zoo_2d", "max2d_same"), ("zoo_2d", "max2d_channels_first"), ("zoo_2d", "avg2d"),
    ("zoo_2d", "global_avg2d_channels_first"), ("zoo_2d", "pad2d"), ("zoo_2d", "crop2d"),
    ("zoo_3d", "global_avg3d"), ("zoo_3d", "pad3d"), ("zoo_3d", "crop3d"),
])
def test_flops_agree_with_tfprof(request, zoo_name, name):
    zoo = request.getfixturevalue(zoo_name)
    assert zoo.costs[name].flops == zoo.graph_flops.get(name, 0)


def test_tfprof_counts_are_not_vacuous(zoo_1d, zoo_2d):
    assert zoo_1d.graph_flops["max1d"] == 2 * (2 * 4 * 3)                  # MaxPool: window 2 per output
    assert zoo_2d.graph_flops["avg2d"] == (2 * 3) * (3 * 2 * 3)            # AvgPool: window 6 per output


# ------------------------------------------------------------------ by hand


def test_pooling_1d_by_hand(zoo_1d):
    assert zoo_1d.costs["max1d"].flops == 2 * (2 * 4 * 3) == 48          # window 2, batch 2, 4 steps, 3 channels
    assert zoo_1d.costs["max1d"].terms["comparisons"] == (2 - 1) * 2 * 4 * 3
    avg = zoo_1d.costs["avg1d_same"]                                     # ceil(8 / 2) = 4 outputs per channel
    assert avg.terms == {"window_adds": (3 - 1) * 2 * 4 * 3, "divides": 2 * 4 * 3}
    assert zoo_1d.costs["global_avg1d"].flops == 2 * 3 * ((8 - 1) + 1) == 48


def test_global_max_pooling_is_a_max_pool_over_the_whole_map(zoo_1d, zoo_2d, zoo_3d):
    assert zoo_1d.costs["global_max1d"].terms == {"window_taps": 2 * 3 * 8, "comparisons": 2 * 3 * 7}
    assert zoo_2d.costs["global_max2d"].flops == 3 * 36
    assert zoo_3d.costs["global_max3d"].flops == 2 * 64


def test_pooling_3d_by_hand(zoo_3d):
    outputs = 2 * 2 * 2 * 2                                              # 2x2x2 map, 2 channels
    assert zoo_3d.costs["max3d"].flops == 8 * outputs == 128              # window 2x2x2
    assert zoo_3d.costs["avg3d"].terms == {"window_adds": 7 * outputs, "divides": outputs}
    assert zoo_3d.costs["global_avg3d"].flops == 2 * ((64 - 1) + 1)


def test_channels_first_pooling_reads_the_channel_axis_first(zoo_2d):
    cost = zoo_2d.costs["max2d_channels_first"]
    # Input (6, 6, 3) channels_first: 6 channels of 6x3; pool 2 -> 3x1.
    assert cost.geometry["channels"] == 6 and (cost.geometry["out_h"], cost.geometry["out_w"]) == (3, 1)
    assert cost.flops == 4 * (6 * 3 * 1)


def test_padding_and_cropping_copy_without_arithmetic(zoo_1d, zoo_3d):
    pad = zoo_1d.costs["pad1d"]
    assert (pad.flops, pad.macs) == (0, 0)
    assert pad.output_elements == 2 * (8 + 1 + 2) * 3
    assert pad.activation_bytes == 4 * pad.output_elements                 # a new tensor
    assert zoo_3d.costs["crop3d"].output_elements == 2 * 2 * 2 * 2


def test_bilinear_upsampling_by_hand(zoo_2d):
    cost = zoo_2d.costs["up2d_bilinear"]
    # 12 x 12 x 3 outputs, each 3 lerps (2 along w, 1 along h) of 3 operations: a + t * (b - a).
    assert cost.flops == cost.terms["interpolation"] == 12 * 12 * 3 * 9 == 3888
    assert zoo_2d.costs["up2d"].flops == 0                                   # nearest: a copy


@pytest.mark.parametrize("interpolation, taps", [("bilinear", 2), ("bicubic", 4), ("lanczos3", 6)])
def test_interpolation_is_a_separable_filter(interpolation, taps):
    rows_then_column = taps * (taps + taps - 1) + (taps + taps - 1)      # t row sums, then one column sum
    assert interpolation_flops_per_output(interpolation) == rows_then_column


# ------------------------------------------------------ where TensorFlow differs


def test_3d_pooling_is_counted_by_our_statistics_and_the_max_reduction_by_none(zoo_1d, zoo_2d, zoo_3d):
    """TensorFlow has no statistics for MaxPool3D/AvgPool3D; ours count the window volume per output, as
    TensorFlow does in 2-D: 2x2x2 windows over 2x2x2x2 outputs = 8 * 16 = 128."""
    assert "MaxPool3D" in zoo_3d.op_types["max3d"] and "AvgPool3D" in zoo_3d.op_types["avg3d"]
    assert zoo_3d.graph_flops["max3d"] == zoo_3d.graph_flops["avg3d"] == 8 * 16
    for zoo, name in ((zoo_1d, "global_max1d"), (zoo_2d, "global_max2d"), (zoo_3d, "global_max3d")):
        assert "Max" in zoo.op_types[name] and zoo.graph_flops.get(name, 0) == 0


def test_tensorflow_counts_upsampling_shape_arithmetic_and_not_the_interpolation(zoo_1d, zoo_2d, zoo_3d):
    """Nearest upsampling is a Tile per axis whose repeat count is a Mul on the shape: 1 FLOP per axis."""
    assert zoo_1d.graph_flops["up1d"] == 1 and zoo_2d.graph_flops["up2d"] == 2 and zoo_3d.graph_flops["up3d"] == 3
    assert "ResizeBilinear" in zoo_2d.op_types["up2d_bilinear"]
    assert zoo_2d.graph_flops.get("up2d_bilinear", 0) == 0


# ------------------------------------------------------------ receptive field


def test_receptive_field_through_padding_and_upsampling():
    inputs = keras.Input((10, 10, 1))
    x = layers.ZeroPadding2D(1)(inputs)                     # r 1, map 12
    x = layers.Conv2D(1, 3)(x)                              # r 3, map 10
    x = layers.Cropping2D(1)(x)                             # r 3, map 8
    x = layers.GlobalAveragePooling2D()(x)                  # r 3 + (8 - 1) * 1 = 10
    costs = chain_costs(keras.Model(inputs, x))
    assert [c.receptive_field for c in costs[1:]] == [1, 3, 3, 10]
    upsampled = chain_costs(keras.Model(inputs, layers.UpSampling2D(2)(inputs)))
    assert upsampled[1].receptive_field is None


def test_area_interpolation_has_no_formula():
    cost = single_layer_cost(layers.Resizing(3, 3, interpolation="area"), (6, 6, 1))
    assert not cost.supported and cost.flops is None


# ---------------------------------------------------------------- adaptive pooling


def test_adaptive_average_pooling_by_hand():
    # 7 steps into 3 bins: [0, 3), [2, 5), [4, 7): 3 taps each -> per output 2 adds and a divide.
    cost = single_layer_cost(layers.AdaptiveAveragePooling1D(3), (7, 2), batch=2)
    assert cost.terms == {"window_adds": 2 * 2 * 3 * 2, "divides": 2 * 2 * 3}
    # 5x4 into 2x3: rows [0, 3), [2, 5) -> 3, 3; columns [0, 2), [1, 3), [2, 4) -> 2, 2, 2: 6 taps per output.
    cost = single_layer_cost(layers.AdaptiveMaxPooling2D((2, 3)), (5, 4, 1))
    assert cost.terms == {"window_taps": 6 * 6, "comparisons": 5 * 6}


def test_adaptive_pooling_tensorflow_pools_both_window_sizes_at_every_position():
    """Keras's TensorFlow backend runs a stride-1 AvgPool of a small (3) and a big (4) window over all
    7 steps, then gathers the bins: tfprof counts area * outputs of both pools, and 9 element-wise ops
    on the 3 bins' bounds."""
    zoo = costed(branches((7, 2), [layers.AdaptiveAveragePooling1D(3, name="adaptive")]), batch=1)
    assert zoo.graph_flops["adaptive"] == 3 * (7 - 3 + 1) * 2 + 4 * (7 - 4 + 1) * 2 + 9 * 3 == 89
    assert zoo.costs["adaptive"].flops == 3 * 3 * 2 == 18


def test_masked_global_average_pooling_by_hand_and_against_tfprof():
    """After Embedding(mask_zero=True) the mean is over unmasked steps only (batch 2, 6 steps, 4 features)."""
    tokens = keras.Input((6,), dtype="int32")
    pooled = layers.GlobalAveragePooling1D(name="masked_mean")(layers.Embedding(20, 4, mask_zero=True)(tokens))
    zoo = costed(keras.Model(tokens, pooled), batch=2)
    cost = zoo.costs["masked_mean"]
    assert cost.terms == {"mask_selects": 2 * 6 * 4, "window_adds": 2 * 4 * 5, "mask_count_adds": 2 * 5,
                          "divides": 2 * 4}
    # TensorFlow: SelectV2 has no FLOPs statistics; Sum, Sum and RealDiv are counted.
    assert zoo.graph_flops["masked_mean"] == cost.flops - 2 * 6 * 4 == 58
