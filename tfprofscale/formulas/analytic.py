"""Hand-derived cost formulas: one small function per Keras layer type.

Each formula reads a built layer's configuration and its input and output
shapes (batch fixed) and returns the work of one inference forward pass,
split into named ``terms``:

- ``flops`` counts a multiply-add as 2 (as TensorFlow's profiler does) and is
  the sum of the terms not in ``DIAGNOSTIC_TERMS``; ``macs`` counts
  multiply-adds only. Terms are in flops, except the diagnostics:
  ``padded_taps`` (MACs that multiply SAME padding zeros, a part of ``macs``)
  and ``comparisons`` (document 004's h*w - 1 per max-pool output).
- ``terms["activations"]`` uses ``ACTIVATION_FLOPS_PER_ELEMENT``; TensorFlow's
  profiler counts Softmax (5 per element, the same) but not Relu or Sigmoid.
- ``activation_bytes`` is the output's memory; views and the identity at
  inference (Flatten, Reshape, Dropout) allocate none.
- A layer with no formula gets ``flops``/``macs`` None, never 0.

Receptive field (document 003's "effective aperture"): the side, in model
input pixels, of the patch one output unit sees, by the recursion
``r_out = r_in + (k - 1) * dilation * j_in``, ``j_out = j_in * stride`` per
axis, reporting the larger side. Layers without a kernel pass it through. A
Dense layer on a flattened map is a VALID convolution whose kernel is the
last spatial map, so it sees ``r + (map - 1) * j``; with no spatial map
before it (an MLP) the field is None.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

import tensorflow as tf

from tfprofscale.formulas.activations import ACTIVATION_FLOPS_PER_ELEMENT, activation_cost
from tfprofscale.errors import InputError
from tfprofscale.profiling.records import LayerCost, LayerInfo, Shape

#: Terms that describe the work but are not added into ``flops``.
DIAGNOSTIC_TERMS = frozenset({"padded_taps", "comparisons"})

@dataclass(frozen=True)
class _Window:
    """A sliding window over the spatial axes (h, w), and the map it produces."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    output_map: tuple[int, int]


@dataclass(frozen=True)
class _Formula:
    """What a layer's formula found: flops terms, MACs, parameters, geometry."""

    terms: dict[str, int]
    macs: int
    params: int
    geometry: dict[str, Any] = field(default_factory=dict)
    window: _Window | None = None
    mixes_all_positions: bool = False
    allocates_output: bool = True


class _NoFormula(Exception):
    """The layer's configuration is outside what its formula covers."""


@dataclass(frozen=True)
class _Aperture:
    """What one output unit sees of the model input, per spatial axis (h, w)."""

    receptive_field: tuple[int, int]
    jump: tuple[int, int]
    map_size: tuple[int, int] | None

    @classmethod
    def at_input_of(cls, info: LayerInfo) -> _Aperture:
        shape = info.input_shapes[0] if info.input_shapes else info.output_shape
        spatial = _nhwc(shape, _data_format(info))[1:3] if len(shape) == 4 else None
        return cls((1, 1), (1, 1), spatial)

    def after(self, formula: _Formula) -> _Aperture | None:
        if formula.window is not None:
            return self._through(formula.window)
        if not formula.mixes_all_positions:
            return self
        if self.map_size is None:
            return None
        return self._through(_Window(self.map_size, self.map_size, (1, 1), (1, 1)))

    def _through(self, window: _Window) -> _Aperture:
        field_px = tuple(r + (k - 1) * d * j for r, k, d, j in
                         zip(self.receptive_field, window.kernel, window.dilation, self.jump))
        jump = tuple(j * s for j, s in zip(self.jump, window.stride))
        return _Aperture(field_px, jump, window.output_map)


_FormulaFunction = Callable[[LayerInfo], _Formula]
_FORMULAS: dict[str, _FormulaFunction] = {}


def _formula_for(*layer_types: str) -> Callable[[_FormulaFunction], _FormulaFunction]:
    """Register a formula under one or more Keras layer class names."""
    def register(formula: _FormulaFunction) -> _FormulaFunction:
        for layer_type in layer_types:
            _FORMULAS[layer_type] = formula
        return formula
    return register


def supported_layer_types() -> list[str]:
    """The Keras layer class names that have a formula."""
    return sorted(_FORMULAS)


def layer_cost(info: LayerInfo, dtype_bytes: int | None = None) -> LayerCost:
    """Cost of one layer; its receptive field is in pixels of its own input."""
    cost, _ = _cost_and_aperture(info, dtype_bytes, _Aperture.at_input_of(info))
    return cost


def analyze_layers(layers: Sequence[LayerInfo]) -> list[LayerCost]:
    """Costs of all layers, in order, with receptive fields carried along ``inbound``.

    A layer whose inbound layers are not in ``layers`` starts at its own input
    (receptive field 1); after a layer with no formula the field is None.
    """
    apertures: dict[str, _Aperture | None] = {}
    costs = []
    for info in layers:
        cost, apertures[info.name] = _cost_and_aperture(info, None, _inbound_aperture(info, apertures))
        costs.append(cost)
    return costs


def _cost_and_aperture(info: LayerInfo, dtype_bytes: int | None,
                       seen: _Aperture | None) -> tuple[LayerCost, _Aperture | None]:
    output_elements = _elements(info.output_shape, info.name)
    output_bytes = output_elements * (dtype_bytes or _compute_dtype_bytes(info.layer))
    try:
        formula = _formula(info)
    except _NoFormula as reason:
        unsupported = LayerCost(
            layer_type=info.type, supported=False, flops=None, macs=None,
            params=_counted_params(info.layer), output_elements=output_elements,
            activation_bytes=output_bytes, geometry={"unsupported_reason": str(reason)})
        return unsupported, None
    aperture = seen.after(formula) if seen is not None else None
    cost = LayerCost(
        layer_type=info.type, supported=True, flops=_flops(formula.terms), macs=formula.macs,
        params=formula.params, output_elements=output_elements,
        activation_bytes=output_bytes if formula.allocates_output else 0,
        receptive_field=max(aperture.receptive_field) if aperture else None,
        jump=max(aperture.jump) if aperture else None,
        terms=formula.terms, geometry=formula.geometry)
    return cost, aperture


def _formula(info: LayerInfo) -> _Formula:
    if info.layer is None:
        raise _NoFormula(f"{info.type} {info.name!r} is not a Keras layer")
    if info.type not in _FORMULAS:
        raise _NoFormula(f"no formula for layer type {info.type}")
    return _FORMULAS[info.type](info)


def _inbound_aperture(info: LayerInfo, apertures: dict[str, _Aperture | None]) -> _Aperture | None:
    known = [apertures[name] for name in info.inbound if name in apertures]
    if not known:
        return _Aperture.at_input_of(info)
    if any(aperture is None for aperture in known):
        return None
    return _Aperture(
        receptive_field=tuple(max(sides) for sides in zip(*(a.receptive_field for a in known))),
        jump=tuple(max(sides) for sides in zip(*(a.jump for a in known))),
        map_size=known[0].map_size)


def _flops(terms: dict[str, int]) -> int:
    return sum(value for name, value in terms.items() if name not in DIAGNOSTIC_TERMS)


def _elements(shape: Shape, layer_name: str) -> int:
    if any(d is None or d < 0 for d in shape):
        raise InputError(f"layer {layer_name!r}: shape {shape} is not fully known; fix the batch size and input shape")
    return math.prod(shape)


def _compute_dtype_bytes(layer: Any) -> int:
    return tf.as_dtype(getattr(layer, "compute_dtype", None) or "float32").size


def _counted_params(layer: Any) -> int:
    return int(layer.count_params()) if layer is not None and layer.built else 0


def _data_format(info: LayerInfo) -> str:
    return getattr(info.layer, "data_format", None) or "channels_last"


def _nhwc(shape: Shape, data_format: str) -> tuple[int, int, int, int]:
    if data_format == "channels_first":
        batch, channels, height, width = shape
    else:
        batch, height, width, channels = shape
    return batch, height, width, channels


def _activation(function: Any) -> tuple[str, int]:
    """The activation's name and flops per output element."""
    known = activation_cost(function)
    if known is None:
        raise _NoFormula(f"activation {getattr(function, '__name__', repr(function))!r} has no per-element count")
    return known


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
        layer, data_format = info.layer, _data_format(info)
        batch, in_h, in_w, in_channels = _nhwc(info.input_shapes[0], data_format)
        _, out_h, out_w, out_channels = _nhwc(info.output_shape, data_format)
        activation, per_element = _activation(layer.activation)
        return cls(batch, in_h, in_w, in_channels, out_h, out_w, out_channels,
                   *layer.kernel_size, *layer.strides, *layer.dilation_rate, layer.padding,
                   groups, bool(layer.use_bias), activation, per_element, data_format)


@_formula_for("Conv2D")
def _conv2d(info: LayerInfo) -> _Formula:
    return _convolution(_ConvGeometry.of(info, groups=info.layer.groups))


@_formula_for("DepthwiseConv2D")
def _depthwise_conv2d(info: LayerInfo) -> _Formula:
    in_channels = _nhwc(info.input_shapes[0], _data_format(info))[3]
    formula = _convolution(_ConvGeometry.of(info, groups=in_channels))
    return replace(formula, geometry={**formula.geometry, "depth_multiplier": info.layer.depth_multiplier})


def _convolution(g: _ConvGeometry) -> _Formula:
    """multiply-adds = N * Hout * Wout * Cout * Kh * Kw * (Cin / groups)."""
    outputs = g.batch * g.out_h * g.out_w * g.out_channels
    in_channels_per_group = g.in_channels // g.groups
    multiply_adds = outputs * g.kernel_h * g.kernel_w * in_channels_per_group
    real_taps = (g.batch * g.out_channels * in_channels_per_group
                 * _real_taps(g.in_h, g.out_h, g.kernel_h, g.stride_h, g.dilation_h, g.padding)
                 * _real_taps(g.in_w, g.out_w, g.kernel_w, g.stride_w, g.dilation_w, g.padding))
    weights = g.kernel_h * g.kernel_w * in_channels_per_group * g.out_channels
    return _Formula(
        terms={"multiply_adds": 2 * multiply_adds,
               "bias_adds": outputs if g.use_bias else 0,
               "activations": outputs * g.activation_flops_per_element,
               "padded_taps": multiply_adds - real_taps},
        macs=multiply_adds,
        params=weights + (g.out_channels if g.use_bias else 0),
        geometry=asdict(g),
        window=_Window((g.kernel_h, g.kernel_w), (g.stride_h, g.stride_w),
                       (g.dilation_h, g.dilation_w), (g.out_h, g.out_w)))


def _real_taps(in_size: int, out_size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Kernel taps inside the input along one axis, summed over output positions."""
    span = (out_size - 1) * stride + (kernel - 1) * dilation + 1
    pad_before = max(span - in_size, 0) // 2 if padding == "same" else 0
    return sum(1 for position in range(out_size) for tap in range(kernel)
               if 0 <= position * stride - pad_before + tap * dilation < in_size)


@_formula_for("Dense")
def _dense(info: LayerInfo) -> _Formula:
    """multiply-adds = rows * in_features * out_features; rows = all dims but the last."""
    layer, input_shape = info.layer, info.input_shapes[0]
    rows, in_features, out_features = math.prod(input_shape[:-1]), input_shape[-1], layer.units
    activation, per_element = _activation(layer.activation)
    outputs = rows * out_features
    multiply_adds = rows * in_features * out_features
    return _Formula(
        terms={"multiply_adds": 2 * multiply_adds,
               "bias_adds": outputs if layer.use_bias else 0,
               "activations": outputs * per_element},
        macs=multiply_adds,
        params=in_features * out_features + (out_features if layer.use_bias else 0),
        geometry={"rows": rows, "in_features": in_features, "out_features": out_features,
                  "use_bias": bool(layer.use_bias), "activation": activation,
                  "activation_flops_per_element": per_element},
        mixes_all_positions=len(input_shape) == 2)


def _pooling(info: LayerInfo, ops_per_output: Callable[[int], dict[str, int]]) -> _Formula:
    """Terms from the operations per output, given the window area."""
    layer, data_format = info.layer, _data_format(info)
    batch, in_h, in_w, channels = _nhwc(info.input_shapes[0], data_format)
    _, out_h, out_w, _ = _nhwc(info.output_shape, data_format)
    (pool_h, pool_w), (stride_h, stride_w) = layer.pool_size, layer.strides
    outputs = batch * out_h * out_w * channels
    return _Formula(
        terms={name: count * outputs for name, count in ops_per_output(pool_h * pool_w).items()},
        macs=0, params=0,
        geometry={"batch": batch, "in_h": in_h, "in_w": in_w, "channels": channels,
                  "out_h": out_h, "out_w": out_w, "pool_h": pool_h, "pool_w": pool_w,
                  "stride_h": stride_h, "stride_w": stride_w, "padding": layer.padding,
                  "data_format": data_format},
        window=_Window((pool_h, pool_w), (stride_h, stride_w), (1, 1), (out_h, out_w)))


@_formula_for("MaxPooling2D")
def _max_pooling2d(info: LayerInfo) -> _Formula:
    """TensorFlow counts pool_h * pool_w per output; document 004 one comparison fewer."""
    return _pooling(info, lambda area: {"window_taps": area, "comparisons": area - 1})


@_formula_for("AveragePooling2D")
def _average_pooling2d(info: LayerInfo) -> _Formula:
    """pool_h * pool_w - 1 adds and one divide per output."""
    return _pooling(info, lambda area: {"window_adds": area - 1, "divides": 1})


@_formula_for("GlobalAveragePooling2D")
def _global_average_pooling2d(info: LayerInfo) -> _Formula:
    """(H * W - 1) adds and one divide per (batch, channel), as TensorFlow counts Mean."""
    batch, in_h, in_w, channels = _nhwc(info.input_shapes[0], _data_format(info))
    outputs = batch * channels
    return _Formula(
        terms={"reduction_adds": (in_h * in_w - 1) * outputs, "divides": outputs},
        macs=0, params=0,
        geometry={"batch": batch, "in_h": in_h, "in_w": in_w, "channels": channels,
                  "pool_h": in_h, "pool_w": in_w, "out_h": 1, "out_w": 1},
        window=_Window((in_h, in_w), (in_h, in_w), (1, 1), (1, 1)))


@_formula_for("BatchNormalization")
def _batch_normalization(info: LayerInfo) -> _Formula:
    """Inference: y = a * x + b per element, a = gamma / sqrt(var + eps), b = beta - mean * a."""
    layer, input_shape = info.layer, info.input_shapes[0]
    channels, elements = input_shape[layer.axis], math.prod(input_shape)
    return _Formula(
        terms={"scale_shift": 2 * elements,
               "channel_constants": channels * (5 + int(layer.scale))},
        macs=elements,
        params=channels * (2 + int(layer.center) + int(layer.scale)),
        geometry={"elements": elements, "channels": channels, "center": bool(layer.center),
                  "scale": bool(layer.scale)})


def _elementwise(info: LayerInfo, name: str, per_element: int, formula: str) -> _Formula:
    elements = math.prod(info.output_shape)
    return _Formula(terms={"activations": elements * per_element}, macs=0, params=0,
                    geometry={"activation": name, "activation_flops_per_element": per_element,
                              "formula": formula, "elements": elements})


_FIXED_ACTIVATION_LAYERS = {"LeakyReLU": "leaky_relu", "Softmax": "softmax"}


@_formula_for("Activation", *_FIXED_ACTIVATION_LAYERS)
def _activation_layer(info: LayerInfo) -> _Formula:
    name = _FIXED_ACTIVATION_LAYERS.get(info.type) or _activation(info.layer.activation)[0]
    return _elementwise(info, name, *ACTIVATION_FLOPS_PER_ELEMENT[name])


@_formula_for("ReLU")
def _relu_layer(info: LayerInfo) -> _Formula:
    """One comparison, plus one operation per option used (max_value, negative_slope, threshold)."""
    layer = info.layer
    options = (layer.max_value is not None) + (layer.negative_slope != 0) + (layer.threshold != 0)
    return _elementwise(info, "relu", 1 + options, "max(x, 0) with max_value/negative_slope/threshold")


@_formula_for("Flatten", "Reshape", "Dropout")
def _view(info: LayerInfo) -> _Formula:
    """A view or the identity at inference: no work, no new memory."""
    return _Formula(terms={}, macs=0, params=0, allocates_output=False)


@_formula_for("InputLayer")
def _input_layer(info: LayerInfo) -> _Formula:
    return _Formula(terms={}, macs=0, params=0)


@_formula_for("Embedding")
def _embedding(info: LayerInfo) -> _Formula:
    """A gather of rows: no arithmetic; params = vocabulary * dimension."""
    layer = info.layer
    return _Formula(terms={}, macs=0, params=layer.input_dim * layer.output_dim,
                    geometry={"vocabulary": layer.input_dim, "dimension": layer.output_dim})
