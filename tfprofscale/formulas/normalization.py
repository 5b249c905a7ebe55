"""Normalization layers at inference."""
from __future__ import annotations

import math

from tfprofscale.formulas.registry import Formula, formula_for
from tfprofscale.profiling.records import LayerInfo

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
