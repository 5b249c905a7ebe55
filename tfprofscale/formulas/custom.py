"""Formulas a model file registers for its own layer types.

Two ways, both read when the model file is imported::

    import tfprofscale

    @tfprofscale.formula("ScaledDense")
    def scaled_dense(input_shapes, output_shape, config):
        batch, features = input_shapes[0]
        units = config["units"]
        return {"flops": 2 * batch * features * units + batch * units, "macs": batch * features * units}

    FORMULAS = {"ScaledDense": scaled_dense}      # the same, as a module-level dict

A formula takes the layer's input shapes (a tuple of tuples, batch first),
its output shape and its ``get_config()``, and returns a dict: ``flops``
(a multiply-add counts 2) and ``macs`` (multiply-adds), whole numbers >= 0
with ``flops >= 2 * macs``, and optionally ``params``, which must equal
Keras' ``count_params()``. The same layer called twice is costed per call,
as the built-in formulas are. A registration that is not a function, a
formula that raises or returns anything else is refused with one line
naming the model file and the layer type (exit status 2). A model file's
formula overrides a built-in one of the same type name.

This module imports no TensorFlow: ``import tfprofscale`` stays fast.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tfprofscale.errors import InputError

#: Decorator registrations, in order: (layer type, function, name of the module that registered it).
_REGISTERED: list[tuple[Any, Any, str | None]] = []

RESULT_KEYS = frozenset({"flops", "macs", "params"})


def formula(layer_type: str) -> Callable[[Any], Any]:
    """Decorator: register ``function(input_shapes, output_shape, config)`` as the formula of ``layer_type``."""
    caller = sys._getframe(1).f_globals.get("__name__")  # the registering module (a model file)

    def register(function: Any) -> Any:
        _REGISTERED.append((layer_type, function, caller))
        return function
    return register


@dataclass(frozen=True)
class UserFormula:
    """A model file's formula for one layer type, and where it came from (for messages)."""

    layer_type: str
    function: Callable[..., Any]
    source: str  # "model file NAME.py"

    def evaluate(self, input_shapes: tuple[tuple[int, ...], ...], output_shape: tuple[int, ...],
                 config: dict[str, Any], keras_params: int) -> tuple[int, int, int]:
        """(flops, macs, params) for one call; InputError with one line for a raise or a bad result."""
        where = f"{self.source}: formula for {self.layer_type}"
        try:
            result = self.function(input_shapes, output_shape, config)
        except InputError:
            raise
        except Exception as error:  # the user's formula failed: one line naming it
            message = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
            raise InputError(f"{where} raised {type(error).__name__}: {message}") from None
        return _checked(result, where, keras_params)


def _checked(result: Any, where: str, keras_params: int) -> tuple[int, int, int]:
    if not isinstance(result, dict):
        raise InputError(f"{where} returned a {type(result).__name__}, not a dict with 'flops' and 'macs'")
    unknown = sorted(set(map(str, result)) - RESULT_KEYS)
    if unknown:
        raise InputError(f"{where} returned an unknown key {unknown[0]!r} (known: flops, macs, params)")
    for key in ("flops", "macs"):
        if key not in result:
            raise InputError(f"{where} returned no {key!r}")
    for key, value in result.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{where} returned {key}={value!r}: expected a whole number >= 0")
    flops, macs = result["flops"], result["macs"]
    if 2 * macs > flops:
        raise InputError(f"{where} returned macs={macs} > flops/2={flops / 2:g}: a multiply-add counts 2 FLOPs")
    params = result.get("params", keras_params)
    if params != keras_params:
        raise InputError(f"{where} returned params={params}, Keras counts {keras_params}")
    return flops, macs, params


def file_formulas(module: Any, file: Path) -> dict[str, UserFormula]:
    """The formulas ``module`` (an imported model file) registered: its FORMULAS dict and its decorators."""
    source = f"model file {file.name}"
    found: list[tuple[Any, Any]] = [(t, f) for t, f, owner in _REGISTERED if owner == module.__name__]
    table = getattr(module, "FORMULAS", None)
    if table is not None and not isinstance(table, dict):
        raise InputError(f"{source}: FORMULAS is a {type(table).__name__}, not a dict of layer type -> function")
    found += list((table or {}).items())
    formulas = {}
    for layer_type, function in found:
        if not isinstance(layer_type, str) or not layer_type.isidentifier():
            raise InputError(f"{source}: formula registered for {layer_type!r}, which is not a layer class name")
        if not callable(function):
            raise InputError(f"{source}: the formula for {layer_type} is a {type(function).__name__}, "
                             "not a function")
        formulas[layer_type] = UserFormula(layer_type, function, source)
    return formulas


def registered_anywhere() -> dict[str, UserFormula]:
    """Every decorator registration in this process (for a model object profiled from Python)."""
    formulas = {}
    for layer_type, function, owner in _REGISTERED:
        if isinstance(layer_type, str) and callable(function):
            formulas[layer_type] = UserFormula(layer_type, function, f"module {owner}")
    return formulas
