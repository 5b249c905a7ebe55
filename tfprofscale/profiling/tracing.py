"""Trace a model into a concrete function at a fixed batch size.

Keras layers are mapped to their graph ops by the name scope each layer is
really called under (recorded during tracing: Keras uniquifies scopes inside
``tf.function``, so names cannot be trusted to match). A plain
``tf.function`` is grouped by its top-level name scopes instead.
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from tfprofscale.errors import InputError
from tfprofscale.profiling.frozen import FrozenGraph, freeze
from tfprofscale.profiling.input_budget import check_fits, making_inputs_bytes
from tfprofscale.profiling.records import LayerInfo, Shape
from tfprofscale.profiling.user_code import first_line

# Op types that only move, name or feed tensors: they carry no computation.
STRUCTURAL_OP_TYPES = frozenset({
    "Placeholder", "Const", "ReadVariableOp", "VarHandleOp", "Identity", "IdentityN",
    "NoOp", "Reshape", "Squeeze", "ExpandDims", "Shape", "StopGradient",
})


@dataclass
class TracedModel:
    """A model traced at one batch size: its graph, layers and example inputs."""

    function: Any  # tf ConcreteFunction
    inputs: tuple[tf.Tensor, ...]
    layers: list[LayerInfo]
    batch_size: int
    keras_model: Any = None
    scopes: dict[str, str] = field(default_factory=dict)  # graph scope -> layer name
    _frozen: Any = field(default=None, repr=False)

    @property
    def graph(self) -> tf.Graph:
        """The concrete function's graph."""
        return self.function.graph

    def frozen(self) -> "FrozenGraph":
        """The function frozen once, shared by the memory records and TensorFlow's cost model.

        Raises ``FreezeError`` (an InputError) with one line when it cannot be frozen.
        """
        if self._frozen is None:
            self._frozen = freeze(self.function)
        return self._frozen

    def layer_of(self, op_name: str) -> str | None:
        """The layer an op (or runtime kernel) name belongs to, by longest scope."""
        best = None
        for scope, layer in self.scopes.items():
            if op_name.startswith(scope + "/") and (best is None or len(scope) > len(best[0])):
                best = (scope, layer)
        return best[1] if best else None

    def run(self) -> Any:
        """One inference step on the example inputs."""
        return self.function(*self.inputs)


def trace(model: Any, batch_size: int, example_inputs: Callable[..., Any] | None = None,
          params: dict[str, Any] | None = None, with_inputs: bool = True) -> TracedModel:
    """Trace a Keras model or an ``input_signature`` tf.function at ``batch_size``.

    ``with_inputs=False`` makes no example inputs (``inputs`` is empty): for
    callers that never run the model, such as ``predict``.
    """
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    make = example_inputs if with_inputs else _no_inputs
    if isinstance(model, tf.keras.Model) or _is_keras_model(model):
        return _trace_keras(model, batch_size, make, params or {})
    if hasattr(model, "get_concrete_function"):
        return _trace_function(model, batch_size, make, params or {})
    raise InputError(f"the model is a {type(model).__name__}, not a keras.Model or a tf.function")


def _is_keras_model(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Model)


def _trace_keras(model: Any, batch_size: int, example_inputs: Callable[..., Any] | None,
                 params: dict[str, Any]) -> TracedModel:
    specs = [_fixed_spec(t.shape, t.dtype, t.name, batch_size) for t in _model_inputs(model)]
    multi = len(specs) > 1
    function = tf.function(lambda *xs: model(list(xs) if multi else xs[0], training=False))
    with _recording_scopes(model.layers) as scopes:
        concrete = function.get_concrete_function(*specs)
    layers = [_layer_info(layer, batch_size, scopes) for layer in model.layers]
    inputs = _example_inputs(specs, example_inputs, batch_size, params)
    scope_to_layer = {scope: name for name, scope in scopes.items()}
    return TracedModel(concrete, inputs, layers, batch_size, model, scope_to_layer)


def _model_inputs(model: Any) -> list[Any]:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise InputError(f"model {model.name!r} has no defined input: give it a keras.Input(shape=...)")
    return list(inputs)


def _fixed_spec(shape: Any, dtype: Any, name: str, batch_size: int) -> tf.TensorSpec:
    dims = tuple(shape)
    if not dims:
        raise InputError(f"model input {name!r} is a scalar: it needs a batch dimension")
    if any(d is None for d in dims[1:]):
        raise InputError(
            f"model input {name!r} has shape {_show(dims)}: every dimension beyond the batch must be fixed"
        )
    return tf.TensorSpec((batch_size, *dims[1:]), tf.as_dtype(dtype), name=_safe_name(name))


def _show(dims: Sequence[Any]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in dims) + ")"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name) or "input"


@contextmanager
def _recording_scopes(layers: Sequence[Any]) -> Iterator[dict[str, str]]:
    """Wrap each layer's ``call`` to record the graph scope it runs under."""
    scopes: dict[str, str] = {}

    def wrap(layer: Any) -> Callable[..., Any]:
        original = layer.call

        def call(*args: Any, **kwargs: Any) -> Any:
            scopes.setdefault(layer.name, tf.get_current_name_scope())
            return original(*args, **kwargs)

        return call

    for layer in layers:
        layer.call = wrap(layer)
    try:
        yield scopes
    finally:
        for layer in layers:
            if "call" in vars(layer):
                del layer.call


def _layer_info(layer: Any, batch_size: int, scopes: dict[str, str]) -> LayerInfo:
    return LayerInfo(
        name=layer.name,
        type=type(layer).__name__,
        input_shapes=tuple(_with_batch(t.shape, batch_size) for t in _as_list(_symbolic(layer, "input"))),
        output_shape=_with_batch(_as_list(_symbolic(layer, "output"))[0].shape, batch_size),
        scope=scopes.get(layer.name),
        inbound=_inbound_layers(layer),
        layer=layer,
    )


def _symbolic(layer: Any, attribute: str) -> Any:
    try:
        return getattr(layer, attribute)
    except (AttributeError, ValueError) as error:
        raise InputError(f"layer {layer.name!r} has no single {attribute}: {error}") from None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _with_batch(shape: Any, batch_size: int) -> Shape:
    dims = tuple(shape)
    return (batch_size, *(int(d) if d is not None else -1 for d in dims[1:]))


def _inbound_layers(layer: Any) -> tuple[str, ...]:
    names: list[str] = []
    for node in getattr(layer, "_inbound_nodes", [])[:1]:
        for tensor in getattr(node, "input_tensors", []):
            history = getattr(tensor, "_keras_history", None)
            if history is not None and history.operation.name not in names:
                names.append(history.operation.name)
    return tuple(names)


def _no_inputs(batch_size: int, **params: Any) -> tuple[()]:
    return ()


def _example_inputs(specs: Sequence[tf.TensorSpec], make: Callable[..., Any] | None,
                    batch_size: int, params: dict[str, Any]) -> tuple[tf.Tensor, ...]:
    if make is _no_inputs:
        return ()
    check_fits(batch_size, "the model's inputs (while they are made)", making_inputs_bytes(specs))
    if make is not None:
        made = make(batch_size, **params)
        return checked_example_inputs(made, specs, _source_name(make), batch_size)
    rng = np.random.default_rng(0)
    return tuple(_random_tensor(spec, rng) for spec in specs)


def _source_name(make: Callable[..., Any]) -> str:
    code = getattr(inspect.unwrap(make), "__code__", None)
    return f"model file {Path(code.co_filename).name}: " if code else ""


def checked_example_inputs(made: Any, specs: Sequence[tf.TensorSpec], source: str,
                           batch_size: int) -> tuple[tf.Tensor, ...]:
    """What ``example_inputs`` returned, as tensors; InputError if their number, shapes or dtypes differ."""
    made = list(made) if isinstance(made, (list, tuple)) else [made]
    call = f"{source}example_inputs({batch_size})"
    if len(made) != len(specs):
        raise InputError(f"{call} returned {len(made)} input(s), the model takes {len(specs)}")
    tensors = []
    for value, spec in zip(made, specs):
        try:
            tensor = tf.convert_to_tensor(value, dtype=spec.dtype)
        except (TypeError, ValueError) as error:
            raise InputError(f"{call}: input {spec.name!r} is not convertible to {spec.dtype.name}: "
                             f"{first_line(error)}") from None
        if tuple(tensor.shape) != tuple(spec.shape):
            raise InputError(f"{call}: input {spec.name!r} has shape {_show(tuple(tensor.shape))}, "
                             f"the model takes {_show(tuple(spec.shape))}")
        tensors.append(tensor)
    return tuple(tensors)


def _random_tensor(spec: tf.TensorSpec, rng: np.random.Generator) -> tf.Tensor:
    shape = tuple(spec.shape)
    if spec.dtype.is_floating:
        return tf.constant(rng.standard_normal(shape), dtype=spec.dtype)
    if spec.dtype.is_integer:
        return tf.zeros(shape, dtype=spec.dtype)
    if spec.dtype == tf.bool:
        return tf.zeros(shape, dtype=tf.bool)
    raise InputError(f"input {spec.name!r} of dtype {spec.dtype.name}: give the model file an example_inputs()")


def _trace_function(function: Any, batch_size: int, example_inputs: Callable[..., Any] | None,
                    params: dict[str, Any]) -> TracedModel:
    signature = getattr(function, "input_signature", None)
    if not signature:
        raise InputError("a tf.function model needs an input_signature with the per-example shape")
    specs = [_fixed_spec(s.shape, s.dtype, s.name or f"input_{i}", batch_size) for i, s in enumerate(signature)]
    concrete = tf.function(function.python_function, input_signature=specs).get_concrete_function()
    layers, scopes = _scope_groups(concrete.graph)
    inputs = _example_inputs(specs, example_inputs, batch_size, params)
    return TracedModel(concrete, inputs, layers, batch_size, None, scopes)


@dataclass(frozen=True)
class ScopeGroup:
    """A top-level name scope of a plain tf.function, standing in for a layer."""

    name: str
    params: int
    compute_dtype: str
    built: bool = True

    def count_params(self) -> int:
        """Elements of the variables the scope reads."""
        return self.params


def _scope_groups(graph: tf.Graph) -> tuple[list[LayerInfo], dict[str, str]]:
    """One pseudo-layer per top-level name scope that holds computation."""
    last_op: dict[str, Any] = {}
    variables: dict[str, dict[str, int]] = {}
    for op in graph.get_operations():
        scope, sep, _ = op.name.partition("/")
        if sep and op.type == "ReadVariableOp":
            variables.setdefault(scope, {})[op.inputs[0].name] = op.outputs[0].shape.num_elements() or 0
        if sep and op.type not in STRUCTURAL_OP_TYPES:
            last_op[scope] = op
    layers = [
        LayerInfo(name=scope, type="NameScope", input_shapes=(), output_shape=_op_output_shape(op), scope=scope,
                  layer=ScopeGroup(scope, sum(variables.get(scope, {}).values()), op.outputs[0].dtype.name))
        for scope, op in last_op.items()
    ]
    return layers, {scope: scope for scope in last_op}


def _op_output_shape(op: Any) -> Shape:
    if not op.outputs or op.outputs[0].shape.rank is None:
        return ()
    return tuple(-1 if d is None else int(d) for d in op.outputs[0].shape)
