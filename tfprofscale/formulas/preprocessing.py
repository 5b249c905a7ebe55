"""Preprocessing layers at inference: rescaling, normalization, resizing and center cropping."""
from __future__ import annotations

import math

from tfprofscale.formulas.pooling import resized
from tfprofscale.formulas.registry import Formula, NoFormula, channels_last, data_format_of, formula_for
from tfprofscale.records import LayerInfo


@formula_for("Rescaling")
def _rescaling(info: LayerInfo) -> Formula:
    """y = x * scale + offset: a multiply and an add per element (Keras adds the offset even when 0)."""
    elements = math.prod(info.output_shape)
    return Formula(terms={"scale": elements, "offset": elements}, macs=0, params=0,
                   geometry={"elements": elements})


@formula_for("Normalization")
def _normalization(info: LayerInfo) -> Formula:
    """y = (x - mean) / max(sqrt(var), eps) (``invert``: x * max(sqrt(var), eps) + mean).

    Two operations per element, and a square root and a clamp per statistic
    (one per channel, or one for ``axis=None``). Parameters as Keras counts
    them: the adapted mean, variance and count (none when given as arguments).
    """
    layer = info.layer
    if layer.mean is None:
        raise NoFormula(f"Normalization {info.name!r} has no mean yet (call adapt() or pass mean and variance)")
    elements, statistics = math.prod(info.output_shape), math.prod(layer.mean.shape)
    return Formula(
        terms={"center": elements, "scale": elements, "statistic_constants": 2 * statistics},
        macs=0, params=int(layer.count_params()),
        geometry={"elements": elements, "statistics": statistics, "invert": bool(layer.invert)})


@formula_for("Resizing")
def _resizing(info: LayerInfo) -> Formula:
    """Each output element interpolated from the input image (see ``pooling.interpolation_flops_per_output``)."""
    layer = info.layer
    if layer.antialias and _shrinks(info):
        raise NoFormula(f"Resizing {info.name!r} with antialias=True: the filter widens with the scale")
    return resized(info, layer.interpolation, crop_to_aspect_ratio=bool(layer.crop_to_aspect_ratio),
                   pad_to_aspect_ratio=bool(layer.pad_to_aspect_ratio))


@formula_for("CenterCrop")
def _center_crop(info: LayerInfo) -> Formula:
    """A slice; an image smaller than the target is first resized up (bilinear), as Keras does."""
    data_format = data_format_of(info)
    in_spatial = channels_last(info.input_shapes[0], data_format)[1]
    out_spatial = channels_last(info.output_shape, data_format)[1]
    if all(i >= o for i, o in zip(in_spatial, out_spatial)):
        return Formula(terms={}, macs=0, params=0, geometry={"elements": math.prod(info.output_shape)})
    return resized(info, "bilinear")


def _shrinks(info: LayerInfo) -> bool:
    data_format = data_format_of(info)
    in_spatial = channels_last(info.input_shapes[0], data_format)[1]
    out_spatial = channels_last(info.output_shape, data_format)[1]
    return any(o < i for i, o in zip(in_spatial, out_spatial))


@formula_for("TextVectorization", "StringLookup", "IntegerLookup")
def _lookup(info: LayerInfo) -> Formula:
    """Text to token ids (``output_mode="int"``): string operations and hash-table lookups, no arithmetic.

    0 FLOPs by the convention (a lookup is not a floating-point operation);
    the work is in ``geometry``: one lookup per output token. TensorFlow's
    profiler has no statistics for the string and lookup ops either: they are
    listed as uncounted. Other output modes (counts, TF-IDF) are left without a formula.
    """
    mode = getattr(info.layer, "output_mode", "int")
    if mode != "int":
        raise NoFormula(f"{info.type} {info.name!r} with output_mode={mode!r}: only 'int' has a formula")
    lookups = math.prod(info.output_shape)
    return Formula(terms={}, macs=0, params=int(info.layer.count_params()), geometry={"lookups": lookups})
