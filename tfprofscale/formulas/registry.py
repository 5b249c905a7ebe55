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
spatial axis (1, 2 or 3 of them), reporting the larger side. Layers without a
kernel pass it through; layers that resample (transposed convolutions,
upsampling, resizing) or change the number of spatial axes of a field that has
grown end it (None); an Embedding's output is a 1-D map of tokens. A
Dense layer on a flattened map is a VALID convolution whose kernel is the
last spatial map, so it sees ``r + (map - 1) * j``; with no spatial map
before it (an MLP) the field is None.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import tensorflow as tf

from tfprofscale.formulas.activations import activation_cost
from tfprofscale.formulas.custom import UserFormula
from tfprofscale.errors import InputError
from tfprofscale.records import LayerCost, LayerInfo, Shape

#: Terms that describe the work but are not added into ``flops``.
DIAGNOSTIC_TERMS = frozenset({"padded_taps", "comparisons"})

@dataclass(frozen=True)
class Window:
    """A sliding window over the spatial axes ((l,), (h, w) or (d, h, w)), and the map it produces."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    output_map: tuple[int, ...]


@dataclass(frozen=True)
class Formula:
    """What a layer's formula found: flops terms, MACs, parameters, geometry."""

    terms: dict[str, int]
    macs: int
    params: int
    geometry: dict[str, Any] = field(default_factory=dict)
    window: Window | None = None
    mixes_all_positions: bool = False
    allocates_output: bool = True
    resamples: bool = False


class NoFormula(Exception):
    """The layer's configuration is outside what its formula covers."""


@dataclass(frozen=True)
class _Aperture:
    """What one output unit sees of the model input, per spatial axis."""

    receptive_field: tuple[int, ...]
    jump: tuple[int, ...]
    map_size: tuple[int, ...] | None

    @classmethod
    def at_input_of(cls, info: LayerInfo) -> _Aperture:
        shape = info.input_shapes[0] if info.input_shapes else info.output_shape
        if not 3 <= len(shape) <= 5:
            return cls((1, 1), (1, 1), None)
        spatial = channels_last(shape, data_format_of(info))[1]
        return cls((1,) * len(spatial), (1,) * len(spatial), spatial)

    def after(self, formula: Formula) -> _Aperture | None:
        if formula.resamples:
            return None
        if formula.window is not None:
            aperture = self._in_rank(len(formula.window.kernel))
            return aperture._through(formula.window) if aperture is not None else None
        if not formula.mixes_all_positions:
            return self
        if self.map_size is None:
            return None
        ones = (1,) * len(self.map_size)
        return self._through(Window(self.map_size, self.map_size, ones, ones))

    def _in_rank(self, rank: int) -> _Aperture | None:
        """This aperture over ``rank`` spatial axes: one that has not grown yet (a single input
        position) is the same in any rank; a grown one cannot change rank (None)."""
        if len(self.jump) == rank:
            return self
        if set(self.receptive_field) | set(self.jump) == {1}:
            return _Aperture((1,) * rank, (1,) * rank, None)
        return None

    def _through(self, window: Window) -> _Aperture:
        field_px = tuple(r + (k - 1) * d * j for r, k, d, j in
                         zip(self.receptive_field, window.kernel, window.dilation, self.jump))
        jump = tuple(j * s for j, s in zip(self.jump, window.stride))
        return _Aperture(field_px, jump, window.output_map)


FormulaFunction = Callable[[LayerInfo], Formula]
_FORMULAS: dict[str, FormulaFunction] = {}


def formula_for(*layer_types: str) -> Callable[[FormulaFunction], FormulaFunction]:
    """Register a formula under one or more Keras layer class names."""
    def register(formula: FormulaFunction) -> FormulaFunction:
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


def analyze_layers(layers: Sequence[LayerInfo], custom: Mapping[str, UserFormula] | None = None) -> list[LayerCost]:
    """Costs of all layers, in order, with receptive fields carried along ``inbound``.

    A layer whose inbound layers are not in ``layers`` starts at its own input
    (receptive field 1); after a layer with no formula the field is None.
    ``custom`` are the model file's own formulas by layer type (formulas/custom.py).
    """
    apertures: dict[str, _Aperture | None] = {}
    costs = []
    for info in layers:
        cost, apertures[info.name] = _cost_and_aperture(info, None, _inbound_aperture(info, apertures), custom)
        costs.append(cost)
    return costs


def _cost_and_aperture(info: LayerInfo, dtype_bytes: int | None, seen: _Aperture | None,
                       custom: Mapping[str, UserFormula] | None = None) -> tuple[LayerCost, _Aperture | None]:
    output_elements = _elements(info.output_shape, info.name)
    output_bytes = output_elements * (dtype_bytes or _compute_dtype_bytes(info.layer))
    try:
        formula = _every_call(info, custom or {})
    except NoFormula as reason:
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


def _every_call(info: LayerInfo, custom: Mapping[str, UserFormula]) -> Formula:
    """The formula of every call of the layer added up (a shared layer's second call is work too).

    Terms and MACs are summed over the calls, each at its own shapes;
    parameters are counted once; ``geometry["calls"]`` says how many there
    were; the receptive field follows the first call.
    """
    first = _formula(info, custom)
    if not info.extra_calls:
        return first
    more = [_formula(replace(info, input_shapes=inputs, output_shape=output, extra_calls=()), custom)
            for inputs, output in info.extra_calls]
    terms: dict[str, int] = {}
    for each in (first, *more):
        for name, value in each.terms.items():
            terms[name] = terms.get(name, 0) + value
    return replace(first, terms=terms, macs=first.macs + sum(each.macs for each in more),
                   geometry={**first.geometry, "calls": 1 + len(more)})


def _formula(info: LayerInfo, custom: Mapping[str, UserFormula]) -> Formula:
    if info.layer is None:
        raise NoFormula(f"{info.type} {info.name!r} is not a Keras layer")
    if info.type in custom:
        return _user_formula(custom[info.type], info)
    if info.type in _FORMULAS:
        return _FORMULAS[info.type](info)
    base = _keras_base_with_formula(info.layer)
    if base is None:
        raise NoFormula(f"no formula for layer type {info.type}")
    formula = _FORMULAS[base](replace(info, type=base))
    return replace(formula, geometry={**formula.geometry, "formula_of": base})


def _keras_base_with_formula(layer: Any) -> str | None:
    """For a subclass of a Keras layer from another library (keras_hub's ``ReversibleEmbedding`` of
    ``Embedding``), the nearest Keras base class that has a formula; its formula costs the subclass
    (``geometry["formula_of"]`` names it, and the graph column shows any work the subclass adds)."""
    for base in type(layer).__mro__[1:]:
        if base.__module__.split(".")[0] in ("keras", "tf_keras") and base.__name__ in _FORMULAS:
            return base.__name__
    return None


def _user_formula(user: UserFormula, info: LayerInfo) -> Formula:
    """A model file's formula, its result checked (formulas/custom.py); all its FLOPs in one term."""
    get_config = getattr(info.layer, "get_config", None)
    try:
        config = dict(get_config()) if get_config is not None else {}
    except Exception:  # a custom layer whose get_config fails: the formula gets no configuration
        config = {}
    flops, macs, params = user.evaluate(tuple(info.input_shapes), tuple(info.output_shape), config,
                                        _counted_params(info.layer))
    return Formula(terms={"custom_formula": flops}, macs=macs, params=params, geometry={"formula": user.source})


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
        raise InputError(f"layer {layer_name!r}: output shape {shape} depends on the data fed (-1 is unknown until "
                         "it runs); fix it in the model, e.g. TextVectorization(output_sequence_length=...), "
                         "or give the input's shape with --input-shape")
    return math.prod(shape)


#: Bytes a string element takes in a tensor's buffer (TensorFlow's ``tstring``; longer text lives beyond it).
TSTRING_BYTES = 24


def _compute_dtype_bytes(layer: Any) -> int:
    """Bytes per output element: the compute dtype's, or for an InputLayer the dtype it is fed."""
    if type(layer).__name__ == "InputLayer":
        return dtype_bytes(getattr(layer, "dtype", None) or "float32")
    return dtype_bytes(getattr(layer, "compute_dtype", None) or "float32")


def dtype_bytes(dtype: Any) -> int:
    """Bytes per element of ``dtype``; a string counts its ``tstring`` (TensorFlow's size for it is 0)."""
    as_tf = tf.as_dtype(dtype)
    return TSTRING_BYTES if as_tf == tf.string else as_tf.size


def _counted_params(layer: Any) -> int:
    return int(layer.count_params()) if layer is not None and layer.built else 0


def data_format_of(info: LayerInfo) -> str:
    return getattr(info.layer, "data_format", None) or "channels_last"


#: Names of the spatial axes of a 1-, 2- and 3-D feature map, outermost first (``l``: a sequence's length).
SPATIAL_AXES = {1: ("l",), 2: ("h", "w"), 3: ("d", "h", "w")}


def per_axis(prefix: str, values: Sequence[int]) -> dict[str, int]:
    """Geometry keys per spatial axis: ``in_h``, ``in_w`` (2-D); ``in_l`` (1-D); ``in_d``, ``in_h``, ``in_w`` (3-D)."""
    return {f"{prefix}_{axis}": value for axis, value in zip(SPATIAL_AXES[len(values)], values)}


def channels_last(shape: Shape, data_format: str) -> tuple[int, tuple[int, ...], int]:
    """(batch, spatial dims, channels) of a 1-, 2- or 3-D feature map in either data format."""
    if data_format == "channels_first":
        return shape[0], tuple(shape[2:]), shape[1]
    return shape[0], tuple(shape[1:-1]), shape[-1]


def nhwc(shape: Shape, data_format: str) -> tuple[int, int, int, int]:
    if data_format == "channels_first":
        batch, channels, height, width = shape
    else:
        batch, height, width, channels = shape
    return batch, height, width, channels


def called_with_mask(layer: Any) -> bool:
    """Whether the layer is called in its model with a Keras mask (e.g. after ``Embedding(mask_zero=True)``)."""
    return any(node.arguments.kwargs.get("mask") is not None for node in getattr(layer, "_inbound_nodes", []))


def activation_of(function: Any) -> tuple[str, int]:
    """The activation's name and flops per output element."""
    known = activation_cost(function)
    if known is None:
        raise NoFormula(f"activation {getattr(function, '__name__', repr(function))!r} has no per-element count")
    return known
