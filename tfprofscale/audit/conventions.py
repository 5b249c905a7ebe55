"""Counting conventions: named rules that count a layer's operations.

A convention is a small function ``(layer_type, geometry, terms) -> int | None``
registered by name with ``@convention(name, source=..., definition=...)``;
``geometry`` and ``terms`` are a layer's ``LayerCost.geometry`` and
``LayerCost.terms`` (a report's ``geometry`` / ``analytic_terms``). None
means the convention has no rule for that layer type; a layer that does no
work (no terms) counts 0 under every convention.

``flops`` is TensorFlow's own rule, the one its profiler applies to the
graph. A convention may register, with ``@differences_from_tensorflow(name)``,
the named parts that add up to (its count - the ``flops`` count), so that the
audit can say *why* it differs; without them the gap is one unnamed part.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from tfprofscale.formulas.activations import ACTIVATION_FLOPS_PER_ELEMENT, TF_ACTIVATION_FLOPS_PER_ELEMENT
from tfprofscale.formulas.analytic import DIAGNOSTIC_TERMS
from tfprofscale.formulas.convolution import CONVOLUTION_TYPES
from tfprofscale.errors import InputError

Geometry = Mapping[str, Any]
Terms = Mapping[str, int]
CountFunction = Callable[[str, Geometry, Terms], "int | None"]
DifferencesFunction = Callable[[str, Geometry, Terms], "dict[str, int] | None"]

TENSORFLOW = "flops"

CONV_TYPES = frozenset({"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D"})
MULTIPLY_ADD_TYPES = CONV_TYPES | {"Dense"}
POOL_TYPES = frozenset(f"{kind}Pooling{rank}D" for kind in ("Max", "Average", "GlobalMax", "GlobalAverage")
                       for rank in (1, 2, 3))
ELEMENTWISE_TYPES = frozenset({"Activation", "ReLU", "LeakyReLU", "Softmax", "ELU", "PReLU"})


@dataclass(frozen=True)
class Convention:
    """A named counting rule, where it comes from, and how it differs from TensorFlow's."""

    name: str
    source: str
    definition: str
    count: CountFunction
    differences: DifferencesFunction | None = None


_REGISTRY: dict[str, Convention] = {}


def convention(name: str, *, source: str, definition: str) -> Callable[[CountFunction], CountFunction]:
    """Register ``count`` as the convention ``name`` (replacing one of that name)."""
    def register(count: CountFunction) -> CountFunction:
        _REGISTRY[name] = Convention(name, source, definition, count)
        return count
    return register


def differences_from_tensorflow(name: str) -> Callable[[DifferencesFunction], DifferencesFunction]:
    """Register the named parts of (convention ``name`` - ``flops``) for a layer."""
    def register(differences: DifferencesFunction) -> DifferencesFunction:
        _REGISTRY[name] = replace(get_convention(name), differences=differences)
        return differences
    return register


def registered_conventions() -> list[Convention]:
    """Every convention, ``flops`` first, then in registration order."""
    return sorted(_REGISTRY.values(), key=lambda c: c.name != TENSORFLOW)


def get_convention(name: str) -> Convention:
    """The convention registered as ``name`` (InputError if there is none)."""
    if name not in _REGISTRY:
        raise InputError(f"no counting convention named {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def unregister_convention(name: str) -> None:
    """Remove a convention (one a user added)."""
    _REGISTRY.pop(name, None)


def count(name: str, layer_type: str, geometry: Geometry, terms: Terms) -> int | None:
    """The count of convention ``name`` for one layer: 0 for a layer with no work."""
    if not terms:
        return 0
    return get_convention(name).count(layer_type, geometry, terms)


# -- quantities the rules are written in ---------------------------------------------------------

def multiply_adds(terms: Terms) -> int:
    """MACs: one per multiply-add (the ``multiply_adds`` term counts 2)."""
    return terms.get("multiply_adds", 0) // 2


def output_elements(layer_type: str, geometry: Geometry) -> int | None:
    """Elements of the layer's output, from its geometry."""
    g = geometry
    if layer_type in CONVOLUTION_TYPES:
        return g["batch"] * _spatial_product(g, "out") * g["out_channels"]
    if layer_type == "Dense":
        return g["rows"] * g["out_features"]
    if layer_type in POOL_TYPES:
        return g["batch"] * _spatial_product(g, "out") * g["channels"]
    return g.get("elements")


def _spatial_product(geometry: Geometry, prefix: str) -> int:
    """The product of a geometry's per-axis numbers (``out_h * out_w``, ``kernel_l`` ...)."""
    return math.prod(geometry[f"{prefix}_{axis}"] for axis in "ldhw" if f"{prefix}_{axis}" in geometry)


def taps_per_output(layer_type: str, geometry: Geometry) -> int:
    """Inputs one output multiplies: document 004's c*h*w (conv) or the input features (dense)."""
    g = geometry
    if layer_type == "Dense":
        return g["in_features"]
    return _spatial_product(g, "kernel") * (g["in_channels"] // g["groups"])


def tensorflow_activation_flops(layer_type: str, geometry: Geometry) -> int | None:
    """FLOPs TensorFlow counts for the layer's activation; None if not known for it."""
    name = geometry.get("activation")
    if name is None:
        return 0
    standard = ACTIVATION_FLOPS_PER_ELEMENT.get(name, (None,))[0]
    if name not in TF_ACTIVATION_FLOPS_PER_ELEMENT or geometry.get("activation_flops_per_element") != standard:
        return None
    return TF_ACTIVATION_FLOPS_PER_ELEMENT[name] * (output_elements(layer_type, geometry) or 0)


def _work_flops(terms: Terms) -> int:
    """Every counted term except the activation."""
    return sum(v for k, v in terms.items() if k not in DIAGNOSTIC_TERMS and k != "activations")


# -- the conventions -----------------------------------------------------------------------------

@convention(TENSORFLOW, source="TensorFlow's profiler (tfprof)",
            definition="multiply-add = 2, +1 per bias add, pooling = window area per output, "
                       "activations only where TensorFlow registers FLOPs (Softmax 5/element; Relu none)")
def tensorflow_flops(layer_type: str, geometry: Geometry, terms: Terms) -> int | None:
    activation = tensorflow_activation_flops(layer_type, geometry)
    return None if activation is None else _work_flops(terms) + activation


@convention("formula", source="tfprofscale's analytic formulas (the profile's 'FLOPs formula')",
            definition="multiply-add = 2, +1 per bias add, and every activation counted "
                       "(Relu 1, Sigmoid 4 ... per element)")
def formula_flops(layer_type: str, geometry: Geometry, terms: Terms) -> int | None:
    return _work_flops(terms) + terms.get("activations", 0)


@convention("macs", source="document 003", definition="multiply-adds of conv and FC layers, 1 each; "
            "biases, non-linearities, pooling and normalization ignored")
def document_003_macs(layer_type: str, geometry: Geometry, terms: Terms) -> int | None:
    if layer_type in MULTIPLY_ADD_TYPES:
        return multiply_adds(terms)
    if layer_type in POOL_TYPES | ELEMENTWISE_TYPES | {"BatchNormalization"}:
        return 0
    return None


@convention("ops_no_fma", source="document 004", definition="2*c*h*w per conv output (c*h*w products, "
            "c*h*w-1 sums, 1 bias add), 2*n per dense output, h*w-1 comparisons per max-pool output")
def document_004_without_fma(layer_type: str, geometry: Geometry, terms: Terms) -> int | None:
    if layer_type in MULTIPLY_ADD_TYPES:
        return 2 * taps_per_output(layer_type, geometry) * output_elements(layer_type, geometry)
    if layer_type == "MaxPooling2D":
        return terms["comparisons"]
    return None


@convention("ops_fma", source="document 004", definition="c*h*w + 1 per conv output (a fused "
            "multiply-add is 1 op, +1 bias add), n + 1 per dense output, h*w-1 per max-pool output")
def document_004_with_fma(layer_type: str, geometry: Geometry, terms: Terms) -> int | None:
    if layer_type in MULTIPLY_ADD_TYPES:
        return (taps_per_output(layer_type, geometry) + 1) * output_elements(layer_type, geometry)
    if layer_type == "MaxPooling2D":
        return terms["comparisons"]
    return None


@convention("doc000_published", source="document 000, as printed",
            definition="conv: 2(k*k) + NumChannels + NumFilters + W_out + H_out (a sum where a product is "
                       "meant, per image); fc: NumInputs * NumNeurons")
def document_000_published(layer_type: str, geometry: Geometry, terms: Terms) -> int | None:
    return _document_000(layer_type, geometry, output_map=lambda width, height: width + height)


@convention("doc000_example", source="document 000's example table (40053 = 2*9 + 3 + 32 + 200*200)",
            definition="conv: 2(k*k) + NumChannels + NumFilters + W_out * H_out, per image; "
                       "fc: NumInputs * NumNeurons")
def document_000_example(layer_type: str, geometry: Geometry, terms: Terms) -> int | None:
    return _document_000(layer_type, geometry, output_map=lambda width, height: width * height)


def _document_000(layer_type: str, g: Geometry, output_map: Callable[[int, int], int]) -> int | None:
    """Document 000's conv and fc counts; its printings differ only in how the output map enters."""
    if layer_type == "Conv2D":
        return (2 * g["kernel_h"] * g["kernel_w"] + g["in_channels"] + g["out_channels"]
                + output_map(g["out_w"], g["out_h"]))
    if layer_type == "Dense":
        return g["in_features"] * g["out_features"]
    return None


# -- why each one differs from TensorFlow's rule ---------------------------------------------------

def _tensorflow_parts(layer_type: str, geometry: Geometry, terms: Terms) -> dict[str, int]:
    """TensorFlow's count split into multiply-add FLOPs, bias adds, activation and the rest."""
    activation = tensorflow_activation_flops(layer_type, geometry) or 0
    bias = terms.get("bias_adds", 0)
    return {"multiply_adds": terms.get("multiply_adds", 0), "bias": bias, "activation": activation,
            "other": _work_flops(terms) - terms.get("multiply_adds", 0) - bias}


def _ignored(parts: dict[str, int], layer_type: str) -> dict[str, int]:
    return {"bias adds not counted": -parts["bias"],
            "activation FLOPs TensorFlow counts (e.g. Softmax) not counted": -parts["activation"],
            f"{layer_type} not counted (only conv and FC multiply-adds are)": -parts["other"]}


@differences_from_tensorflow("formula")
def _formula_differences(layer_type: str, geometry: Geometry, terms: Terms) -> dict[str, int] | None:
    counted = tensorflow_activation_flops(layer_type, geometry)
    if counted is None:
        return None
    name = geometry.get("activation", "activation")
    return {f"{name} counted; TensorFlow has no FLOPs statistics for it": terms.get("activations", 0) - counted}


@differences_from_tensorflow("macs")
def _macs_differences(layer_type: str, geometry: Geometry, terms: Terms) -> dict[str, int]:
    parts = _tensorflow_parts(layer_type, geometry, terms)
    return {"a multiply-add counted as 1, not 2": -(parts["multiply_adds"] // 2), **_ignored(parts, layer_type)}


def _document_004_pooling(layer_type: str, geometry: Geometry) -> dict[str, int]:
    return {"h*w-1 comparisons per max-pool output, TensorFlow counts h*w": -output_elements(layer_type, geometry)}


@differences_from_tensorflow("ops_no_fma")
def _no_fma_differences(layer_type: str, geometry: Geometry, terms: Terms) -> dict[str, int] | None:
    if layer_type == "MaxPooling2D":
        return _document_004_pooling(layer_type, geometry)
    parts = _tensorflow_parts(layer_type, geometry, terms)
    return {"the bias add is one of the 2*c*h*w (c*h*w-1 sums); TensorFlow adds it on top": -parts["bias"],
            "activation FLOPs TensorFlow counts (e.g. Softmax) not counted": -parts["activation"]}


@differences_from_tensorflow("ops_fma")
def _fma_differences(layer_type: str, geometry: Geometry, terms: Terms) -> dict[str, int] | None:
    if layer_type == "MaxPooling2D":
        return _document_004_pooling(layer_type, geometry)
    parts = _tensorflow_parts(layer_type, geometry, terms)
    outputs = output_elements(layer_type, geometry)
    return {"a fused multiply-add counted as 1, not 2": -(parts["multiply_adds"] // 2),
            "+1 per output counted as a bias add": outputs - parts["bias"],
            "activation FLOPs TensorFlow counts (e.g. Softmax) not counted": -parts["activation"]}


def _document_000_differences(layer_type: str, geometry: Geometry, terms: Terms,
                              conv_count: int, conv_cause: str) -> dict[str, int]:
    parts = _tensorflow_parts(layer_type, geometry, terms)
    if layer_type == "Conv2D":
        return {conv_cause: conv_count - sum(parts.values())}
    macs = parts["multiply_adds"] // 2
    return {"batch ignored (one input row)": macs // geometry["rows"] - macs,
            "a multiply-add counted as 1, not 2": -macs, **_ignored(parts, layer_type)}


@differences_from_tensorflow("doc000_published")
def _doc000_published_differences(layer_type: str, geometry: Geometry, terms: Terms) -> dict[str, int]:
    value = document_000_published(layer_type, geometry, terms) or 0
    return _document_000_differences(layer_type, geometry, terms, value,
                                     "dimensions added where their product is meant, per image")


@differences_from_tensorflow("doc000_example")
def _doc000_example_differences(layer_type: str, geometry: Geometry, terms: Terms) -> dict[str, int]:
    value = document_000_example(layer_type, geometry, terms) or 0
    return _document_000_differences(layer_type, geometry, terms, value,
                                     "2k^2 + C + F added to W_out*H_out where a product is meant, per image")
