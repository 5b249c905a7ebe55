"""The roofline of hand-built kernels, and the cached machine peaks.

The model is conftest's 2-layer CNN at batch 2: 10x10x1 input, Conv2D 8
filters 3x3 VALID + ReLU -> 8x8x8, MaxPool 2 -> 4x4x8, Flatten, Dense 3.
Peaks are injected: nothing here depends on this machine's speed.
"""
from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta, timezone

import pytest

from tfprofscale.audit import roofline
from tfprofscale.profiling.runtime import machine_peaks
from tfprofscale.records import OpRow
from tfprofscale.records import LayerRow, Report, Totals
from tfprofscale.audit.roofline import layer_bytes_moved, layer_features, roofline_ops
from tfprofscale.profiling.runtime.machine_peaks import MachinePeaks, MachineTraits
from tfprofscale.errors import InputError
from tfprofscale.records import StepTimes
from tfprofscale.profiling.runtime.timing import current_threads

BATCH = 2
CONV_FLOPS = 2 * (BATCH * 8 * 8 * 8) * (3 * 3 * 1)   # Conv2D: 2 * outputs * Kh*Kw*Cin = 18432
CONV_BIAS_FLOPS = BATCH * 8 * 8 * 8                  # BiasAdd: one per output = 1024
CONV_PARAMS = 3 * 3 * 1 * 8 + 8                      # 80
POOL_FLOPS = (2 * 2) * (BATCH * 4 * 4 * 8)           # window area * outputs = 1024


def conv_row(**changes) -> LayerRow:
    row = LayerRow(name="conv", type="Conv2D", output_shape=[BATCH, 8, 8, 8], params=CONV_PARAMS,
                   analytic_flops=CONV_FLOPS + 2 * CONV_BIAS_FLOPS, analytic_macs=CONV_FLOPS // 2,  # + 1 per ReLU
                   graph_flops=CONV_FLOPS + CONV_BIAS_FLOPS, activation_bytes=BATCH * 8 * 8 * 8 * 4,
                   time_us=None, achieved_gflops=None,
                   geometry={"batch": BATCH, "in_h": 10, "in_w": 10, "in_channels": 1,
                             "out_h": 8, "out_w": 8, "out_channels": 8})
    return _replace(row, changes)


def pool_row(**changes) -> LayerRow:
    row = LayerRow(name="pool", type="MaxPooling2D", output_shape=[BATCH, 4, 4, 8], params=0,
                   analytic_flops=POOL_FLOPS, analytic_macs=0, graph_flops=POOL_FLOPS,
                   activation_bytes=BATCH * 4 * 4 * 8 * 4, time_us=None, achieved_gflops=None,
                   geometry={"batch": BATCH, "in_h": 8, "in_w": 8, "channels": 8, "out_h": 4, "out_w": 4})
    return _replace(row, changes)


def input_row(**changes) -> LayerRow:
    row = LayerRow(name="image", type="InputLayer", output_shape=[BATCH, 10, 10, 1], params=0,
                   analytic_flops=0, analytic_macs=0, graph_flops=0, activation_bytes=BATCH * 100 * 4,
                   time_us=0.0, achieved_gflops=None)
    return _replace(row, changes)


def dense_row(**changes) -> LayerRow:
    row = LayerRow(name="logits", type="Dense", output_shape=[BATCH, 3], params=128 * 3 + 3,
                   analytic_flops=2 * BATCH * 128 * 3 + BATCH * 3, analytic_macs=BATCH * 128 * 3,
                   graph_flops=2 * BATCH * 128 * 3 + BATCH * 3, activation_bytes=BATCH * 3 * 4,
                   time_us=None, achieved_gflops=None,
                   geometry={"rows": BATCH, "in_features": 128, "out_features": 3})
    return _replace(row, changes)


def _replace(row: LayerRow, changes: dict) -> LayerRow:
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def make_report(layers: list[LayerRow], ops: list[OpRow], median_ms: float = 1.0) -> Report:
    """A Report with only what the latency and roofline code read filled in with meaning."""
    step = StepTimes(median=median_ms, p10=median_ms, p90=median_ms, min=median_ms, cv=0.0, n=30)
    totals = Totals(params=sum(r.params for r in layers), analytic_flops=None, analytic_macs=None,
                    graph_flops=sum(r.graph_flops or 0 for r in layers),
                    activation_bytes=sum(r.activation_bytes for r in layers), analytic_memory_bytes=0,
                    peak_bytes=None, resident_bytes=None, step_time_ms=step)
    return Report(model="hand_built", params={}, batch_size=BATCH, tensorflow="test", device="CPU:0",
                  totals=totals, layers=layers, ops=ops)


def fused_conv_ops(time_us: float) -> list[OpRow]:
    kernel = "conv/Relu"
    return [
        OpRow("conv/ReadVariableOp", "ReadVariableOp", "conv", None, 0.3, 1.0, "ReadVariableOp"),
        OpRow("conv/convolution", "Conv2D", "conv", CONV_FLOPS, None, None, fused_into=kernel),
        OpRow("conv/BiasAdd", "BiasAdd", "conv", CONV_BIAS_FLOPS, None, None, fused_into=kernel),
        OpRow(kernel, "Relu", "conv", None, time_us, 1.0, "_MklNativeFusedConv2D",
              fused_ops=["conv/convolution", "conv/BiasAdd"]),
    ]


def test_bytes_moved_are_input_plus_parameters_plus_output():
    # conv: input 2*10*10*1 = 200 floats, weights 80 floats, output 2*8*8*8 = 1024 floats
    assert layer_bytes_moved(conv_row()) == (200 + 80 + 1024) * 4
    # pool: input 2*8*8*8 = 1024 floats, output 2*4*4*8 = 256 floats
    assert layer_bytes_moved(pool_row()) == (1024 + 256) * 4
    # dense: input 2 rows * 128, weights 387, output 2*3
    assert layer_bytes_moved(dense_row()) == (256 + 387 + 6) * 4
    assert layer_bytes_moved(input_row()) is None  # no geometry: no input size, no estimate


def test_layer_features_by_hand():
    # conv of conftest's CNN at batch 2: 8 filters, 19456 graph FLOPs, moves (200 + 80 + 1024) * 4 = 5216 bytes
    small_caches = MachineTraits(vector_floats=16, l2_bytes=4096, l3_bytes=8192)
    work = layer_features(conv_row(), small_caches)
    assert work["flops"] == 19456
    assert work["blocked_flops"] == 19456 * 16 / 8  # 8 channels computed as one block of 16
    assert work["bytes_moved"] == 5216
    assert (work["bytes_beyond_l2"], work["bytes_beyond_l3"]) == (5216 - 4096, 0)
    assert work["output_elements"] == 2 * 8 * 8 * 8 and work["output_positions"] == 2 * 8 * 8
    assert layer_features(conv_row(), MachineTraits(8, None, None))["blocked_flops"] == 19456
    assert layer_features(conv_row(), MachineTraits(16, None, None))["bytes_beyond_l2"] == 0


def test_fused_kernel_counts_its_absorbed_ops_and_is_compute_bound():
    peaks = MachinePeaks(flops_per_s=1e9, bytes_per_s=1e9, host="h", tensorflow="t")
    (bound,) = roofline_ops(make_report([conv_row()], fused_conv_ops(time_us=40.0)), peaks)
    assert bound.name == "conv/Relu" and bound.kernel == "_MklNativeFusedConv2D"
    assert bound.flops == 18432 + 1024
    assert bound.bytes_moved == (200 + 80 + 1024) * 4  # 5216
    assert bound.arithmetic_intensity == pytest.approx(19456 / 5216)
    # 19456 FLOPs at 1 GFLOP/s = 19.456 us > 5216 B at 1 GB/s = 5.216 us
    assert bound.roofline_time_us == pytest.approx(19.456) and bound.bound == "compute"
    assert bound.share_of_bound == pytest.approx(19.456 / 40.0)
    assert not bound.flagged


def test_a_kernel_well_faster_than_its_memory_bound_is_flagged():
    peaks = MachinePeaks(flops_per_s=1e12, bytes_per_s=1e9, host="h", tensorflow="t")
    pool = OpRow("pool/MaxPool", "MaxPool", "pool", POOL_FLOPS, 2.0, 1.0, "_MklNativeMaxPool")
    (bound,) = roofline_ops(make_report([pool_row()], [pool]), peaks)
    # (1024 + 256) floats * 4 B = 5120 B at 1 GB/s = 5.12 us; 1024 FLOPs at 1 TFLOP/s = 0.001 us
    assert bound.bound == "memory" and bound.roofline_time_us == pytest.approx(5.12)
    assert bound.flagged and bound.measured_us == 2.0  # 2.56x faster than allowed
    assert any("FLAGGED" in line and "2.6x" in line for line in bound.lines())
    flagged = bound.lines()[1]
    assert "2.0 us measured, 5.1 us at the peak" in flagged and roofline.FASTER_THAN_PEAK in flagged
    assert json.loads(json.dumps(bound.to_dict()))["flagged"] is True


def test_beating_a_measured_peak_by_less_than_the_margin_is_not_flagged():
    peaks = MachinePeaks(flops_per_s=1e12, bytes_per_s=1e9, host="h", tensorflow="t")
    pool = OpRow("pool/MaxPool", "MaxPool", "pool", POOL_FLOPS, 4.0, 1.0, "_MklNativeMaxPool")
    (bound,) = roofline_ops(make_report([pool_row()], [pool]), peaks)
    assert bound.share_of_bound == pytest.approx(5.12 / 4.0)  # 1.28 < FLAG_MARGIN = 1.5
    assert not bound.flagged


def test_only_the_bytes_beyond_the_cache_are_bounded_by_memory():
    pool = OpRow("pool/MaxPool", "MaxPool", "pool", POOL_FLOPS, 2.0, 1.0, "_MklNativeMaxPool")
    partly_cached = MachinePeaks(1e12, 1e9, "h", "t", cache_bytes=4096)
    (bound,) = roofline_ops(make_report([pool_row()], [pool]), partly_cached)
    # 5120 B moved, at most 4096 B from cache: 1024 B at 1 GB/s = 1.024 us < 2 us measured
    assert bound.roofline_time_us == pytest.approx(1.024) and bound.bound == "memory" and not bound.flagged
    assert bound.arithmetic_intensity == pytest.approx(1024 / 5120)  # still FLOPs over all bytes moved
    all_cached = MachinePeaks(1e12, 1e9, "h", "t", cache_bytes=8192)
    (bound,) = roofline_ops(make_report([pool_row()], [pool]), all_cached)
    assert bound.bound == "compute" and bound.roofline_time_us == pytest.approx(1024 / 1e12 * 1e6)


def test_a_layer_with_two_kernels_gets_no_bytes_and_only_the_compute_bound():
    peaks = MachinePeaks(flops_per_s=1e9, bytes_per_s=1.0, host="h", tensorflow="t")
    ops = [OpRow("conv/Conv2D", "Conv2D", "conv", CONV_FLOPS, 30.0, 1.0, "_MklNativeConv2D"),
           OpRow("conv/BiasAdd", "BiasAdd", "conv", CONV_BIAS_FLOPS, 5.0, 1.0, "BiasAdd")]
    bounds = roofline_ops(make_report([conv_row()], ops), peaks)
    assert [b.bytes_moved for b in bounds] == [None, None]
    assert [b.roofline_time_us for b in bounds] == pytest.approx([18.432, 1.024])


def test_ops_without_flops_or_that_never_ran_are_left_out():
    peaks = MachinePeaks(flops_per_s=1e9, bytes_per_s=1e9, host="h", tensorflow="t")
    ops = fused_conv_ops(time_us=40.0) + [OpRow("pool/MaxPool", "MaxPool", "pool", POOL_FLOPS, 0.0, 0.0)]
    names = [b.name for b in roofline_ops(make_report([conv_row(), pool_row()], ops), peaks)]
    assert names == ["conv/Relu"]


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "tfprofscale" / "machine.json"


def injected(flops_per_s: float, age: timedelta = timedelta(0), load: float = 0.0):
    """Peaks as measure_peaks would record them here and now (``age`` ago, under ``load``)."""
    import tensorflow as tf

    measured_at = (datetime.now(timezone.utc) - age).isoformat(timespec="seconds")
    return MachinePeaks(flops_per_s, 2e9, socket.gethostname(), tf.__version__, method=machine_peaks.PEAK_METHOD,
                        measured_at=measured_at, threads=current_threads().to_dict(), load_start=load,
                        load_end=load)


def write_cache(path, peaks: MachinePeaks, **changes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(peaks.to_dict() | changes))


def test_peaks_are_measured_once_then_read_from_the_cache(cache_home, monkeypatch):
    calls = []
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: calls.append(1) or injected(5e9))
    assert machine_peaks.machine_peaks().flops_per_s == 5e9
    assert json.loads(cache_home.read_text())["flops_per_s"] == 5e9
    assert machine_peaks.machine_peaks().flops_per_s == 5e9
    assert len(calls) == 1
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: injected(7e9))
    assert machine_peaks.machine_peaks(refresh=True).flops_per_s == 7e9


def test_a_cache_from_another_tensorflow_is_measured_again(cache_home, monkeypatch):
    write_cache(cache_home, injected(1e9), tensorflow="1.0.0")
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: injected(3e9))
    assert machine_peaks.machine_peaks().flops_per_s == 3e9


@pytest.mark.parametrize("changes, reason", [
    ({"host": "another-host"}, "another host"),
    ({"threads": {"intra_op": 7, "inter_op": 3, "cpus": 64}}, "other thread settings"),
    ({"measured_at": ""}, "no measurement date"),
])
def test_a_cache_from_other_conditions_is_measured_again(cache_home, monkeypatch, changes, reason):
    write_cache(cache_home, injected(1e9), **changes)
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: injected(6e9))
    cached = MachinePeaks(**json.loads(cache_home.read_text()))
    assert reason in machine_peaks.stale_reason(cached, machine_peaks._conditions())
    assert machine_peaks.fresh_cached_peaks() is None
    assert machine_peaks.machine_peaks().flops_per_s == 6e9


def test_a_cache_older_than_a_day_is_measured_again(cache_home, monkeypatch):
    write_cache(cache_home, injected(1e9, age=timedelta(days=1, minutes=1)))
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: injected(8e9))
    assert machine_peaks.machine_peaks().flops_per_s == 8e9
    assert json.loads(cache_home.read_text())["flops_per_s"] == 8e9


def test_a_cache_younger_than_a_day_is_kept(cache_home, monkeypatch):
    write_cache(cache_home, injected(1e9, age=timedelta(hours=23)))
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: pytest.fail("measured although the cache is fresh"))
    assert machine_peaks.machine_peaks().flops_per_s == 1e9
    assert machine_peaks.fresh_cached_peaks().flops_per_s == 1e9


def test_a_cache_measured_under_load_is_measured_again(cache_home, monkeypatch):
    cpus = current_threads().cpus
    busy = machine_peaks.HIGH_LOAD_PER_CPU * cpus + 0.5       # just over the limit for this machine's CPUs
    write_cache(cache_home, injected(1e9, load=busy))
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: injected(9e9))
    assert "under load" in machine_peaks.stale_reason(MachinePeaks(**json.loads(cache_home.read_text())),
                                                  machine_peaks._conditions())
    assert machine_peaks.machine_peaks().flops_per_s == 9e9


def test_audit_remeasure_measures_again_although_the_cache_is_fresh(cache_home, monkeypatch, tmp_path):
    from tfprofscale.cli import main

    write_cache(cache_home, injected(1e9))
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: injected(2e9))
    seen = []

    def audit_path(path):
        seen.append(machine_peaks.machine_peaks().flops_per_s)
        raise InputError("stop after the peaks")

    monkeypatch.setattr("tfprofscale.audit.analysis.audit_path", audit_path)
    assert main(["audit", str(tmp_path), "--remeasure"]) == 2
    assert seen == [2e9]
    assert json.loads(cache_home.read_text())["flops_per_s"] == 2e9


def test_a_cache_measured_another_way_is_measured_again(cache_home, monkeypatch):
    write_cache(cache_home, injected(1e9), method="x + 1 copy, best of 5")
    monkeypatch.setattr(machine_peaks, "measure_peaks", lambda: injected(4e9))
    assert machine_peaks.machine_peaks().flops_per_s == 4e9
    assert json.loads(cache_home.read_text())["flops_per_s"] == 4e9


def test_measuring_small_peaks_gives_positive_speeds(monkeypatch):
    monkeypatch.setattr(machine_peaks, "MATMUL_SIDE", 128)
    monkeypatch.setattr(machine_peaks, "STREAM_ELEMENTS", 1 << 16)
    peaks = machine_peaks.measure_peaks(repeats=2)
    assert peaks.flops_per_s > 0 and peaks.bytes_per_s > 0
    assert peaks.host == socket.gethostname()
    assert "GFLOP/s" in peaks.lines()[0]


def test_a_kernel_whose_data_fits_in_the_cache_is_bound_by_the_cache_read_speed():
    # The pool moves 5,120 B, all within a 8,192 B cache. Read from cache at 2 GB/s: 2.56 us, above its compute
    # time 1,024 FLOPs / 1e12 = 0.001 us: cache-resident, bound 2.56 us; measured 2 us is 1.28x faster: no flag.
    pool = OpRow("pool/MaxPool", "MaxPool", "pool", POOL_FLOPS, 2.0, 1.0, "_MklNativeMaxPool")
    peaks = MachinePeaks(1e12, 1e9, "h", "t", cache_bytes=8192, cache_bytes_per_s=2e9)
    (bound,) = roofline_ops(make_report([pool_row()], [pool]), peaks)
    assert bound.bound == "cache-resident" and bound.roofline_time_us == pytest.approx(2.56)
    assert not bound.flagged
    # A cache measured slower than streaming (a busy machine) is taken at the streaming speed: a lower bound.
    slow = MachinePeaks(1e12, 1e9, "h", "t", cache_bytes=8192, cache_bytes_per_s=1e8)
    (bound,) = roofline_ops(make_report([pool_row()], [pool]), slow)
    assert bound.roofline_time_us == pytest.approx(5.12) and bound.bound == "cache-resident"


def test_a_kernel_measured_at_zero_is_not_judged_and_prints():
    # A loop or call op whose self time is 0 us after its body's kernels are subtracted: no share, no flag, and
    # its text line formats (a None share once crashed the audit of a recurrent model).
    pool = OpRow("pool/MaxPool", "MaxPool", "pool", POOL_FLOPS, 0.0, 1.0, "_MklNativeMaxPool")
    (bound,) = roofline_ops(make_report([pool_row()], [pool]), MachinePeaks(1e12, 1e9, "h", "t"))
    assert bound.share_of_bound is None and not bound.flagged
    assert len(bound.lines()) == 1 and "measured 0.0 us" in bound.lines()[0]


def test_a_loop_body_kernel_is_held_to_the_flops_of_the_runs_traced():
    # A body MatMul counted over 120 iterations (120 x 1,000 = 120,000 FLOPs) of which the trace recorded 30 runs
    # per step in 12 us: the bound covers 30 x 1,000 = 30,000 FLOPs, 30 us at 1 GFLOP/s.
    body = OpRow("m/lstm/while/MatMul", "MatMul", "lstm", 120_000, 12.0, 30.0, "_MklMatMul", executions=120)
    (bound,) = roofline_ops(make_report([], [body]), MachinePeaks(1e9, 1e9, "h", "t"))
    assert bound.flops == 30_000 and bound.roofline_time_us == pytest.approx(30.0)
