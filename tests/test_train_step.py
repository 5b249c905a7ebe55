"""The traced training step (profiling/trace/train_step.py): graph FLOPs by phase, attribution, measured peak.

Backward FLOPs are worked out by hand with TensorFlow's own FLOPs statistics
(tensorflow/python/profiler/internal/flops_registry.py), which tfprof uses:
MatMul = 2 * k * output elements; BiasAddGrad = input elements - output
elements (a reduction); Conv2DBackpropInput/Filter = 2 * N * H_in * W_in *
Kh * Kw * C_in * C_out / stride^2 (the convolution's INPUT size, not its
output's); MaxPoolGrad = (window area + 1) * max-pool output elements.
ReluGrad has no statistics (not counted). The first layer needs no input
gradient: TensorFlow prunes its Conv2DBackpropInput / dX MatMul (the input
is not watched), so it runs 0 FLOPs.
"""
from __future__ import annotations

from collections import defaultdict

import keras
import numpy as np
import pytest

from tfprofscale.errors import InputError
from tfprofscale.profiling.graph.graph_stats import graph_stats
from tfprofscale.profiling.memory.train_memory import (
    measure_train_memory,
    train_step_metadata,
)
from tfprofscale.profiling.trace.train_setup import resolve_setup
from tfprofscale.profiling.trace.train_step import (
    BACKWARD,
    FORWARD,
    UPDATE,
    trace_train_step,
)


def _dense_chain():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu", name="d1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, name="d2")(hidden))


def _small_cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)   # (2, 6, 6, 4)
    x = keras.layers.MaxPooling2D(2, name="p1")(x)                         # (2, 3, 3, 4)
    x = keras.layers.Conv2D(5, 2, activation="relu", name="c2")(x)        # (2, 2, 2, 5)
    x = keras.layers.Flatten(name="f")(x)                                   # (2, 20)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="d")(x))


def _traced(model, batch, optimizer="sgd", loss="mse"):
    model.compile(loss=loss, optimizer=optimizer)
    setup = resolve_setup(model, None, {}, None)
    return trace_train_step(model, batch, setup)


def _flops_by_layer_phase(traced):
    table = defaultdict(int)
    for op in graph_stats(traced.graph).ops:
        table[(traced.layer_of(op.name), traced.phase_of(op.name))] += op.flops or 0
    return table


def test_dense_chain_backward_flops_by_hand():
    traced = _traced(_dense_chain(), 4)
    flops = _flops_by_layer_phase(traced)
    # forward: d1 MatMul 2*8*(4*16) = 1024 + BiasAdd 64; d2 MatMul 2*16*(4*4) = 512 + BiasAdd 16
    assert flops[("d1", FORWARD)] == 1024 + 64
    assert flops[("d2", FORWARD)] == 512 + 16
    # d2: dX = dY(4,4) W^T -> (4,16), k=4: 2*4*64 = 512; dW = X^T dY -> (16,4), k=4: 2*4*64 = 512;
    #     BiasAddGrad (4,4) -> (4,): 16 - 4 = 12
    assert flops[("d2", BACKWARD)] == 512 + 512 + 12
    # d1: dW = X^T dY -> (8,16), k=4: 2*4*128 = 1024; BiasAddGrad (4,16) -> (16,): 64 - 16 = 48; no dX
    assert flops[("d1", BACKWARD)] == 1024 + 48


def test_small_cnn_backward_flops_by_hand():
    traced = _traced(_small_cnn(), 2, loss="sparse_categorical_crossentropy")
    flops = _flops_by_layer_phase(traced)
    # c1: BackpropFilter 2 * N2 * 8*8 * 3*3 * 3 * 4 = 27648; BiasAddGrad 2*6*6*4 - 4 = 284; no BackpropInput
    assert flops[("c1", BACKWARD)] == 27648 + 284
    # p1: MaxPoolGrad (2*2 + 1) * (2*3*3*4 = 72) = 360
    assert flops[("p1", BACKWARD)] == 360
    # c2: BackpropInput = BackpropFilter = 2 * 2 * 3*3 * 2*2 * 4 * 5 = 2880; BiasAddGrad 2*2*2*5 - 5 = 35
    assert flops[("c2", BACKWARD)] == 2880 + 2880 + 35
    # d: dX (2,20) k=3: 2*3*40 = 240; dW (20,3) k=2: 2*2*60 = 240; BiasAddGrad 6 - 3 = 3
    assert flops[("d", BACKWARD)] == 240 + 240 + 3
    # the forward convolutions, as for inference: c1 2*(3*3*3)*4 * (2*6*6) = 15552, c2 2*(2*2*4)*5 * (2*2*2) = 1280,
    # plus BiasAdd = output elements
    assert flops[("c1", FORWARD)] == 15552 + 2 * 6 * 6 * 4
    assert flops[("c2", FORWARD)] == 1280 + 2 * 2 * 2 * 5


def test_gradient_and_update_ops_go_to_the_layer_they_serve():
    traced = _traced(_small_cnn(), 2, optimizer="adam", loss="sparse_categorical_crossentropy")
    where = {op.type: (traced.layer_of(op.name), traced.phase_of(op.name)) for op in traced.graph.get_operations()
             if op.type in ("Conv2DBackpropFilter", "MaxPoolGrad", "Conv2DBackpropInput")}
    assert where["MaxPoolGrad"] == ("p1", BACKWARD)
    kinds = defaultdict(set)
    for op in traced.graph.get_operations():
        kinds[op.type].add((traced.layer_of(op.name), traced.phase_of(op.name)))
    assert kinds["Conv2DBackpropFilter"] == {("c1", BACKWARD), ("c2", BACKWARD)}
    # Adam writes each variable (AssignSub) and its two slots (AssignAdd x2): c1, c2, d hold 2 variables each
    updates = [(traced.layer_of(op.name), traced.phase_of(op.name)) for op in traced.graph.get_operations()
               if op.type == "AssignSubVariableOp"]
    assert sorted(updates) == sorted([(layer, UPDATE) for layer in ("c1", "c2", "d") for _ in range(2)])


def test_measured_train_peak_is_variables_inputs_and_the_records_running_sum():
    traced = _traced(_dense_chain(), 4, optimizer=keras.optimizers.SGD(momentum=0.9))
    metadata = train_step_metadata(traced)
    measurement, _ = measure_train_memory(traced, "CPU:0", metadata)
    record = measurement.record
    # variables by hand: 8*16 + 16 + 16*4 + 4 = 212 float32 = 848 B, one momentum each = 848 B,
    # plus the optimizer's iterations (int64, 8 B) and learning rate (float32, 4 B)
    assert record.measured_terms["weights"] == 848
    assert record.weights_bytes == 848 + 848 + 8 + 4
    # inputs (4, 8) float32 = 128 B and labels (4, 4) float32 = 64 B
    assert record.input_bytes == 128 + 64
    # the transient peak: an independent running sum over the raw records of the same RunMetadata
    records = []
    for device in metadata[0].step_stats.dev_stats:
        for node in device.node_stats:
            for memory_stats in node.memory:
                records += [(r.alloc_micros, r.alloc_bytes) for r in memory_stats.allocation_records]
    total = peak = 0
    for _, size in sorted(records, key=lambda r: (r[0], r[1] < 0)):
        total += size
        peak = max(peak, total)
    assert record.measured_peak_bytes == peak > 0


def test_labels_from_example_inputs_and_their_shape_checked():
    model = _dense_chain()
    model.compile(loss="mse", optimizer="sgd")
    setup = resolve_setup(model, None, {}, None)
    x = np.ones((4, 8), "float32")
    traced = trace_train_step(model, 4, setup, lambda batch: (x, np.full((4, 4), 2.0, "float32")))
    assert float(traced.inputs[-1][0, 0]) == 2.0
    with pytest.raises(InputError, match=r"labels have shape \(4, 3\).*takes \(4, 4\)"):
        trace_train_step(model, 4, setup, lambda batch: (x, np.zeros((4, 3), "float32")))


def test_untrainable_model_and_loss_that_does_not_fit_are_one_line_errors():
    model = _dense_chain()
    model.trainable = False
    with pytest.raises(InputError, match="no trainable weights"):
        resolve_setup(model, None, {}, None)
    inputs = keras.Input((8,))
    flat = keras.Model(inputs, keras.layers.Reshape(())(keras.layers.Dense(1)(inputs)))
    with pytest.raises(InputError, match="does not fit model output 0 of shape"):
        _traced(flat, 4, loss="sparse_categorical_crossentropy")
    with pytest.raises(InputError, match="unknown optimizer"):
        resolve_setup(_dense_chain(), None, {}, "adagrad-ish")


def test_default_loss_follows_the_last_activation():
    assert resolve_setup(_small_cnn(), None, {}, None).loss_name == "sparse_categorical_crossentropy"
    assert resolve_setup(_dense_chain(), None, {}, None).loss_name == "sparse_categorical_crossentropy (from_logits)"
    inputs = keras.Input((8,))
    regression = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    assert resolve_setup(regression, None, {}, None).loss_name == "mean_squared_error"
    step = trace_train_step(_small_cnn(), 2, resolve_setup(_small_cnn(), None, {}, "momentum"))
    assert step.setup.optimizer_name == "momentum"
    assert float(step.run()) > 0


def test_mixed_float16_keeps_the_layers_of_loss_scaled_updates_apart():
    """Under mixed_float16 Keras wraps the optimizer in a LossScaleOptimizer whose update runs in a tf.cond:
    the branch's ops must not be mistaken for the step's own ops (they were mapped by index once)."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        traced = _traced(_small_cnn(), 2, optimizer="adam", loss="sparse_categorical_crossentropy")
        flops = defaultdict(int)
        for op in graph_stats(traced.graph).ops:
            flops[(traced.layer_of(op.name), traced.phase_of(op.name), op.type)] += op.flops or 0
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # the same counts as in float32 (test_small_cnn_backward_flops_by_hand), op type by op type
    assert flops[("c1", FORWARD, "Conv2D")] == 15552
    assert flops[("d", FORWARD, "MatMul")] == 2 * 20 * (2 * 3)
    assert flops[("c2", BACKWARD, "Conv2DBackpropInput")] == flops[("c2", BACKWARD, "Conv2DBackpropFilter")] == 2880
    assert flops[("d", BACKWARD, "MatMul")] == 240 + 240
    assert traced.keras_model.dtype_policy.name == "mixed_float16"
