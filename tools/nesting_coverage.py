"""Formula coverage, graph FLOPs against hand counts, and time attribution on real architectures.

    PYTHONPATH=$PWD python tools/nesting_coverage.py [--steps 5] [--trace-steps 3] [--only NAME ...]

For each model (none of them in the tests): the share of graph FLOPs in
layers with a formula (``totals.formula_coverage``), the graph FLOPs of the
parts tfprof cannot see checked against a hand count (or an independent
route), and the share of traced kernel time attributed to a layer, with the
layers that do work but got no time. The load average is printed: these are
single runs on a shared machine, and only the counts (not the times) are
exact.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import tfprofscale  # noqa: E402

B = 1


def mobilenet_v2_as_a_layer() -> keras.Model:
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3))
    inputs = keras.Input((96, 96, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs))
    return keras.Model(inputs, keras.layers.Dense(10)(x), name="transfer")


def mobilenet_v2_flat_hand(report: Any) -> int:
    """Independent route: the same backbone profiled on its own (flat), plus GAP and Dense by hand."""
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3))
    flat = tfprofscale.profile(base, batch_size=B, steps=1, warmup=0, trace=False)
    gap = 3 * 3 * 1280 * B                     # Mean: one add per input element (TensorFlow's count)
    dense = 2 * 1280 * 10 * B + 10 * B         # MatMul + BiasAdd
    return flat.totals.graph_flops + gap + dense


def convnext_tiny() -> keras.Model:
    return keras.applications.ConvNeXtTiny(weights=None, input_shape=(64, 64, 3), classes=10)


def convnext_grouped_hand(report: Any) -> tuple[int, int]:
    """(graph, hand) FLOPs of the depthwise Conv2D(groups=C) layers that Keras runs in nested XLA calls."""
    graph = hand = 0
    for row in report.layers:
        if row.type == "Conv2D" and row.name.endswith("depthwise_conv"):
            n, h, w, c = row.output_shape
            hand += 2 * 7 * 7 * 1 * c * h * w * n + c * h * w * n   # groups = C: Cin/g = 1; + BiasAdd
            graph += row.graph_flops
    return graph, hand


def recurrent(cell: str) -> Callable[[], keras.Model]:
    def build() -> keras.Model:
        inputs = keras.Input((T, D))
        layer = keras.layers.LSTM(U, name="rnn") if cell == "lstm" else keras.layers.GRU(U, name="rnn")
        return keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)), name=cell)
    return build


T, D, U = 50, 32, 64


def lstm_hand(report: Any) -> tuple[int, int]:
    step = (2 * B * D * 4 * U + 2 * B * U * 4 * U   # the two MatMuls
            + 2 * B * 4 * U                       # AddV2 of the products, BiasAdd
            + 4 * B * U                           # c = f*c + i*g, h = o*tanh(c): 3 Mul + 1 AddV2
            + 2)                                  # the loop counters
    return _layer(report, "rnn").graph_flops, T * step


def gru_hand(report: Any) -> tuple[int, int]:
    step = (2 * B * D * 3 * U + 2 * B * U * 3 * U  # the two MatMuls (reset_after: separate recurrent kernel)
            + 2 * B * 3 * U                      # input BiasAdd, recurrent bias AddV2
            + 8 * B * U                          # z, r, h~ and the update: 4 AddV2, 3 Mul, 1 Sub over (B, U)
            + 2)                                 # the loop counters
    return _layer(report, "rnn").graph_flops, T * step


S, W, H, K = 64, 64, 4, 16


def transformer_block() -> keras.Model:
    inputs = keras.Input((S, W))
    attention = keras.layers.MultiHeadAttention(H, K, name="mha")(inputs, inputs)
    x = keras.layers.LayerNormalization()(keras.layers.Add()([inputs, attention]))
    ff = keras.layers.Dense(W)(keras.layers.Dense(4 * W, activation="relu")(x))
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, ff]))
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x)), name="transformer")


def attention_hand(report: Any) -> tuple[int, int]:
    projections = 3 * (2 * B * S * W * H * K + B * S * H * K)   # q, k, v EinsumDense + bias
    scores = 2 * B * H * S * S * K                               # Einsum q.k
    scale = B * H * S * S                                        # Mul of the scores
    softmax = 5 * B * H * S * S                                  # TensorFlow's Softmax count
    weighted = 2 * B * H * S * S * K                             # Einsum weights.v
    output = 2 * B * S * H * K * W + B * S * W                   # output EinsumDense + bias
    return _layer(report, "mha").graph_flops, projections + scores + scale + softmax + weighted + output


def _layer(report: Any, name: str) -> Any:
    return next(row for row in report.layers if row.name == name)


MODELS: dict[str, tuple[Callable[[], keras.Model], Callable[[Any], Any] | None]] = {
    "mobilenet_v2_as_a_layer": (mobilenet_v2_as_a_layer, mobilenet_v2_flat_hand),
    "convnext_tiny_64": (convnext_tiny, convnext_grouped_hand),
    "lstm_classifier": (recurrent("lstm"), lstm_hand),
    "gru_classifier": (recurrent("gru"), gru_hand),
    "transformer_block": (transformer_block, attention_hand),
}


def measure(name: str, steps: int, trace_steps: int, logdir: str) -> None:
    build, hand = MODELS[name]
    report = tfprofscale.profile(build(), batch_size=B, steps=steps, warmup=2, trace_steps=trace_steps, logdir=logdir)
    t = report.totals
    kernel_us = sum(op.time_us or 0.0 for op in report.ops)
    attributed_us = sum(op.time_us or 0.0 for op in report.ops if op.layer)
    idle = [row.name for row in report.layers if row.graph_flops and not row.time_us]
    unsupported_types = sorted({row.type for row in report.layers if not row.supported})
    print(f"{name}: graph {t.graph_flops:,} (tfprof alone {t.tfprof_flops:,}; ours {t.graph_flops_by_source.get('tfprofscale', 0):,})"
          f"  coverage {100 * (t.formula_coverage or 0):.2f}%  formulas/graph over covered "
          f"{(t.analytic_flops or 0) / t.covered_graph_flops if t.covered_graph_flops else float('nan'):.3f}")
    print(f"  no formula: {', '.join(unsupported_types) or '-'};  uncounted ops: {t.uncounted_op_types or '-'}")
    if hand is not None:
        result = hand(report)
        graph, counted = (t.graph_flops, result) if isinstance(result, int) else result
        print(f"  graph vs hand: {graph:,} vs {counted:,}  ratio {graph / counted:.6f}")
    print(f"  time: {attributed_us:,.0f} of {kernel_us:,.0f} us/step of kernels attributed to a layer "
          f"({100 * attributed_us / kernel_us if kernel_us else 0:.2f}%); layers with work but no time: {idle or '-'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--trace-steps", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as logdir:
        for name in args.only:
            measure(name, args.steps, args.trace_steps, logdir)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
