"""Convolutions: multiply-adds over the kernel window, per output element."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from tfprofscale.formulas.registry import Formula, Window, activation_of, data_format_of, formula_for, nhwc
from tfprofscale.profiling.records import LayerInfo

@dataclass(frozen=True)
class _ConvGeometry:
    """The numbers a convolution's formula uses; also the reported geometry."""

    batch: int
    in_h: int
    in_w: int
    in_channels: int
    out_h: int
    out_w: int
    out_channels: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    padding: str
    groups: int
    use_bias: bool
    activation: str
    activation_flops_per_element: int
    data_format: str

    @classmethod
    def of(cls, info: LayerInfo, groups: int) -> _ConvGeometry:
        layer, data_format = info.layer, data_format_of(info)
        batch, in_h, in_w, in_channels = nhwc(info.input_shapes[0], data_format)
        _, out_h, out_w, out_channels = nhwc(info.output_shape, data_format)
        activation, per_element = activation_of(layer.activation)
        return cls(batch, in_h, in_w, in_channels, out_h, out_w, out_channels,
                   *layer.kernel_size, *layer.strides, *layer.dilation_rate, layer.padding,
                   groups, bool(layer.use_bias), activation, per_element, data_format)


@formula_for("Conv2D")
def _conv2d(info: LayerInfo) -> Formula:
    return _convolution(_ConvGeometry.of(info, groups=info.layer.groups))


@formula_for("DepthwiseConv2D")
def _depthwise_conv2d(info: LayerInfo) -> Formula:
    in_channels = nhwc(info.input_shapes[0], data_format_of(info))[3]
    formula = _convolution(_ConvGeometry.of(info, groups=in_channels))
    return replace(formula, geometry={**formula.geometry, "depth_multiplier": info.layer.depth_multiplier})


def _convolution(g: _ConvGeometry) -> Formula:
    """multiply-adds = N * Hout * Wout * Cout * Kh * Kw * (Cin / groups)."""
    outputs = g.batch * g.out_h * g.out_w * g.out_channels
    in_channels_per_group = g.in_channels // g.groups
    multiply_adds = outputs * g.kernel_h * g.kernel_w * in_channels_per_group
    real_taps = (g.batch * g.out_channels * in_channels_per_group
                 * _real_taps(g.in_h, g.out_h, g.kernel_h, g.stride_h, g.dilation_h, g.padding)
                 * _real_taps(g.in_w, g.out_w, g.kernel_w, g.stride_w, g.dilation_w, g.padding))
    weights = g.kernel_h * g.kernel_w * in_channels_per_group * g.out_channels
    return Formula(
        terms={"multiply_adds": 2 * multiply_adds,
               "bias_adds": outputs if g.use_bias else 0,
               "activations": outputs * g.activation_flops_per_element,
               "padded_taps": multiply_adds - real_taps},
        macs=multiply_adds,
        params=weights + (g.out_channels if g.use_bias else 0),
        geometry=asdict(g),
        window=Window((g.kernel_h, g.kernel_w), (g.stride_h, g.stride_w),
                       (g.dilation_h, g.dilation_w), (g.out_h, g.out_w)))


def _real_taps(in_size: int, out_size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Kernel taps inside the input along one axis, summed over output positions."""
    span = (out_size - 1) * stride + (kernel - 1) * dilation + 1
    pad_before = max(span - in_size, 0) // 2 if padding == "same" else 0
    return sum(1 for position in range(out_size) for tap in range(kernel)
               if 0 <= position * stride - pad_before + tap * dilation < in_size)
