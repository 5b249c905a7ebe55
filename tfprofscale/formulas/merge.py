"""Merge layers: element-wise combinations of several inputs, concatenation, and the dot product.

Element-wise merges broadcast their inputs to the output shape, so their
work is (inputs - 1) operations per *output* element, whatever the inputs'
shapes.
"""
from __future__ import annotations

import math

from tfprofscale.formulas.registry import Formula, NoFormula, formula_for
from tfprofscale.records import LayerInfo, Shape

#: Term name of each element-wise merge's (inputs - 1) operations per output element.
_PAIRWISE_TERM = {"Add": "adds", "Subtract": "subtracts", "Multiply": "multiplies",
                  "Maximum": "comparisons_max", "Minimum": "comparisons_min", "Average": "adds"}


@formula_for(*_PAIRWISE_TERM)
def _elementwise_merge(info: LayerInfo) -> Formula:
    """(inputs - 1) operations per output element; Average adds one divide per element."""
    inputs, elements = len(info.input_shapes), math.prod(info.output_shape)
    terms = {_PAIRWISE_TERM[info.type]: (inputs - 1) * elements}
    if info.type == "Average":
        terms["divides"] = elements
    return Formula(terms=terms, macs=0, params=0, geometry={"inputs": inputs, "elements": elements})


@formula_for("Concatenate")
def _concatenate(info: LayerInfo) -> Formula:
    """A copy of every input into the output: no arithmetic."""
    return Formula(terms={}, macs=0, params=0,
                   geometry={"inputs": len(info.input_shapes), "elements": math.prod(info.output_shape)})


@formula_for("Dot")
def _dot(info: LayerInfo) -> Formula:
    """multiply-adds = output elements * contracted length; ``normalize`` L2-normalizes both inputs first.

    L2 normalization of an input of ``e`` elements in ``r`` vectors: ``e``
    squares, ``e - r`` adds, per vector a reciprocal square root (2, as
    TensorFlow counts ``Rsqrt``) and a clamp, then ``e`` multiplies.
    """
    axes = _contracted_axes(info)
    contracted = info.input_shapes[0][axes[0]]
    multiply_adds = math.prod(info.output_shape) * contracted
    terms = {"multiply_adds": 2 * multiply_adds}
    if info.layer.normalize:
        terms["normalize"] = sum(_l2_normalize_flops(shape, axis) for shape, axis in zip(info.input_shapes, axes))
    return Formula(terms=terms, macs=multiply_adds, params=0,
                   geometry={"axes": list(axes), "contracted": contracted, "normalize": bool(info.layer.normalize),
                             "elements": math.prod(info.output_shape)})


def _contracted_axes(info: LayerInfo) -> tuple[int, int]:
    """Keras's ``axes`` as non-negative axes of the two inputs (the batch axis cannot be contracted)."""
    if len(info.input_shapes) != 2:
        raise NoFormula(f"Dot {info.name!r} has {len(info.input_shapes)} inputs, not 2")
    axes = info.layer.axes
    pair = (axes, axes) if isinstance(axes, int) else tuple(axes)
    return tuple(axis % len(shape) for axis, shape in zip(pair, info.input_shapes))


def _l2_normalize_flops(shape: Shape, axis: int) -> int:
    elements = math.prod(shape)
    vectors = elements // shape[axis]
    return elements + (elements - vectors) + 2 * vectors + vectors + elements


#: Where keras.applications defines ``CustomScaleLayer`` (a user's class of the same name is not it).
_INCEPTION_RESNET_MODULE = "keras.src.applications.inception_resnet_v2"


@formula_for("CustomScaleLayer")
def _scaled_residual(info: LayerInfo) -> Formula:
    """InceptionResNetV2's block end ``x + r * scale``: a multiply and an add per output element."""
    if type(info.layer).__module__ != _INCEPTION_RESNET_MODULE:
        raise NoFormula(f"CustomScaleLayer {info.name!r} is not keras.applications' ({type(info.layer).__module__})")
    elements = math.prod(info.output_shape)
    return Formula(terms={"multiplies": elements, "adds": elements}, macs=0, params=0,
                   geometry={"scale": info.layer.scale, "elements": elements})
