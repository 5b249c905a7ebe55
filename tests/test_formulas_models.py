"""Whole small models of the new layer families: every layer has a formula, and the formulas add up to
tfprof's count once the work TensorFlow does not count (named here) is taken out."""
from __future__ import annotations

import keras
import pytest

from tests.layer_harness import costed
from tfprofscale.formulas.analytic import supported_layer_types

layers = keras.layers


def test_the_layer_families_are_registered():
    required = {
        "Conv1D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D",
        "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D",
        *(f"{kind}Pooling{rank}D" for kind in ("Max", "Average", "GlobalMax", "GlobalAverage") for rank in (1, 2, 3)),
        *(f"{kind}{rank}D" for kind in ("ZeroPadding", "Cropping", "UpSampling") for rank in (1, 2, 3)),
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
        "Permute", "RepeatVector", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Masking", "Identity",
        "Rescaling", "Normalization", "Resizing", "CenterCrop", "Softmax", "ReLU", "LeakyReLU", "PReLU", "ELU"}
    assert required <= set(supported_layer_types())


@pytest.fixture(scope="module")
def text_cnn():
    """Kim-style text CNN: embedding, two Conv1D widths, global max pooling, concatenate, softmax; batch 2."""
    tokens = keras.Input((12,), dtype="int32")
    x = layers.Embedding(50, 8, name="embedding")(tokens)
    pooled = [layers.GlobalMaxPooling1D(name=f"max_{k}")(layers.Conv1D(6, k, activation="relu", name=f"conv_{k}")(x))
              for k in (3, 5)]
    x = layers.Dropout(0.5, name="dropout")(layers.Concatenate(name="concatenate")(pooled))
    return costed(keras.Model(tokens, layers.Dense(2, activation="softmax", name="logits")(x)), batch=2)


def test_text_cnn_is_fully_covered_and_agrees_with_tfprof_less_what_it_does_not_count(text_cnn):
    costs, graph = text_cnn.costs, text_cnn.graph_flops
    assert all(cost.supported for cost in costs.values())
    relu = 2 * (10 * 6 + 8 * 6)                             # Relu: no FLOPs statistics in TensorFlow
    global_max = 2 * 6 * (10 + 8)                           # Max: no FLOPs statistics either
    # Keras's take() wraps negative token ids (a Less and an AddV2 per id) before the gather: TensorFlow
    # counts them, the formula (a gather, no arithmetic) does not.
    assert {"Less", "AddV2", "SelectV2"} <= set(text_cnn.op_types["embedding"])
    index_wrap = 2 * (2 * 12)
    assert costs["conv_3"].macs == 2 * 10 * 6 * 3 * 8     # batch 2, 12 - 3 + 1 = 10 steps, 6 filters, 3 x 8
    assert sum(cost.flops for cost in costs.values()) - relu - global_max + index_wrap == sum(graph.values())


def test_separable_residual_block_agrees_with_tfprof_less_relu():
    """An Xception-style block: separable convs, batch norm, a strided 1x1 shortcut, Add, pooling."""
    image = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(image)
    y = layers.SeparableConv2D(16, 3, padding="same", name="separable_a")(x)
    y = layers.BatchNormalization(name="norm_a")(y)
    y = layers.ReLU(name="relu_a")(y)
    y = layers.SeparableConv2D(16, 3, padding="same", depth_multiplier=2, name="separable_b")(y)
    y = layers.MaxPooling2D(3, strides=2, padding="same", name="pool")(y)
    shortcut = layers.Conv2D(16, 1, strides=2, name="shortcut")(x)
    x = layers.Add(name="add")([y, shortcut])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    zoo = costed(keras.Model(image, layers.Dense(3, activation="softmax", name="logits")(x)), batch=1)
    relu = 8 * 8 * 8 + 8 * 8 * 16                            # stem and relu_a: Relu uncounted
    assert all(cost.supported for cost in zoo.costs.values())
    assert sum(cost.flops for cost in zoo.costs.values()) - relu == sum(zoo.graph_flops.values())
    # separable_b by hand: depthwise 8x8x(16*2) x 9 taps, pointwise 8x8x16 x 32.
    assert zoo.costs["separable_b"].macs == 64 * 32 * 9 + 64 * 16 * 32


def test_text_cnn_receptive_field_in_tokens(text_cnn):
    costs = text_cnn.costs
    assert costs["embedding"].receptive_field == 1
    assert costs["conv_5"].receptive_field == 5
    assert costs["max_5"].receptive_field == 5 + (8 - 1) * 1 == 12          # all 12 tokens
