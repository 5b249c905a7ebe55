"""Shared by the formula tests: a model's layers costed by formula and counted by tfprof.

``costed(model, batch)`` traces the model and costs its layers as the profiler
does (``profiling.tracing.trace``, ``analyze_layers``), runs TensorFlow's profiler over the graph
(``profiling.graph_stats``) and sums its FLOPs per layer by the name scope the
layer was really called under. An op tfprof has no statistics for adds 0.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import keras

from tfprofscale.formulas.analytic import analyze_layers, layer_cost
from tfprofscale.profiling.graph.graph_stats import graph_stats
from tfprofscale.records import LayerCost, LayerInfo
from tfprofscale.profiling.trace.tracing import trace


@dataclass(frozen=True)
class Costed:
    """Per layer name: the formula's cost, tfprof's FLOPs and the graph op types under the layer."""

    costs: dict[str, LayerCost]
    graph_flops: dict[str, int]
    op_types: dict[str, list[str]]


def costed(model: keras.Model, batch: int) -> Costed:
    traced = trace(model, batch)
    flops: dict[str, int] = defaultdict(int)
    op_types: dict[str, list[str]] = defaultdict(list)
    for op in graph_stats(traced.graph).ops:
        layer = traced.layer_of(op.name)
        if layer is not None:
            flops[layer] += op.flops or 0
            op_types[layer].append(op.type)
    costs = dict(zip((info.name for info in traced.layers), analyze_layers(traced.layers)))
    return Costed(costs, dict(flops), dict(op_types))


def branches(input_shape: tuple[int, ...], layers: list[keras.layers.Layer]) -> keras.Model:
    """One model with every layer applied to the same input."""
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, [layer(inputs) for layer in layers])


def info_of(layer: keras.layers.Layer, batch: int, inbound: tuple[str, ...] = ()) -> LayerInfo:
    """A LayerInfo for a layer of a built functional model, batch fixed."""
    inputs = [] if isinstance(layer, keras.layers.InputLayer) else keras.tree.flatten(layer.input)
    return LayerInfo(name=layer.name, type=type(layer).__name__,
                     input_shapes=tuple((batch, *t.shape[1:]) for t in inputs),
                     output_shape=(batch, *keras.tree.flatten(layer.output)[0].shape[1:]),
                     inbound=inbound, layer=layer)


def single_layer_cost(layer: keras.layers.Layer, input_shape: tuple[int, ...], batch: int = 1) -> LayerCost:
    """The formula's cost of ``layer`` called on one input of ``input_shape`` (batch excluded)."""
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, layer(inputs))
    return layer_cost(info_of(model.layers[1], batch))


def chain_costs(model: keras.Model, batch: int = 1) -> list[LayerCost]:
    """Costs of a model whose layers form one chain, receptive fields carried along."""
    names = [layer.name for layer in model.layers]
    return analyze_layers([info_of(layer, batch, tuple(names[i - 1:i])) for i, layer in enumerate(model.layers)])
