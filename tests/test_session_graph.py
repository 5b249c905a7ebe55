"""The traced function run in a Session with its variables (profiling/memory/session_graph.py)."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.train_step_records import raw_train_step
from tfprofscale.profiling.memory.session_graph import SessionGraphError, session_graph
from tfprofscale.profiling.memory.step_memory import step_memory


def _small_cnn():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(3)])


def _batch():
    x = np.random.RandomState(0).rand(16, 8, 8, 1).astype("float32")
    return x, (np.arange(16) % 3).astype("int32")


def test_a_keras_train_step_trains_in_the_session_and_logs_allocations():
    model = _small_cnn()
    train_step = raw_train_step(model, keras.optimizers.Adam(0.05),
                                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _batch()
    function = train_step.get_concrete_function(tf.TensorSpec(x.shape, tf.float32), tf.TensorSpec(y.shape, tf.int32))
    with session_graph(function) as graph:
        # 4 weights + Adam's iteration counter + momentum and velocity per weight (2 x 4) = 13 variables,
        # plus the learning rate Keras 3 keeps as a variable: 14
        assert len(graph.variables) == 14
        first = graph.run([x, y], trace=False)
        second = graph.run([x, y])
    losses = [float(first.outputs[0]), float(second.outputs[0])]
    assert losses[1] < losses[0]
    # independent route: the same two steps run eagerly on the model (which the Session left untouched)
    eager = [float(train_step(x, y)), float(train_step(x, y))]
    assert losses == pytest.approx(eager, rel=1e-4)
    allocations = step_memory(second.run_metadata).allocations
    assert allocations
    assert any("adam" in a.op.lower() for a in allocations)  # the update ran in the traced step
    assert any("gradient" in a.op.lower() for a in allocations)  # and the backward pass


def test_inference_outputs_equal_the_model_and_weights_are_read_from_variables():
    model = _small_cnn()
    x, _ = _batch()
    function = tf.function(lambda t: model(t, training=False)).get_concrete_function(tf.TensorSpec(x.shape))
    with session_graph(function) as graph:
        step = graph.run([x])
        weight_bytes = sum(v.bytes for v in graph.variables)
    np.testing.assert_allclose(step.outputs[0], model(x).numpy(), rtol=1e-5, atol=1e-6)
    # conv 3*3*1*4 + 4, dense (6*6*4)*3 + 3 parameters, 4 bytes each
    assert weight_bytes == 4 * (36 + 4 + 144 * 3 + 3)
    assert step_memory(step.run_metadata).allocations


def test_wrong_number_of_inputs_is_one_line():
    model = _small_cnn()
    x, _ = _batch()
    function = tf.function(lambda t: model(t, training=False)).get_concrete_function(tf.TensorSpec(x.shape))
    with session_graph(function) as graph, pytest.raises(SessionGraphError, match="takes 1 input"):
        graph.run([x, x])
