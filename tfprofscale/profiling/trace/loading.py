"""The model-file protocol: import a user's Python file and build its model.

A model file defines ``build_model(**params)`` returning a ``keras.Model`` (or
a ``tf.function`` with an ``input_signature``), or a module-level ``model``.
Optional: ``PARAMS`` (defaults, and the names ``--param`` accepts),
``example_inputs(batch_size, **params)``, ``load_data(path, **params)``
and formulas for the file's own layer types (``FORMULAS`` or
``@tfprofscale.formula``, see formulas/custom.py).
"""
from __future__ import annotations

import ast
import importlib.util
import inspect
import itertools
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

from tfprofscale.errors import InputError
from tfprofscale.formulas.custom import UserFormula, file_formulas
from tfprofscale.inputs import TEXT_LIMIT_BYTES, check_input_file, read_text
from tfprofscale.profiling.trace.user_code import first_line, guarded, user_code
from tfprofscale.profiling.trace.weight_budget import WeightsTooLarge, weights_checked
from tfprofscale.quiet import import_tensorflow_quietly

_module_counter = itertools.count()


@dataclass(frozen=True)
class ModelFile:
    """An imported model file and what it offers."""

    path: Path
    module: ModuleType
    formulas: dict[str, UserFormula] = field(default_factory=dict)  # the file's own, by layer type

    @property
    def name(self) -> str:
        """The model's name: the file name without ``.py``."""
        return self.path.stem

    @property
    def defaults(self) -> dict[str, Any]:
        """``PARAMS`` of the file, or {} when it has none."""
        return dict(getattr(self.module, "PARAMS", {}) or {})

    @property
    def example_inputs(self) -> Callable[..., Any] | None:
        """The file's ``example_inputs(batch_size, **params)``, if any (its exits and failures made one line)."""
        return self._hook("example_inputs")

    @property
    def train_setup(self) -> Callable[..., Any] | None:
        """The file's ``train_setup(**params)`` returning ``(loss, optimizer)``, if any (for ``--train``)."""
        return self._hook("train_setup")

    @property
    def load_data(self) -> Callable[..., Any] | None:
        """The file's ``load_data(path, **params)``, if any (its exits and failures made one line)."""
        return self._hook("load_data")

    def _hook(self, name: str) -> Callable[..., Any] | None:
        function = getattr(self.module, name, None)
        return None if function is None else guarded(function, self.path, name)

    def accepted_params(self) -> set[str] | None:
        """Parameter names ``build_model`` takes; None means any name."""
        if self.defaults:
            return set(self.defaults)
        builder = getattr(self.module, "build_model", None)
        if builder is None:
            return set()
        parameters = inspect.signature(builder).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return None
        return {p.name for p in parameters}


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Import a model file by path; InputError if it is missing or unusable."""
    file = check_input_file(path, "model file")
    size = file.stat().st_size
    if size > TEXT_LIMIT_BYTES:
        raise InputError(f"model file {file} is {size / 2**20:,.0f} MiB: a model file is Python source of at most "
                         f"{TEXT_LIMIT_BYTES // 2**20} MiB (keep weights and data in their own files: --weights, "
                         "--data)")
    read_text(file, "model file")  # refuses binary files (NUL bytes) in one line before Python sees them
    module = _import_file(file)
    if not hasattr(module, "build_model") and not hasattr(module, "model"):
        raise InputError(f"model file {file} defines neither build_model() nor model")
    _check_protocol(file, module)
    return ModelFile(path=file.resolve(), module=module, formulas=file_formulas(module, file))


def _check_protocol(file: Path, module: ModuleType) -> None:
    """InputError unless the names of the model-file protocol have the right kinds of value."""
    for name in ("build_model", "example_inputs", "load_data", "train_setup"):
        value = getattr(module, name, None)
        if value is not None and not callable(value):
            raise InputError(f"model file {file}: {name} is a {type(value).__name__}, not a function")
    defaults = getattr(module, "PARAMS", None)
    if defaults is not None and not isinstance(defaults, dict):
        raise InputError(f"model file {file}: PARAMS is a {type(defaults).__name__}, not a dict of parameter defaults")
    bad_keys = [key for key in defaults or {} if not isinstance(key, str) or not key.isidentifier()]
    if bad_keys:
        raise InputError(f"model file {file}: PARAMS key {bad_keys[0]!r} is not a parameter name")


def _import_file(file: Path) -> ModuleType:
    module_name = f"tfprofscale_model_{file.stem}_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise InputError(f"model file {file} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    import_tensorflow_quietly()  # model files import TensorFlow: keep its start-up notices off stderr
    try:
        with user_code(file, "importing it"):
            spec.loader.exec_module(module)
    except SyntaxError as error:
        where = f", line {error.lineno}" if error.lineno else ""
        raise InputError(f"model file {file}{where}: syntax error: {error.msg}") from None
    except InputError:
        raise
    except Exception as error:  # the user's module code failed at import
        raise InputError(f"model file {file} failed to import: {type(error).__name__}: {error}") from None
    return module


def parse_params(pairs: Iterable[str], model_file: ModelFile) -> dict[str, Any]:
    """``["k=v", ...]`` from the command line into the full parameter dict.

    Values are Python literals where they parse as one (``3``, ``0.5``,
    ``'same'``, ``(3, 3)``), else plain strings.
    """
    overrides = {}
    for pair in pairs:
        key, text = _split_pair(pair)
        overrides[key] = literal(text)
    return resolve_params(model_file, overrides)


def resolve_params(model_file: ModelFile, overrides: dict[str, Any]) -> dict[str, Any]:
    """The file's defaults with ``overrides`` applied, names and types checked."""
    params = model_file.defaults
    accepted = model_file.accepted_params()
    for key, value in overrides.items():
        if accepted is not None and key not in accepted:
            known = ", ".join(sorted(accepted)) or "none"
            raise InputError(f"parameter {key!r}: {model_file.path.name} has no such parameter (known: {known})")
        params[key] = check_type(key, value, params.get(key))
    return params


def _split_pair(pair: str) -> tuple[str, str]:
    key, sep, value = pair.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise InputError(f"--param {pair!r} is not KEY=VALUE")
    return key, value.strip()


def literal(text: str) -> Any:
    """A Python literal from text where it parses as one, else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


_NON_FINITE = ("nan", "inf", "infinity")


def check_type(key: str, value: Any, default: Any) -> Any:
    """``value`` if it has its default's type (ints widen to float), else InputError.

    A float parameter refuses nan and inf (``--param dropout=nan``): no model is built from them.
    """
    if isinstance(default, float) and isinstance(value, str) and value.strip().lower().lstrip("+-") in _NON_FINITE:
        raise InputError(f"parameter {key}={value}: not a finite number; give a float like its default {default!r}")
    if isinstance(default, float) and isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"parameter {key}={value!r}: not a finite number; give a float like its default {default!r}")
    if default is None or isinstance(value, type(default)):
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)):
        return type(default)(value)
    raise InputError(f"parameter {key}={value!r}: expected {type(default).__name__} like its default {default!r}")


def build(model_file: ModelFile, params: dict[str, Any]) -> Any:
    """The model object: ``build_model(**params)``, or the module's ``model``."""
    builder = getattr(model_file.module, "build_model", None)
    if builder is None:
        if params:
            raise InputError(f"{model_file.path.name} has a fixed `model` and takes no --param")
        return check_model_object(model_file.module.model, f"model file {model_file.path.name}: `model`")
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
    try:
        with user_code(model_file.path, f"building the model (build_model({shown}))"), weights_checked():
            return check_model_object(builder(**params), f"{model_file.path.name}: build_model({shown})")
    except WeightsTooLarge as error:
        raise InputError(f"{model_file.path.name}: build_model({shown}): {error}") from None
    except InputError:
        raise
    except Exception as error:  # the user's build_model refused these params
        raise InputError(
            f"{model_file.path.name}: build_model({shown}) failed: {type(error).__name__}: {first_line(error)}"
        ) from None


def check_model_object(model: Any, source: str) -> Any:
    """``model`` if it is a keras.Model or a tf.function; else InputError naming ``source`` and what it gave."""
    import keras

    if isinstance(model, keras.Model) or hasattr(model, "get_concrete_function"):
        return model
    if isinstance(model, keras.layers.Layer):
        kind = "a keras layer, not a keras.Model (wrap it: keras.Model(inputs, layer(inputs)))"
    elif model is None:
        kind = "not a keras.Model or a tf.function (does it end with `return model`?)"
    else:
        kind = f"a {type(model).__name__} object, not a keras.Model or a tf.function"
    shown = repr(model)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise InputError(f"{source} returned {shown}: {kind}")
