"""Activation layers: a fixed number of operations per output element (see ``activations``)."""
from __future__ import annotations

import math

import keras

from tfprofscale.formulas.activations import ACTIVATION_FLOPS_PER_ELEMENT, SHAPE_CHANGING_ACTIVATIONS, activation_cost
from tfprofscale.formulas.registry import Formula, NoFormula, formula_for
from tfprofscale.records import LayerInfo


def _elementwise(info: LayerInfo, name: str, per_element: int, formula: str) -> Formula:
    elements = _output_elements(info, name)
    return Formula(terms={"activations": elements * per_element}, macs=0, params=0,
                   geometry={"activation": name, "activation_flops_per_element": per_element,
                             "formula": formula, "elements": elements})


def _output_elements(info: LayerInfo, name: str) -> int:
    """glu halves the last axis (Keras's symbolic Activation output keeps the input's shape)."""
    if name in SHAPE_CHANGING_ACTIVATIONS:
        return math.prod(info.input_shapes[0]) // 2
    return math.prod(info.output_shape)


def activation_formula(info: LayerInfo, name: str) -> Formula:
    """The activation ``name``'s table entry applied to every output element."""
    return _elementwise(info, name, *ACTIVATION_FLOPS_PER_ELEMENT[name])


_FIXED_ACTIVATION_LAYERS = {"LeakyReLU": "leaky_relu", "Softmax": "softmax", "ELU": "elu", "PReLU": "prelu"}


@formula_for(*_FIXED_ACTIVATION_LAYERS)
def _fixed_activation_layer(info: LayerInfo) -> Formula:
    formula = activation_formula(info, _FIXED_ACTIVATION_LAYERS[info.type])
    return Formula(terms=formula.terms, macs=0, params=_counted_params(info), geometry=formula.geometry)


@formula_for("Activation")
def _activation_layer(info: LayerInfo) -> Formula:
    function = info.layer.activation
    if function is keras.activations.sparsemax:
        return _sparsemax(info)
    known = activation_cost(function, in_activation_layer=True)
    if known is None:
        raise NoFormula(f"activation {getattr(function, '__name__', repr(function))!r} has no per-element count")
    return activation_formula(info, known[0])


def _sparsemax(info: LayerInfo) -> Formula:
    """Per row of ``n`` (the last axis): a sort (``n * ceil(log2 n)`` comparisons), a running sum
    (``n - 1``), the support test ``1 + k * z_k > cumsum_k`` (3 per element), its size (``n - 1``),
    the threshold ``tau = (cumsum_k - 1) / k`` (2) and ``max(z - tau, 0)`` (2 per element)."""
    n = info.output_shape[-1]
    rows = math.prod(info.output_shape[:-1])
    per_row = n * math.ceil(math.log2(n)) + (n - 1) + 3 * n + (n - 1) + 2 + 2 * n if n > 1 else 0
    return Formula(terms={"activations": rows * per_row}, macs=0, params=0,
                   geometry={"activation": "sparsemax", "rows": rows, "row_length": n,
                             "elements": math.prod(info.output_shape)})


@formula_for("ReLU")
def _relu_layer(info: LayerInfo) -> Formula:
    """One comparison, plus one operation per option used (max_value, negative_slope, threshold)."""
    layer = info.layer
    options = (layer.max_value is not None) + (layer.negative_slope != 0) + (layer.threshold != 0)
    return _elementwise(info, "relu", 1 + options, "max(x, 0) with max_value/negative_slope/threshold")


def _counted_params(info: LayerInfo) -> int:
    """PReLU's alphas (one per element of the shared shape); 0 for the others."""
    return int(info.layer.count_params()) if info.layer.built else 0
