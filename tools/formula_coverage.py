"""Formula coverage and graph-FLOP checks on real architectures (keras.applications and common hand-built models).

    PYTHONPATH=$PWD python tools/formula_coverage.py [--only NAME ...] [--trace] [--input-size N] [--batch N]

Models: every ``keras.applications`` model that builds offline with ``weights=None`` (at the smallest
square input it accepts: 32, then 71, 75, 96, ... unless ``--input-size``), and hand-built text,
sequence, segmentation and video models (tools/coverage_models.py; ``--only`` takes any of the names). Each is profiled at
batch 1 with ``tfprofscale.profile`` (untimed unless ``--trace``). Per model it prints:

- coverage: ``totals.formula_coverage``, the share of graph FLOPs in layers with a formula, and the
  layer types without one (with their share);
- 2*MACs / graph FLOPs and formula FLOPs / graph FLOPs, both over the covered layers only;
- graph / independent: the report's graph FLOPs against an independent count of the same traced
  graph (tfprof per op, each Einsum counted with numpy on arrays of ones, each While body times the
  constant its condition compares against, PartitionedCall bodies entered, the dead RNN cell step
  Keras traces outside each loop skipped);
- graph / hand where tfprof is blind: the graph FLOPs of the LSTM, GRU, Bidirectional (of those),
  MultiHeadAttention, SeparableConv2D and grouped Conv2D rows against a hand count of the ops TensorFlow runs for them
  (matmuls, bias adds, the element-wise gate arithmetic, Softmax at 5; activations that tfprof
  counts 0, as Relu, are left out of both), and for the nested MobileNetV2 the same backbone
  profiled flat; in brackets the number of layers checked;
- with ``--trace``: the share of kernel time attributed to a layer, and the layers that do work
  (graph FLOPs > 0) but got no measured time.

The load average is printed before and after: timings here are single runs on a shared machine;
only the counts are exact.
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.profiler import model_analyzer  # noqa: E402
from tensorflow.python.profiler.option_builder import ProfileOptionBuilder  # noqa: E402

import tfprofscale  # noqa: E402
from coverage_models import HAND_BUILT  # noqa: E402

INPUT_SIZES = (32, 71, 75, 96, 128, 224, 331)


# ---- models: keras.applications (the hand-built families are in coverage_models.py) ------------------------

def application_names() -> list[str]:
    return [name for name in dir(keras.applications) if name[0].isupper()]


def application(name: str, sizes: tuple[int, ...]) -> keras.Model:
    """The application at the smallest of ``sizes`` it accepts (weights=None, 1000 classes)."""
    refusals = []
    for size in sizes:
        try:
            return getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))
        except ValueError as refusal:
            refusals.append(f"{size}: {str(refusal).splitlines()[0][:80]}")
    raise ValueError("; ".join(refusals))


# ---- an independent count of the traced graph's work --------------------------------------------------

def independent_flops(model: keras.Model, batch: int) -> int:
    """The model's graph FLOPs counted independently of tfprofscale (see the module docstring)."""
    specs = [tf.TensorSpec((batch, *t.shape[1:]), t.dtype) for t in model.inputs]
    function = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    return _graph_work(function.get_concrete_function(*specs).graph, top=True)


def _graph_work(graph: tf.Graph, top: bool) -> int:
    counted = _tfprof_per_op(graph)
    total = 0
    for op in graph.get_operations():
        if op.type == "Einsum":
            ones = [np.ones(tuple(t.shape)) for t in op.inputs]
            total += 2 * int(np.einsum(op.get_attr("equation").decode(), *ones).sum())
        elif op.type in ("While", "StatelessWhile"):
            total += _trip_count(graph, op) * _graph_work(_body(graph, op, "body"), top=False)
        elif op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            total += _graph_work(_body(graph, op, "f"), top=False)
        elif op.outputs and op.outputs[0].dtype.is_floating and not (top and _in_dead_cell_step(op)):
            total += counted.get(op.name, 0)
    return total


def _tfprof_per_op(graph: tf.Graph) -> dict[str, int]:
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    counts, stack = {}, [model_analyzer.profile(graph, options=options)]
    while stack:
        node = stack.pop()
        counts[node.name] = node.float_ops
        stack.extend(node.children)
    return counts


def _body(graph: tf.Graph, op: tf.Operation, attribute: str) -> tf.Graph:
    return graph._get_function(op.get_attr(attribute).name).graph


def _trip_count(graph: tf.Graph, op: tf.Operation) -> int:
    return max(int(c.get_attr("value").int_val[0]) for c in _body(graph, op, "cond").get_operations()
               if c.type == "Const" and c.get_attr("value").int_val)


def _in_dead_cell_step(op: tf.Operation) -> bool:
    parts = op.name.split("/")
    return len(parts) > 1 and "_cell" in parts[-2]


# ---- hand counts of the layers tfprof alone is blind to (as TensorFlow counts each op) ----------------

def _lstm(layer: Any, shapes: tuple, batch: int) -> int:
    """Per step: the two MatMuls, their AddV2 and BiasAdd, c = f*c + i*g and h = o*tanh(c), the loop counters."""
    (_, steps, features), units = shapes[0], layer.units
    step = 2 * batch * features * 4 * units + 2 * batch * units * 4 * units + 2 * batch * 4 * units
    return steps * (step + 4 * batch * units + 2)


def _gru(layer: Any, shapes: tuple, batch: int) -> int:
    """Per step (reset_after): the two MatMuls, two bias adds, 4 AddV2 + 3 Mul + 1 Sub over (B, U), counters."""
    (_, steps, features), units = shapes[0], layer.units
    step = 2 * batch * features * 3 * units + 2 * batch * units * 3 * units + 2 * batch * 3 * units
    return steps * (step + 8 * batch * units + 2)


def _attention(layer: Any, shapes: tuple, batch: int) -> int:
    """q, k, v projections with biases, scores, their scale, Softmax (5), weighted sum, output projection."""
    query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    (t, d_q), (s, d_v) = query[1:], value[1:]
    h, k, v, d_out = layer.num_heads, layer.key_dim, layer.value_dim or layer.key_dim, d_q
    projections = (2 * t * d_q + t) * h * k + (2 * s * d_v + s) * h * k + (2 * s * d_v + s) * h * v
    scores = 2 * h * t * s * k + h * t * s + 5 * h * t * s + 2 * h * t * s * v
    return batch * (projections + scores + 2 * t * h * v * d_out + t * d_out)


def _separable(layer: Any, shapes: tuple, batch: int, output: tuple) -> int:
    """Depthwise (kh*kw per depthwise output element, 2 each), pointwise 1x1 Conv2D, BiasAdd."""
    _, height, width, channels = output
    depthwise = channels_in(shapes) * layer.depth_multiplier
    kernel = math.prod(layer.kernel_size)
    return batch * height * width * (2 * kernel * depthwise + 2 * depthwise * channels + channels * layer.use_bias)


def _grouped(layer: Any, shapes: tuple, batch: int, output: tuple) -> int:
    """Conv2D(groups=g): 2 * kh * kw * (Cin / g) per output element, plus BiasAdd."""
    elements = math.prod(output)
    return elements * (2 * math.prod(layer.kernel_size) * channels_in(shapes) // layer.groups + layer.use_bias)


def channels_in(shapes: tuple) -> int:
    return shapes[0][-1]


def blind_hand_count(layer: Any, input_shapes: tuple, output_shape: tuple, batch: int) -> int | None:
    """The hand count of a layer tfprof alone cannot see, or None for any other layer."""
    kind = type(layer).__name__
    if kind == "Bidirectional":
        parts = [blind_hand_count(inner, input_shapes, output_shape, batch)
                 for inner in (layer.forward_layer, layer.backward_layer)]
        return None if None in parts else sum(parts)
    if kind in ("LSTM", "GRU") and layer.activation.__name__ == "tanh" and not layer.return_state:
        return {"LSTM": _lstm, "GRU": _gru}[kind](layer, input_shapes, batch)
    if kind == "MultiHeadAttention" and len(input_shapes[0]) == 3 and not layer._dropout:
        return _attention(layer, input_shapes, batch)
    linear = getattr(getattr(layer, "activation", None), "__name__", "") == "linear"
    if kind == "SeparableConv2D" and linear and layer.data_format == "channels_last":
        return _separable(layer, input_shapes, batch, output_shape)
    if kind == "Conv2D" and layer.groups > 1 and linear and layer.data_format == "channels_last":
        return _grouped(layer, input_shapes, batch, output_shape)
    return None


def layers_by_path(model: keras.Model, prefix: str = "") -> dict[str, Any]:
    """Every layer of the model by its report path (``outer/inner/conv`` for nested models)."""
    found = {}
    for layer in model.layers:
        found[prefix + layer.name] = layer
        if isinstance(layer, keras.Model):
            found.update(layers_by_path(layer, prefix + layer.name + "/"))
    return found


def _symbolic_input_shapes(layer: Any, batch: int) -> tuple:
    return tuple((batch, *t.shape[1:]) for t in keras.tree.flatten(layer.input))


def blind_spots(report: Any, model: keras.Model) -> tuple[int, int, int]:
    """(graph, hand, layers) over the layers tfprof alone is blind to (``blind_hand_count``)."""
    layers, graph, hand, counted = layers_by_path(model), 0, 0, 0
    for row in report.layers:
        layer = layers.get(row.name)
        if layer is None or not row.graph_flops:
            continue
        count = blind_hand_count(layer, _symbolic_input_shapes(layer, report.batch_size),
                                 tuple(row.output_shape), report.batch_size)
        if count is not None:
            graph, hand, counted = graph + row.graph_flops, hand + count, counted + 1
    return graph, hand, counted


def nested_backbone_hand(report: Any, model: keras.Model) -> tuple[int, int, int]:
    """The nested MobileNetV2: the same backbone profiled flat, plus GAP (one add per input element, as
    TensorFlow counts Mean) and the Dense head (MatMul + BiasAdd) by hand."""
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    flat = tfprofscale.profile(base, batch_size=report.batch_size, steps=1, warmup=0, trace=False,
                               tf_cost_model=False)
    features, (_, classes) = math.prod(base.output.shape[1:]), model.output.shape
    head = report.batch_size * (features + 2 * base.output.shape[-1] * classes + classes)
    return report.totals.graph_flops, flat.totals.graph_flops + head, len(flat.layers)


# ---- one model measured ----------------------------------------------------------------------------------

@dataclass
class Result:
    """One model's line of the table."""

    model: str
    input: str = "-"
    layers: int = 0
    graph_mflops: float = 0.0
    coverage: float | None = None
    macs_ratio: float | None = None
    formula_ratio: float | None = None
    independent_ratio: float | None = None
    blind: str = "-"
    without_formula: str = "-"
    idle_layers: list[str] = field(default_factory=list)
    attributed_time: float | None = None
    seconds: float = 0.0
    failure: str | None = None


def measure(name: str, build: Callable[[], keras.Model], trace: bool, logdir: str) -> Result:
    started = time.time()
    model = build()
    input_text = " ".join("x".join(str(d) for d in t.shape[1:]) for t in model.inputs)
    timing = dict(steps=3, warmup=1, trace_steps=2, logdir=logdir) if trace else dict(steps=1, warmup=0, trace=False)
    report = tfprofscale.profile(model, batch_size=1, tf_cost_model=False, **timing)
    result = Result(name, input_text, len(report.layers), report.totals.graph_flops / 1e6)
    _add_formula_ratios(result, report)
    result.independent_ratio = _ratio(report.totals.graph_flops, independent_flops(model, 1))
    graph, hand, counted = (nested_backbone_hand if name == "mobilenet_v2_as_a_layer" else blind_spots)(report, model)
    result.blind = f"{graph / hand:.4f} ({counted})" if hand else "-"
    if trace:
        _add_time_attribution(result, report)
    result.seconds = time.time() - started
    return result


def _add_formula_ratios(result: Result, report: Any) -> None:
    covered = [row for row in report.layers if row.supported]
    graph = sum(row.graph_flops or 0 for row in covered)
    result.coverage = report.totals.formula_coverage
    result.macs_ratio = _ratio(2 * sum(row.analytic_macs for row in covered), graph)
    result.formula_ratio = _ratio(sum(row.analytic_flops for row in covered), graph)
    share: dict[str, float] = {}
    for row in report.layers:
        if not row.supported:
            share[row.type] = share.get(row.type, 0.0) + (row.graph_flops or 0) / max(report.totals.graph_flops, 1)
    result.without_formula = ", ".join(f"{kind} {100 * part:.2f}%" for kind, part in sorted(share.items())) or "-"


def _add_time_attribution(result: Result, report: Any) -> None:
    kernel_us = sum(op.time_us or 0.0 for op in report.ops)
    result.attributed_time = _ratio(sum(op.time_us or 0.0 for op in report.ops if op.layer), kernel_us)
    result.idle_layers = [row.name for row in report.layers if row.graph_flops and not row.time_us]


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


# ---- the table ---------------------------------------------------------------------------------------------

def _cell(value: float | None, digits: int = 4, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.{digits - 2}f}%" if percent else f"{value:.{digits}f}"


def table(results: list[Result], trace: bool) -> str:
    header = ["model", "input", "layers", "graph MFLOPs", "coverage", "2*MACs/graph", "formula/graph",
              "graph/independent", "blind: graph/hand (layers)", "no formula"]
    header += ["time attributed", "layers with work, no time"] if trace else []
    rows = [header, ["---"] * len(header)]
    for r in results:
        if r.failure:
            rows.append([r.model, r.input, "failed: " + r.failure] + [""] * (len(header) - 3))
            continue
        row = [r.model, r.input, str(r.layers), f"{r.graph_mflops:,.2f}", _cell(r.coverage, 4, percent=True),
               _cell(r.macs_ratio), _cell(r.formula_ratio), _cell(r.independent_ratio), r.blind, r.without_formula]
        if trace:
            idle = f"{len(r.idle_layers)}: {', '.join(r.idle_layers[:4])}{' ...' * (len(r.idle_layers) > 4)}"
            row += [_cell(r.attributed_time, 4, percent=True), idle if r.idle_layers else "-"]
        rows.append(row)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def builders(only: list[str] | None, input_size: int | None) -> dict[str, Callable[[], keras.Model]]:
    sizes = (input_size,) if input_size else INPUT_SIZES
    every: dict[str, Callable[[], keras.Model]] = {
        name: functools.partial(application, name, sizes) for name in application_names()}
    every.update(HAND_BUILT)
    unknown = sorted(set(only or ()) - set(every))
    if unknown:
        raise SystemExit(f"coverage.py: unknown model(s) {', '.join(unknown)}; known: {', '.join(every)}")
    return {name: every[name] for name in (only or every)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="models to run (default: all)")
    parser.add_argument("--trace", action="store_true", help="time the model and list layers with work but no time")
    parser.add_argument("--input-size", type=int, help="square input side for keras.applications")
    args = parser.parse_args()
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as logdir:
        for name, build in builders(args.only, args.input_size).items():
            try:
                results.append(measure(name, build, args.trace, logdir))
            except Exception as error:  # one model's failure is a row of the table, not the end of the run
                results.append(Result(name, failure=f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"))
            print(table(results[-1:], args.trace).splitlines()[-1], flush=True)
            keras.backend.clear_session()
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(table(results, args.trace))


if __name__ == "__main__":
    main()
