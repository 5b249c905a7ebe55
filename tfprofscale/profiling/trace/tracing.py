"""Trace a model into a concrete function at a fixed batch size.

Keras layers are mapped to their graph ops by the name scope each layer is
really called under (recorded during tracing: Keras uniquifies scopes inside
``tf.function``, so names cannot be trusted to match). A plain
``tf.function`` is grouped by its top-level name scopes instead.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
from tfprofscale.profiling.trace import model_inputs, nesting
from tfprofscale.profiling.trace.input_budget import check_fits, making_inputs_bytes
from tfprofscale.profiling.trace.model_inputs import GivenShapes
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
          params: dict[str, Any] | None = None, input_shapes: GivenShapes = None,
          with_inputs: bool = True, jit_compile: bool = False) -> TracedModel:
    """Trace a Keras model or an ``input_signature`` tf.function at ``batch_size``.

    ``input_shapes`` (one per-example shape per input, ``--input-shape``;
    positional, or a dict by input name) fixes input dimensions the model
    leaves undefined. ``with_inputs=False`` makes no example inputs
    (``inputs`` is empty): for callers that never run the model, such as ``predict``.
    ``jit_compile`` compiles a Keras model's call with XLA.
    """
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    make = example_inputs if with_inputs else _no_inputs
    if isinstance(model, tf.keras.Model) or _is_keras_model(model):
        inputs = model_inputs.functional_inputs(model)
        if inputs is None:
            return _trace_subclassed(model, batch_size, example_inputs, params or {}, input_shapes, with_inputs)
        return _trace_keras(model, inputs, batch_size, make, params or {}, input_shapes, jit_compile)
    if hasattr(model, "get_concrete_function"):
        return _trace_function(model, batch_size, make, params or {}, input_shapes)
    raise InputError(f"the model is a {type(model).__name__}, not a keras.Model or a tf.function")


def _is_keras_model(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Model)


def _trace_keras(model: Any, model_input_list: list[model_inputs.ModelInput], batch_size: int,
                 example_inputs: Callable[..., Any] | None, params: dict[str, Any],
                 input_shapes: GivenShapes = None, jit_compile: bool = False) -> TracedModel:
    specs = _input_specs(model_input_list, batch_size, input_shapes)
    function = tf.function(model_inputs.model_caller(model, len(specs)), jit_compile=jit_compile or None)
    with nesting.recording_calls(list(getattr(model, "operations", None) or model.layers), batch_size) as records:
        concrete = function.get_concrete_function(*specs)
    fixed_inputs = {i.name: tuple(spec.shape) for i, spec in zip(model_input_list, specs)}
    tree = nesting.expand(model, records, lambda layer: _symbolic_shapes(layer, batch_size, fixed_inputs))
    for model_input, spec in zip(model_input_list, specs):  # the Placeholder, named after its input, is its row's
        tree.scopes.setdefault(spec.name, model_input.name)
    layers = with_known_batch(_without_idle_composites(tree, concrete.graph), batch_size)
    inputs = _example_inputs(specs, example_inputs, batch_size, params, model)
    return TracedModel(concrete, inputs, layers, batch_size, model, tree.scopes, source_function=function)


def keras_input_specs(model: Any, batch_size: int, input_shapes: GivenShapes = None) -> list[tf.TensorSpec]:
    """One TensorSpec per input of a Keras model at ``batch_size`` (``--input-shape`` filling undefined dims)."""
    return _input_specs(_functional_inputs(model), batch_size, input_shapes)


def keras_layer_tree(model: Any, records: dict[int, Any], graph: tf.Graph, specs: Sequence[tf.TensorSpec],
                     batch_size: int) -> tuple[list[LayerInfo], dict[str, str]]:
    """The layers (paths, shapes) and scope map of a Keras model whose calls ``records`` caught while tracing."""
    fixed_inputs = {i.name: tuple(spec.shape) for i, spec in zip(_functional_inputs(model), specs)}
    tree = nesting.expand(model, records, lambda layer: _symbolic_shapes(layer, batch_size, fixed_inputs))
    return with_known_batch(_without_idle_composites(tree, graph), batch_size), tree.scopes


def made_example_inputs(specs: Sequence[tf.TensorSpec], make: Callable[..., Any] | None, batch_size: int,
                        params: dict[str, Any], model: Any = None) -> tuple[tf.Tensor, ...]:
    """The inputs ``make`` (a model file's ``example_inputs``) returns, checked; random ones when it is None."""
    return _example_inputs(specs, make, batch_size, params, model)


def _functional_inputs(model: Any) -> list[model_inputs.ModelInput]:
    """A functional model's flat inputs; InputError for a model without (a subclassed one)."""
    inputs = model_inputs.functional_inputs(model)
    if inputs is None:
        raise InputError(f"model {model.name!r} has no defined input: give it a keras.Input(shape=...)")
    return inputs


def _trace_subclassed(model: Any, batch_size: int, example_inputs: Callable[..., Any] | None,
                      params: dict[str, Any], input_shapes: GivenShapes, with_inputs: bool) -> TracedModel:
    """A subclassed model traced on its example inputs: one row per layer its ``call`` ran, in call order."""
    if input_shapes is not None:
        raise InputError(f"--input-shape: model {model.name!r} is a subclassed keras.Model; its input shapes are "
                         "those of what the model file's example_inputs(batch_size) returns")
    made = example_inputs(batch_size, **params) if example_inputs is not None else None
    source = _source_name(example_inputs) if example_inputs is not None else ""
    structure, specs = model_inputs.subclassed_specs(model, made, batch_size, source)
    flat = tuple(tf.nest.flatten(structure)) if made is not None else _example_inputs(
        specs, None, batch_size, params, model)
    caller = model_inputs.subclassed_caller(model, structure)
    caller(*flat)  # run eagerly once: every sublayer built (``built`` is set by a bare build() too), so that
    # tracing records the calls, not the creation of weights (which makes tf.function trace twice)
    with nesting.recording_calls([model], batch_size) as records:
        concrete = tf.function(caller).get_concrete_function(*specs)
    tree = nesting.expand_called(model, records, lambda layer: _symbolic_shapes(layer, batch_size, {}))
    layers = with_known_batch(_without_idle_composites(tree, concrete.graph), batch_size)
    return TracedModel(concrete, flat if with_inputs else (), layers, batch_size, model, tree.scopes)


def with_known_batch(layers: list[LayerInfo], batch_size: int) -> list[LayerInfo]:
    """Layers whose recorded shapes lost the batch dimension (string ops, ragged tensors) given it back."""
    def fixed(shape: Shape) -> Shape:
        return (batch_size, *shape[1:]) if shape and shape[0] == -1 else shape

    return [replace(info, input_shapes=tuple(fixed(s) for s in info.input_shapes),
                    output_shape=fixed(info.output_shape),
                    extra_calls=tuple((tuple(fixed(s) for s in ins), fixed(out)) for ins, out in info.extra_calls))
            for info in layers]


def _without_idle_composites(tree: nesting.LayerTree, graph: tf.Graph) -> list[LayerInfo]:
    """Drop the rows of composites that compute nothing outside their sublayers."""
    working = {nesting.layer_for(op.name, tree.scopes) for op in graph.get_operations()
               if op.type not in STRUCTURAL_OP_TYPES}
    return [info for info in tree.layers if info.name not in tree.composites or info.name in working]


def _symbolic_shapes(layer: Any, batch_size: int, fixed_inputs: dict[str | None, Shape]
                     ) -> tuple[tuple[Shape, ...], Shape]:
    """Input and output shapes from the layer's symbolic tensors (for layers not called while tracing)."""
    if layer.name in fixed_inputs:
        return (fixed_inputs[layer.name],), fixed_inputs[layer.name]
    input_shapes = tuple(_with_batch(t.shape, batch_size) for t in _as_list(_symbolic(layer, "input")))
    return input_shapes, _with_batch(_as_list(_symbolic(layer, "output"))[0].shape, batch_size)


def _input_specs(inputs: Sequence[model_inputs.ModelInput], batch_size: int, input_shapes: GivenShapes,
                 ) -> list[tf.TensorSpec]:
    """One TensorSpec per flat input at ``batch_size``, named after its input; ``--input-shape`` fills undefined dimensions."""
    given = model_inputs.given_shapes(inputs, input_shapes)
    return [_fixed_spec(i.dims, i.dtype, i.name, batch_size, shape, label=i.path or i.name, named=len(inputs) > 1)
            for i, shape in zip(inputs, given)]


def _fixed_spec(shape: Any, dtype: Any, name: str, batch_size: int, given: Shape | None = None,
                label: str | None = None, named: bool = False) -> tf.TensorSpec:
    """The input's spec at ``batch_size``; messages call it ``label`` (its InputLayer's name) when known,
    and suggest ``--input-shape NAME=...`` when the model has several inputs (``named``)."""
    spec_name, name = name, label or name
    dims = tuple(shape)
    if not dims:
        raise InputError(f"model input {name!r} is a scalar: it needs a batch dimension")
    per_example = dims[1:] if given is None else _given_shape(dims, given, name)
    if any(d is None for d in per_example):
        raise InputError(
            f"model input {name!r} has shape {_show(dims)}: every dimension beyond the batch must be fixed;"
            f" give it with --input-shape, e.g. --input-shape {name + '=' if named else ''}{_example_shape(dims)}"
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
                    batch_size: int, params: dict[str, Any], model: Any = None) -> tuple[tf.Tensor, ...]:
    if make is _no_inputs:
        return ()
    check_fits(batch_size, "the model's inputs (while they are made)", making_inputs_bytes(specs))
    made = make(batch_size, **params) if make is not None else None
    if made is not None:  # example_inputs may return None: "make them yourself"
        return checked_example_inputs(made, specs, _source_name(make), batch_size)
    rng = np.random.default_rng(0)
    words = model_inputs.string_words(model) if any(spec.dtype == tf.string for spec in specs) else None
    return tuple(_random_tensor(spec, rng, words) for spec in specs)


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


def _random_tensor(spec: tf.TensorSpec, rng: np.random.Generator,
                   words: tuple[list[str], int] | None = None) -> tf.Tensor:
    shape = tuple(spec.shape)
    if spec.dtype == tf.string and words is not None:
        return model_inputs.example_strings(shape, *words, rng)
    if spec.dtype.is_floating:
        return tf.constant(rng.standard_normal(shape), dtype=spec.dtype)
    if spec.dtype.is_integer:
        return tf.zeros(shape, dtype=spec.dtype)
    if spec.dtype == tf.bool:
        return tf.zeros(shape, dtype=tf.bool)
    raise InputError(f"input {spec.name!r} of dtype {spec.dtype.name}: give the model file an example_inputs()")


def _trace_function(function: Any, batch_size: int, example_inputs: Callable[..., Any] | None,
                    params: dict[str, Any], input_shapes: GivenShapes = None) -> TracedModel:
    signature = getattr(function, "input_signature", None)
    if not signature:
        raise InputError("a tf.function model needs an input_signature with the per-example shape")
    named = [model_inputs.ModelInput(spec.name or f"input_{i}", None, tuple(spec.shape), spec.dtype)
             for i, spec in enumerate(signature)]
    specs = _input_specs(named, batch_size, input_shapes)
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
