"""The profile pipeline end to end, against numbers worked out by hand.

The 2-layer CNN of conftest: 10x10x1 input, Conv2D 8 filters 3x3 VALID with
ReLU -> 8x8x8, MaxPool 2 -> 4x4x8, Flatten -> 128, Dense 3.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import tfprofscale

CONV_MACS = 8 * 8 * 8 * (3 * 3 * 1)          # Hout*Wout*Cout * Kh*Kw*Cin = 4608
CONV_GRAPH_FLOPS = 2 * CONV_MACS + 8 * 8 * 8  # Conv2D + BiasAdd = 9728
POOL_FLOPS = (2 * 2) * (4 * 4 * 8)            # window area * outputs = 512
DENSE_FLOPS = 2 * 128 * 3 + 3                 # MatMul + BiasAdd = 771
CONV_PARAMS = 3 * 3 * 1 * 8 + 8               # 80
DENSE_PARAMS = 128 * 3 + 3                    # 387


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from tests.conftest import TWO_LAYER_CNN
    import textwrap

    folder = tmp_path_factory.mktemp("profile")
    path = folder / "two_layer_cnn.py"
    path.write_text(textwrap.dedent(TWO_LAYER_CNN))
    return tfprofscale.profile(str(path), batch_size=1, steps=5, warmup=2, trace_steps=3,
                               logdir=str(folder / "runs"))


def layer(report, name):
    return next(row for row in report.layers if row.name == name)


def test_params_per_layer_and_total(report):
    assert layer(report, "conv").params == CONV_PARAMS
    assert layer(report, "logits").params == DENSE_PARAMS
    assert layer(report, "pool").params == 0
    assert report.totals.params == CONV_PARAMS + DENSE_PARAMS


def test_graph_flops_per_layer_match_hand_counts(report):
    assert layer(report, "conv").graph_flops == CONV_GRAPH_FLOPS
    assert layer(report, "pool").graph_flops == POOL_FLOPS
    assert layer(report, "logits").graph_flops == DENSE_FLOPS
    assert layer(report, "flatten").graph_flops == 0
    assert report.totals.graph_flops == CONV_GRAPH_FLOPS + POOL_FLOPS + DENSE_FLOPS


def test_analytic_flops_differ_from_graph_only_by_the_relu(report):
    conv = layer(report, "conv")
    relu_ops = 8 * 8 * 8
    assert conv.analytic_macs == CONV_MACS
    assert conv.analytic_flops == CONV_GRAPH_FLOPS + relu_ops
    assert [name.split("/")[-1] for name in conv.uncounted_ops] == ["Relu"]


def test_activation_bytes_are_output_elements_times_four(report):
    assert layer(report, "conv").activation_bytes == 8 * 8 * 8 * 4
    assert layer(report, "pool").activation_bytes == 4 * 4 * 8 * 4
    assert layer(report, "flatten").activation_bytes == 0
    assert layer(report, "logits").activation_bytes == 3 * 4
    assert layer(report, "conv").output_shape == [1, 8, 8, 8]


def test_runtime_times_layers_and_attributes_the_fused_kernel(report):
    conv = layer(report, "conv")
    assert conv.time_us is not None and conv.time_us > 0
    # Shares: per-step medians over their sum (the same statistic on both sides), kernels in no layer included.
    total = sum(row.time_us for row in report.layers) + report.totals.unattributed_time_us
    for row in report.layers:
        assert row.time_share == pytest.approx(row.time_us / total)
    assert sum(row.time_share for row in report.layers) <= 1 + 1e-9
    assert 0 < report.totals.kernel_coverage <= 1
    assert report.totals.busy_time_us <= report.totals.kernel_time_us * (1 + 1e-9)
    relu = next(op for op in report.ops if op.name.endswith("conv_1/Relu") or op.name.endswith("conv/Relu"))
    assert relu.layer == "conv" and relu.time_us > 0
    # Conv2D + BiasAdd + Relu run as one kernel: oneDNN on, _MklNativeFusedConv2D; off, TensorFlow's
    # remapper makes _FusedConv2D (as test_audit also requires). Asserted, not assumed under an `if`.
    assert relu.kernel is not None and relu.kernel.endswith("FusedConv2D")
    fused = {op.split("/")[-1] for op in relu.fused_ops}
    assert fused == {"convolution", "BiasAdd"}
    absorbed = [op for op in report.ops if op.fused_into == relu.name]
    assert {op.type for op in absorbed} == {"Conv2D", "BiasAdd"}
    assert all(op.time_us is None for op in absorbed)


def test_step_time_statistics_and_trace_dir(report):
    steps = report.totals.step_time_ms
    assert steps.n >= 5 and steps.min <= steps.p10 <= steps.median <= steps.p90
    assert steps.n == steps.rounds * steps.steps_per_round and steps.rounds >= 6
    assert steps.ci_low <= steps.median <= steps.ci_high
    assert steps.stopped_by in ("precision", "time budget")
    assert report.totals.traced_step_time_ms.n == 3
    assert report.totals.profiler_overhead == pytest.approx(
        report.totals.traced_step_time_ms.median / steps.median)
    assert list(Path(report.trace_dir).glob("*.xplane.pb"))


def test_peak_memory_is_measured_even_when_every_tensor_is_small(report):
    # Every tensor of this model at batch 1 is far under the CPU allocator's 262,144 B statistics threshold
    # (its allocator peak would be 0 B). The allocation records of one traced step see them all:
    # conv writes 8x8x8 floats (2,048 B) with its oneDNN scratch (probed alone: s_conv); the pool writes
    # 4x4x8 floats (512 B) and a 1 B/element workspace (128 B) while conv's output is live; the dense
    # layer writes 3 floats (12 B) with its scratch (s_dense) while the pool's output is live.
    memory = report.memory
    s_conv, s_dense = memory.kernel_scratch["conv"], memory.kernel_scratch["logits"]
    steps = {"conv": 2_048 + s_conv, "pool": 2_048 + 512 + 128, "logits": 512 + 12 + s_dense}
    assert memory.measured_peak_bytes == max(steps.values()) > 0
    assert memory.peak_layer == max(steps, key=steps.get)
    assert memory.input_bytes == 10 * 10 * 1 * 4
    assert report.totals.peak_bytes == memory.weights_bytes + 400 + memory.measured_peak_bytes
    assert memory.allocator_peak_bytes is None or memory.allocator_peak_bytes > 0     # never a 0 B "peak"


def test_json_has_the_design_contract_keys(report, tmp_path):
    path = tmp_path / "r.json"
    report.write_json(path)
    data = json.loads(path.read_text())
    for key in ("model", "params", "batch_size", "tensorflow", "device", "totals", "layers", "ops", "trace_dir"):
        assert key in data
    for key in ("params", "analytic_flops", "analytic_macs", "graph_flops", "activation_bytes", "peak_bytes"):
        assert key in data["totals"]
    assert set(data["totals"]["step_time_ms"]) >= {"median", "p10", "p90", "min", "cv", "n"}
    for key in ("name", "type", "output_shape", "params", "analytic_flops", "analytic_macs", "graph_flops",
                "activation_bytes", "time_us", "achieved_gflops", "ops"):
        assert key in data["layers"][0]
    for key in ("name", "type", "layer", "graph_flops", "time_us", "occurrences"):
        assert key in data["ops"][0]
    assert data["params"] == {"filters": 8, "units": 3}
    assert tfprofscale.Report.from_dict(data).to_dict() == data


def test_csv_and_dataframe_have_one_row_per_layer(report, tmp_path):
    path = tmp_path / "layers.csv"
    report.write_csv(path)
    rows = list(csv.DictReader(path.open()))
    names = ["input_layer", "conv", "pool", "flatten", "logits"]
    assert [row["name"] for row in rows][-4:] == names[1:]
    frame = report.to_frame()
    assert len(frame) == len(rows)
    assert int(frame.set_index("name").loc["logits", "graph_flops"]) == DENSE_FLOPS


def test_batch_size_scales_every_count(tmp_path, cnn_file):
    report = tfprofscale.profile(str(cnn_file), batch_size=4, steps=2, warmup=1, trace=False)
    assert report.totals.graph_flops == 4 * (CONV_GRAPH_FLOPS + POOL_FLOPS + DENSE_FLOPS)
    assert layer(report, "conv").output_shape == [4, 8, 8, 8]
    assert report.trace_dir is None and layer(report, "conv").time_us is None


def test_params_override_defaults(cnn_file):
    report = tfprofscale.profile(str(cnn_file), steps=2, warmup=1, trace=False, params={"filters": 2})
    assert layer(report, "conv").params == 3 * 3 * 1 * 2 + 2
    assert report.params == {"filters": 2, "units": 3}


def test_a_keras_model_object_and_its_frame():
    import keras

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(5, name="d")(inputs))
    report = tfprofscale.profile(model, batch_size=2, steps=2, warmup=1, trace=False)
    frame = report.to_frame().set_index("name")
    assert int(frame.loc["d", "graph_flops"]) == 2 * 2 * 6 * 5 + 2 * 5
    assert int(frame.loc["d", "analytic_flops"]) == 2 * 2 * 6 * 5 + 2 * 5


def test_a_plain_tf_function_is_grouped_by_name_scope(write_model, tmp_path):
    path = write_model("""
        import tensorflow as tf

        weights = tf.Variable(tf.ones((4, 3)))


        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32)])
        def model(x):
            with tf.name_scope("projection"):
                y = tf.matmul(x, weights)
            with tf.name_scope("activation"):
                return tf.nn.relu(y)
    """)
    report = tfprofscale.profile(str(path), batch_size=5, steps=2, warmup=1, logdir=str(tmp_path / "runs"),
                                 trace_steps=2)
    groups = {row.name: row for row in report.layers}
    assert set(groups) == {"projection", "activation"}
    assert groups["projection"].graph_flops == 2 * 5 * 4 * 3
    assert groups["activation"].graph_flops is None  # Relu has no FLOPs statistics in TensorFlow
    assert groups["projection"].analytic_flops is None and not groups["projection"].supported
    assert groups["projection"].params == 4 * 3 and groups["activation"].params == 0
    assert groups["projection"].time_us is not None


def test_per_step_kernel_times_add_up_to_xprofs_own_op_stats(report):
    """Independent route: xprof's framework_op_stats totals each op's self time over the whole trace."""
    from xprof.convert import raw_to_tool_data

    from tfprofscale.profiling.runtime.measure import kernel_times

    files = sorted(str(path) for path in Path(report.trace_dir).glob("*.xplane.pb"))
    data, _ = raw_to_tool_data.xspace_to_tool_data(files, "framework_op_stats", {})
    table = json.loads(data)[0]
    columns = [column["id"] for column in table["cols"]]
    cells = [dict(zip(columns, (c.get("v") for c in row["c"]))) for row in table["rows"]]
    totals_us = {cell["operation"]: float(cell["total_self_time"]) for cell in cells
                 if cell["type"] != "IDLE" and cell["host_or_device"] == "Host"}
    kernels, summary = kernel_times(report.trace_dir)
    assert summary.steps == 3 and kernels
    for kernel in kernels:
        assert len(kernel.per_step_us) == 3
        assert sum(kernel.per_step_us) == pytest.approx(totals_us[kernel.name], rel=1e-3, abs=0.01)
