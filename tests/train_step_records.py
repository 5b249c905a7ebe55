"""Test harness: the allocation records of one real Keras train step, run in a Session (DESIGN, third round).

The step (``GradientTape`` + ``optimizer.apply`` in a ``tf.function``) is traced;
its GraphDef is imported into a new graph where each captured variable is a
fresh ``VarHandleOp`` initialised from the value read beforehand, and run with
``FULL_TRACE``; ``step_memory`` reads the records. A test-only route, kept
independent of the profiler's own train-step measurement.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfprofscale.profiling.memory.step_memory import Allocation, step_memory


def raw_train_step(model: keras.Model, optimizer, loss):
    """One training step written by hand, as Keras' own ``train_step`` runs it (not tfprofscale's tracing)."""
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(inputs, labels):
        with tf.GradientTape() as tape:
            value = loss(labels, model(inputs, training=True))
        optimizer.apply(tape.gradient(value, model.trainable_variables), model.trainable_variables)
        return value

    return step


def train_step_allocations(model: keras.Model, optimizer, loss, x: np.ndarray, y: np.ndarray) -> list[Allocation]:
    """The host allocation records of the third run of one train step of ``model`` on (x, y)."""
    step = raw_train_step(model, optimizer, loss)
    concrete = step.get_concrete_function(tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)),
                                          tf.TensorSpec(y.shape, tf.as_dtype(y.dtype)))
    variables = {id(v.value.handle): v.value for v in [*model.variables, *optimizer.variables]}
    captured = [(placeholder.name, variables.get(id(handle)), handle) for handle, placeholder in concrete.graph.captures]
    values = [(name, var.dtype, var.shape, var.numpy()) if var is not None else (name, None, None, handle.numpy())
              for name, var, handle in captured]
    graph, feeds = tf.Graph(), [t.name for t in concrete.graph.inputs if t.dtype != tf.resource]
    with graph.as_default():
        input_map, initialise = {}, []
        for index, (name, dtype, shape, value) in enumerate(values):
            if dtype is None:
                input_map[name] = tf.constant(value)
                continue
            handle = tf.raw_ops.VarHandleOp(dtype=dtype, shape=shape, shared_name=f"captured_{index}")
            initialise.append(tf.raw_ops.AssignVariableOp(resource=handle, value=tf.constant(value)))
            input_map[name] = handle
        placeholders = [tf.compat.v1.placeholder(tf.as_dtype(a.dtype), a.shape) for a in (x, y)]
        input_map.update(zip(feeds, placeholders))
        fetched = tf.graph_util.import_graph_def(
            concrete.graph.as_graph_def(), input_map=input_map, name="",
            return_elements=[concrete.graph.outputs[0].name] + [op.name for op in concrete.graph.control_outputs])
    metadata = tf.compat.v1.RunMetadata()
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(initialise)
        feed = dict(zip(placeholders, (x, y)))
        for _ in range(2):
            session.run(fetched, feed)
        session.run(fetched, feed, run_metadata=metadata,
                    options=tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE))
    return [a for a in step_memory(metadata).allocations if a.space == "host"]
