"""Measurement: formula coverage and 2*MACs against the work the graph really runs.

On text, sequence and vision-transformer models (and ConvNeXtTiny, weights=None,
64x64), profiles each with ``tfprofscale.profile(model, trace=False, steps=2,
warmup=1)`` and compares, per model:

- coverage: the share of graph FLOPs (tfprof, top-level graph) and of the true
  work in layers that have a formula;
- over the layers with a formula: formula FLOPs, 2 * formula MACs and the true
  work, and their ratios.

The true work is counted here independently of the formulas: tfprof's
statistics per floating-point op, plus each Einsum counted with numpy on
arrays of ones, plus each While body times its trip count (the constant its
condition compares against), plus PartitionedCall bodies, skipping the dead
cell step Keras traces outside each RNN loop for shapes. tfprof alone is
blind inside loops, function calls and einsums: that is the graph figure.

    PYTHONPATH=$PWD python tools/measure_sequence_formulas.py [transformer lstm gru bilstm tagger decoder vit video convnext]
"""
from __future__ import annotations

import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.profiler import model_analyzer  # noqa: E402
from tensorflow.python.profiler.option_builder import ProfileOptionBuilder  # noqa: E402

import tfprofscale  # noqa: E402

L = keras.layers


def tfprof_op_flops(graph: tf.Graph) -> dict[str, int]:
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    counts: dict[str, int] = {}
    stack = [model_analyzer.profile(graph, options=options)]
    while stack:
        node = stack.pop()
        counts[node.name] = node.float_ops
        stack.extend(node.children)
    return counts


def true_work(graph: tf.Graph, prefix: str = "", top: bool = True) -> int:
    """Floating-point work the graph runs under ``prefix`` (see the module docstring)."""
    counted = tfprof_op_flops(graph)
    total = 0
    for op in graph.get_operations():
        if not op.name.startswith(prefix):
            continue
        if op.type == "Einsum":
            ones = [np.ones(tuple(t.shape)) for t in op.inputs]
            total += 2 * int(np.einsum(op.get_attr("equation").decode(), *ones).sum())
        elif op.type in ("While", "StatelessWhile"):
            total += _trip_count(graph, op) * true_work(graph._get_function(op.get_attr("body").name).graph, top=False)
        elif op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            total += true_work(graph._get_function(op.get_attr("f").name).graph, top=False)
        elif op.outputs and op.outputs[0].dtype.is_floating and not (top and _in_dead_cell_step(op)):
            total += counted.get(op.name, 0)
    return total


def _trip_count(graph: tf.Graph, op) -> int:
    cond = graph._get_function(op.get_attr("cond").name).graph
    return max(int(c.get_attr("value").int_val[0]) for c in cond.get_operations()
               if c.type == "Const" and c.get_attr("value").int_val)


def _in_dead_cell_step(op) -> bool:
    parts = op.name.split("/")
    return len(parts) > 1 and "_cell" in parts[-2]


def layer_scopes(model: keras.Model, spec: tf.TensorSpec) -> tuple[tf.Graph, dict[str, str]]:
    scopes: dict[str, str] = {}

    def recording(layer):
        original = layer.call

        def call(*args, **kwargs):
            scopes.setdefault(layer.name, tf.get_current_name_scope())
            return original(*args, **kwargs)
        return call

    for layer in model.layers:
        layer.call = recording(layer)
    try:
        graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    finally:
        for layer in model.layers:
            del layer.call
    return graph, scopes


def measure(name: str, model: keras.Model, spec: tf.TensorSpec) -> None:
    started = time.time()
    report = tfprofscale.profile(model, batch_size=spec.shape[0], trace=False, steps=2, warmup=1)
    rows = report.layers
    with_formula = [row for row in rows if row.analytic_flops is not None]
    graph, scopes = layer_scopes(model, spec)
    true_total = true_work(graph)
    true_covered = sum(true_work(graph, scopes[row.name] + "/") for row in with_formula if row.name in scopes)
    graph_total = sum(row.graph_flops or 0 for row in rows)
    graph_covered = sum(row.graph_flops or 0 for row in with_formula)
    flops = sum(row.analytic_flops for row in with_formula)
    macs = sum(row.analytic_macs for row in with_formula)
    missing = sorted({row.type for row in rows if row.analytic_flops is None})
    print(f"{name}: graph FLOPs (tfprof) {graph_total:,}, true work {true_total:,}; coverage of graph FLOPs "
          f"{graph_covered / graph_total:.4f}, of true work {true_covered / true_total:.4f}; over layers with a "
          f"formula: formula FLOPs {flops:,}, 2*MACs {2 * macs:,}, true {true_covered:,}, "
          f"2*MACs/true {2 * macs / true_covered:.4f}, formula/true {flops / true_covered:.4f}; "
          f"no formula: {missing}; {time.time() - started:.0f} s", flush=True)


def transformer():
    ids = keras.Input((64,), dtype="int32")
    x = L.Embedding(1000, 64)(ids)
    x = L.LayerNormalization()(L.Add()([x, L.MultiHeadAttention(4, 16)(x, x)]))
    x = L.LayerNormalization()(L.Add()([x, L.Dense(64)(L.Dense(128, activation="relu")(x))]))
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(ids, L.Dense(2, activation="softmax")(x)), tf.TensorSpec((1, 64), tf.int32)


def recurrent(kind: str):
    ids = keras.Input((100,), dtype="int32")
    x = L.Embedding(1000, 32)(ids)
    x = {"lstm": L.LSTM(64), "gru": L.GRU(64), "bilstm": L.Bidirectional(L.LSTM(32))}[kind](x)
    return keras.Model(ids, L.Dense(2, activation="softmax")(x)), tf.TensorSpec((1, 100), tf.int32)


def tagger():
    ids = keras.Input((40,), dtype="int32")
    x = L.Embedding(500, 16, mask_zero=True)(ids)
    x = L.Bidirectional(L.GRU(24, return_sequences=True))(x)
    x = L.LSTM(16, return_sequences=True)(x)
    return keras.Model(ids, L.TimeDistributed(L.Dense(5, activation="softmax"))(x)), tf.TensorSpec((2, 40), tf.int32)


def decoder():
    ids = keras.Input((32,), dtype="int32")
    x = L.Embedding(500, 48)(ids)
    h = L.RMSNormalization()(x)
    x = L.Add()([x, L.GroupQueryAttention(12, 4, 2)(h, h, use_causal_mask=True)])
    h = L.LayerNormalization()(x)
    h = L.EinsumDense("btd,df->btf", (32, 96), activation="gelu", bias_axes="f")(h)
    x = L.Add()([x, L.EinsumDense("btf,fd->btd", (32, 48))(h)])
    x = L.UnitNormalization()(x)
    return keras.Model(ids, L.Dense(500)(x)), tf.TensorSpec((1, 32), tf.int32)


def vit():
    image = keras.Input((32, 32, 3))
    x = L.Reshape((64, 64))(L.Conv2D(64, 4, strides=4)(image))
    for _ in range(2):
        h = L.LayerNormalization(epsilon=1e-6)(x)
        x = L.Add()([x, L.MultiHeadAttention(4, 16)(h, h)])
        h = L.LayerNormalization(epsilon=1e-6)(x)
        x = L.Add()([x, L.Dense(64)(L.Dense(128, activation="gelu")(h))])
    x = L.GlobalAveragePooling1D()(L.LayerNormalization(epsilon=1e-6)(x))
    return keras.Model(image, L.Dense(10)(x)), tf.TensorSpec((1, 32, 32, 3))


def video():
    clip = keras.Input((6, 16, 16, 3))
    x = L.ConvLSTM2D(8, 3, padding="same", return_sequences=True)(clip)
    x = L.ConvLSTM2D(4, 3)(L.TimeDistributed(L.Conv2D(4, 3))(x))
    x = L.Flatten()(L.GroupNormalization(2)(x))
    return keras.Model(clip, L.Dense(3)(x)), tf.TensorSpec((1, 6, 16, 16, 3))


def convnext():
    return keras.applications.ConvNeXtTiny(weights=None, input_shape=(64, 64, 3)), tf.TensorSpec((1, 64, 64, 3))


MODELS = {"transformer": transformer, "lstm": lambda: recurrent("lstm"), "gru": lambda: recurrent("gru"),
          "bilstm": lambda: recurrent("bilstm"), "tagger": tagger, "decoder": decoder, "vit": vit,
          "video": video, "convnext": convnext}

if __name__ == "__main__":
    print(f"load average {os.getloadavg()[0]:.2f}")
    for model_name in sys.argv[1:] or list(MODELS):
        measure(model_name, *MODELS[model_name]())
