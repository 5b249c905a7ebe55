"""Checks of a profile JSON's fields on load: a report with ``batch_size: -1`` is refused, not audited."""
from __future__ import annotations

import math
from typing import Any

from tfprofscale.errors import InputError


def _count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _non_negative(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _optional(check: Any) -> Any:
    return lambda value: value is None or check(value)


#: path in the report -> (check, what it must be)
TOP_FIELDS = {
    "model": (lambda v: isinstance(v, str), "a string"),
    "params": (lambda v: isinstance(v, dict), "an object"),
    "batch_size": (lambda v: _count(v, 1), "an integer >= 1"),
    "totals": (lambda v: isinstance(v, dict), "an object"),
    "layers": (lambda v: isinstance(v, list) and all(isinstance(row, dict) for row in v), "a list of objects"),
    "ops": (lambda v: isinstance(v, list) and all(isinstance(row, dict) for row in v), "a list of objects"),
}
TOTALS_FIELDS = {
    "params": (lambda v: _count(v, 0), "an integer >= 0"),
    "graph_flops": (_optional(lambda v: _count(v, 0)), "an integer >= 0 or null"),
    "peak_bytes": (_optional(lambda v: _count(v, 0)), "an integer >= 0 or null"),
    "step_time_ms": (lambda v: isinstance(v, dict), "an object"),
}
STEP_FIELDS = {
    "median": (_non_negative, "a number >= 0"),
    "n": (lambda v: _count(v, 0), "an integer >= 0"),
}
LAYER_FIELDS = {
    "name": (lambda v: isinstance(v, str), "a string"),
    "type": (lambda v: isinstance(v, str), "a string"),
    "params": (lambda v: _count(v, 0), "an integer >= 0"),
    "time_us": (_optional(_non_negative), "a number >= 0 or null"),
    "analytic_flops": (_optional(lambda v: _count(v, 0)), "an integer >= 0 or null"),
    "graph_flops": (_optional(lambda v: _count(v, 0)), "an integer >= 0 or null"),
}


def check_report_fields(data: Any, where: str) -> None:
    """InputError naming the first field of a profile JSON that is missing or out of range."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: not a tfprofscale profile JSON (a {type(data).__name__}, not an object)")
    _check(data, TOP_FIELDS, where, "")
    _check(data["totals"], TOTALS_FIELDS, where, "totals.")
    _check(data["totals"]["step_time_ms"], STEP_FIELDS, where, "totals.step_time_ms.")
    for index, layer in enumerate(data["layers"]):
        _check(layer, LAYER_FIELDS, where, f"layers[{index}].")


def _check(data: dict[str, Any], fields: dict[str, Any], where: str, prefix: str) -> None:
    for name, (valid, expected) in fields.items():
        if name not in data:
            raise InputError(f"{where}: not a tfprofscale profile JSON (no {prefix}{name})")
        if not valid(data[name]):
            shown = repr(data[name])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise InputError(f"{where}: {prefix}{name} is {shown}, it must be {expected}")
