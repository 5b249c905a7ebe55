"""Activation layers: a fixed number of operations per element (see ``activations``)."""
from __future__ import annotations

import math

from tfprofscale.formulas.activations import ACTIVATION_FLOPS_PER_ELEMENT
from tfprofscale.formulas.registry import Formula, activation_of, formula_for
from tfprofscale.profiling.records import LayerInfo

def _elementwise(info: LayerInfo, name: str, per_element: int, formula: str) -> Formula:
    elements = math.prod(info.output_shape)
    return Formula(terms={"activations": elements * per_element}, macs=0, params=0,
                    geometry={"activation": name, "activation_flops_per_element": per_element,
                              "formula": formula, "elements": elements})


_FIXED_ACTIVATION_LAYERS = {"LeakyReLU": "leaky_relu", "Softmax": "softmax"}


@formula_for("Activation", *_FIXED_ACTIVATION_LAYERS)
def _activation_layer(info: LayerInfo) -> Formula:
    name = _FIXED_ACTIVATION_LAYERS.get(info.type) or activation_of(info.layer.activation)[0]
    return _elementwise(info, name, *ACTIVATION_FLOPS_PER_ELEMENT[name])


@formula_for("ReLU")
def _relu_layer(info: LayerInfo) -> Formula:
    """One comparison, plus one operation per option used (max_value, negative_slope, threshold)."""
    layer = info.layer
    options = (layer.max_value is not None) + (layer.negative_slope != 0) + (layer.threshold != 0)
    return _elementwise(info, "relu", 1 + options, "max(x, 0) with max_value/negative_slope/threshold")
