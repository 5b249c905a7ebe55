"""Checks of a latency model file's fields: each named with the type it must have.

A file with the right keys but values of the wrong types would otherwise
load and fail later with a traceback deep in the prediction.
"""
from __future__ import annotations

import math
from typing import Any

from tfprofscale.errors import InputError


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _coefficients(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(weights, dict) and all(isinstance(name, str) and _number(w) for name, w in weights.items())
        for weights in value.values())


def _optional_integer(value: Any) -> bool:
    return value is None or _integer(value)


#: field -> (check, what it must be)
FIELDS = {
    "features": (_strings, "a list of feature names"),
    "coefficients_us": (_coefficients, "an object of layer type -> {feature: number}"),
    "overhead_us": (_number, "a finite number"),
    "free_layer_types": (_strings, "a list of layer type names"),
    "n_configs": (_integer, "an integer"),
    "traits": (lambda v: isinstance(v, dict), "an object"),
    "peaks": (lambda v: isinstance(v, dict), "an object"),
}
TRAIT_FIELDS = {
    "vector_floats": (_integer, "an integer"),
    "l2_bytes": (_optional_integer, "an integer or null"),
    "l3_bytes": (_optional_integer, "an integer or null"),
}

PEAK_FIELDS = {
    "flops_per_s": (lambda v: _number(v) and v > 0, "a positive number"),
    "bytes_per_s": (lambda v: _number(v) and v > 0, "a positive number"),
}


def check_latency_fields(data: Any, path: str) -> None:
    """InputError naming the first field that is missing or has the wrong type."""
    if not isinstance(data, dict) or data.get("kind") != "tfprofscale latency model":
        raise InputError(f"{path} is not a latency model written by `tfprofscale fit` (no \"kind\": "
                         "\"tfprofscale latency model\")")
    _check(data, FIELDS, path, "")
    _check(data["traits"], TRAIT_FIELDS, path, "traits.")
    _check(data["peaks"], PEAK_FIELDS, path, "peaks.")


def _check(data: dict[str, Any], fields: dict[str, Any], path: str, prefix: str) -> None:
    for name, (valid, expected) in fields.items():
        if name not in data:
            raise InputError(f"{path}: latency model field {prefix}{name} is missing")
        if not valid(data[name]):
            raise InputError(f"{path}: latency model field {prefix}{name} must be {expected}, "
                             f"got {type(data[name]).__name__} {_short(data[name])}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
