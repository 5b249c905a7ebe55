"""Recurrent formulas: by hand, and against the While loop Keras really runs.

tfprof counts only the top-level graph, where Keras traces one dead cell step
for shapes; the real work is the While body, run once per time step. The
independent count is tfprof on the body graph (floating-point ops) times the
number of steps T, which the test knows from the input shape. TensorFlow's
profiler counts no Sigmoid, Tanh, Relu or Select: those terms are named per case.
"""
from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from tests.graph_counting import info_of, loop_body_elements, loop_body_flops, loop_body_selects, tfprof_flops, trace
from tfprofscale.formulas.analytic import layer_cost

L = keras.layers
B = 2
ACTIVATIONS = ("gate_activations", "output_activation", "activations")
#: The formulas' flops per element of the activation ops TensorFlow runs (see formulas/activations.py).
ACTIVATION_OPS = {"Sigmoid": 4, "Tanh": 1, "Relu": 1}


def _masked(layer, inputs):
    return layer(L.Embedding(10, 3, mask_zero=True)(inputs[0]))


#: name -> (layer factory, input shape, steps T, call, input dtype)
LOOPS = {
    "lstm": (lambda: L.LSTM(4), (B, 5, 3), 5, None, "float32"),
    "lstm_sequences_backwards": (lambda: L.LSTM(4, return_sequences=True, go_backwards=True), (B, 5, 3), 5,
                                 None, "float32"),
    "lstm_implementation_1": (lambda: L.LSTM(4, implementation=1, use_bias=False), (B, 5, 3), 5, None, "float32"),
    "lstm_masked": (lambda: L.LSTM(4), (B, 5), 5, _masked, "int32"),
    "gru": (lambda: L.GRU(4), (B, 5, 3), 5, None, "float32"),
    "gru_reset_before": (lambda: L.GRU(4, reset_after=False), (B, 5, 3), 5, None, "float32"),
    "gru_no_bias": (lambda: L.GRU(3, use_bias=False), (B, 4, 2), 4, None, "float32"),
    "simple_rnn": (lambda: L.SimpleRNN(4, activation="relu"), (B, 5, 3), 5, None, "float32"),
    "rnn_of_lstm_cell": (lambda: L.RNN(L.LSTMCell(3)), (B, 4, 2), 4, None, "float32"),
    "conv_lstm_1d": (lambda: L.ConvLSTM1D(3, 3, padding="same", return_sequences=True), (B, 4, 6, 2), 4,
                     None, "float32"),
    "conv_lstm_2d": (lambda: L.ConvLSTM2D(3, 3), (B, 4, 6, 6, 2), 4, None, "float32"),
    "conv_lstm_3d": (lambda: L.ConvLSTM3D(2, 2, strides=2), (B, 3, 4, 4, 4, 1), 3, None, "float32"),
    "bidirectional_concat": (lambda: L.Bidirectional(L.LSTM(4)), (B, 5, 3), 5, None, "float32"),
    "bidirectional_ave": (lambda: L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="ave"),
                          (B, 5, 3), 5, None, "float32"),
    "bidirectional_masked_sum": (lambda: L.Bidirectional(L.SimpleRNN(4), merge_mode="sum"), (B, 5), 5,
                                 _masked, "int32"),
}


def _traced_layer(make, shape, call, dtype):
    inputs = keras.Input(shape[1:], dtype=dtype)
    layer = make()
    model = keras.Model(inputs, (call or (lambda lay, x: lay(x[0])))(layer, [inputs]))
    traced = trace(model, [tf.TensorSpec(shape, dtype)])
    return layer, traced


@pytest.fixture(scope="module")
def loops():
    results = {}
    for name, (make, shape, steps, call, dtype) in LOOPS.items():
        layer, traced = _traced_layer(make, shape, call, dtype)
        scope = traced.scopes[layer.name]
        bodies = loop_body_flops(traced.graph, scope)
        activation_flops = sum(flops_per_element * sum(loop_body_elements(traced.graph, scope, (op_type,)))
                               for op_type, flops_per_element in ACTIVATION_OPS.items())
        results[name] = (layer, layer_cost(info_of(layer, B)), bodies, sum(loop_body_selects(traced.graph, scope)),
                         activation_flops)
    return results


def _uncounted(cost):
    """Activations and selects: TensorFlow's profiler has no statistics for Sigmoid, Tanh, Relu, SelectV2."""
    return sum(cost.terms.get(term, 0) for term in (*ACTIVATIONS, "mask_selects"))


@pytest.mark.parametrize("name", list(LOOPS))
def test_flops_equal_the_loop_body_times_the_steps(loops, name):
    _, cost, bodies, _, _ = loops[name]
    steps = LOOPS[name][2]
    assert cost.supported, cost.geometry
    assert bodies and all(body > 0 for body in bodies)
    assert cost.flops - _uncounted(cost) - cost.terms.get("merge", 0) == steps * sum(bodies)


@pytest.mark.parametrize("name", list(LOOPS))
def test_activation_terms_equal_the_activation_ops_in_the_loop_times_the_steps(loops, name):
    _, cost, _, _, activation_flops_per_step = loops[name]
    assert sum(cost.terms.get(term, 0) for term in ACTIVATIONS) == LOOPS[name][2] * activation_flops_per_step


@pytest.mark.parametrize("name", list(LOOPS))
def test_mask_selects_equal_the_selects_in_the_loop_times_the_steps(loops, name):
    _, cost, _, selects_per_step, _ = loops[name]
    assert cost.terms.get("mask_selects", 0) == LOOPS[name][2] * selects_per_step


@pytest.mark.parametrize("name", list(LOOPS))
def test_params_equal_keras_count_params(loops, name):
    layer, cost, _, _, _ = loops[name]
    assert cost.params == layer.count_params()


# ------------------------------------------------------------ by hand


def test_lstm_by_hand(loops):
    """B=2, T=5, D=3, U=4: matmuls T*B*(2*D*4U + 2*U*4U); sigmoid 4 flops per element, tanh 1."""
    _, cost, _, _, _ = loops["lstm"]
    per_step = B * 4                                        # state elements per step
    assert cost.terms["input_matmul"] + cost.terms["recurrent_matmul"] == 5 * B * (2 * 3 * 16 + 2 * 4 * 16) == 2240
    assert cost.terms == {
        "input_matmul": 5 * B * 2 * 3 * 16, "recurrent_matmul": 5 * B * 2 * 4 * 16,
        "matmul_sum": 5 * 4 * per_step, "bias_adds": 5 * 4 * per_step,
        "gate_activations": 5 * per_step * (3 * 4 + 1),     # i, f, o sigmoid; candidate tanh
        "cell_update": 5 * per_step * 3,                   # f*c + i*g
        "output_activation": 5 * per_step, "hidden_output": 5 * per_step,   # o * tanh(c)
        "mask_selects": 0}
    assert cost.macs == 5 * B * (3 * 16 + 4 * 16) == 1120


def test_the_work_does_not_depend_on_sequences_direction_or_implementation(loops):
    assert loops["lstm_sequences_backwards"][1].flops == loops["lstm"][1].flops
    no_bias = loops["lstm_implementation_1"][1]
    assert no_bias.flops == loops["lstm"][1].flops - 5 * 4 * B * 4


def test_a_mask_keeps_output_and_both_states_with_a_select_each(loops):
    _, cost, _, _, _ = loops["lstm_masked"]
    assert cost.terms["mask_selects"] == 5 * B * 4 * (1 + 2)
    assert cost.flops == loops["lstm"][1].flops + 120


def test_gru_by_hand(loops):
    """T=5, B=2, D=3, U=4: matmuls T*B*(2*D*3U + 2*U*3U); reset_after adds a recurrent bias."""
    after, before = loops["gru"][1], loops["gru_reset_before"][1]
    assert after.terms["input_matmul"] + after.terms["recurrent_matmul"] == 5 * B * (2 * 3 * 12 + 2 * 4 * 12)
    assert after.terms["bias_adds"] == 5 * B * 2 * 12
    assert before.terms["bias_adds"] == 5 * B * 12
    assert after.terms["state_update"] == 5 * B * 4 * 4   # z*h + (1-z)*hh


def test_conv_lstm_2d_by_hand(loops):
    """(T=4, 6, 6, 2) -> 3 filters, 3x3 VALID: a 4x4x3 state; input conv of 2 channels, recurrent of 3."""
    _, cost, _, _, _ = loops["conv_lstm_2d"]
    state = 4 * 4 * 3
    assert cost.terms["input_matmul"] == 2 * 4 * B * state * 4 * (3 * 3 * 2) == 55_296
    assert cost.terms["recurrent_matmul"] == 2 * 4 * B * state * 4 * (3 * 3 * 3) == 82_944


def test_bidirectional_merges_by_hand(loops):
    ave, concat = loops["bidirectional_ave"][1], loops["bidirectional_concat"][1]
    assert ave.terms["merge"] == 2 * (B * 5 * 4)            # (y + y_rev) / 2 on the (B, T, U) sequences
    assert concat.terms["merge"] == 0
    assert concat.flops == 2 * loops["lstm"][1].flops


def test_bidirectional_applies_its_mask_to_both_directions(loops):
    _, cost, _, _, _ = loops["bidirectional_masked_sum"]
    assert cost.terms["mask_selects"] == 2 * 5 * B * 4 * (1 + 1)
    assert cost.terms["merge"] == B * 4


def test_an_unrolled_lstm_is_counted_by_tfprof_itself_and_costs_the_same(loops):
    layer, traced = _traced_layer(lambda: L.LSTM(4, unroll=True), (B, 5, 3), None, "float32")
    cost = layer_cost(info_of(layer, B))
    assert cost.flops == loops["lstm"][1].flops
    per_step = 2 * B * 3 * 16 + 2 * B * 4 * 16 + B * 16 + B * 16 + 4 * (B * 4)   # matmuls, sum, bias, c and h
    assert cost.flops - _uncounted(cost) == tfprof_flops(traced.graph, traced.scopes[layer.name]) == 5 * per_step


def test_bidirectional_returning_states_costs_its_two_layers():
    layer, _ = _traced_layer(lambda: L.Bidirectional(L.LSTM(4, return_state=True)), (B, 5, 3), None, "float32")
    one_direction = 2240 + 160 + 160 + 520 + 120 + 40 + 40     # the terms of test_lstm_by_hand
    assert layer_cost(info_of(layer, B)).flops == 2 * one_direction


# ------------------------------------------------------------ TimeDistributed


@pytest.mark.parametrize("make, shape, steps_times_inner", [
    (lambda: L.TimeDistributed(L.Dense(3)), (B, 5, 4), 5 * (2 * B * 4 * 3 + B * 3)),
    (lambda: L.TimeDistributed(L.Conv2D(3, 3)), (B, 3, 6, 6, 2), 3 * (2 * B * 4 * 4 * 3 * 9 * 2 + B * 4 * 4 * 3)),
])
def test_time_distributed_is_the_inner_formula_times_the_steps_and_agrees_with_tfprof(make, shape, steps_times_inner):
    layer, traced = _traced_layer(make, shape, None, "float32")
    cost = layer_cost(info_of(layer, B))
    assert cost.flops == steps_times_inner
    assert cost.flops == tfprof_flops(traced.graph, traced.scopes[layer.name])
    assert cost.params == layer.count_params()


# ------------------------------------------------------------ unsupported


@keras.saving.register_keras_serializable(package="tfprofscale_tests")
class Halving(keras.layers.Layer):
    state_size = 3

    def call(self, inputs, states):
        return inputs[:, :3] * 0.5 + states[0] * 0.5, [states[0]]


@pytest.mark.parametrize("make", [
    lambda: L.RNN(Halving()),
    lambda: L.Bidirectional(L.RNN(Halving())),
    lambda: L.TimeDistributed(L.Lambda(lambda x: x * 2)),
])
def test_unknown_cells_and_inner_layers_are_unsupported_not_zero(make):
    inputs = keras.Input((4, 5))
    layer = make()
    keras.Model(inputs, layer(inputs))
    cost = layer_cost(info_of(layer, B))
    assert not cost.supported and cost.flops is None and cost.macs is None


@pytest.mark.parametrize("make, inputs_shape", [
    (lambda: L.LSTM(3), (None, 4)),
    (lambda: L.TimeDistributed(L.Dense(2)), (None, 4)),
])
def test_an_unknown_number_of_steps_is_unsupported_not_negative(make, inputs_shape):
    inputs = keras.Input(inputs_shape)
    layer = make()
    keras.Model(inputs, layer(inputs))
    info = info_of(layer, B)
    info = type(info)(info.name, info.type, tuple(tuple(-1 if d is None else d for d in s) for s in info.input_shapes),
                      (B, 2) if "TimeDistributed" not in info.type else (B, 5, 2), layer=layer)
    cost = layer_cost(info)
    assert not cost.supported and cost.flops is None
