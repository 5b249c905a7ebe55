"""Parameter checks shared by the model files: a bad value is an InputError naming it."""
from __future__ import annotations

from tfprofscale.errors import InputError


def require_positive_int(name: str, value: object) -> None:
    """InputError unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name}={value!r}: must be a positive integer")


def require_rate(name: str, value: object) -> None:
    """InputError unless ``value`` is a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise InputError(f"{name}={value!r}: must be a number in [0, 1)")


def require_total_layers(value: object) -> int:
    """Document 001's ``total_layers``: an even integer >= 4; returns the conv+pool pairs."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 4 or value % 2:
        raise InputError(f"total_layers={value!r}: must be an even integer >= 4 (4, 6, 8, 10)")
    return (value - 2) // 2
