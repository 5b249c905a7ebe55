"""The memory estimate of composite layers and of what a layer holds inside, pinned by hand counts."""
from __future__ import annotations

import keras
import pytest

from tfprofscale.profiling.assemble import LayerRow
from tfprofscale.profiling.memory.estimate import estimate_memory, graph_layer_buffers, peak_live
from tfprofscale.profiling.memory.layer_tensors import OpTensor, graph_op_tensors, layer_tensors
from tfprofscale.profiling.trace import tracing

L = keras.layers
B, T, D, HEADS, KEY = 2, 16, 8, 2, 4
F32 = 4


class Block(L.Layer):
    """attention, a residual sum (the block's own op), then a Dense."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.attention = L.MultiHeadAttention(HEADS, KEY, name="attention")
        self.ffn = L.Dense(D, name="ffn")

    def call(self, x):
        return self.ffn(x + self.attention(x, x))


@pytest.fixture(scope="module")
def block_facts():
    inputs = keras.Input((T, D))
    model = keras.Model(inputs, L.Dense(3, name="head")(Block(name="block")(inputs)), name="encoder")
    traced = tracing.trace(model, B, None, {}, None)
    ops = graph_op_tensors(traced.graph, traced.layer_of)
    return layer_tensors(ops, [t.op.name for t in traced.function.outputs])


def test_attention_holds_its_query_key_value_and_scores_inside(block_facts):
    # Per projection (query, key, value): B*T*HEADS*KEY floats = 2*16*2*4*4 B = 1,024 B (the bias add writes into
    # the product's buffer). Scores: B*HEADS*T*T = 2*2*16*16*4 B = 4,096 B; the 1/sqrt(KEY) scaling and the
    # softmax write into that buffer. While the scores are computed Q, K, V and the scores are live:
    # 3*1,024 + 4,096 = 7,168 B; later steps hold less (softmax 4,096 + V 1,024 + weighted sum 1,024 = 6,144).
    # Beyond what the layer hands on (its output, B*T*D*4 = 1,024 B): 7,168 - 1,024 = 6,144 B.
    attention = block_facts["block/attention"]
    assert attention.graph_output_bytes == B * T * D * F32 == 1_024
    assert attention.internal_peak_bytes == 3 * B * T * HEADS * KEY * F32 + B * HEADS * T * T * F32 - 1_024 == 6_144


def test_a_block_holds_only_its_own_ops_output_and_feeds_its_sublayers(block_facts):
    # The block's own op is the residual sum x + attention(x): B*T*D*4 = 1,024 B, read by ffn (another layer).
    # Its output is ffn's: the block does not hold it again.
    block, ffn = block_facts["block"], block_facts["block/ffn"]
    assert block.graph_output_bytes == 1_024 and block.internal_peak_bytes == 0
    assert block.graph_inbound == ["block/attention"]
    assert ffn.graph_inbound == ["block"] and block_facts["head"].graph_inbound == ["block/ffn"]
    assert block_facts["block/attention"].graph_order < block.graph_order < ffn.graph_order


def row(name, type_, order, hands_on, inbound=(), internals=0, parent=None, activation_bytes=None):
    return LayerRow(name=name, type=type_, output_shape=[1], params=0, analytic_flops=None, analytic_macs=None,
                    graph_flops=None, activation_bytes=hands_on if activation_bytes is None else activation_bytes,
                    time_us=None, achieved_gflops=None, parent=parent, graph_order=order,
                    graph_output_bytes=hands_on, graph_inbound=list(inbound), internal_peak_bytes=internals)


class _Report:
    def __init__(self, layers):
        self.layers = layers
        self.memory = None


def test_a_composite_is_estimated_from_its_sublayers_in_execution_order():
    # Execution order by each row's last op: attention (10), block (20), ffn (30), head (40); the input is fed.
    # attention: its output 100 + what it holds inside 700 = 800 (nothing else live yet);
    # block: attention's 100 (read here, last) + the residual sum 100 = 200; ffn: 100 + 100; head: 100 + 10.
    # Peak 800 at the attention: activations 100 + layer internals 700. The block's own output (100 by its
    # shape) is not counted again: it is the ffn's.
    rows = [row("input_layer", "InputLayer", None, 0, activation_bytes=1_000),
            row("block", "Block", 20, 100, ["block/attention"]),
            row("block/attention", "MultiHeadAttention", 10, 100, [], 700, parent="block"),
            row("block/ffn", "Dense", 30, 100, ["block"], parent="block"),
            row("head", "Dense", 40, 10, ["block/ffn"])]
    buffers = graph_layer_buffers(rows, threads=1, probed_scratch={})
    assert [b.name for b in buffers] == ["input_layer", "block/attention", "block", "block/ffn", "head"]
    peak = peak_live(buffers)
    assert peak.layer == "block/attention" and peak.bytes == 800 and peak.activation_bytes == 100
    estimate = estimate_memory(_Report(rows))
    assert estimate.terms["activations"] == 100 and estimate.terms["layer internals"] == 700
    assert estimate.terms["input"] == 1_000 and estimate.total_bytes == 1_800


def test_elementwise_ops_write_into_the_buffer_they_read_last():
    # One layer: a = MatMul (400 B, read by b and c), b = Neg(a) (a still read later: new 400 B),
    # c = Mul(a, b) (reads a and b last: writes into a's buffer), handed on. Live: a; a + b = 800; then c in a.
    # Peak 800 - 400 handed on = 400 held inside.
    ops = [OpTensor("x", None, (), 0, "Placeholder"), OpTensor("a", "L", ("x",), 400, "MatMul"),
           OpTensor("b", "L", ("a",), 400, "Neg"), OpTensor("c", "L", ("a", "b"), 400, "Mul"),
           OpTensor("out", "M", ("c",), 400, "Relu")]
    facts = layer_tensors(ops, ["out"])
    assert facts["L"].graph_output_bytes == 400 and facts["L"].internal_peak_bytes == 400
    assert facts["M"].graph_inbound == ["L"]


def test_every_memory_figure_names_its_scope_and_the_old_names_keep_their_meaning():
    from tfprofscale.profiling.memory.estimate import MemoryEstimate, set_scoped_figures
    from tfprofscale.records import MemoryRecord

    # Measured: weights 1,000 + input 200 + in-step 300 = 1,500. Estimated: parameters 1,100 + input 200 +
    # activations 250 + layer internals 50 = 1,600, of which in-step 250 + 50 = 300.
    record = MemoryRecord(measured_peak_bytes=300, weights_bytes=1_000, input_bytes=200)
    terms = {"parameters": 1_100, "input": 200, "activations": 250, "layer internals": 50}
    set_scoped_figures(record, MemoryEstimate(terms, 1_600, "a", (), 0, False))
    assert (record.in_step_measured_peak_bytes, record.total_measured_peak_bytes) == (300, 1_500)
    assert (record.in_step_estimated_peak_bytes, record.total_estimated_peak_bytes) == (300, 1_600)
    assert (record.measured_peak_bytes, record.estimated_peak_bytes) == (300, 1_600)   # old keys: in-step, total
