"""Normalization formulas: by hand, and exactly what tfprof counts on the traced layer.

Keras writes these normalizations with ops tfprof has statistics for (Mean,
SquaredDifference, Rsqrt = 2, Mul, Neg, AddV2, Sum, Square, Minimum), so the
agreement is exact.
"""
from __future__ import annotations

import keras
import pytest
import tensorflow as tf
from keras.src.applications.convnext import LayerScale

from tests.graph_counting import info_of, tfprof_flops, trace
from tfprofscale.formulas.analytic import layer_cost
from tfprofscale.records import LayerInfo

pytestmark = pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`:UserWarning")

L = keras.layers
B = 2
SHAPE = (B, 3, 4, 6)          # N = 144 elements, 24 rows of 6 channels

CASES = {
    "layer_norm": (lambda: L.LayerNormalization(), SHAPE),
    "layer_norm_no_scale": (lambda: L.LayerNormalization(scale=False), SHAPE),
    "layer_norm_plain": (lambda: L.LayerNormalization(scale=False, center=False), SHAPE),
    "layer_norm_two_axes": (lambda: L.LayerNormalization(axis=(1, 2)), SHAPE),
    "layer_norm_rms_scaling": (lambda: L.LayerNormalization(rms_scaling=True), SHAPE),
    "group_norm": (lambda: L.GroupNormalization(2), SHAPE),
    "group_norm_2d": (lambda: L.GroupNormalization(3, center=False), (B, 6)),
    "unit_norm": (lambda: L.UnitNormalization(), SHAPE),
    "unit_norm_two_axes": (lambda: L.UnitNormalization(axis=(1, 3)), SHAPE),
    "rms_norm": (lambda: L.RMSNormalization(), SHAPE),
    "spectral_dense": (lambda: L.SpectralNormalization(L.Dense(3)), (B, 4)),
    "spectral_conv": (lambda: L.SpectralNormalization(L.Conv2D(2, 3)), (B, 5, 5, 2)),
    "layer_scale": (lambda: LayerScale(1e-6, 6), SHAPE),
}


@pytest.fixture(scope="module")
def normalizations():
    results = {}
    for name, (make, shape) in CASES.items():
        inputs = keras.Input(shape[1:])
        layer = make()
        traced = trace(keras.Model(inputs, layer(inputs)), [tf.TensorSpec(shape)])
        results[name] = (layer, layer_cost(info_of(layer, B)), tfprof_flops(traced.graph, traced.scopes[layer.name]))
    return results


@pytest.mark.parametrize("name", list(CASES))
def test_flops_agree_exactly_with_tfprof(normalizations, name):
    _, cost, graph_flops = normalizations[name]
    assert cost.supported, cost.geometry
    assert graph_flops > 0
    assert cost.flops == graph_flops


@pytest.mark.parametrize("name", list(CASES))
def test_params_equal_keras_count_params(normalizations, name):
    layer, cost, _ = normalizations[name]
    assert cost.params == layer.count_params()


def test_layer_normalization_by_hand(normalizations):
    """N = 144, 24 rows: mean N, variance 3N, rsqrt(var + eps) 3 per row, x * a + b."""
    _, cost, _ = normalizations["layer_norm"]
    assert cost.terms == {
        "mean": 144, "variance": 3 * 144, "inverse_std": 3 * 24,
        "scale": 144,                       # a = inverse_std * gamma, broadcast to every element
        "shift": 24 + 144 + 144,            # -mean (per row), * a, + beta
        "normalize": 2 * 144}               # x * a + b
    assert cost.flops == 1392
    assert cost.params == 2 * 6


def test_layer_normalization_without_affine_keeps_row_statistics(normalizations):
    _, cost, _ = normalizations["layer_norm_plain"]
    assert cost.terms["scale"] == 0
    assert cost.terms["shift"] == 24 + 24                # -mean and -mean * a stay per row
    assert cost.flops == 144 + 432 + 72 + 48 + 288


def test_group_normalization_by_hand(normalizations):
    """2 groups of 3 channels: statistics per (example, group) = 4 rows; a and b per (example, channel)."""
    _, cost, _ = normalizations["group_norm"]
    rows, per_channel = B * 2, B * 6
    assert cost.terms == {"mean": 144, "variance": 432, "inverse_std": 3 * rows, "scale": per_channel,
                          "shift": rows + per_channel + per_channel, "normalize": 288}


def test_unit_and_rms_normalization_by_hand(normalizations):
    unit, rms = normalizations["unit_norm"][1], normalizations["rms_norm"][1]
    # x * min(rsqrt(sum(x^2)), 1/eps): square N, sum N - rows, rsqrt 2 per row, min 1 per row, multiply N
    assert unit.flops == 144 + (144 - 24) + 2 * 24 + 24 + 144
    # x * rsqrt(mean(x^2) + eps) * scale
    assert rms.flops == 144 + 144 + 3 * 24 + 144 + 144


def test_spectral_normalization_is_its_inner_layer_at_inference(normalizations):
    _, cost, _ = normalizations["spectral_dense"]
    assert cost.flops == 2 * B * 4 * 3 + B * 3


def test_layer_scale_is_one_multiply_per_element_and_is_convnexts_class():
    assert LayerScale.__name__ == "LayerScale"
    model = keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3), include_top=False)
    scale = next(layer for layer in model.layers if type(layer).__name__ == "LayerScale")
    shape = (1, *scale.input.shape[1:])
    cost = layer_cost(LayerInfo(scale.name, "LayerScale", (shape,), shape, layer=scale))
    assert shape == (1, 32 // 4, 32 // 4, 96)                 # after the 4x4 stride-4 stem
    assert cost.flops == 8 * 8 * 96


def test_another_class_named_layer_scale_without_a_per_channel_gamma_is_unsupported():
    class LayerScale(keras.layers.Layer):          # noqa: F811 - same name, other meaning
        def build(self, input_shape):
            self.gamma = self.add_weight(shape=(), initializer="ones")

        def call(self, x):
            return x * self.gamma + 1.0

    inputs = keras.Input((4, 6))
    layer = LayerScale()
    keras.Model(inputs, layer(inputs))
    cost = layer_cost(info_of(layer, B))
    assert not cost.supported and cost.flops is None
