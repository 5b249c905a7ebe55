"""Normalization layers at inference.

The moment-based normalizations (Layer, Group) run as Keras writes them:
``mean`` (N), ``variance`` = mean of squared differences (3N), ``inverse_std``
= rsqrt(variance + eps) per normalized row (3 each: TensorFlow counts Rsqrt
as 2), ``scale`` = inverse_std * gamma, ``shift`` = beta - mean *
inverse_std, ``normalize`` = x * a + b (2N), where N is the number of
elements and the affine terms run on the broadcast of the row statistics
with gamma and beta.
"""
from __future__ import annotations

import math
from typing import Any

from tfprofscale.formulas.registry import Formula, NoFormula, formula_for, layer_cost
from tfprofscale.records import LayerInfo, Shape

@formula_for("BatchNormalization")
def _batch_normalization(info: LayerInfo) -> Formula:
    """Inference: y = a * x + b per element, a = gamma / sqrt(var + eps), b = beta - mean * a."""
    layer, input_shape = info.layer, info.input_shapes[0]
    channels, elements = input_shape[layer.axis], math.prod(input_shape)
    return Formula(
        terms={"scale_shift": 2 * elements,
               "channel_constants": channels * (5 + int(layer.scale))},
        macs=elements,
        params=channels * (2 + int(layer.center) + int(layer.scale)),
        geometry={"elements": elements, "channels": channels, "center": bool(layer.center),
                  "scale": bool(layer.scale)})


def _moments_terms(elements: int, rows: int, affine_elements: int, scale: bool, center: bool) -> dict[str, int]:
    """Terms of (x - mean) / sqrt(var + eps) * gamma + beta, as x * a + b with a, b per row (and channel)."""
    a_elements = affine_elements if scale else rows
    return {"mean": elements, "variance": 3 * elements, "inverse_std": 3 * rows,
            "scale": affine_elements if scale else 0,
            "shift": rows + a_elements + (affine_elements if center else 0),
            "normalize": 2 * elements}


@formula_for("LayerNormalization")
def _layer_normalization(info: LayerInfo) -> Formula:
    """Per example, over ``axis``: mean, variance, normalize, scale (gamma) and center (beta).

    ``rms_scaling=True`` (deprecated in Keras) divides by the standard deviation
    without subtracting the mean: x * rsqrt(var + eps) * gamma.
    """
    layer, input_shape = info.layer, info.input_shapes[0]
    elements, normalized = math.prod(input_shape), _normalized_size(input_shape, layer.axis)
    rows = elements // normalized
    if layer.rms_scaling:
        terms = {"mean": elements, "variance": 3 * elements, "inverse_std": 3 * rows,
                 "normalize": elements, "scale": elements if layer.scale else 0}
    else:
        terms = _moments_terms(elements, rows, elements, layer.scale, layer.center)
    return Formula(terms=terms, macs=0, params=int(layer.count_params()),
                   geometry={"elements": elements, "rows": rows, "normalized_size": normalized,
                             "scale": bool(layer.scale), "center": bool(layer.center),
                             "rms_scaling": bool(layer.rms_scaling)})


@formula_for("GroupNormalization")
def _group_normalization(info: LayerInfo) -> Formula:
    """Per example and group of channels/groups channels: statistics over positions and the group."""
    layer, input_shape = info.layer, info.input_shapes[0]
    elements, batch, channels = math.prod(input_shape), input_shape[0], input_shape[layer.axis]
    rows = batch * layer.groups
    return Formula(terms=_moments_terms(elements, rows, batch * channels, layer.scale, layer.center),
                   macs=0, params=int(layer.count_params()),
                   geometry={"elements": elements, "rows": rows, "groups": layer.groups, "channels": channels,
                             "scale": bool(layer.scale), "center": bool(layer.center)})


@formula_for("UnitNormalization")
def _unit_normalization(info: LayerInfo) -> Formula:
    """x * min(rsqrt(sum(x^2)), 1/eps) over ``axis``."""
    layer, input_shape = info.layer, info.input_shapes[0]
    elements, normalized = math.prod(input_shape), _normalized_size(input_shape, layer.axis)
    rows = elements // normalized
    return Formula(terms={"squares": elements, "sum": elements - rows, "inverse_norm": 2 * rows,
                          "epsilon_floor": rows, "normalize": elements},
                   macs=0, params=0, geometry={"elements": elements, "rows": rows, "normalized_size": normalized})


@formula_for("RMSNormalization")
def _rms_normalization(info: LayerInfo) -> Formula:
    """x * rsqrt(mean(x^2) + eps) * scale over ``axis``."""
    layer, input_shape = info.layer, info.input_shapes[0]
    elements, normalized = math.prod(input_shape), _normalized_size(input_shape, layer.axis)
    rows = elements // normalized
    return Formula(terms={"squares": elements, "mean": elements, "inverse_rms": 3 * rows,
                          "normalize": elements, "scale": elements},
                   macs=0, params=int(layer.count_params()),
                   geometry={"elements": elements, "rows": rows, "normalized_size": normalized})


@formula_for("SpectralNormalization")
def _spectral_normalization(info: LayerInfo) -> Formula:
    """At inference the wrapped layer with its stored (already normalized) kernel: its own formula."""
    inner = info.layer.layer
    cost = layer_cost(LayerInfo(name=f"{info.name}/{inner.name}", type=type(inner).__name__,
                                input_shapes=info.input_shapes, output_shape=info.output_shape, layer=inner))
    if not cost.supported:
        raise NoFormula(f"inner layer {inner.name!r}: {cost.geometry.get('unsupported_reason')}")
    return Formula(terms=dict(cost.terms), macs=cost.macs, params=int(info.layer.count_params()),
                   geometry={"inner_type": type(inner).__name__, "inner": cost.geometry})


@formula_for("LayerScale")
def _layer_scale(info: LayerInfo) -> Formula:
    """keras.applications.convnext's ``LayerScale`` (registered by class name): x * gamma, one multiply each.

    Another class of that name counts only if it too holds a ``gamma`` of one value per channel.
    """
    gamma = getattr(info.layer, "gamma", None)
    if gamma is None or tuple(gamma.shape) != (info.input_shapes[0][-1],):
        raise NoFormula(f"LayerScale {info.name!r} is not ConvNeXt's x * gamma")
    elements = math.prod(info.input_shapes[0])
    return Formula(terms={"scale": elements}, macs=0, params=int(info.layer.count_params()),
                   geometry={"elements": elements})


def _normalized_size(input_shape: Shape, axis: Any) -> int:
    axes = [axis] if isinstance(axis, int) else list(axis)
    if any(input_shape[a] is None for a in axes):
        raise NoFormula(f"normalized axes {axes} of {input_shape} are not known")
    return math.prod(input_shape[a] for a in axes)
