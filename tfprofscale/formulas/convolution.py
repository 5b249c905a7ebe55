"""Convolutions in 1, 2 and 3 spatial dimensions: multiply-adds over the kernel window, per output element.

One geometry serves every rank: its spatial numbers are tuples over the axes
``registry.SPATIAL_AXES[rank]`` (``l`` for a 1-D sequence's length, ``h, w`` for an
image, ``d, h, w`` for a volume) and are reported flat (``in_h``, ``kernel_w``,
``stride_d`` ...), so a 2-D convolution's geometry reads as it always has.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from tfprofscale.formulas.registry import (Formula, NoFormula, Window, activation_of, channels_last,
                                           data_format_of, formula_for, per_axis)
from tfprofscale.records import LayerInfo

#: Every layer type this module registers (the audit's conventions treat them as convolutions).
CONVOLUTION_TYPES = frozenset({
    "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
    "SeparableConv1D", "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"})


@dataclass(frozen=True)
class ConvGeometry:
    """The numbers a convolution's formula uses, spatial ones per axis; also the reported geometry."""

    batch: int
    in_spatial: tuple[int, ...]
    in_channels: int
    out_spatial: tuple[int, ...]
    out_channels: int
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: str
    groups: int
    use_bias: bool
    activation: str
    activation_flops_per_element: int
    data_format: str

    @classmethod
    def of(cls, info: LayerInfo, groups: int, out_shape: tuple[int, ...] | None = None) -> ConvGeometry:
        """The geometry of ``info``'s convolution; ``out_shape`` overrides its output (separable's depthwise)."""
        layer, data_format = info.layer, data_format_of(info)
        batch, in_spatial, in_channels = channels_last(info.input_shapes[0], data_format)
        _, out_spatial, out_channels = channels_last(out_shape or info.output_shape, data_format)
        activation, per_element = activation_of(layer.activation)
        return cls(batch, in_spatial, in_channels, out_spatial, out_channels, tuple(layer.kernel_size),
                   tuple(layer.strides), tuple(layer.dilation_rate), layer.padding, groups,
                   bool(layer.use_bias), activation, per_element, data_format)

    @property
    def outputs(self) -> int:
        return self.batch * math.prod(self.out_spatial) * self.out_channels

    @property
    def in_channels_per_group(self) -> int:
        return self.in_channels // self.groups

    def as_dict(self) -> dict[str, Any]:
        """Flat and JSON-ready: ``in_h``, ``out_w``, ``kernel_d`` ... one key per spatial axis."""
        return {"batch": self.batch, **per_axis("in", self.in_spatial), "in_channels": self.in_channels,
                **per_axis("out", self.out_spatial), "out_channels": self.out_channels,
                **per_axis("kernel", self.kernel), **per_axis("stride", self.strides),
                **per_axis("dilation", self.dilation), "padding": self.padding, "groups": self.groups,
                "use_bias": self.use_bias, "activation": self.activation,
                "activation_flops_per_element": self.activation_flops_per_element,
                "data_format": self.data_format}

    def window(self) -> Window:
        return Window(self.kernel, self.strides, self.dilation, self.out_spatial)


@formula_for("Conv1D", "Conv2D", "Conv3D")
def _convolution_layer(info: LayerInfo) -> Formula:
    """Grouped when ``groups > 1``: each output reads ``Cin / groups`` channels."""
    return _convolution(ConvGeometry.of(info, groups=info.layer.groups))


@formula_for("DepthwiseConv1D", "DepthwiseConv2D")
def _depthwise_convolution(info: LayerInfo) -> Formula:
    """One group per input channel; each yields ``depth_multiplier`` outputs."""
    in_channels = channels_last(info.input_shapes[0], data_format_of(info))[2]
    formula = _convolution(ConvGeometry.of(info, groups=in_channels))
    return replace(formula, geometry={**formula.geometry, "depth_multiplier": info.layer.depth_multiplier})


@formula_for("SeparableConv1D", "SeparableConv2D")
def _separable_convolution(info: LayerInfo) -> Formula:
    """A depthwise convolution to ``Cin * depth_multiplier`` maps, then a pointwise (1x1) one to ``filters``."""
    layer, data_format = info.layer, data_format_of(info)
    batch, out_spatial, filters = channels_last(info.output_shape, data_format)
    in_channels = channels_last(info.input_shapes[0], data_format)[2]
    middle = in_channels * layer.depth_multiplier
    middle_shape = (batch, middle, *out_spatial) if data_format == "channels_first" else (batch, *out_spatial, middle)
    depthwise = ConvGeometry.of(info, groups=in_channels, out_shape=middle_shape)
    depthwise_macs = depthwise.outputs * math.prod(depthwise.kernel)
    pointwise_macs = batch * math.prod(out_spatial) * filters * middle
    outputs = batch * math.prod(out_spatial) * filters
    geometry = {**replace(depthwise, out_channels=filters).as_dict(), "depth_multiplier": layer.depth_multiplier,
                "middle_channels": middle}
    return Formula(
        terms={"depthwise_multiply_adds": 2 * depthwise_macs, "pointwise_multiply_adds": 2 * pointwise_macs,
               "bias_adds": outputs if depthwise.use_bias else 0,
               "activations": outputs * depthwise.activation_flops_per_element,
               "padded_taps": depthwise_macs - _real_taps(depthwise)},
        macs=depthwise_macs + pointwise_macs,
        params=math.prod(depthwise.kernel) * middle + middle * filters + (filters if depthwise.use_bias else 0),
        geometry=geometry, window=depthwise.window())


@formula_for("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
def _transposed_convolution(info: LayerInfo) -> Formula:
    """Every input element times every kernel tap of every filter, scattered into the output.

    multiply-adds = N * prod(input spatial) * Cin * prod(kernel) * Cout; the
    scattered products that SAME padding crops off are computed and counted.
    """
    layer = info.layer
    if tuple(layer.dilation_rate) != (1,) * len(layer.kernel_size):
        raise NoFormula(f"{info.type} with dilation_rate {tuple(layer.dilation_rate)} has no formula")
    g = ConvGeometry.of(info, groups=1)
    multiply_adds = g.batch * math.prod(g.in_spatial) * g.in_channels * math.prod(g.kernel) * g.out_channels
    return Formula(
        terms={"multiply_adds": 2 * multiply_adds, "bias_adds": g.outputs if g.use_bias else 0,
               "activations": g.outputs * g.activation_flops_per_element},
        macs=multiply_adds,
        params=math.prod(g.kernel) * g.in_channels * g.out_channels + (g.out_channels if g.use_bias else 0),
        geometry={**g.as_dict(), "output_padding": _output_padding(layer)}, resamples=True)


def _output_padding(layer: Any) -> list[int] | None:
    return None if layer.output_padding is None else list(layer.output_padding)


def _convolution(g: ConvGeometry) -> Formula:
    """multiply-adds = N * prod(out spatial) * Cout * prod(kernel) * (Cin / groups)."""
    multiply_adds = g.outputs * math.prod(g.kernel) * g.in_channels_per_group
    weights = math.prod(g.kernel) * g.in_channels_per_group * g.out_channels
    return Formula(
        terms={"multiply_adds": 2 * multiply_adds,
               "bias_adds": g.outputs if g.use_bias else 0,
               "activations": g.outputs * g.activation_flops_per_element,
               "padded_taps": multiply_adds - _real_taps(g)},
        macs=multiply_adds,
        params=weights + (g.out_channels if g.use_bias else 0),
        geometry=g.as_dict(), window=g.window())


def _real_taps(g: ConvGeometry) -> int:
    """Multiply-adds whose kernel tap lands inside the input (not on SAME or causal padding)."""
    taps_per_axis = (_real_taps_along(*sizes, g.padding)
                     for sizes in zip(g.in_spatial, g.out_spatial, g.kernel, g.strides, g.dilation))
    return g.batch * g.out_channels * g.in_channels_per_group * math.prod(taps_per_axis)


def _real_taps_along(in_size: int, out_size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Kernel taps inside the input along one axis, summed over output positions."""
    missing = max((out_size - 1) * stride + (kernel - 1) * dilation + 1 - in_size, 0)
    pad_before = {"same": missing // 2, "causal": missing}.get(padding, 0)
    return sum(1 for position in range(out_size) for tap in range(kernel)
               if 0 <= position * stride - pad_before + tap * dilation < in_size)
