"""Shares with nested layers: leaves (and parents' own ops) add to 100%; a parent is the sum of its children.

Also: the warning when kernels cover less than half of a step of more than a few ms, and the While
loop's span read from synthetic trace events whose answer is worked out by hand.
"""
from __future__ import annotations

import keras
import pytest

import tfprofscale
from tfprofscale.records import LayerRow, OpRow, StepTimes, Totals
from tfprofscale.profiling.graph.graph_stats import GraphOp, GraphStats
from tfprofscale.profiling.runtime.kernel_trace import per_step
from tfprofscale.profiling.runtime.measurement_checks import low_kernel_coverage
from tfprofscale.profiling.runtime.nested_kernels import loop_events
from tfprofscale.profiling.runtime.shares import roll_up_nested_times

L = keras.layers


def row(name: str, own_us: float | None, parent: str | None = None, depth: int = 0) -> LayerRow:
    return LayerRow(name=name, type="Dense", output_shape=[1], params=0, analytic_flops=None, analytic_macs=None,
                    graph_flops=None, activation_bytes=0, time_us=own_us, achieved_gflops=None, parent=parent,
                    depth=depth)


def test_hand_built_nesting_rolls_times_and_shares_up():
    # block (own 0) holds attention (own 0) holding einsum 30 and softmax 10, and a dense 20; a head at the
    # top takes 35; 5 us of kernels belong to no layer. Denominator = 0+0+30+10+20+35 + 5 = 100.
    # attention = 40 (0.40), block = 40 + 20 = 60 (0.60), head 0.35; leaves 0.30+0.10+0.20+0.35 + 0.05 = 1.
    rows = [row("block", 0.0), row("block/attention", 0.0, "block", 1),
            row("block/attention/einsum", 30.0, "block/attention", 2),
            row("block/attention/softmax", 10.0, "block/attention", 2), row("block/dense", 20.0, "block", 1),
            row("head", 35.0)]
    roll_up_nested_times(rows, unattributed_us=5.0)
    share = {r.name: r.time_share for r in rows}
    assert share["block/attention"] == pytest.approx(0.40, abs=1e-12)
    assert share["block"] == pytest.approx(0.60, abs=1e-12)
    assert {r.name: r.time_us for r in rows}["block"] == 60.0
    leaves = ["block/attention/einsum", "block/attention/softmax", "block/dense", "head"]
    assert sum(share[name] for name in leaves) + 5.0 / 100 == pytest.approx(1.0, abs=1e-12)


def test_a_parent_with_own_ops_counts_them_once():
    # A block whose own Add takes 10 beside a child of 30: block = 40; denominator 10 + 30 = 40.
    rows = [row("block", 10.0), row("block/child", 30.0, "block", 1)]
    roll_up_nested_times(rows)
    assert rows[0].time_share == pytest.approx(1.0) and rows[1].time_share == pytest.approx(0.75)
    assert rows[0].self_time_us == 10.0


class Block(L.Layer):
    """A composite layer: attention and a feed-forward Dense, no op of its own but the residual Add."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.attention = L.MultiHeadAttention(2, 8, name="attention")
        self.ffn = L.Dense(16, name="ffn")

    def call(self, x):
        return self.ffn(x + self.attention(x, x))


def _children(report):
    out: dict[str, list] = {}
    for r in report.layers:
        if r.parent is not None:
            out.setdefault(r.parent, []).append(r)
    return out


def _check_shares(report):
    rows = report.layers
    children = _children(report)
    total = sum(r.self_time_us for r in rows if r.self_time_us is not None) + report.totals.unattributed_time_us
    assert total > 0
    for r in rows:
        assert r.time_share is not None and 0.0 <= r.time_share <= 1.0 + 1e-12, (r.name, r.time_share)
        if r.name in children:  # a parent: its own ops' share plus its children's shares, exactly
            expected = (r.self_time_us or 0.0) / total + sum(c.time_share for c in children[r.name])
            assert r.time_share == pytest.approx(expected, rel=1e-9, abs=1e-12)
    leaves = [r for r in rows if r.name not in children]
    parents_own = [r for r in rows if r.name in children]
    summed = (sum(r.time_share for r in leaves) + sum((r.self_time_us or 0.0) / total for r in parents_own)
              + report.totals.unattributed_time_us / total)
    assert summed == pytest.approx(1.0, rel=1e-9)


def test_attention_inside_a_block_has_a_share_of_at_most_one(tmp_path):
    inputs = keras.Input((12, 16))
    model = keras.Model(inputs, L.Dense(2, name="head")(Block(name="block")(inputs)), name="encoder")
    report = tfprofscale.profile(model, batch_size=2, steps=2, warmup=2, trace_steps=3, logdir=str(tmp_path),
                                 memory=False, tf_cost_model=False, max_time=0.2)
    assert {"block", "block/attention", "block/ffn"} <= {r.name for r in report.layers}
    _check_shares(report)


def test_two_nested_models_have_shares(tmp_path):
    inner_in = keras.Input((8,))
    inner = keras.Model(inner_in, L.Dense(8, name="d2")(L.Dense(8, name="d1")(inner_in)), name="inner")
    middle_in = keras.Input((8,))
    middle = keras.Model(middle_in, inner(L.Dense(8, name="d0")(middle_in)), name="middle")
    outer_in = keras.Input((8,))
    model = keras.Model(outer_in, middle(outer_in), name="outer")
    report = tfprofscale.profile(model, batch_size=2, steps=2, warmup=2, trace_steps=3, logdir=str(tmp_path),
                                 memory=False, tf_cost_model=False, max_time=0.2)
    dense = [r for r in report.layers if r.type == "Dense"]
    assert len(dense) == 3 and all(r.time_share is not None for r in dense)
    _check_shares(report)


def _totals(coverage: float | None, traced_ms: float) -> Totals:
    traced = StepTimes.from_seconds([traced_ms / 1e3] * 3)
    return Totals(params=0, analytic_flops=0, analytic_macs=0, graph_flops=0, activation_bytes=0,
                  analytic_memory_bytes=0, peak_bytes=None, resident_bytes=None, step_time_ms=traced,
                  traced_step_time_ms=traced, kernel_coverage=coverage)


@pytest.mark.parametrize("coverage, traced_ms, warns", [(0.10, 64.0, True), (0.49, 10.0, True), (0.50, 10.0, False),
                                                        (0.02, 1.0, False), (None, 64.0, False)])
def test_low_kernel_coverage_of_a_long_step_warns(coverage, traced_ms, warns):
    line = low_kernel_coverage(_totals(coverage, traced_ms))
    assert (line is not None) == warns
    if warns:
        assert f"{100 * coverage:.0f}% of the {traced_ms:.1f} ms" in line


def _event(title, start, dur, tid=2, **args):
    return {"ph": "X", "pid": 1, "tid": tid, "name": title, "ts": start, "dur": dur, "args": args}


def test_a_while_loops_span_runs_from_its_inputs_to_its_last_iteration_less_the_kernels_inside():
    # One 1000 us step. TensorListFromTensor (feeds the While) runs [100, 150]; iterations 1..3 are executor
    # events [160, 300], [300, 500], [500, 700] with iter_num 1..3; a body MatMul kernel [320, 360] is inside;
    # the TensorListStack reading the loop runs [710, 760]; an iteration event at [800, 810] (another frame,
    # after the reader started) is outside the loop's window. Span = [150 (inputs ready), 700] = 550;
    # own time = 550 - 40 (the MatMul) = 510. Busy = union of [100,150], [150,700], [710,760] = 650.
    events = [_event("infer 0", 0, 1000, tid=9, step_num="0"),
              _event("TensorListFromTensor", 100, 50, long_name="m/lstm/unstack:TensorListFromTensor"),
              _event("ExecutorState::Process", 160, 140, iter_num="1"),
              _event("ExecutorState::Process", 300, 200, iter_num="2"),
              _event("_MklMatMul", 320, 40, long_name="m/lstm/while/body/_1/m/lstm/while/MatMul:_MklMatMul"),
              _event("ExecutorState::Process", 500, 200, iter_num="3"),
              _event("ExecutorState::Process", 120, 10, iter_num="0"),
              _event("TensorListStack", 710, 50, long_name="m/lstm/stack:TensorListStack"),
              _event("ExecutorState::Process", 800, 10, iter_num="4")]
    stats = GraphStats(ops=[GraphOp("m/lstm/unstack", "TensorListFromTensor", None, ()),
                            GraphOp("m/lstm/while", "While", 0, ("m/lstm/unstack",)),
                            GraphOp("m/lstm/stack", "TensorListStack", None, ("m/lstm/while",))], total_flops=0)
    [loop] = loop_events(events, stats)
    assert (loop.name, loop.kernel_type, loop.start_us, loop.duration_us) == ("m/lstm/while", "While", 150, 550)
    [step] = per_step(events, extra=[loop])
    assert step.self_us["m/lstm/while"] == 510
    assert step.busy_us == 650


def test_a_layer_with_counted_work_and_no_kernel_says_so():
    from tfprofscale.profiling.runtime.time_notes import UNSEEN_NOTE, add_time_notes

    # pool's Mean (16 FLOPs by the graph) never ran as a kernel; dense's MatMul did: only pool gets the note.
    pool, dense = row("pool", 0.0), row("dense", 5.0)
    pool.graph_flops, dense.graph_flops = 16, 64
    pool.timed_ops, dense.timed_ops = ["m/pool/Mean"], ["m/dense/MatMul"]
    ops = [OpRow("m/pool/Mean", "Mean", "pool", 16, 0.0, 0.0),
           OpRow("m/dense/MatMul", "MatMul", "dense", 64, 5.0, 1.0, "_MklMatMul", time_source="kernel")]
    add_time_notes([pool, dense], ops)
    assert pool.time_notes == [UNSEEN_NOTE] and dense.time_notes == []
