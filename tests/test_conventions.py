"""The counting conventions, on layers whose counts are worked out by hand here.

The conv of most tests: batch 1, 5x5 output, 2 input channels, 4 filters of
3x3, bias, ReLU: 100 outputs, each reading c*h*w = 2*3*3 = 18 inputs.
"""
from __future__ import annotations

import keras
import pytest
import tensorflow as tf
from tensorflow.python.profiler import model_analyzer
from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

from tfprofscale.audit import conventions
from tfprofscale.errors import InputError

OUTPUTS = 1 * 5 * 5 * 4              # 100
MACS = OUTPUTS * 3 * 3 * 2           # 1800
CONV_GEOMETRY = {"batch": 1, "in_h": 5, "in_w": 5, "in_channels": 2, "out_h": 5, "out_w": 5, "out_channels": 4,
                 "kernel_h": 3, "kernel_w": 3, "stride_h": 1, "stride_w": 1, "dilation_h": 1, "dilation_w": 1,
                 "padding": "same", "groups": 1, "use_bias": True, "activation": "relu",
                 "activation_flops_per_element": 1, "data_format": "channels_last"}
# SAME 3x3 on 5x5: per axis the outputs see 2, 3, 3, 3, 2 = 13 real rows, so 13 * 13 real taps per
# (input channel, filter) pair of 5 * 5 * 9 = 225: padded = 1800 - 2 * 4 * 13 * 13 = 448
CONV_TERMS = {"multiply_adds": 2 * MACS, "bias_adds": OUTPUTS, "activations": OUTPUTS,
              "padded_taps": MACS - 2 * 4 * 13 * 13}

DENSE_GEOMETRY = {"rows": 2, "in_features": 6, "out_features": 3, "use_bias": True, "activation": "softmax",
                  "activation_flops_per_element": 5}
DENSE_TERMS = {"multiply_adds": 2 * 2 * 6 * 3, "bias_adds": 2 * 3, "activations": 5 * 2 * 3}   # 72, 6, 30

POOL_GEOMETRY = {"batch": 1, "in_h": 4, "in_w": 4, "channels": 3, "out_h": 2, "out_w": 2, "pool_h": 2,
                 "pool_w": 2, "stride_h": 2, "stride_w": 2, "padding": "valid", "data_format": "channels_last"}
POOL_TERMS = {"window_taps": 4 * 12, "comparisons": 3 * 12}   # 12 outputs


def count(name, layer_type, geometry, terms):
    return conventions.count(name, layer_type, geometry, terms)


def test_conv_under_every_convention():
    assert count("flops", "Conv2D", CONV_GEOMETRY, CONV_TERMS) == 2 * 1800 + 100        # Relu: 0 in TensorFlow
    assert count("formula", "Conv2D", CONV_GEOMETRY, CONV_TERMS) == 2 * 1800 + 100 + 100
    assert count("macs", "Conv2D", CONV_GEOMETRY, CONV_TERMS) == 1800
    assert count("ops_no_fma", "Conv2D", CONV_GEOMETRY, CONV_TERMS) == 2 * 18 * 100
    assert count("ops_fma", "Conv2D", CONV_GEOMETRY, CONV_TERMS) == (18 + 1) * 100
    assert count("doc000_published", "Conv2D", CONV_GEOMETRY, CONV_TERMS) == 2 * 9 + 2 + 4 + 5 + 5
    assert count("doc000_example", "Conv2D", CONV_GEOMETRY, CONV_TERMS) == 2 * 9 + 2 + 4 + 5 * 5


def test_dense_and_max_pool_under_every_convention():
    assert count("flops", "Dense", DENSE_GEOMETRY, DENSE_TERMS) == 72 + 6 + 5 * 6          # Softmax is counted
    assert count("macs", "Dense", DENSE_GEOMETRY, DENSE_TERMS) == 36
    assert count("ops_no_fma", "Dense", DENSE_GEOMETRY, DENSE_TERMS) == 2 * 6 * 6
    assert count("ops_fma", "Dense", DENSE_GEOMETRY, DENSE_TERMS) == (6 + 1) * 6
    assert count("doc000_published", "Dense", DENSE_GEOMETRY, DENSE_TERMS) == 6 * 3      # per input row
    assert count("flops", "MaxPooling2D", POOL_GEOMETRY, POOL_TERMS) == 4 * 12
    assert count("ops_no_fma", "MaxPooling2D", POOL_GEOMETRY, POOL_TERMS) == (4 - 1) * 12
    assert count("macs", "MaxPooling2D", POOL_GEOMETRY, POOL_TERMS) == 0
    assert count("doc000_published", "MaxPooling2D", POOL_GEOMETRY, POOL_TERMS) is None


def test_a_layer_without_work_counts_zero_and_an_unknown_type_none():
    assert count("doc000_published", "Flatten", {}, {}) == 0
    assert count("ops_fma", "BatchNormalization", {"elements": 8, "channels": 2}, {"scale_shift": 16}) is None


@pytest.mark.parametrize("layer_type, geometry, terms", [
    ("Conv2D", CONV_GEOMETRY, CONV_TERMS), ("Dense", DENSE_GEOMETRY, DENSE_TERMS),
    ("MaxPooling2D", POOL_GEOMETRY, POOL_TERMS)])
def test_stated_differences_add_up_to_the_gap_with_tensorflow(layer_type, geometry, terms):
    tensorflow = count("flops", layer_type, geometry, terms)
    for convention in conventions.registered_conventions():
        value = count(convention.name, layer_type, geometry, terms)
        if value is None or convention.differences is None:
            continue
        parts = convention.differences(layer_type, geometry, terms)
        assert sum(parts.values()) == value - tensorflow, convention.name


def test_named_differences_of_the_conv():
    fma = conventions.get_convention("ops_fma").differences("Conv2D", CONV_GEOMETRY, CONV_TERMS)
    assert fma["a fused multiply-add counted as 1, not 2"] == -1800
    assert fma["+1 per output counted as a bias add"] == 100 - 100
    no_fma = conventions.get_convention("ops_no_fma").differences("Conv2D", CONV_GEOMETRY, CONV_TERMS)
    assert no_fma["the bias add is one of the 2*c*h*w (c*h*w-1 sums); TensorFlow adds it on top"] == -100
    macs = conventions.get_convention("macs").differences("Conv2D", CONV_GEOMETRY, CONV_TERMS)
    assert macs["a multiply-add counted as 1, not 2"] == -1800 and macs["bias adds not counted"] == -100


def conv_geometry(side_in, channels, filters, side_out):
    return {**CONV_GEOMETRY, "in_h": side_in, "in_w": side_in, "in_channels": channels, "out_channels": filters,
            "out_h": side_out, "out_w": side_out}


def test_document_000_example_table_is_reproduced_and_its_printed_formula_is_not():
    # Document 000's table (400x400x3 input, 32 filters of 3x3, stride 2): CONV0 400 -> 200, CONV1 100 -> 50,
    # CONV2 25 -> 13, CONV3 6 -> 3; FC 32 inputs x 512.
    printed = {(400, 3, 200): 40053, (100, 32, 50): 2582, (25, 32, 13): 251, (6, 32, 3): 91}
    for (side_in, channels, side_out), flops in printed.items():
        geometry = conv_geometry(side_in, channels, 32, side_out)
        assert count("doc000_example", "Conv2D", geometry, CONV_TERMS) == flops
    fc = {"rows": 1, "in_features": 32, "out_features": 512, "use_bias": True, "activation": "linear",
          "activation_flops_per_element": 0}
    assert count("doc000_published", "Dense", fc, {"multiply_adds": 2}) == 16384
    conv0 = conv_geometry(400, 3, 32, 200)
    assert count("doc000_published", "Conv2D", conv0, CONV_TERMS) == 2 * 9 + 3 + 32 + 200 + 200   # 453, not 40053


def test_a_user_can_register_a_convention():
    @conventions.convention("outputs_only", source="a test", definition="one operation per output element")
    def outputs_only(layer_type, geometry, terms):
        return conventions.output_elements(layer_type, geometry)

    try:
        assert count("outputs_only", "Conv2D", CONV_GEOMETRY, CONV_TERMS) == 100
        assert "outputs_only" in [c.name for c in conventions.registered_conventions()]
        assert conventions.registered_conventions()[0].name == "flops"
    finally:
        conventions.unregister_convention("outputs_only")
    with pytest.raises(InputError, match="outputs_only"):
        conventions.get_convention("outputs_only")


def test_an_activation_variant_has_no_tensorflow_rule():
    relu6_layer = {"activation": "relu", "activation_flops_per_element": 2, "elements": 8}   # ReLU(max_value=6)
    assert count("flops", "ReLU", relu6_layer, {"activations": 16}) is None
    assert count("formula", "ReLU", relu6_layer, {"activations": 16}) == 16


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "softmax", "gelu", "silu"])
def test_tensorflow_activation_table_against_tfprof(activation):
    elements = 2 * 4
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Activation(activation)(inputs))
    graph = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec((2, 4))).graph
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    counted = model_analyzer.profile(graph, options=options).total_float_ops
    assert counted == conventions.TF_ACTIVATION_FLOPS_PER_ELEMENT[activation] * elements
