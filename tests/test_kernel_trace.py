"""Busy time, self times and concurrency of synthetic traces whose true answers are worked out by hand."""
from __future__ import annotations

import pytest

from tfprofscale.profiling.runtime import kernel_trace
from tfprofscale.records import OpRow
from tfprofscale.profiling.runtime.kernel_trace import per_step, self_times, summarize, union_length
from tfprofscale.records import LayerRow
from tfprofscale.records import KernelTime
from tfprofscale.profiling.runtime.shares import apply_step_medians, unattributed_time_us

PID = 701


def step(number: int, start: float, duration: float) -> dict:
    return {"ph": "X", "pid": PID, "tid": 1, "name": f"infer {number}", "ts": start, "dur": duration,
            "args": {"step_num": str(number), "group_id": str(number)}}


def kernel(name: str, kind: str, start: float, duration: float, tid: int = 2) -> dict:
    return {"ph": "X", "pid": PID, "tid": tid, "name": kind, "ts": start, "dur": duration,
            "args": {"long_name": f"{name}:{kind}", "group_id": "0"}}


def region(start: float, duration: float, tid: int = 3) -> dict:
    """An Eigen thread-pool region: intra-op work, not a kernel of its own."""
    return {"ph": "X", "pid": PID, "tid": tid, "name": "ThreadpoolListener::Region", "ts": start, "dur": duration}


def test_union_counts_overlaps_once_and_skips_gaps():
    # [0,10] and [5,15] overlap on [5,10]: union 15; [20,25] after a gap: +5; [21,22] inside it: +0
    assert union_length([(0, 10), (5, 15), (20, 25), (21, 22)]) == 20


def test_two_concurrent_kernels_count_once_in_busy_time():
    # One 100 us step. conv on thread 2 runs [10, 60], pool on thread 4 runs [40, 80]: they overlap on
    # [40, 60]. Busy = union = [10, 80] = 70 us; self times 50 + 40 = 90 us; concurrency 90 / 70.
    events = [step(0, 0, 100), kernel("m/conv/Relu", "_FusedConv2D", 10, 50),
              kernel("m/pool/MaxPool", "MaxPool", 40, 40, tid=4), region(12, 30)]
    (only,) = per_step(events)
    assert only.busy_us == 70 and only.kernel_us == 90 and only.step_us == 100
    summary = summarize([only])
    assert summary.coverage == pytest.approx(70 / 100)
    assert summary.concurrency == pytest.approx(90 / 70)


def test_nested_kernels_on_one_thread_split_their_time():
    # A call op [0, 50] on thread 2 holds two kernels on the same thread, [5, 15] and [20, 40]:
    # its self time is 50 - 10 - 20 = 20; busy = 50 (all inside the call); sum of self times = 50.
    events = [step(0, 0, 60), kernel("m/block/call", "SomeOp", 0, 50),
              kernel("m/block/a", "MatMul", 5, 10), kernel("m/block/b", "Relu", 20, 20)]
    (only,) = per_step(events)
    assert only.self_us == {"m/block/call": 20, "m/block/a": 10, "m/block/b": 20}
    assert only.busy_us == 50 and only.kernel_us == 50


def test_a_function_call_loses_its_body_run_on_other_threads():
    # StatefulPartitionedCall [0, 100] on thread 2; its body runs on threads 5 and 6: [10, 40] and
    # [30, 70], union [10, 70] = 60. The call's own time is 100 - 60 = 40; busy is the call's 100.
    events = [step(0, 0, 120), kernel("m/g/call", "StatefulPartitionedCall", 0, 100),
              kernel("m/g/body/a", "Conv2D", 10, 30, tid=5), kernel("m/g/body/b", "Conv2D", 30, 40, tid=6)]
    (only,) = per_step(events)
    assert only.self_us["m/g/call"] == 40
    assert only.busy_us == 100 and only.kernel_us == 40 + 30 + 40


def test_kernels_are_assigned_to_the_step_they_start_in_and_clipped_to_it():
    # Step 0 [0, 100], step 1 [150, 250]. A kernel [90, 110] starts in step 0: busy there counts [90, 100].
    # A kernel [120, 130] falls in the gap between the steps: it belongs to no step.
    events = [step(1, 150, 100), step(0, 0, 100),
              kernel("k", "Add", 90, 20), kernel("gap", "Add", 120, 10), kernel("k", "Add", 160, 30)]
    first, second = per_step(events)
    assert first.busy_us == 10 and first.self_us == {"k": 20}
    assert second.busy_us == 30 and second.self_us == {"k": 30}
    assert all("gap" not in s.self_us for s in (first, second))


def test_self_times_of_disjoint_kernels_are_their_durations():
    events = kernel_trace.kernel_events([kernel("a", "Add", 0, 5), kernel("b", "Mul", 10, 7)])
    assert self_times(events) == [5, 7]


def test_gpu_kernels_come_from_the_device_process():
    meta = {"ph": "M", "pid": 9, "name": "process_name", "args": {"name": "/device:GPU:0"}}
    gpu = {"ph": "X", "pid": 9, "tid": 1, "name": "volta_sgemm", "ts": 5, "dur": 20,
           "args": {"tf_op": "m/dense/MatMul:MatMul"}}
    host = kernel("m/dense/MatMul", "MatMul", 0, 40)
    (on_gpu,) = kernel_trace.kernel_events([meta, gpu, host], on_device=True)
    assert (on_gpu.name, on_gpu.kernel_type, on_gpu.duration_us) == ("m/dense/MatMul", "MatMul", 20)
    (on_host,) = kernel_trace.kernel_events([meta, gpu, host], on_device=False)
    assert on_host.duration_us == 40


def row(name: str, ops: list[str], flops: int | None = None) -> LayerRow:
    return LayerRow(name=name, type="Conv2D", output_shape=[1], params=0, analytic_flops=flops, analytic_macs=None,
                    graph_flops=flops, activation_bytes=0, time_us=None, achieved_gflops=None, ops=ops, timed_ops=ops)


def test_layer_time_is_the_median_of_per_step_sums_not_of_a_mean():
    # Three steps. conv's two kernels: a = 10, 10, 100 (one slow step), b = 5, 6, 7.
    # Per-step sums 15, 16, 107: median 16 (the mean, 46, would be ruled by the slow step).
    # pool: 30, 20, 20: median 20. Shares against the same statistic: 16 / (16 + 20 + 4 unattributed) = 0.4,
    # 20 / 40 = 0.5. All kernels per step: 45, 36, 127: median 45, which is not 16 + 20 (+ a kernel in
    # no layer that takes 4 us in every step): 40.
    kernels = [KernelTime("a", "Conv2D", 10.0, 1.0, (10.0, 10.0, 100.0)),
               KernelTime("b", "BiasAdd", 6.0, 1.0, (5.0, 6.0, 7.0)),
               KernelTime("p", "MaxPool", 20.0, 1.0, (30.0, 20.0, 20.0))]
    steps = [kernel_trace.StepKernels(100.0, 45.0, {"a": 10, "b": 5, "p": 30}),
             kernel_trace.StepKernels(100.0, 36.0, {"a": 10, "b": 6, "p": 20}),
             kernel_trace.StepKernels(200.0, 127.0, {"a": 100, "b": 7, "p": 20})]
    assert summarize(steps).kernel_us == 45
    conv, pool = row("conv", ["a", "b"], flops=32_000), row("pool", ["p"])
    apply_step_medians([conv, pool], kernels, unattributed_us=4.0)
    assert conv.time_us == 16 and pool.time_us == 20
    assert conv.time_share == pytest.approx(0.4) and pool.time_share == pytest.approx(0.5)
    assert conv.achieved_gflops == pytest.approx(32_000 / (16 * 1e3))   # FLOPs / (us * 1e3) = GFLOP/s


def test_unattributed_time_is_the_median_of_the_kernels_without_a_layer():
    kernels = [KernelTime("x", "Cast", 2.0, 1.0, (1.0, 2.0, 9.0)), KernelTime("y", "Add", 1.0, 1.0, (1.0, 1.0, 1.0))]
    ops = [OpRow("x", "Cast", None, None, 2.0, 1.0), OpRow("y", "Add", "conv", None, 1.0, 1.0)]
    assert unattributed_time_us(ops, kernels) == 2.0
