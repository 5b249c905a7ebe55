"""The untrained-weights warning, read from the Keras model's bias variables (any bias op, any dtype policy)."""
from __future__ import annotations

import pytest

import tfprofscale
from tfprofscale.profiling.trace.weight_checks import untrained_bias_warnings

CONV = """
    import keras

    PARAMS = {"policy": "float32"}

    def build_model(policy="float32"):
        inputs = keras.Input((8, 8, 3), name="image")
        x = keras.layers.Conv2D(4, 3, name="conv", dtype=policy)(inputs)
        x = keras.layers.Flatten(name="flat")(x)
        return keras.Model(inputs, keras.layers.Dense(2, name="dense", dtype=policy)(x), name="conv_model")
"""

QUICK = dict(steps=1, warmup=0, trace=False, memory=False, tf_cost_model=False, max_time=0.05)


def untrained(report) -> list[str]:
    return [w for w in report.warnings if w.startswith("untrained weights")]


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_an_untrained_conv_model_warns_whatever_op_adds_the_bias(write_model, policy):
    # Keras 3 adds a Conv2D's bias with AddV2 (not BiasAdd), and under mixed_float16 after a Cast:
    # the old graph-based check saw neither. The bias variables are zero either way.
    report = tfprofscale.profile(str(write_model(CONV, "conv.py")), batch_size=1, params={"policy": policy}, **QUICK)
    [warning] = untrained(report)
    assert "the biases of conv, dense are all zero" in warning


def test_trained_weights_do_not_warn(write_model, tmp_path):
    import keras
    import numpy as np

    from tfprofscale.profiling.trace import loading

    path = write_model(CONV, "conv.py")
    model = loading.build(loading.load_model_file(path), {})
    for layer in (model.get_layer("conv"), model.get_layer("dense")):
        layer.bias.assign(np.full(layer.bias.shape, 0.1, "float32"))
    weights = tmp_path / "trained.weights.h5"
    model.save_weights(weights)
    report = tfprofscale.profile(str(path), batch_size=1, weights=str(weights), **QUICK)
    assert untrained(report) == []
    assert isinstance(model, keras.Model)


def test_layers_without_bias_say_nothing():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False)(inputs))
    assert untrained_bias_warnings(model) == []
