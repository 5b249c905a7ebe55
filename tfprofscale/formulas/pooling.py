"""Pooling: window reductions, per output element."""
from __future__ import annotations

from typing import Callable

from tfprofscale.formulas.registry import Formula, Window, data_format_of, formula_for, nhwc
from tfprofscale.profiling.records import LayerInfo

def _pooling(info: LayerInfo, ops_per_output: Callable[[int], dict[str, int]]) -> Formula:
    """Terms from the operations per output, given the window area."""
    layer, data_format = info.layer, data_format_of(info)
    batch, in_h, in_w, channels = nhwc(info.input_shapes[0], data_format)
    _, out_h, out_w, _ = nhwc(info.output_shape, data_format)
    (pool_h, pool_w), (stride_h, stride_w) = layer.pool_size, layer.strides
    outputs = batch * out_h * out_w * channels
    return Formula(
        terms={name: count * outputs for name, count in ops_per_output(pool_h * pool_w).items()},
        macs=0, params=0,
        geometry={"batch": batch, "in_h": in_h, "in_w": in_w, "channels": channels,
                  "out_h": out_h, "out_w": out_w, "pool_h": pool_h, "pool_w": pool_w,
                  "stride_h": stride_h, "stride_w": stride_w, "padding": layer.padding,
                  "data_format": data_format},
        window=Window((pool_h, pool_w), (stride_h, stride_w), (1, 1), (out_h, out_w)))


@formula_for("MaxPooling2D")
def _max_pooling2d(info: LayerInfo) -> Formula:
    """TensorFlow counts pool_h * pool_w per output; document 004 one comparison fewer."""
    return _pooling(info, lambda area: {"window_taps": area, "comparisons": area - 1})


@formula_for("AveragePooling2D")
def _average_pooling2d(info: LayerInfo) -> Formula:
    """pool_h * pool_w - 1 adds and one divide per output."""
    return _pooling(info, lambda area: {"window_adds": area - 1, "divides": 1})


@formula_for("GlobalAveragePooling2D")
def _global_average_pooling2d(info: LayerInfo) -> Formula:
    """(H * W - 1) adds and one divide per (batch, channel), as TensorFlow counts Mean."""
    batch, in_h, in_w, channels = nhwc(info.input_shapes[0], data_format_of(info))
    outputs = batch * channels
    return Formula(
        terms={"reduction_adds": (in_h * in_w - 1) * outputs, "divides": outputs},
        macs=0, params=0,
        geometry={"batch": batch, "in_h": in_h, "in_w": in_w, "channels": channels,
                  "pool_h": in_h, "pool_w": in_w, "out_h": 1, "out_w": 1},
        window=Window((in_h, in_w), (in_h, in_w), (1, 1), (1, 1)))
