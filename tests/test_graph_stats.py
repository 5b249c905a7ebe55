"""Graph FLOPs where tfprof is blind: loop bodies, nested functions, Einsum.

Every expected number is worked out by hand below, with TensorFlow's own
conventions (MatMul = 2*m*n*k, BiasAdd / AddV2 / Mul = output elements).
"""
from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from tfprofscale.formulas import analytic
from tfprofscale.profiling.graph import graph_stats
from tfprofscale.profiling.trace import tracing
from tfprofscale.profiling.runtime.attribution import attribute_ops
from tfprofscale.profiling.runtime.kernel_trace import per_step
from tfprofscale.profiling.graph.op_statistics import einsum_flops_of
from tfprofscale.profiling.assemble import layer_rows
from tfprofscale.records import KernelTime


def untimed_rows(model, batch_size):
    traced = tracing.trace(model, batch_size)
    stats = graph_stats.graph_stats(traced.graph)
    ops = attribute_ops(stats, None, traced.layer_of)
    rows = layer_rows(traced.layers, analytic.analyze_layers(traced.layers), ops, stats, traced=False)
    return traced, stats, {row.name: row for row in rows}


# An LSTM of T=5 steps, D=3 features, U=4 units, batch B=2. Per step Keras' cell runs:
T, D, U, B = 5, 3, 4, 2
LSTM_STEP = (
    2 * B * D * 4 * U      # MatMul x @ W (2, 3) x (3, 16)                  192
    + 2 * B * U * 4 * U    # MatMul h @ R (2, 4) x (4, 16)                  256
    + B * 4 * U            # AddV2 of the two products                       32
    + B * 4 * U            # BiasAdd                                         32
    + 4 * B * U            # c = f*c + i*g (2 Mul, 1 AddV2), h = o*tanh(c)   32
    + 2                    # the loop's two scalar counters (AddV2)           2
)                          # = 546 per step; Sigmoid and Tanh: no statistics


@pytest.fixture(scope="module")
def lstm():
    inputs = keras.Input((T, D))
    outputs = keras.layers.LSTM(U, name="lstm")(inputs)
    return untimed_rows(keras.Model(inputs, outputs, name="rnn"), B)


def test_lstm_graph_flops_are_the_loop_body_times_the_trip_count(lstm):
    _, stats, rows = lstm
    assert LSTM_STEP == 546
    assert rows["lstm"].graph_flops == T * LSTM_STEP == 2730
    assert stats.total_flops == T * LSTM_STEP


def test_the_cell_step_traced_outside_the_loop_is_pruned_not_counted(lstm):
    _, stats, _ = lstm
    # tfprof alone counts only that dead step: the step's work without the loop counters.
    assert stats.tfprof_flops == LSTM_STEP - 2
    outside = [op for op in stats.ops if not op.site and op.type == "MatMul"]
    assert outside and all(not op.runs and op.flops == 0 for op in outside)
    inside = [op for op in stats.ops if op.site and op.type == "MatMul"]
    assert [op.executions for op in inside] == [T, T]


def test_uncounted_activations_are_named(lstm):
    _, stats, _ = lstm
    assert stats.uncounted()["Sigmoid"] == 3 and stats.uncounted()["Tanh"] == 2


def test_grouped_conv_inside_a_nested_function_is_counted():
    inputs = keras.Input((8, 8, 4))
    outputs = keras.layers.Conv2D(6, 3, groups=2, name="grouped")(inputs)
    _, stats, rows = untimed_rows(keras.Model(inputs, outputs), 2)
    k, cin, groups, cout, hout, wout, n = 3, 4, 2, 6, 6, 6, 2
    conv = 2 * k * k * (cin // groups) * cout * hout * wout * n   # 15,552
    bias = cout * hout * wout * n                                  # 432
    assert rows["grouped"].graph_flops == conv + bias == 15984
    assert stats.tfprof_flops == bias  # tfprof alone sees only the BiasAdd outside the call


def test_attention_einsums_are_counted_by_our_statistics():
    seq, heads, key_dim, width, batch = 5, 2, 4, 8, 2
    inputs = keras.Input((seq, width))
    outputs = keras.layers.MultiHeadAttention(heads, key_dim, name="mha")(inputs, inputs)
    _, stats, _ = untimed_rows(keras.Model(inputs, outputs), batch)
    einsums = [op for op in stats.ops if op.type == "Einsum"]
    scores = 2 * batch * heads * seq * seq * key_dim    # 800: q.k over key_dim
    weighted = 2 * batch * heads * seq * seq * key_dim  # 800: softmax weights . v over the keys
    assert sorted(op.flops for op in einsums) == [scores, weighted]
    assert {op.flops_source for op in einsums} == {"tfprofscale"}
    assert stats.flops_by_source()["tfprofscale"] == scores + weighted


@pytest.mark.parametrize("equation, shapes, flops", [
    ("aecd,abcd->acbe", [[2, 5, 2, 4], [2, 5, 2, 4]], 2 * 2 * 5 * 5 * 2 * 4),  # MHA scores: summed d
    ("...ij,...jk->...ik", [[3, 2, 4], [3, 4, 5]], 2 * 3 * 2 * 4 * 5),        # batched matmul
    ("...ij,jk->...ik", [[7, 2, 4], [4, 5]], 2 * 7 * 2 * 4 * 5),              # broadcast weights
    ("ij,ij->ij", [[2, 3], [2, 3]], 2 * 3),                                   # elementwise: 1 multiply each
    ("ij->i", [[2, 3]], 2 * 3),                                               # a sum: one add per element
    ("ij->ji", [[2, 3]], 0),                                                  # a transpose: no arithmetic
    ("ij,jk,kl->il", [[2, 2], [2, 2], [2, 2]], None),                         # order of pairs unknown
])
def test_einsum_statistics_by_hand(equation, shapes, flops):
    assert einsum_flops_of(equation, shapes) == flops


def test_einsum_statistics_agree_with_tensorflow_matmul():
    # The same product as BatchMatMulV2, which TensorFlow has statistics for: the two must agree.
    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.placeholder(tf.float32, (3, 2, 4))
        b = tf.compat.v1.placeholder(tf.float32, (3, 4, 5))
        product = tf.linalg.matmul(a, b)
    from tensorflow.python.framework import ops as tf_ops

    expected = tf_ops.get_stats_for_node_def(graph, product.op.node_def, "flops").value
    assert einsum_flops_of("bij,bjk->bik", [[3, 2, 4], [3, 4, 5]]) == expected


def _data_dependent_loop():
    @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32)])
    def loop(x):
        trips = tf.cast(tf.reduce_sum(x) > -1e30, tf.int32) + 2   # 3 at run time, unknown to the graph
        _, y = tf.while_loop(lambda i, y: i < trips, lambda i, y: (i + 1, tf.matmul(y, tf.eye(4))), (0, x))
        return y

    return loop


def test_a_loop_bound_known_only_at_run_time_is_filled_from_the_trace():
    traced = tracing.trace(_data_dependent_loop(), 2)
    stats = graph_stats.graph_stats(traced.graph)
    matmul = next(op for op in stats.ops if op.type == "MatMul" and op.site)
    assert matmul.executions is None and matmul.flops is None       # not static: not guessed
    assert matmul.flops_per_execution == 2 * 2 * 4 * 4              # (2, 4) x (4, 4)
    kernel_name = f"{matmul.site[0]}/body/_1/{matmul.local_name}"  # as xprof names a loop body's kernel
    resolved = graph_stats.with_executions(stats, {kernel_name: 3.0, matmul.name: 3.0})
    counted = next(op for op in resolved.ops if op.name == matmul.name)
    assert counted.executions == 3 and counted.flops == 3 * 2 * 2 * 4 * 4


def test_static_loop_bounds_compared_against_a_constant():
    @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32)])
    def loop(x):
        _, y = tf.while_loop(lambda i, y: i <= 6, lambda i, y: (i + 2, y * 2.0), (1, x))  # i = 1, 3, 5: 3 trips
        return y

    stats = graph_stats.graph_stats(tracing.trace(loop, 2).graph)
    mul = next(op for op in stats.ops if op.type == "Mul" and op.site)
    assert mul.executions == 3 and mul.flops == 3 * 2 * 4


def test_loop_kernels_get_the_loop_body_op_and_its_layer(lstm):
    traced, stats, _ = lstm
    body_matmul = next(op for op in stats.ops if op.site and op.type == "MatMul")
    kernel = KernelTime(f"{body_matmul.site[0]}/body/_1/{body_matmul.local_name}", "_MklMatMul", 12.0, T)
    ops = attribute_ops(stats, [kernel], traced.layer_of)
    row = next(op for op in ops if op.name == body_matmul.name)
    assert row.layer == "lstm" and row.time_us == 12.0 and row.graph_flops == T * 2 * B * D * 4 * U


def test_xla_call_ops_are_timed_from_their_async_start_events():
    # Two steps of 200 us. The call op's async start events last 100 us and 60 us; the compiled module's
    # convolution.1 inside is no TensorFlow op; a Recv's async start is no call. Per step: 100, then 60.
    def event(title, start, dur, **args):
        return {"ph": "X", "pid": 1, "tid": 2, "name": title, "ts": start, "dur": dur, "args": args}

    call = {"kernel_type": "StatefulPartitionedCall", "name": "m/grouped_1/StatefulPartitionedCall"}
    events = [
        event("infer 0", 0.0, 200.0, step_num="0"), event("infer 1", 300.0, 200.0, step_num="1"),
        event("ExecutorState::ProcessAsync::Start", 10.0, 100.0, **call),
        event("convolution.1", 20.0, 40.0, hlo_op="convolution.1"),
        event("ExecutorState::ProcessAsync::Start", 310.0, 60.0, **call),
        event("ExecutorState::ProcessAsync::Start", 400.0, 7.0, kernel_type="Recv", name="r"),
    ]
    first, second = per_step(events)
    assert first.self_us == {"m/grouped_1/StatefulPartitionedCall": 100.0}
    assert second.self_us == {"m/grouped_1/StatefulPartitionedCall": 60.0}
    assert first.busy_us == 100.0 and first.types["m/grouped_1/StatefulPartitionedCall"] == "StatefulPartitionedCall"


def test_with_tracing_on_every_layer_that_works_has_time_and_no_kernel_is_unattributed(tmp_path):
    import tfprofscale

    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, groups=2, name="grouped")(inputs)
    x = keras.layers.Reshape((36, 4), name="steps")(x)
    x = keras.layers.LSTM(16, name="lstm")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x), name="mixed")
    report = tfprofscale.profile(model, batch_size=2, steps=2, warmup=2, trace_steps=2, logdir=str(tmp_path))
    working = [row for row in report.layers if row.graph_flops]
    assert {row.name for row in working} == {"grouped", "lstm", "head"}
    assert all(row.time_us and row.time_us > 0 for row in working)
    call = next(op for op in report.ops if op.name.endswith("grouped_1/StatefulPartitionedCall"))
    assert call.layer == "grouped" and call.time_us > 0           # the XLA-run grouped conv, timed as one kernel
    assert report.totals.unattributed_time_us == 0


def test_a_loop_counts_what_the_same_lstm_unrolled_counts_plus_its_counters():
    # Independent route: unroll=True traces the T cell steps into the top-level graph, where tfprof counts them.
    def lstm(unroll):
        inputs = keras.Input((T, D))
        return keras.Model(inputs, keras.layers.LSTM(U, unroll=unroll, name="lstm")(inputs))

    unrolled = graph_stats.graph_stats(tracing.trace(lstm(True), B).graph)
    looped = graph_stats.graph_stats(tracing.trace(lstm(False), B).graph)
    assert unrolled.tfprof_flops == unrolled.total_flops == T * (LSTM_STEP - 2)
    assert looped.total_flops == unrolled.total_flops + 2 * T   # the While's two scalar counters per trip


def test_a_call_whose_body_cannot_be_found_is_named_uncounted_not_zero(monkeypatch):
    from tfprofscale.profiling.graph.function_library import FunctionLookup

    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, keras.layers.Conv2D(6, 3, groups=2, name="grouped")(inputs))
    monkeypatch.setattr(FunctionLookup, "graph", lambda self, name, caller: None)
    stats = graph_stats.graph_stats(tracing.trace(model, 2).graph)
    call = next(op for op in stats.ops if op.type == "StatefulPartitionedCall")
    assert call.flops is None and stats.uncounted() == {"StatefulPartitionedCall": 1}


def test_bodies_rebuilt_from_the_function_library_count_the_same(monkeypatch, lstm):
    # Where Python no longer holds the traced FuncGraphs (a loaded SavedModel), bodies come from GraphDef.library.
    from tfprofscale.profiling.graph.function_library import FunctionLookup

    traced, held, _ = lstm
    monkeypatch.setattr(FunctionLookup, "graph", FunctionLookup.imported)
    rebuilt = graph_stats.graph_stats(traced.graph)
    assert rebuilt.total_flops == held.total_flops == T * LSTM_STEP


def test_a_nested_call_rebuilt_from_the_function_library_counts_the_same(monkeypatch):
    from tfprofscale.profiling.graph.function_library import FunctionLookup

    inputs = keras.Input((8, 8, 4))
    graph = tracing.trace(keras.Model(inputs, keras.layers.Conv2D(6, 3, groups=2)(inputs)), 2).graph
    monkeypatch.setattr(FunctionLookup, "graph", FunctionLookup.imported)
    assert graph_stats.graph_stats(graph).total_flops == 15552 + 432   # as worked out above: conv + bias
