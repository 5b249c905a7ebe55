"""The live-bytes timeline kept for the HTML page, and the training ledger's accepted shapes (no browser)."""
from __future__ import annotations

from tfprofscale.profiling.memory.live_timeline import live_timeline
from tfprofscale.profiling.memory.step_memory import Allocation, running_peak
from tfprofscale.records import LiveStep
from tfprofscale.report.html.memory_charts import ledger_sources


def alloc(micros, size, op, tensor=""):
    return Allocation(micros, size, op, tensor or f"{op}:0", "cpu", "CPU:0")


def test_one_point_per_run_of_an_op_holding_its_highest_running_sum():
    records = [alloc(1, 100, "a"), alloc(2, 50, "a"), alloc(3, -100, "a"), alloc(4, 30, "b"),
               alloc(5, -50, "b"), alloc(5, 10, "c")]
    # Read by time, allocations before frees at equal times: a +100 -> 100, a +50 -> 150, a -100 -> 50 (a's
    # highest: 150); b +30 -> 80; c +10 (t=5, an allocation) -> 90; then b -50 (t=5, a free) -> 40.
    timeline = live_timeline(records, lambda op: {"a": "layer_a"}.get(op))
    assert timeline == [LiveStep("a", "layer_a", 150), LiveStep("b", None, 80), LiveStep("c", None, 90),
                        LiveStep("b", None, 40)]
    assert max(step.live_bytes for step in timeline) == running_peak(records).peak_bytes == 150


def test_a_long_timeline_keeps_the_largest_point_of_each_bucket():
    # Ten ops, op i allocating i+1 bytes and op 4 a spike of 100: running sums 1, 3, 6, 10, 110, 116, 123,
    # 131, 140, 150. Three points at most: buckets of ceil(10 / 3) = 4 ops -> maxima 10, 131, 150.
    records = [alloc(i, 100 if i == 4 else i + 1, f"op{i}") for i in range(10)]
    timeline = live_timeline(records, lambda op: None, max_points=3)
    assert [(s.op, s.live_bytes) for s in timeline] == [("op3", 10), ("op7", 131), ("op9", 150)]


def test_ledger_shapes_all_become_source_term_bytes():
    expected = {"estimated": {"weights": 40, "gradients": 40}, "measured": {"weights": 44}}
    assert ledger_sources({"weights": {"estimated": 40, "measured": 44}, "gradients": {"estimated": 40}}) == expected
    assert ledger_sources(expected) == expected
    assert ledger_sources([{"term": "weights", "estimated": 40, "measured": 44},
                           {"term": "gradients", "estimated": 40, "measured": None}]) == expected
    assert ledger_sources({"weights": 40, "gradients": 40}) == {"estimated": {"weights": 40, "gradients": 40}}
    assert ledger_sources(None) == {}
    as_dict = {"lines": [{"term": "weights", "estimated_bytes": 40, "measured_bytes": 44, "note": ""},
                         {"term": "gradients", "estimated_bytes": 40, "measured_bytes": None, "note": "n/a"}],
               "total_estimated_bytes": 80, "total_measured_bytes": 90}  # Ledger.as_dict()
    assert ledger_sources(as_dict) == expected


def test_fill_record_keeps_the_device_timeline_of_a_gpu_step():
    from tests.test_memory import fake_gpu_run_metadata
    from tfprofscale.profiling.memory.measure import fill_record
    from tfprofscale.profiling.memory.step_memory import step_memory
    from tfprofscale.records import MemoryRecord

    record = MemoryRecord(input_bytes=0)
    layers = {"m/conv/Conv2D": "conv", "m/relu/Relu": "relu"}
    fill_record(record, step_memory(fake_gpu_run_metadata()), layers.get, "GPU:0")
    # GPU_0_bfc by time: conv +8,192 (t10) +65,536 (t11) -65,536 (t20) -> highest 73,728; relu +8,192 (t21)
    # -> 16,384; conv frees its output (t40) -> 8,192; relu frees (t50) -> 0. The host copy is another space.
    assert [(s.op, s.layer, s.live_bytes) for s in record.live_timeline] == [
        ("m/conv/Conv2D", "conv", 73_728), ("m/relu/Relu", "relu", 16_384), ("m/conv/Conv2D", "conv", 8_192),
        ("m/relu/Relu", "relu", 0)]
