"""Trace a model into a concrete function at a fixed batch size.

Keras layers are mapped to their graph ops by the name scope each layer is
really called under (recorded during tracing: Keras uniquifies scopes inside
``tf.function``, so names cannot be trusted to match). A plain
``tf.function`` is grouped by its top-level name scopes instead.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfprofscale.errors import InputError
from tfprofscale.profiling.graph.shape_graph import (
    ShapeGraph,
    inlined_graph_def,
    shape_graph,
)
from tfprofscale.profiling.trace import nesting
from tfprofscale.profiling.trace.input_budget import check_fits, making_inputs_bytes
from tfprofscale.profiling.trace.user_code import first_line
from tfprofscale.records import LayerInfo, Shape

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
    scopes: dict[str, str] = field(default_factory=dict)  # graph scope -> layer path
    _built: dict[str, Any] = field(default_factory=dict, repr=False)
    source_function: Any = field(default=None, repr=False)  # the tf.function traced (for XLA's compiler IR)

    @property
    def graph(self) -> tf.Graph:
        """The concrete function's graph."""
        return self.function.graph

    def inlined_graph_def(self) -> Any:
        """The function's GraphDef inlined once (captures still placeholders): the memory stage's Session graph.

        InputError with one line when it cannot be built; a failure is kept and raised again, never retried.
        """
        return self._once("inlined", lambda: inlined_graph_def(self.function))

    def shape_graph(self) -> ShapeGraph:
        """The inlined graph with every variable a one-value Const of its shape (Grappler's), built once."""
        return self._once("shape", lambda: shape_graph(self.function, self.inlined_graph_def()))

    def _once(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._built:
            try:
                self._built[key] = build()
            except InputError as error:
                self._built[key] = error
        if isinstance(self._built[key], InputError):
            raise self._built[key]
        return self._built[key]

    def layer_of(self, op_name: str) -> str | None:
        """The layer (path) an op (or runtime kernel) name belongs to, by longest scope."""
        return nesting.layer_for(op_name, self.scopes)

    def run(self) -> Any:
        """One inference step on the example inputs."""
        return self.function(*self.inputs)


def trace(model: Any, batch_size: int, example_inputs: Callable[..., Any] | None = None,
          params: dict[str, Any] | None = None, input_shapes: Sequence[Shape] | None = None,
          with_inputs: bool = True, jit_compile: bool = False) -> TracedModel:
    """Trace a Keras model or an ``input_signature`` tf.function at ``batch_size``.

    ``input_shapes`` (one per-example shape per input, ``--input-shape``)
    fixes input dimensions the model leaves undefined. ``with_inputs=False``
    makes no example inputs (``inputs`` is empty): for callers that never run
    the model, such as ``predict``. ``jit_compile`` compiles a Keras model's call with XLA.
    """
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    make = example_inputs if with_inputs else _no_inputs
    if isinstance(model, tf.keras.Model) or _is_keras_model(model):
        return _trace_keras(model, batch_size, make, params or {}, input_shapes, jit_compile)
    if hasattr(model, "get_concrete_function"):
        return _trace_function(model, batch_size, make, params or {}, input_shapes)
    raise InputError(f"the model is a {type(model).__name__}, not a keras.Model or a tf.function")


def _is_keras_model(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Model)


def _trace_keras(model: Any, batch_size: int, example_inputs: Callable[..., Any] | None,
                 params: dict[str, Any], input_shapes: Sequence[Shape] | None = None,
                 jit_compile: bool = False) -> TracedModel:
    specs = _input_specs(_model_inputs(model), batch_size, input_shapes)
    multi = len(specs) > 1
    function = tf.function(lambda *xs: model(list(xs) if multi else xs[0], training=False),
                           jit_compile=jit_compile or None)
    with nesting.recording_calls(list(getattr(model, "operations", None) or model.layers)) as records:
        concrete = function.get_concrete_function(*specs)
    fixed_inputs = {_input_layer_name(t): tuple(spec.shape) for t, spec in zip(_model_inputs(model), specs)}
    tree = nesting.expand(model, records, lambda layer: _symbolic_shapes(layer, batch_size, fixed_inputs))
    layers = _without_idle_composites(tree, concrete.graph)
    inputs = _example_inputs(specs, example_inputs, batch_size, params)
    return TracedModel(concrete, inputs, layers, batch_size, model, tree.scopes, source_function=function)


def keras_input_specs(model: Any, batch_size: int, input_shapes: Sequence[Shape] | None = None
                      ) -> list[tf.TensorSpec]:
    """One TensorSpec per input of a Keras model at ``batch_size`` (``--input-shape`` filling undefined dims)."""
    return _input_specs(_model_inputs(model), batch_size, input_shapes)


def keras_layer_tree(model: Any, records: dict[int, Any], graph: tf.Graph, specs: Sequence[tf.TensorSpec],
                     batch_size: int) -> tuple[list[LayerInfo], dict[str, str]]:
    """The layers (paths, shapes) and scope map of a Keras model whose calls ``records`` caught while tracing."""
    fixed_inputs = {_input_layer_name(t): tuple(spec.shape) for t, spec in zip(_model_inputs(model), specs)}
    tree = nesting.expand(model, records, lambda layer: _symbolic_shapes(layer, batch_size, fixed_inputs))
    return _without_idle_composites(tree, graph), tree.scopes


def made_example_inputs(specs: Sequence[tf.TensorSpec], make: Callable[..., Any] | None, batch_size: int,
                        params: dict[str, Any]) -> tuple[tf.Tensor, ...]:
    """The inputs ``make`` (a model file's ``example_inputs``) returns, checked; random ones when it is None."""
    return _example_inputs(specs, make, batch_size, params)


def _without_idle_composites(tree: nesting.LayerTree, graph: tf.Graph) -> list[LayerInfo]:
    """Drop the rows of composites that compute nothing outside their sublayers."""
    working = {nesting.layer_for(op.name, tree.scopes) for op in graph.get_operations()
               if op.type not in STRUCTURAL_OP_TYPES}
    return [info for info in tree.layers if info.name not in tree.composites or info.name in working]


def _input_layer_name(tensor: Any) -> str | None:
    history = getattr(tensor, "_keras_history", None)
    return history.operation.name if history is not None else None


def _symbolic_shapes(layer: Any, batch_size: int, fixed_inputs: dict[str | None, Shape]
                     ) -> tuple[tuple[Shape, ...], Shape]:
    """Input and output shapes from the layer's symbolic tensors (for layers not called while tracing)."""
    if layer.name in fixed_inputs:
        return (fixed_inputs[layer.name],), fixed_inputs[layer.name]
    input_shapes = tuple(_with_batch(t.shape, batch_size) for t in _as_list(_symbolic(layer, "input")))
    return input_shapes, _with_batch(_as_list(_symbolic(layer, "output"))[0].shape, batch_size)


def _model_inputs(model: Any) -> list[Any]:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise InputError(f"model {model.name!r} has no defined input: give it a keras.Input(shape=...)")
    return list(inputs)


def _input_specs(inputs: Sequence[Any], batch_size: int, input_shapes: Sequence[Shape] | None,
                 ) -> list[tf.TensorSpec]:
    """One TensorSpec per model input at ``batch_size``, with ``--input-shape`` filling undefined dimensions."""
    if input_shapes is not None and len(input_shapes) != len(inputs):
        raise InputError(f"--input-shape given {len(input_shapes)} time(s) but the model has {len(inputs)} input(s):"
                         " give it once per input, in order")
    return [_fixed_spec(t.shape, t.dtype, getattr(t, "name", None) or f"input_{i}", batch_size,
                        None if input_shapes is None else input_shapes[i], label=_input_layer_name(t))
            for i, t in enumerate(inputs)]


def _fixed_spec(shape: Any, dtype: Any, name: str, batch_size: int, given: Shape | None = None,
                label: str | None = None) -> tf.TensorSpec:
    """The input's spec at ``batch_size``; messages call it ``label`` (its InputLayer's name) when known."""
    spec_name, name = name, label or name
    dims = tuple(shape)
    if not dims:
        raise InputError(f"model input {name!r} is a scalar: it needs a batch dimension")
    per_example = dims[1:] if given is None else _given_shape(dims, given, name)
    if any(d is None for d in per_example):
        raise InputError(
            f"model input {name!r} has shape {_show(dims)}: every dimension beyond the batch must be fixed;"
            f" give it with --input-shape, e.g. --input-shape {_example_shape(dims)}"
        )
    return tf.TensorSpec((batch_size, *per_example), tf.as_dtype(dtype), name=_safe_name(spec_name))


def _given_shape(dims: Sequence[Any], given: Shape, name: str) -> Shape:
    """``--input-shape`` checked against the model's input: same rank, fixed dimensions kept."""
    if len(given) != len(dims) - 1:
        raise InputError(f"--input-shape {','.join(map(str, given))} has {len(given)} dimension(s) but model input"
                         f" {name!r} of shape {_show(dims)} needs {len(dims) - 1}")
    for model_dim, given_dim in zip(dims[1:], given):
        if model_dim is not None and int(model_dim) != given_dim:
            raise InputError(f"--input-shape {','.join(map(str, given))} does not fit model input {name!r}"
                             f" of shape {_show(dims)}: a fixed dimension differs")
    return tuple(given)


def _example_shape(dims: Sequence[Any]) -> str:
    return ",".join("224" if d is None else str(d) for d in dims[1:])


def _show(dims: Sequence[Any]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in dims) + ")"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name) or "input"


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
                    params: dict[str, Any], input_shapes: Sequence[Shape] | None = None) -> TracedModel:
    signature = getattr(function, "input_signature", None)
    if not signature:
        raise InputError("a tf.function model needs an input_signature with the per-example shape")
    specs = _input_specs(signature, batch_size, input_shapes)
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
