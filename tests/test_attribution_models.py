"""Where time lands on small real models whose right attribution is known in advance.

- a grouped Conv2D runs as an XLA-compiled call (one call op in the trace): its row gets the call op's time;
- an LSTM's While loop on CPU: its element-wise body kernels are not recorded; the loop's span is timed;
- Dense followed by LeakyReLU: oneDNN runs MatMul + BiasAdd + LeakyRelu as one kernel named after the
  LeakyRelu; the matrix product does the work, so the kernel's time is charged to the Dense;
- two layers max-pooling the same tensor: Grappler merges the identical ops, one kernel runs.

Only attribution and structure are asserted, never a time's value.
"""
from __future__ import annotations

import keras
import pytest

import tfprofscale

L = keras.layers


def _profile(model: keras.Model, tmp_path, batch_size: int = 2):
    return tfprofscale.profile(model, batch_size=batch_size, steps=2, warmup=2, trace_steps=3, logdir=str(tmp_path),
                               memory=False, tf_cost_model=False, max_time=0.2)


def _row(report, name):
    return next(row for row in report.layers if row.name == name)


def test_a_grouped_conv_row_gets_its_compiled_call_ops_time(tmp_path):
    inputs = keras.Input((16, 16, 8))
    x = L.Conv2D(8, 3, padding="same", groups=8, name="grouped")(inputs)
    model = keras.Model(inputs, L.GlobalAveragePooling2D(name="pool")(x), name="mixer")
    report = _profile(model, tmp_path)
    call = next(op for op in report.ops if op.type == "StatefulPartitionedCall")
    assert call.layer == "grouped" and call.time_source == "compiled call" and call.time_us > 0
    row = _row(report, "grouped")
    assert call.name in row.timed_ops
    # The row's time is the per-step median of (call + its other kernels), each term >= 0: never below the call's.
    assert row.time_us >= call.time_us > 0
    assert any("compiled call" in note for note in row.time_notes)
    assert report.totals.unattributed_time_us == 0.0


def test_an_lstm_row_gets_its_while_loops_time_within_the_step(tmp_path):
    inputs = keras.Input((40, 3))
    model = keras.Model(inputs, L.Dense(1, name="head")(L.LSTM(8, name="lstm")(inputs)), name="weather")
    report = _profile(model, tmp_path)
    loop = next(op for op in report.ops if op.type in ("While", "StatelessWhile") and op.time_us is not None)
    assert loop.layer == "lstm" and loop.time_source == "loop iterations" and loop.time_us > 0
    # Per step, the loop's own time lies inside the union of kernel intervals (busy) of that step: so do the medians.
    assert loop.time_us <= report.totals.busy_time_us
    row = _row(report, "lstm")
    assert loop.name in row.timed_ops and row.time_us >= loop.time_us
    assert any("loop iterations" in note for note in row.time_notes)


def test_a_dense_fused_with_the_next_leaky_relu_gets_the_fused_kernels_time(tmp_path):
    inputs = keras.Input((64,))
    x = L.LeakyReLU(negative_slope=0.2, name="leaky")(L.Dense(256, name="dense")(inputs))
    model = keras.Model(inputs, L.Reshape((16, 16), name="view")(x), name="generator")
    report = _profile(model, tmp_path, batch_size=4)
    kernel = next(op for op in report.ops if op.type == "LeakyRelu")
    if not kernel.fused_ops:
        pytest.skip(f"oneDNN did not fuse the LeakyRelu here (kernel {kernel.kernel})")
    assert kernel.layer == "leaky" and kernel.charged_layer == "dense" and kernel.timed_layer == "dense"
    assert kernel.fused_layers == ["dense", "leaky"]
    matmul = next(op for op in report.ops if op.type == "MatMul")
    assert matmul.fused_into == kernel.name and matmul.layer == "dense"
    dense, leaky = _row(report, "dense"), _row(report, "leaky")
    assert kernel.name in dense.timed_ops and kernel.name not in leaky.timed_ops
    assert dense.time_us > 0 and leaky.time_us == 0.0
    assert any("dense" in note and "fused" in note for note in leaky.time_notes)
    assert any("leaky" in note for note in dense.time_notes)


def test_a_pool_merged_by_grappler_names_the_layer_whose_kernel_ran_it(tmp_path):
    inputs = keras.Input((8, 8, 4))
    a = L.MaxPooling2D(2, name="pool_a")(inputs)
    b = L.MaxPooling2D(2, name="pool_b")(inputs)
    model = keras.Model(inputs, L.Add(name="add")([a, b]), name="cells")
    report = _profile(model, tmp_path)
    pools = [op for op in report.ops if op.type == "MaxPool"]
    ran = [op for op in pools if op.kernel is not None]
    merged = [op for op in pools if op.merged_into is not None]
    if len(ran) == 2:
        pytest.skip("Grappler did not merge the two identical MaxPool ops here")
    assert len(ran) == 1 and len(merged) == 1
    assert merged[0].merged_into == ran[0].name and merged[0].time_us is None
    merged_row = _row(report, merged[0].layer)
    assert any(ran[0].layer in note and "merged" in note for note in merged_row.time_notes)
