"""Activations: the formula's count per element, and TensorFlow's, each checked on its own.

``TF_ACTIVATION_FLOPS_PER_ELEMENT`` is checked against tfprof on the traced
graph of every activation; the formula table by hand (the operations of the
formula written next to each number) and through the layers that use it.
"""
from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from tests.layer_harness import costed, single_layer_cost
from tfprofscale.audit import conventions
from tfprofscale.formulas.activations import ACTIVATION_FLOPS_PER_ELEMENT, TF_ACTIVATION_FLOPS_PER_ELEMENT
from tfprofscale.profiling.graph.graph_stats import graph_stats

layers = keras.layers
#: Table entries that are not an activation string usable in a layer.
NOT_A_LAYER_STRING = {"prelu", "gelu_approximate", "threshold"}
STRINGS = sorted(set(TF_ACTIVATION_FLOPS_PER_ELEMENT) - NOT_A_LAYER_STRING)


@pytest.fixture(scope="module")
def activation_zoo():
    """Every activation string as an Activation layer on a (4,) input, batch 2; the activation layers."""
    inputs = keras.Input((4,))
    branches = [layers.Activation(name, name=name)(inputs) for name in STRINGS]
    branches += [layers.PReLU(name="prelu_layer")(inputs), layers.ELU(name="elu_layer")(inputs),
                 layers.LeakyReLU(name="leaky_relu_layer")(inputs), layers.Softmax(name="softmax_layer")(inputs),
                 layers.ReLU(name="relu_layer")(inputs), layers.Activation("sparsemax", name="sparsemax")(inputs)]
    return costed(keras.Model(inputs, branches), batch=2)


def test_every_keras_activation_has_both_counts():
    public = {name for name in dir(keras.activations) if not name.startswith("_")}
    functions = {getattr(keras.activations, name).__name__ for name in public - {"get", "serialize", "deserialize"}}
    assert functions - {"sparsemax"} <= set(ACTIVATION_FLOPS_PER_ELEMENT)
    assert set(ACTIVATION_FLOPS_PER_ELEMENT) == set(TF_ACTIVATION_FLOPS_PER_ELEMENT)


@pytest.mark.parametrize("name", STRINGS)
def test_tensorflow_table_against_tfprof(activation_zoo, name):
    output_elements = activation_zoo.costs[name].geometry["elements"]     # glu halves the 4 features
    assert activation_zoo.graph_flops.get(name, 0) == TF_ACTIVATION_FLOPS_PER_ELEMENT[name] * output_elements


@pytest.mark.parametrize("name", STRINGS)
def test_activation_layer_uses_the_formula_table(activation_zoo, name):
    cost = activation_zoo.costs[name]
    elements = 2 * 2 if name == "glu" else 2 * 4
    assert cost.flops == cost.terms["activations"] == ACTIVATION_FLOPS_PER_ELEMENT[name][0] * elements


@pytest.mark.parametrize("name, call", [
    ("gelu_approximate", lambda x: keras.activations.gelu(x, approximate=True)),
    ("threshold", lambda x: keras.activations.threshold(x, 0.5, 0.0)),
])
def test_tensorflow_table_for_functions_with_arguments(name, call):
    graph = tf.function(call).get_concrete_function(tf.TensorSpec((2, 4))).graph
    assert graph_stats(graph).total_flops == TF_ACTIVATION_FLOPS_PER_ELEMENT[name] * 2 * 4


@pytest.mark.parametrize("name, operations", [
    ("silu", 4 + 1),                # sigmoid (neg, exp, add, reciprocal) then * x
    ("hard_silu", 4 + 1),           # hard_sigmoid (add, max, min, divide) then * x
    ("gelu", 5),                    # divide by sqrt 2, erf, + 1, * x, * 0.5
    ("gelu_approximate", 9),        # x^3 (2), * 0.044715, + x, * sqrt(2/pi), tanh, + 1, * x, * 0.5
    ("mish", 5),                    # exp, + 1, log, tanh, * x
    ("celu", 7),                    # max, divide, exp, - 1, * alpha, min, add
    ("log_sigmoid", 5),             # neg, exp, + 1, log, neg
    ("squareplus", 5),              # square, + b, sqrt, + x, / 2
    ("soft_shrink", 4),             # 2 comparisons, x - t, x + t
    ("glu", 4 + 1),                 # sigmoid of one half, times the other (per output element)
    ("hard_tanh", 2), ("tanh_shrink", 2), ("relu6", 2), ("prelu", 4),
])
def test_formula_counts_by_hand(name, operations):
    assert ACTIVATION_FLOPS_PER_ELEMENT[name][0] == operations


def test_where_tensorflow_counts_less_than_the_formula():
    """swish: TensorFlow counts its two Muls, not the Sigmoid; hard_swish its Add, RealDiv and Mul."""
    assert (ACTIVATION_FLOPS_PER_ELEMENT["silu"][0], TF_ACTIVATION_FLOPS_PER_ELEMENT["silu"]) == (5, 2)
    assert (ACTIVATION_FLOPS_PER_ELEMENT["hard_silu"][0], TF_ACTIVATION_FLOPS_PER_ELEMENT["hard_silu"]) == (5, 3)
    assert (ACTIVATION_FLOPS_PER_ELEMENT["gelu"][0], TF_ACTIVATION_FLOPS_PER_ELEMENT["gelu"]) == (5, 4)


def test_activation_layers_by_hand_and_against_tfprof(activation_zoo):
    costs, graph = activation_zoo.costs, activation_zoo.graph_flops
    elements = 2 * 4
    assert costs["prelu_layer"].flops == 4 * elements                            # max, min, * alpha, add
    assert costs["prelu_layer"].params == 4                                      # one alpha per feature
    # relu(x) - alpha * relu(-x): Neg, Mul, AddV2 per element and Neg per alpha; the Relus uncounted
    assert graph["prelu_layer"] == 3 * elements + 4
    assert costs["softmax_layer"].flops == graph["softmax_layer"] == 5 * elements
    assert (costs["elu_layer"].flops, graph.get("elu_layer", 0)) == (4 * elements, 0)
    assert (costs["leaky_relu_layer"].flops, graph.get("leaky_relu_layer", 0)) == (2 * elements, 0)
    assert (costs["relu_layer"].flops, graph.get("relu_layer", 0)) == (1 * elements, 0)


def test_sparsemax_by_hand(activation_zoo):
    # Per row of 4: sort 4 * 2, running sum 3, support test 3 * 4, its size 3, tau 2, max(z - tau, 0) 2 * 4.
    per_row = 4 * 2 + 3 + 3 * 4 + 3 + 2 + 2 * 4
    assert activation_zoo.costs["sparsemax"].flops == 2 * per_row == 72


def test_glu_as_a_layer_activation_has_no_formula():
    """glu halves the last axis: a Dense's per-output count does not apply."""
    cost = single_layer_cost(layers.Dense(4, activation="glu"), (3,))
    assert not cost.supported and cost.flops is None


def test_tensorflow_convention_uses_the_measured_table(activation_zoo):
    cost = activation_zoo.costs["silu"]
    assert conventions.count("flops", "Activation", cost.geometry, cost.terms) == 2 * cost.output_elements
    assert conventions.count("formula", "Activation", cost.geometry, cost.terms) == 5 * cost.output_elements
