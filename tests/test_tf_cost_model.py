"""TensorFlow's cost model (Grappler) on conftest's 2-layer CNN, with a virtual CPU of round numbers.

The virtual CPU: 1 core at 1000 MHz (Grappler: 1 operation per cycle ->
1 GFLOP/s, 1 operation per ns) and 1e6 KB/s (1 GB/s, 1 byte per ns), so
Grappler's time of an op in ns is its operations plus its bytes in and out.
Batch 2, input 10x10x1, Conv2D 8 filters 3x3 VALID -> 8x8x8, MaxPool 2 ->
4x4x8, Flatten -> 128, Dense 3.
"""
from __future__ import annotations

import pytest

from tfprofscale.profiling.graph import tf_cost_model
from tfprofscale.profiling.graph.tf_cost_model import CostModelError, VirtualCpu, estimate_costs, virtual_cpu
from tfprofscale.profiling.runtime.machine_peaks import MachinePeaks

ONE_NS_PER_UNIT = VirtualCpu(num_cores=1, frequency_mhz=1000, bandwidth_kb_per_s=1e6)

# Conv2D: 2 operations per multiply-add, batch * out_h * out_w * Kh * Kw * Cin * Cout MACs
CONV_OPERATIONS = 2 * (2 * 8 * 8) * (3 * 3 * 1) * 8              # 18432 -> 18432 ns
CONV_BYTES = 4 * (2 * 10 * 10 * 1 + 3 * 3 * 1 * 8 + 2 * 8 * 8 * 8)  # input 800 + filter 288 + output 4096 = 5184
# MatMul: 2 x 128 by 128 x 3
MATMUL_OPERATIONS = 2 * 2 * 128 * 3                               # 1536
MATMUL_BYTES = 4 * (2 * 128 + 128 * 3 + 2 * 3)                    # 1024 + 1536 + 24 = 2584


@pytest.fixture(scope="module")
def traced_cnn():
    import keras

    from tfprofscale.profiling.trace import tracing

    inputs = keras.Input((10, 10, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return tracing.trace(keras.Model(inputs, outputs), 2)


def op_of_type(estimate, op_type):
    (op,) = [op for op in estimate.ops if op.type == op_type]
    return op


def test_conv_and_matmul_cost_what_grappler_formula_says(traced_cnn):
    estimate = estimate_costs(traced_cnn.shape_graph(), ONE_NS_PER_UNIT)
    conv, matmul = op_of_type(estimate, "Conv2D"), op_of_type(estimate, "MatMul")
    assert conv.estimated_us == pytest.approx((CONV_OPERATIONS + CONV_BYTES) / 1e3)      # 23.616 us
    assert matmul.estimated_us == pytest.approx((MATMUL_OPERATIONS + MATMUL_BYTES) / 1e3)  # 4.120 us
    # the OpPerformance protos give the split in whole microseconds: 18.432 -> 18, 5.184 -> 5
    assert (conv.compute_us, conv.memory_us) == (18.0, 5.0)
    # names are the traced graph's: they join the layers by scope
    assert traced_cnn.layer_of(conv.name) == "conv" and traced_cnn.layer_of(matmul.name) == "logits"
    assert conv.name in {op.name for op in traced_cnn.graph.get_operations()}


def test_large_graphs_skip_the_timeline_and_read_whole_microseconds(traced_cnn, monkeypatch):
    monkeypatch.setattr(tf_cost_model, "TIMELINE_MAX_NODES", 0)
    estimate = estimate_costs(traced_cnn.shape_graph(), ONE_NS_PER_UNIT)
    conv, matmul = op_of_type(estimate, "Conv2D"), op_of_type(estimate, "MatMul")
    # the cost graph keeps whole microseconds: 23.616 -> 23, 4.120 -> 4
    assert (conv.estimated_us, conv.compute_us, conv.memory_us) == (23.0, 18.0, 5.0)
    assert matmul.estimated_us == 4.0


def test_run_time_is_the_schedule_of_the_same_protos_read_independently(traced_cnn):
    import tensorflow as tf
    from tensorflow.python.grappler import cluster, item

    estimate = estimate_costs(traced_cnn.shape_graph(), ONE_NS_PER_UNIT)
    graph = tf.Graph()  # the metagraph the long way round: import the frozen graph, export it with its fetches
    with graph.as_default():
        tf.graph_util.import_graph_def(traced_cnn.shape_graph().graph_def, name="")
        for name in traced_cnn.shape_graph().output_names:
            graph.add_to_collection(tf.compat.v1.GraphKeys.TRAIN_OP, graph.get_tensor_by_name(name).op)
        exported = tf.compat.v1.train.export_meta_graph(graph=graph)
    grappler = cluster.Cluster(devices=[ONE_NS_PER_UNIT.named_device()], disable_timeline=False)
    _, run_time_s, step_stats = grappler.MeasureCosts(item.Item(exported))
    nodes = [node for device in step_stats.dev_stats for node in device.node_stats]
    # one device: ops run one after another, the step ends when the last op does
    makespan_ns = max(node.all_start_nanos + node.all_end_rel_nanos for node in nodes)
    serial_ns = sum(node.op_end_rel_nanos for node in nodes)
    assert estimate.run_time_ms == pytest.approx(run_time_s * 1e3)
    assert estimate.run_time_ms * 1e6 == pytest.approx(makespan_ns, abs=1e3)  # run time in whole us
    assert sum(op.estimated_us for op in estimate.ops) * 1e3 == pytest.approx(serial_ns)
    assert {op.name for op in estimate.ops} == {node.node_name for node in nodes}
    assert makespan_ns >= CONV_OPERATIONS + CONV_BYTES + MATMUL_OPERATIONS + MATMUL_BYTES


def test_the_virtual_cpu_has_the_measured_peaks():
    peaks = MachinePeaks(flops_per_s=150e9, bytes_per_s=30e9, host="h", tensorflow="t")
    cpu = virtual_cpu(peaks, cores=2)
    assert cpu.frequency_mhz == pytest.approx(75_000)  # 2 cores x 75 GHz x 1 op/cycle = 150 GFLOP/s
    assert cpu.flops_per_s == pytest.approx(150e9) and cpu.bytes_per_s == pytest.approx(30e9)
    device = cpu.named_device().properties
    assert (device.num_cores, device.frequency, device.bandwidth) == (2, 75_000, 30_000_000)  # KB/s


def test_cache_sizes_come_from_sysfs(tmp_path):
    for index, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"),
                                                 (2, "Unified", "2048K"), (3, "Unified", "32M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(f"{level}\n")
        (folder / "type").write_text(f"{kind}\n")
        (folder / "size").write_text(f"{size}\n")
    sizes = [tf_cost_model.cache_bytes(level, tmp_path) for level in (1, 2, 3, 4)]
    assert sizes == [48 * 1024, 2048 * 1024, 32 * 1024 ** 2, None]


FAKE_PEAKS = MachinePeaks(flops_per_s=1e9, bytes_per_s=1e9, host="h", tensorflow="t")


def profile_cnn(cnn_file, monkeypatch):
    from tfprofscale.profiling.pipeline import ProfileOptions, run_profile

    monkeypatch.setattr(tf_cost_model, "machine_peaks", lambda *args, **kwargs: FAKE_PEAKS)
    monkeypatch.setattr(tf_cost_model.os, "cpu_count", lambda: 1)
    return run_profile(str(cnn_file), ProfileOptions(batch_size=2, steps=2, warmup=1, trace=False))


def test_profile_fills_ops_layers_and_totals(cnn_file, monkeypatch):
    report = profile_cnn(cnn_file, monkeypatch)
    by_type = {op.type: op for op in report.ops}
    # FAKE_PEAKS on 1 core: the same round-number CPU as above
    assert by_type["Conv2D"].tf_estimated_us == pytest.approx((CONV_OPERATIONS + CONV_BYTES) / 1e3)
    assert by_type["MatMul"].tf_estimated_us == pytest.approx((MATMUL_OPERATIONS + MATMUL_BYTES) / 1e3)
    layers = {row.name: row for row in report.layers}
    conv_ops = [op for op in report.ops if op.layer == "conv" and op.tf_estimated_us is not None]
    assert {op.type for op in conv_ops} >= {"Conv2D", "BiasAdd", "Relu"}
    assert layers["conv"].tf_estimated_us >= sum(op.tf_estimated_us for op in conv_ops)
    assert layers["conv"].tf_estimated_us > layers["pool"].tf_estimated_us > 0
    assert report.totals.tf_estimated_step_ms * 1e3 >= sum(row.tf_estimated_us or 0 for row in report.layers) - 1
    assert not [w for w in report.warnings if "cost model" in w or "Grappler" in w]  # the estimate ran
    from tfprofscale.report.table import render

    assert f"TF estimate:   {report.totals.tf_estimated_step_ms:.3f} ms per step" in render(report)


def test_a_grappler_failure_is_a_warning_and_nulls(cnn_file, monkeypatch):
    from tensorflow.python.grappler import cluster

    def broken(self, item):
        raise RuntimeError("shape inference failed\nsecond line")

    monkeypatch.setattr(cluster.Cluster, "MeasureCosts", broken)
    report = profile_cnn(cnn_file, monkeypatch)
    (warning,) = [line for line in report.warnings if "Grappler" in line]
    assert "RuntimeError: shape inference failed; tf_estimated_* left null" in warning
    assert report.totals.tf_estimated_step_ms is None
    assert all(op.tf_estimated_us is None for op in report.ops)
    assert all(row.tf_estimated_us is None for row in report.layers)


def test_estimate_costs_raises_one_line(traced_cnn, monkeypatch):
    from tensorflow.python.grappler import item

    monkeypatch.setattr(item, "Item", lambda metagraph: (_ for _ in ()).throw(ValueError("no fetch nodes")))
    with pytest.raises(CostModelError, match="^ValueError: no fetch nodes$"):
        estimate_costs(traced_cnn.shape_graph(), ONE_NS_PER_UNIT)


def test_the_command_line_can_skip_the_cost_model(capsys, cnn_file, tmp_path, monkeypatch):
    import json

    from tensorflow.python.grappler import cluster

    from tests.test_cli_profile import run_cli

    monkeypatch.setattr(cluster.Cluster, "MeasureCosts", lambda self, item: pytest.fail("Grappler ran"))
    target = tmp_path / "report.json"
    status, _, err = run_cli(capsys, "profile", str(cnn_file), "--no-trace", "--no-cost-model", "--steps", "2",
                             "--quiet", "--json", str(target))
    assert status == 0, err
    report = json.loads(target.read_text())
    assert report["totals"]["tf_estimated_step_ms"] is None
    assert not [w for w in report["warnings"] if "cost model" in w or "Grappler" in w]  # skipped, not failed
    assert all(op["tf_estimated_us"] is None for op in report["ops"])
