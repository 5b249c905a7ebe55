"""Measured memory: allocation records of one traced Session step, against sums worked out by hand."""
from __future__ import annotations

from pathlib import Path

import keras
import pytest
from tensorflow.core.protobuf import config_pb2

import tfprofscale
from tfprofscale.profiling.memory.measure import fill_record, traced_session_step
from tfprofscale.records import MemoryRecord
from tfprofscale.profiling.memory.step_memory import step_memory
from tfprofscale.profiling.memory.workspace_probe import kernel_scratch_bytes, probe_key
from tfprofscale.profiling.trace.tracing import trace
from tfprofscale.report.table import binary_bytes, render

FLOAT = 4


def dense_chain() -> keras.Model:
    inputs = keras.Input((1000,), name="features")
    x = keras.layers.Dense(500, name="d1")(inputs)
    x = keras.layers.Dense(200, name="d2")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="d3")(x), name="chain")


def quick_profile(model, batch_size):
    return tfprofscale.profile(model, batch_size=batch_size, steps=1, warmup=1, trace=False)


@pytest.fixture(scope="module")
def chain_report():
    return quick_profile(dense_chain(), 1)


def test_a_chain_of_small_tensors_has_its_liveness_as_measured_peak(chain_report):
    memory = chain_report.memory
    # batch 1, every tensor far under 256 KiB (the CPU allocator's statistics would show 0 B).
    # Each oneDNN matrix product takes a scratch while it runs, measured on the product alone (s1, s2, s3).
    # d1 writes 500 floats (2,000 B) while the fed input is resident; d2 writes 200 (800 B) while reading
    # d1's; then d1's buffer is freed and d3 writes 10 (40 B) beside d2's.
    s1, s2, s3 = (memory.kernel_scratch[name] for name in ("d1", "d2", "d3"))
    steps = {"d1": 2_000 + s1, "d2": 2_000 + 800 + s2, "d3": 800 + 40 + s3}
    assert memory.measured_peak_bytes == max(steps.values()) > 0
    assert memory.peak_layer == max(steps, key=steps.get)
    assert memory.input_bytes == 1000 * FLOAT
    params = 1000 * 500 + 500 + 500 * 200 + 200 + 200 * 10 + 10
    assert memory.weights_bytes == params * FLOAT                   # read from the variables
    assert chain_report.totals.peak_bytes == params * FLOAT + 1000 * FLOAT + max(steps.values())
    assert memory.estimated_peak_bytes == chain_report.totals.peak_bytes
    # per layer: its fused MatMul + BiasAdd's one output and its scratch
    assert [row.measured_bytes for row in chain_report.layers] == [None, 2_000 + s1, 800 + s2, 40 + s3]


def test_measured_peak_is_the_running_sum_of_the_allocation_records():
    traced = trace(dense_chain(), 3)
    run_metadata = traced_session_step(traced)
    records = [(record.alloc_micros, record.alloc_bytes)
               for device in run_metadata.step_stats.dev_stats for node in device.node_stats
               for memory in node.memory for record in memory.allocation_records]
    running, peak = 0, 0
    for _, size in sorted(records, key=lambda r: (r[0], r[1] < 0)):   # at one instant, allocations first
        running += size
        peak = max(peak, running)
    # at batch 3 the matrix products take scratch too: at least d1's and d2's outputs are live together
    assert step_memory(run_metadata).peak("host").peak_bytes == peak >= 3 * 500 * FLOAT + 3 * 200 * FLOAT


def residual_model() -> keras.Model:
    inputs = keras.Input((8, 8, 4), name="image")
    a = keras.layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(8, 3, padding="same", name="b")(a)
    x = keras.layers.Add(name="add")([a, b])
    x = keras.layers.Activation("relu", name="relu")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="gap")(x), name="residual")


def test_residual_block_measured_by_hand():
    report = quick_profile(residual_model(), 1)
    memory = report.memory
    # a's 8x8x8 output (2,048 B) is kept for the add while b writes its own (2,048 B) with its conv scratch;
    # the add and the relu write in place, the pooled 8 floats come after a and b are freed.
    assert memory.measured_terms["activations"] == 2 * 8 * 8 * 8 * FLOAT
    assert memory.peak_layer in ("b", "relu")    # Grappler fuses b's conv, the add and the relu: one kernel
    assert memory.measured_terms["workspace"] == memory.kernel_scratch["b"] > 0
    assert memory.estimate_terms["activations"] == 2 * 8 * 8 * 8 * FLOAT
    assert memory.estimated_peak_layer in ("a", "b")


def conv_pool() -> keras.Model:
    inputs = keras.Input((16, 16, 8), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inputs)
    return keras.Model(inputs, keras.layers.MaxPooling2D(2, name="pool")(x), name="conv_pool")


def test_onednn_convolution_scratch_and_max_pool_workspace():
    report = quick_profile(conv_pool(), 2)
    traced = trace(conv_pool(), 2)
    allocations = step_memory(traced_session_step(traced)).allocations
    pool_workspace = [a.bytes for a in allocations if a.bytes > 0 and a.is_workspace and "MaxPool" in a.op_type]
    conv_scratch = [a.bytes for a in allocations if a.bytes > 0 and a.is_workspace and "Conv2D" in a.op_type]
    assert pool_workspace == [2 * 8 * 8 * 16]                # 1 B per output element: batch 2, 8x8x16
    conv_row = next(row for row in report.layers if row.name == "conv")
    key = probe_key("Conv2D", conv_row.geometry)
    alone = kernel_scratch_bytes([key])[key]
    assert conv_scratch == [alone] and alone > 0             # the same scratch in the model and run alone
    # the estimate's terms: conv runs with its 32,768 B output and scratch; pool with 32,768 + 8,192 + 2,048
    conv_step = 2 * 16 * 16 * 16 * FLOAT + alone
    pool_step = 2 * 16 * 16 * 16 * FLOAT + 2 * 8 * 8 * 16 * FLOAT + 2 * 8 * 8 * 16
    terms = report.memory.estimate_terms
    if conv_step >= pool_step:
        assert terms["convolution scratch"] == alone and terms["activations"] == 32_768
    else:
        assert terms["max-pool workspace"] == 2 * 8 * 8 * 16 and terms["activations"] == 32_768 + 8_192
    assert report.memory.measured_peak_bytes == max(conv_step, pool_step)


class Counter(keras.layers.Layer):
    """Counts its calls in a variable: a stateful assignment no frozen graph can hold."""

    def build(self, shape):
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")

    def call(self, x):
        self.count.assign_add(1.0)
        return x * 2.0


def test_a_model_that_assigns_a_variable_is_measured():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, Counter(name="counter")(keras.layers.Dense(3, name="dense")(inputs)))
    report = quick_profile(model, 1)
    memory = report.memory
    # the Session holds the variables, so the assignment runs there as it does in the model
    assert memory.missing is None and memory.measured_peak_bytes > 0
    # dense 4x3 kernel + 3 biases, and the counter: 16 floats
    assert memory.weights_bytes == (4 * 3 + 3 + 1) * FLOAT
    assert report.totals.peak_bytes == memory.weights_bytes + 4 * FLOAT + memory.measured_peak_bytes
    # Grappler prices it too: the assigned counter is a VarHandleOp of its shape, the rest one-value constants
    assert report.totals.tf_estimated_step_ms is not None and memory.tf_estimated_peak_bytes is not None
    assert not any("Grappler" in w for w in report.warnings)


def test_a_graph_over_protobufs_limit_is_one_line_tried_once(monkeypatch):
    """Simulated: the traced graph says it is 3 GiB serialised (protobuf refuses 2 GiB and more)."""
    from tensorflow.core.framework import graph_pb2

    import tfprofscale.profiling.graph.shape_graph as shape_graph_module

    sizes = []

    def checked(message, what):
        sizes.append(what)
        return real(FakeSize(message), what)

    class FakeSize:
        def __init__(self, message):
            assert isinstance(message, graph_pb2.GraphDef)

        def ByteSize(self):
            return 3 * 2**30

    real = shape_graph_module.check_protobuf_size
    monkeypatch.setattr(shape_graph_module, "check_protobuf_size", checked)
    report = quick_profile(dense_chain(), 1)
    memory = report.memory
    assert memory.missing == ("the traced graph is 3.00 GiB as a protobuf, over protobuf's 2 GiB limit on a "
                              "serialised message")
    (warning,) = [w for w in report.warnings if "Grappler" in w]
    assert memory.missing in warning and "\n" not in warning
    assert sizes == ["the traced graph"]                     # built once, its failure shared, never retried
    assert report.totals.step_time_ms.n >= 1 and report.totals.graph_flops > 0 and len(report.layers) == 4
    assert memory.estimated_peak_bytes > 0 and memory.measured_peak_bytes is None


def test_untrained_zero_biases_are_warned_about(chain_report):
    assert any(w.startswith("untrained weights: the biases of d1, d2, d3 are all zero") for w in chain_report.warnings)


def test_printed_report_has_a_memory_column_and_footer(chain_report):
    text = render(chain_report)
    assert "Memory" in text.splitlines()[2]
    memory = chain_report.memory
    assert f"in-step {binary_bytes(memory.measured_peak_bytes)}, at {memory.peak_layer}" in text
    assert "allocator (process-wide)" in text and "TensorFlow (Grappler, static)" in text


def fake_gpu_run_metadata() -> config_pb2.RunMetadata:
    """A step on a GPU: two kernels on GPU_0_bfc, a host copy on cuda_host_bfc, a constant."""
    run_metadata = config_pb2.RunMetadata()
    gpu = run_metadata.step_stats.dev_stats.add(device="/job:localhost/replica:0/task:0/device:GPU:0")
    weights = gpu.node_stats.add(node_name="m/conv/kernel", timeline_label="m/conv/kernel = Const()")
    weights.memory_stats.persistent_memory_size = 1_152
    weights.output.add(slot=0).tensor_description.allocation_description.allocator_name = "GPU_0_bfc"
    _node(gpu, "m/conv/Conv2D", "Conv2D", "GPU_0_bfc", [(10, 8_192), (11, 65_536), (20, -65_536), (40, -8_192)],
          outputs=[8_192])
    _node(gpu, "m/relu/Relu", "Relu", "GPU_0_bfc", [(21, 8_192), (50, -8_192)], outputs=[8_192])
    host = run_metadata.step_stats.dev_stats.add(device="/job:localhost/replica:0/task:0/device:CPU:0")
    _node(host, "m/relu/Relu/_copy", "_Send", "cuda_host_bfc", [(51, 8_192)], outputs=[8_192])
    return run_metadata


def _node(device, name, op_type, allocator, records, outputs):
    node = device.node_stats.add(node_name=name, timeline_label=f"{name} = {op_type}(x)")
    memory = node.memory.add(allocator_name=allocator)
    for micros, size in records:
        memory.allocation_records.add(alloc_micros=micros, alloc_bytes=size)
    for slot, size in enumerate(outputs):
        description = node.output.add(slot=slot).tensor_description.allocation_description
        description.allocator_name, description.requested_bytes = allocator, size


def test_gpu_allocator_records_are_parsed_per_memory_space():
    step = step_memory(fake_gpu_run_metadata())
    layers = {"m/conv": "conv", "m/relu": "relu"}
    record = MemoryRecord(input_bytes=0)
    measured = fill_record(record, step, lambda op: layers.get(op.rsplit("/", 1)[0].removesuffix("/Relu")), "GPU:0")
    # GPU: conv output 8,192 + scratch 65,536 = 73,728 at t=11; then relu 8,192 beside conv's 8,192 = 16,384
    assert record.measured_peak_bytes == 8_192 + 65_536 and record.peak_layer == "conv"
    assert record.space_peaks == {"host": 8_192, "device": 73_728}
    assert record.weights_bytes == 1_152
    assert record.measured_terms["workspace"] == 65_536 and record.measured_terms["activations"] == 8_192
    assert measured.layer_bytes == {"conv": 8_192 + 65_536, "relu": 8_192}    # the host copy is not the GPU's


def test_memory_trace_runs_a_bfc_allocator_child_into_its_own_run(cnn_file, tmp_path):
    import json

    from xprof.convert import raw_to_tool_data

    report = tfprofscale.profile(str(cnn_file), batch_size=1, steps=1, warmup=1, trace_steps=1,
                                 logdir=str(tmp_path), memory_trace=True)
    folder = report.memory.memory_trace
    assert folder.startswith(str(tmp_path / "two_layer_cnn-b1-memory"))
    files = [str(path) for path in Path(folder).glob("*.xplane.pb")]
    data, _ = raw_to_tool_data.xspace_to_tool_data(files, "memory_profile", {})
    allocators = json.loads(data)["memoryProfilePerAllocator"]
    assert any("bfc" in name for name in allocators)        # every allocation went through the BFC allocator


def test_memory_trace_needs_a_model_file(tmp_path):
    report = tfprofscale.profile(dense_chain(), batch_size=1, steps=1, warmup=1, trace_steps=1, memory_trace=True,
                                 logdir=str(tmp_path))
    assert report.memory.memory_trace.startswith("not run: --memory-trace rebuilds the model")
