"""Merge layers: hand arithmetic, and tfprof on the traced graph (batch 2)."""
from __future__ import annotations

import keras
import pytest

from tests.layer_harness import costed

layers = keras.layers


@pytest.fixture(scope="module")
def merged():
    """Two (3, 4) inputs, one (1, 4) broadcast along the first axis, two 4-vectors; batch 2."""
    a, b, c = keras.Input((3, 4)), keras.Input((3, 4)), keras.Input((1, 4))
    u, v = keras.Input((4,)), keras.Input((4,))
    outputs = [
        layers.Add(name="add3")([a, b, c]), layers.Subtract(name="subtract")([a, c]),
        layers.Multiply(name="multiply")([a, b]), layers.Average(name="average3")([a, b, c]),
        layers.Maximum(name="maximum3")([a, b, c]), layers.Minimum(name="minimum")([a, b]),
        layers.Concatenate(name="concatenate")([a, b]),
        layers.Dot(axes=2, name="dot_last")([a, b]), layers.Dot(axes=(1, 1), name="dot_first")([a, b]),
        layers.Dot(axes=1, name="dot_vectors")([u, v]), layers.Dot(axes=1, normalize=True, name="cosine")([u, v]),
        layers.Dot(axes=-1, normalize=True, name="cosine_rows")([a, b]),
    ]
    return costed(keras.Model([a, b, c, u, v], outputs), batch=2)


NAMES = ["add3", "subtract", "multiply", "average3", "maximum3", "minimum", "concatenate",
         "dot_last", "dot_first", "dot_vectors", "cosine", "cosine_rows"]


@pytest.mark.parametrize("name", NAMES)
def test_flops_agree_with_tfprof(merged, name):
    assert merged.costs[name].flops == merged.graph_flops.get(name, 0)


OUTPUT = 2 * 3 * 4          # batch 2, (3, 4): every element-wise merge's output


@pytest.mark.parametrize("name, flops", [
    ("add3", (3 - 1) * OUTPUT),             # two adds per output element; (1, 4) broadcast
    ("subtract", 1 * OUTPUT),
    ("multiply", 1 * OUTPUT),
    ("average3", (3 - 1) * OUTPUT + OUTPUT),  # two adds and a divide
    ("maximum3", (3 - 1) * OUTPUT),
    ("minimum", 1 * OUTPUT),
    ("concatenate", 0),
])
def test_elementwise_merges_by_hand(merged, name, flops):
    assert merged.costs[name].flops == flops
    assert merged.costs[name].macs == 0


def test_dot_by_hand(merged):
    # (3, 4) . (3, 4) over axis 2: a (3, 3) output per example, each a 4-long dot product.
    assert merged.costs["dot_last"].macs == 2 * 3 * 3 * 4 == 72
    # over axis 1: (4, 4) outputs of 3-long dot products.
    assert merged.costs["dot_first"].macs == 2 * 4 * 4 * 3 == 96
    assert merged.costs["dot_vectors"].flops == 2 * (2 * 1 * 4) == 16


def test_cosine_similarity_normalizes_both_inputs(merged):
    # Per input of batch 2 x 4: 8 squares, 8 - 2 adds, per vector an rsqrt (2) and a clamp, 8 multiplies.
    per_input = 8 + (8 - 2) + 2 * 2 + 2 + 8
    assert merged.costs["cosine"].terms == {"multiply_adds": 16, "normalize": 2 * per_input}
    rows = 2 * 3                                                   # (3, 4) inputs normalized along the 4
    per_row_input = 24 + (24 - rows) + 2 * rows + rows + 24
    assert merged.costs["cosine_rows"].terms["normalize"] == 2 * per_row_input


def test_inception_resnet_scaled_residual_by_hand_and_tfprof():
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    x, r = keras.Input((3, 4)), keras.Input((3, 4))
    scaled = costed(keras.Model([x, r], CustomScaleLayer(0.17, name="scaled")([x, r])), batch=2)
    assert scaled.costs["scaled"].flops == 2 * (2 * 3 * 4)      # x + r * 0.17: a Mul and an AddV2 per element
    assert scaled.costs["scaled"].flops == scaled.graph_flops["scaled"]


def test_a_user_class_named_custom_scale_layer_has_no_formula():
    class CustomScaleLayer(keras.layers.Layer):
        def call(self, inputs):
            return inputs[0] * inputs[1] * inputs[0]

    x, r = keras.Input((3, 4)), keras.Input((3, 4))
    assert not costed(keras.Model([x, r], CustomScaleLayer(name="mine")([x, r])), batch=2).costs["mine"].supported
