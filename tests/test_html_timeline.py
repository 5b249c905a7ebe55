"""The live-bytes timeline kept for the HTML page, and the training ledger's accepted shapes (no browser)."""
from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("top, texts, unit_bytes", [
    (7.02 * 2**20, ["0 MiB", "2 MiB", "4 MiB", "6 MiB", "8 MiB"], 2**20),  # 7.02 / 1 > 6 ticks, 7.02 / 2 = 3.5
    (500, ["0 B", "100 B", "200 B", "300 B", "400 B", "500 B", "600 B"], 1),  # 500 / 50 = 10 > 6, 500 / 100 = 5
    (3 * 2**30, ["0 GiB", "1 GiB", "2 GiB", "3 GiB", "4 GiB"], 2**30),
    (40 * 2**10, ["0 KiB", "10 KiB", "20 KiB", "30 KiB", "40 KiB", "50 KiB"], 2**10),  # 40 / 5 = 8 > 6, 40 / 10 = 4
])
def test_bytes_axes_tick_at_round_binary_sizes(top, texts, unit_bytes):
    # The pages write sizes in KiB / MiB / GiB: the axes must too (plotly's own "2M" would mean 2,000,000).
    from tfprofscale.report.html.charts import bytes_axis

    axis = bytes_axis("bytes", top)
    assert axis["ticktext"] == texts
    assert axis["tickvals"] == [int(text.split()[0]) * unit_bytes for text in texts]
    assert axis["tickvals"][-1] >= top and axis["rangemode"] == "tozero"
