"""Dense layers: a matrix product per row of the input."""
from __future__ import annotations

import math

from tfprofscale.formulas.registry import Formula, activation_of, formula_for
from tfprofscale.profiling.records import LayerInfo

@formula_for("Dense")
def _dense(info: LayerInfo) -> Formula:
    """multiply-adds = rows * in_features * out_features; rows = all dims but the last."""
    layer, input_shape = info.layer, info.input_shapes[0]
    rows, in_features, out_features = math.prod(input_shape[:-1]), input_shape[-1], layer.units
    activation, per_element = activation_of(layer.activation)
    outputs = rows * out_features
    multiply_adds = rows * in_features * out_features
    return Formula(
        terms={"multiply_adds": 2 * multiply_adds,
               "bias_adds": outputs if layer.use_bias else 0,
               "activations": outputs * per_element},
        macs=multiply_adds,
        params=in_features * out_features + (out_features if layer.use_bias else 0),
        geometry={"rows": rows, "in_features": in_features, "out_features": out_features,
                  "use_bias": bool(layer.use_bias), "activation": activation,
                  "activation_flops_per_element": per_element},
        mixes_all_positions=len(input_shape) == 2)
