"""Pooling and resizing in 1, 2 and 3 spatial dimensions: window reductions, per output element;
padding, cropping and upsampling (copies, or an interpolation per output element).

Max pooling is charged the window's taps per output, as TensorFlow counts
``MaxPool`` (document 004's ``area - 1`` comparisons are the diagnostic
``comparisons`` term); a global pooling is a pooling whose window is the whole
map. TensorFlow has no FLOPs statistics for ``MaxPool3D``, ``AvgPool3D`` or
the ``Max`` reduction of global max pooling: the graph counts those 0.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any, Callable

from tfprofscale.formulas.registry import (Formula, NoFormula, Window, called_with_mask, channels_last, data_format_of,
                                           formula_for, per_axis)
from tfprofscale.records import LayerInfo

OpsPerOutput = Callable[[int], dict[str, int]]


def _max_taps(area: int) -> dict[str, int]:
    """TensorFlow counts the window area per output; document 004 one comparison fewer."""
    return {"window_taps": area, "comparisons": area - 1}


def _average_taps(area: int) -> dict[str, int]:
    """``area - 1`` adds and one divide per output."""
    return {"window_adds": area - 1, "divides": 1}


@formula_for("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D")
def _global_average_pooling(info: LayerInfo) -> Formula:
    """Per (batch, channel): ``prod(map) - 1`` adds and one divide, as TensorFlow counts ``Mean``."""
    if info.type == "GlobalAveragePooling1D" and called_with_mask(info.layer):
        return _masked_global_average_pooling(info)
    return _global_pooling(info, _average_taps)


def _masked_global_average_pooling(info: LayerInfo) -> Formula:
    """The mean over unmasked steps: a select per element (masked steps to 0), ``steps - 1`` adds per
    (batch, channel), ``steps - 1`` adds per example to count the unmasked steps, and a divide."""
    batch, (steps,), channels = channels_last(info.input_shapes[0], data_format_of(info))
    formula = _global_pooling(info, _average_taps)
    return replace(formula, terms={"mask_selects": batch * steps * channels,
                                   "window_adds": batch * channels * (steps - 1),
                                   "mask_count_adds": batch * (steps - 1), "divides": batch * channels},
                   geometry={**formula.geometry, "masked": True})


def _pooling(info: LayerInfo, ops_per_output: OpsPerOutput) -> Formula:
    """Terms from the operations per output, given the window area."""
    layer, data_format = info.layer, data_format_of(info)
    batch, in_spatial, channels = channels_last(info.input_shapes[0], data_format)
    _, out_spatial, _ = channels_last(info.output_shape, data_format)
    pool, strides = tuple(layer.pool_size), tuple(layer.strides)
    outputs = batch * math.prod(out_spatial) * channels
    return Formula(
        terms={name: count * outputs for name, count in ops_per_output(math.prod(pool)).items()},
        macs=0, params=0,
        geometry={"batch": batch, **per_axis("in", in_spatial), "channels": channels,
                  **per_axis("out", out_spatial), **per_axis("pool", pool), **per_axis("stride", strides),
                  "padding": layer.padding, "data_format": data_format},
        window=Window(pool, strides, (1,) * len(pool), out_spatial))


def _adaptive_pooling(info: LayerInfo, ops_per_output: OpsPerOutput) -> Formula:
    """Output bin ``i`` of ``out`` along an axis of ``n`` covers ``[floor(i n / out), ceil((i + 1) n / out))``;
    each output reduces its bin (the product of its per-axis bin lengths)."""
    data_format = data_format_of(info)
    batch, in_spatial, channels = channels_last(info.input_shapes[0], data_format)
    _, out_spatial, _ = channels_last(info.output_shape, data_format)
    bins = [_bin_lengths(n, out) for n, out in zip(in_spatial, out_spatial)]
    terms: dict[str, int] = {}
    for window in itertools.product(*bins):
        for name, count in ops_per_output(math.prod(window)).items():
            terms[name] = terms.get(name, 0) + count * batch * channels
    return Formula(terms=terms, macs=0, params=0,
                   geometry={"batch": batch, **per_axis("in", in_spatial), "channels": channels,
                             **per_axis("out", out_spatial), "data_format": data_format},
                   resamples=True)


def _bin_lengths(size: int, bins: int) -> list[int]:
    return [-(-(i + 1) * size // bins) - i * size // bins for i in range(bins)]


def _global_pooling(info: LayerInfo, ops_per_output: OpsPerOutput) -> Formula:
    data_format = data_format_of(info)
    batch, in_spatial, channels = channels_last(info.input_shapes[0], data_format)
    outputs = batch * channels
    ones = (1,) * len(in_spatial)
    return Formula(
        terms={name: count * outputs for name, count in ops_per_output(math.prod(in_spatial)).items()},
        macs=0, params=0,
        geometry={"batch": batch, **per_axis("in", in_spatial), "channels": channels,
                  **per_axis("pool", in_spatial), **per_axis("out", ones),
                  "keepdims": bool(info.layer.keepdims), "data_format": data_format},
        window=Window(in_spatial, in_spatial, ones, ones))


#: Pooling families by class-name stem (``MaxPooling`` -> MaxPooling1D/2D/3D): how the windows are laid
#: out, and the operations per output given its window area.
_POOLINGS: dict[str, tuple[Callable[[LayerInfo, OpsPerOutput], Formula], OpsPerOutput]] = {
    "MaxPooling": (_pooling, _max_taps), "AveragePooling": (_pooling, _average_taps),
    "AdaptiveMaxPooling": (_adaptive_pooling, _max_taps), "AdaptiveAveragePooling": (_adaptive_pooling, _average_taps),
    "GlobalMaxPooling": (_global_pooling, _max_taps)}


@formula_for(*(f"{stem}{rank}D" for stem in _POOLINGS for rank in (1, 2, 3)))
def _window_pooling(info: LayerInfo) -> Formula:
    """Max, average, adaptive and global max pooling in 1, 2 and 3-D: their window layout and reduction."""
    layout, ops_per_output = _POOLINGS[info.type[:-2]]
    return layout(info, ops_per_output)


# -- resizing: padding, cropping, upsampling ---------------------------------------------------

#: Taps per axis of each separable interpolation filter (nearest reads one input and computes nothing).
INTERPOLATION_TAPS = {"nearest": 1, "bilinear": 2, "bicubic": 4, "lanczos3": 6, "lanczos5": 10}


def interpolation_flops_per_output(interpolation: str) -> int:
    """A separable ``t``-tap filter in 2-D: ``t`` row sums then one column sum, each ``t`` multiplies and
    ``t - 1`` adds: ``(t + 1) * (2t - 1)``; bilinear (t = 2) is 3 lerps of 3 operations = 9. The filter
    weights depend on the position only and are not counted. Nearest: 0."""
    if interpolation not in INTERPOLATION_TAPS:
        raise NoFormula(f"interpolation {interpolation!r} has no per-output count")
    taps = INTERPOLATION_TAPS[interpolation]
    return 0 if taps == 1 else (taps + 1) * (2 * taps - 1)


def resized(info: LayerInfo, interpolation: str, **geometry: Any) -> Formula:
    """Each output element interpolated from the input map; the receptive-field recursion ends here."""
    data_format = data_format_of(info)
    batch, in_spatial, channels = channels_last(info.input_shapes[0], data_format)
    _, out_spatial, _ = channels_last(info.output_shape, data_format)
    outputs = batch * math.prod(out_spatial) * channels
    per_output = interpolation_flops_per_output(interpolation)
    return Formula(
        terms={"interpolation": per_output * outputs} if per_output else {},
        macs=0, params=0,
        geometry={"batch": batch, **per_axis("in", in_spatial), "channels": channels,
                  **per_axis("out", out_spatial), "interpolation": interpolation,
                  "interpolation_flops_per_output": per_output, "elements": outputs,
                  "data_format": data_format, **geometry},
        resamples=True)


@formula_for("UpSampling1D", "UpSampling2D", "UpSampling3D")
def _upsampling(info: LayerInfo) -> Formula:
    """Nearest repeats each input ``size`` times per axis (a copy); bilinear ... interpolate (2-D only)."""
    size = info.layer.size
    sizes = [size] if isinstance(size, int) else list(size)
    return resized(info, getattr(info.layer, "interpolation", "nearest"), size=sizes)


@formula_for("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D")
def _pad_or_crop(info: LayerInfo) -> Formula:
    """A copy into a larger (zeros around) or smaller (a slice) map: no arithmetic."""
    data_format = data_format_of(info)
    _, in_spatial, _ = channels_last(info.input_shapes[0], data_format)
    batch, out_spatial, channels = channels_last(info.output_shape, data_format)
    ones = (1,) * len(out_spatial)
    return Formula(terms={}, macs=0, params=0,
                   geometry={"batch": batch, **per_axis("in", in_spatial), "channels": channels,
                             **per_axis("out", out_spatial), "data_format": data_format},
                   window=Window(ones, ones, ones, out_spatial))
