"""The memory estimate of composite layers and of what a layer holds inside, pinned by hand counts."""
from __future__ import annotations

import keras
import pytest

from tfprofscale.profiling.memory.estimate import estimate_memory, graph_span_peak
from tfprofscale.profiling.memory.graph_liveness import layer_spans
from tfprofscale.profiling.memory.layer_tensors import OpTensor, graph_op_tensors, layer_tensors
from tfprofscale.profiling.trace import tracing
from tfprofscale.records import LayerRow, MemoryRecord

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
    # The residual sum reads the model's input x (its placeholder is named after the input layer) and attention's output.
    *inputs, attention = block.graph_inbound
    assert attention == "block/attention" and len(inputs) == 1 and inputs[0].startswith("input_layer")
    assert ffn.graph_inbound == ["block"] and block_facts["head"].graph_inbound == ["block/ffn"]
    assert block_facts["block/attention"].graph_order < block.graph_order < ffn.graph_order


def row(name, type_, spans=None, parent=None, activation_bytes=0):
    return LayerRow(name=name, type=type_, output_shape=[1], params=0, analytic_flops=None, analytic_macs=None,
                    graph_flops=None, activation_bytes=activation_bytes, time_us=None, achieved_gflops=None,
                    parent=parent, graph_spans=spans)


class _Report:
    def __init__(self, layers):
        self.layers = layers
        self.memory = None


def test_the_estimate_is_the_largest_sum_of_graph_buffers_live_at_once():
    # Buffers [start, end, bytes, handed_on]. attention writes Q, K, V (100 each, internal, steps 1-4), the
    # scores (400, internal, 4-6) and its output (100, handed on, 7-8); the block's residual sum 100 (8-9);
    # ffn's output 100 (9-10). At step 4: Q + K + V + scores = 700 internal (the largest); at 7: scores 400 +
    # output 100 = 500. Peak 700 at the attention: activations 0 + layer internals 700. The block's own output
    # (100 by its shape) is never a buffer of its own: the ffn wrote it.
    rows = [row("input_layer", "InputLayer", activation_bytes=1_000),
            row("block", "Block", [[8, 9, 100, 1]]),
            row("block/attention", "MultiHeadAttention", [[1, 4, 100, 0], [2, 4, 100, 0], [3, 4, 100, 0],
                                                          [4, 7, 400, 0], [7, 8, 100, 1]], parent="block"),
            row("block/ffn", "Dense", [[9, 10, 100, 1]], parent="block")]
    peak = graph_span_peak(rows, threads=1, probed_scratch={})
    assert peak.layer == "block/attention" and peak.bytes == 700 and peak.activation_bytes == 0
    estimate = estimate_memory(_Report(rows))
    assert estimate.terms["activations"] == 0 and estimate.terms["layer internals"] == 700
    assert estimate.terms["input"] == 1_000 and estimate.total_bytes == 1_700


def test_a_real_blocks_estimate_peaks_at_the_attention_scores(block_model):
    # The attention's buffers (see test_attention_holds_...): Q, K, V 1,024 B each and the scores 4,096 B are
    # live at once: 7,168 B, all held inside (nothing handed on is live then: the input is fed, resident).
    # Afterwards: softmax (in the scores' buffer) 4,096 + V 1,024 + weighted sum 1,024 = 6,144, less.
    rows, traced = block_model
    estimate = estimate_memory(_Report(rows))
    assert estimate.peak_layer == "block/attention"
    assert estimate.terms["layer internals"] == 3 * 1_024 + 4_096 and estimate.terms["activations"] == 0


@pytest.fixture(scope="module")
def block_model():
    from tfprofscale.profiling.memory.graph_liveness import annotate_rows

    inputs = keras.Input((T, D))
    model = keras.Model(inputs, L.Dense(3, name="head")(Block(name="block")(inputs)), name="encoder")
    traced = tracing.trace(model, B, None, {}, None)
    rows = [row(info.name, info.type, activation_bytes=B * T * D * F32 if info.type == "InputLayer" else 0)
            for info in traced.layers]
    annotate_rows(rows, traced.graph, traced.layer_of, traced.function.outputs)
    return rows, traced


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

    # Measured: weights 1,000 + input 200 + in-step 300 = 1,500. Estimated: parameters 1,100 + input 200 +
    # activations 250 + layer internals 50 = 1,600, of which in-step 250 + 50 = 300.
    record = MemoryRecord(measured_peak_bytes=300, weights_bytes=1_000, input_bytes=200)
    terms = {"parameters": 1_100, "input": 200, "activations": 250, "layer internals": 50}
    set_scoped_figures(record, MemoryEstimate(terms, 1_600, "a", (), 0, False))
    assert (record.in_step_measured_peak_bytes, record.total_measured_peak_bytes) == (300, 1_500)
    assert (record.in_step_estimated_peak_bytes, record.total_estimated_peak_bytes) == (300, 1_600)
    assert (record.measured_peak_bytes, record.estimated_peak_bytes) == (300, 1_600)   # old keys: in-step, total


def test_views_keep_the_buffer_alive_and_forwarding_reuses_it():
    # a (400 B) is read through a Reshape view at step 4; b = Relu(a) at step 2 is not a's last reader (the
    # view reads it later): b gets its own 400 B. c = Neg(b) at 3 is b's last reader: it writes into b's buffer.
    ops = [OpTensor("x", None, (), 0, "Placeholder"), OpTensor("a", "L", ("x",), 400, "MatMul"),
           OpTensor("b", "L", ("a",), 400, "Relu"), OpTensor("c", "M", ("b",), 400, "Neg"),
           OpTensor("v", "M", ("a",), 0, "Reshape"), OpTensor("out", "M", ("v", "c"), 400, "AddV2")]
    spans = layer_spans(ops, ["out"])
    assert [s.as_list() for s in spans["L"]] == [[1, 5, 400, 1], [2, 5, 400, 1]]   # a: through v to 5; b: via c
    assert "M" not in spans  # c writes into b's buffer (its last reader), and so does out (c's last reader)
