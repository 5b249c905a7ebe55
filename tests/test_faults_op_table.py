"""The per-op table (what xprof's op-stats view would show offline): numbers worked out by hand."""
from __future__ import annotations

from tfprofscale.records import OpRow
from tfprofscale.report.op_table import kernel_flops, render_ops, timed_ops
from tfprofscale.records import Report, Totals
from tfprofscale.records import StepTimes


def report_with_ops() -> Report:
    steps = StepTimes(median=1.0, p10=1.0, p90=1.0, min=1.0, cv=0.0, n=1)
    totals = Totals(params=0, analytic_flops=None, analytic_macs=None, graph_flops=0, activation_bytes=0,
                    analytic_memory_bytes=0, peak_bytes=None, resident_bytes=None, step_time_ms=steps)
    ops = [
        # Conv2D (1,000,000 FLOPs) + BiasAdd (10,000) ran as one fused kernel named after the Relu (uncounted)
        OpRow("m/conv/Conv2D", "Conv2D", "conv", 1_000_000, None, None, fused_into="m/conv/Relu"),
        OpRow("m/conv/BiasAdd", "BiasAdd", "conv", 10_000, None, None, fused_into="m/conv/Relu"),
        OpRow("m/conv/Relu", "Relu", "conv", None, 300.0, 1.0, kernel="_MklNativeFusedConv2D",
              fused_ops=["m/conv/Conv2D", "m/conv/BiasAdd"]),
        OpRow("m/d/MatMul", "MatMul", "d", 200_000, 100.0, 1.0, kernel="_MklMatMul"),
        OpRow("m/d/Softmax", "Softmax", "d", None, 100.0, 1.0, kernel="Softmax"),
        OpRow("m/never", "Mul", "d", 5, None, None),  # no time: not a kernel that ran
    ]
    return Report(model="m", params={}, batch_size=1, tensorflow="2.21", device="CPU:0", totals=totals,
                  layers=[], ops=ops)


def test_kernels_are_ranked_by_time_with_their_fused_flops():
    report = report_with_ops()
    assert [op.name for op in timed_ops(report)] == ["m/conv/Relu", "m/d/MatMul", "m/d/Softmax"]
    relu = timed_ops(report)[0]
    assert kernel_flops(relu, report) == 1_000_000 + 10_000
    assert kernel_flops(timed_ops(report)[2], report) is None


def test_render_ops_shows_share_and_rate():
    text = render_ops(report_with_ops(), top=2)
    lines = text.splitlines()
    assert lines[0] == "Top 2 of 3 kernels by time per step (Share: of the 500.0 us/step all kernels took)"
    fused = next(line for line in lines if line.startswith("m/conv/Relu"))
    # 1,010,000 FLOPs in 300 us: 1.01e6 / (300 * 1e3) = 3.37 GFLOP/s; 300 / 500 = 60.0%
    assert "Conv2D, BiasAdd" in fused and "1.01M" in fused and "300.0" in fused and "60.0%" in fused
    assert fused.rstrip().endswith("3.37")
    assert not any(line.startswith("m/d/Softmax") for line in lines)  # only the top 2
    assert "  _MklNativeFusedConv2D" in text and "300.0 us/step (60.0%)" in text
    assert "  Softmax" in text and "100.0 us/step (20.0%)" in text


def test_render_ops_without_a_trace():
    report = report_with_ops()
    report.ops = [op for op in report.ops if op.time_us is None]
    assert render_ops(report, 5).startswith("Ops: no profiler trace")
