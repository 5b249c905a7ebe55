"""Nested models and composite layers, expanded into the leaf layers that do the work.

A Functional or Sequential model used as a layer, and a custom layer built of
Keras layers (its sublayers tracked by Keras), are walked recursively: each
leaf becomes a ``LayerInfo`` named by its path (``outer/inner/conv``), with
the path of its enclosing model as ``parent`` and its nesting ``depth``.
Keras' own layers (LSTM, MultiHeadAttention, Bidirectional ...) stay leaves:
their formulas cover them whole. Keras operations that are not layers (the
``x + y`` of a residual connection in a Functional model, an
``keras.ops.numpy.Add``) are rows too, typed ``ops.Add``, with the graph ops
they created; their formulas (``formulas.keras_ops``) are registered under
those ``ops.`` names only, so a layer's formula never applies to them.

While the model is traced, every layer's ``call`` is wrapped to record the
name scopes it really runs under (Keras uniquifies them inside
``tf.function``) and the shapes it really sees at the fixed batch, so that
nested layers get full shapes even where the model's inputs were not fully
defined.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import tensorflow as tf

from tfprofscale.records import LayerInfo, Shape

#: Top-level packages whose layers are leaves (their formulas cost them whole).
KERAS_PACKAGES = ("keras", "tf_keras")

#: Call arguments that are not inputs (Keras' symbolic ``layer.input`` leaves them out too).
NOT_INPUTS = frozenset({"mask", "training", "attention_mask", "return_attention_scores", "use_causal_mask"})


@dataclass
class CallRecord:
    """What one layer's ``call`` saw while the model was traced (first call's shapes)."""

    scopes: list[str] = field(default_factory=list)
    input_shapes: tuple[Shape, ...] | None = None
    output_shape: Shape | None = None
    created_ops: list[str] = field(default_factory=list)
    calls: list[tuple[tuple[Shape, ...], Shape | None]] = field(default_factory=list)  # every traced call's shapes
    trace: int | None = None  # id of the outermost graph the calls were counted in


@dataclass(frozen=True)
class OwnWork:
    """A composite layer's own computation, outside its sublayers (params: its own weights only).

    For a Keras operation that is not a layer, ``operation`` is the operation itself (its
    configuration, e.g. an Einsum's subscripts, is what its formula reads).
    """

    name: str
    params: int
    compute_dtype: str
    built: bool = True
    operation: Any = field(default=None, repr=False, compare=False)

    def count_params(self) -> int:
        """Elements of the weights the composite holds directly."""
        return self.params


@dataclass
class LayerTree:
    """The leaves of a model (and composite rows that may hold work of their own), in call order."""

    layers: list[LayerInfo]
    composites: set[str]
    scopes: dict[str, str]  # graph name scope -> layer path


@contextmanager
def recording_calls(layers: Sequence[Any], batch_size: int | None = None) -> Iterator[dict[int, CallRecord]]:
    """Wrap ``call`` of ``layers`` and all their sublayers; yield id(layer) -> CallRecord.

    With ``batch_size``, an output whose batch dimension the layer's ops left
    unknown (string splitting, ragged tensors) while its input's was
    ``batch_size`` gets it back (``set_shape``), so that the ops after it keep
    static shapes and TensorFlow's profiler can count them.
    """
    records: dict[int, CallRecord] = {}
    wrapped = _with_sublayers(layers)
    for layer in wrapped:
        layer.call = _recorder(layer, records, batch_size)
    try:
        yield records
    finally:
        for layer in wrapped:
            if "call" in vars(layer):
                del layer.call


def _with_sublayers(layers: Sequence[Any]) -> list[Any]:
    """The layers, their sublayers and the operations of nested models, each once."""
    every: dict[int, Any] = {}
    stack = list(layers)
    while stack:
        each = stack.pop()
        if id(each) not in every:
            every[id(each)] = each
            stack.extend(_children(each) if _is_layer(each) else ())
    return list(every.values())


def sublayers(layer: Any, recursive: bool = False) -> list[Any]:
    """The layers Keras tracks inside ``layer`` (direct ones unless ``recursive``)."""
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return []
    return list(flatten(include_self=False, recursive=recursive))


def _recorder(layer: Any, records: dict[int, CallRecord], batch_size: int | None = None) -> Any:
    original = layer.call

    scoped = _is_layer(layer)

    def call(*args: Any, **kwargs: Any) -> Any:
        record = records.setdefault(id(layer), CallRecord())
        scope = tf.get_current_name_scope()
        if scoped and scope not in record.scopes:
            record.scopes.append(scope)
        graph = tf.compat.v1.get_default_graph()
        before = 0 if scoped else len(graph.get_operations())
        outputs = original(*args, **kwargs)
        _pin_batch(outputs, args, batch_size)
        if not scoped:
            record.created_ops.extend(op.name for op in graph.get_operations()[before:])
        input_shapes = tensor_shapes((args, {k: v for k, v in kwargs.items() if k not in NOT_INPUTS}))
        output_shape = next(iter(tensor_shapes(outputs)), None)
        if not _symbolic_call(args):
            trace = id(_outermost(graph))
            if record.trace != trace:  # tf.function traced again (e.g. after creating variables): count anew
                record.trace, record.calls = trace, []
            record.calls.append((input_shapes, output_shape))
        if record.output_shape is None:
            record.input_shapes, record.output_shape = input_shapes, output_shape
        return outputs

    return call


def _outermost(graph: Any) -> Any:
    """The function graph a (possibly nested: loop body, branch) graph belongs to."""
    while getattr(graph, "outer_graph", None) is not None:
        graph = graph.outer_graph
    return graph


def _pin_batch(outputs: Any, args: Any, batch_size: int | None) -> None:
    """Give outputs of unknown batch dimension ``batch_size`` when an input had it (see ``recording_calls``)."""
    if batch_size is None:
        return
    dense = [t for t in tf.nest.flatten(args) if isinstance(t, tf.Tensor) and t.shape.rank]
    if not any(t.shape[0] == batch_size for t in dense):
        return
    for tensor in tf.nest.flatten(outputs):
        if isinstance(tensor, tf.Tensor) and tensor.shape.rank and tensor.shape[0] is None:
            tensor.set_shape([batch_size] + [None] * (tensor.shape.rank - 1))


def _symbolic_call(args: Any) -> bool:
    """A call on Keras' symbolic tensors (Keras working out output shapes), not one the graph runs."""
    import keras

    return any(isinstance(item, keras.KerasTensor) for item in tf.nest.flatten(args))


def tensor_shapes(value: Any) -> tuple[Shape, ...]:
    """Shapes of the tensors in a nested structure, unknown dimensions as -1."""
    shapes = []
    for item in tf.nest.flatten(value):
        shape = getattr(item, "shape", None)
        if shape is not None and getattr(item, "dtype", None) is not None and shape.rank is not None:
            shapes.append(tuple(-1 if d is None else int(d) for d in shape))
    return tuple(shapes)


def _is_layer(operation: Any) -> bool:
    import keras

    return isinstance(operation, keras.layers.Layer)


def is_composite(layer: Any) -> bool:
    """A model used as a layer, or a custom (non-Keras) layer holding Keras sublayers.

    A subclass of a concrete Keras layer (keras_hub's ``CachedMultiHeadAttention``
    of ``MultiHeadAttention``) is a leaf like its Keras base: its formula is the base's.
    """
    import keras

    if isinstance(layer, keras.Model):
        return bool(_children(layer))
    if type(layer).__module__.split(".")[0] in KERAS_PACKAGES or keras_base_layer(type(layer)) is not None:
        return False
    return bool(sublayers(layer))


def keras_base_layer(cls: type) -> type | None:
    """The nearest concrete Keras layer class ``cls`` (a class from elsewhere) derives from; None if only Layer."""
    import keras

    for base in cls.__mro__[1:]:
        if base.__module__.split(".")[0] not in KERAS_PACKAGES:
            continue
        if base is keras.layers.Layer or not issubclass(base, keras.layers.Layer) or base.__name__.startswith("_"):
            return None
        if issubclass(base, keras.Model) or base.__name__ in ("Layer", "Operation"):
            return None
        return base
    return None


def _children(layer: Any) -> list[Any]:
    import keras

    if isinstance(layer, keras.Model):
        return list(getattr(layer, "operations", None) or layer.layers)
    return sublayers(layer)


def is_subclassed_model(layer: Any) -> bool:
    """A keras.Model with a ``call`` of its own (neither functional nor Sequential)."""
    import keras
    from keras.src.models.functional import Functional

    return isinstance(layer, keras.Model) and not isinstance(layer, (Functional, keras.Sequential))


def _is_input_layer(layer: Any) -> bool:
    return type(layer).__name__ == "InputLayer"


@dataclass(frozen=True)
class _Context:
    """Where a layer sits: its path prefix, parent, depth, and what feeds its composite."""

    prefix: str = ""
    parent: str | None = None
    depth: int = 0
    entry: tuple[str, ...] = ()


class _Expander:
    """Walks the layer tree once, collecting leaves, composites and scopes."""

    def __init__(self, records: dict[int, CallRecord], fallback: Any) -> None:
        self.records = records
        self.fallback = fallback
        self.layers: list[LayerInfo] = []
        self.composites: set[str] = set()
        self.scopes: dict[str, str] = {}
        self.exits: dict[str, tuple[str, ...]] = {}

    def expand(self, layers: Sequence[Any], context: _Context) -> None:
        for layer in layers:
            path = context.prefix + layer.name
            if context.depth > 0 and _is_input_layer(layer):
                self.exits[path] = context.entry
                continue
            record = self.records.get(id(layer))
            if record is None and context.depth > 0:
                continue  # never called: does no work
            inbound = self._inbound(layer, context)
            for scope in [*record.scopes, *record.created_ops] if record else ():
                self.scopes.setdefault(scope, path)
            self.layers.append(self._info(layer, path, inbound, context, record))
            self.exits[path] = (path,)
            if is_composite(layer):
                self.composites.add(path)
                inner = _Context(path + "/", path, context.depth + 1, inbound)
                self.expand(self._children_called(layer), inner)
                self.exits[path] = self._exit_paths(layer, inner)

    def _children_called(self, layer: Any) -> list[Any]:
        """A composite's sublayers; a subclassed model's are those its call ran, in the order it ran them."""
        children = _children(layer)
        if not is_subclassed_model(layer):
            return children
        order = {key: index for index, key in enumerate(self.records)}
        return sorted((child for child in children if id(child) in order), key=lambda child: order[id(child)])

    def _inbound(self, layer: Any, context: _Context) -> tuple[str, ...]:
        paths: list[str] = []
        for name in _inbound_names(layer):
            for path in self.exits.get(context.prefix + name, context.entry):
                if path not in paths:
                    paths.append(path)
        return tuple(paths)

    def _exit_paths(self, layer: Any, inner: _Context) -> tuple[str, ...]:
        names = [h.operation.name for h in (getattr(t, "_keras_history", None) for t in _outputs(layer)) if h]
        children = [inner.prefix + child.name for child in _children(layer)]
        known = [inner.prefix + name for name in names if inner.prefix + name in self.exits]
        chosen = known or [path for path in children if path in self.exits][-1:]
        return tuple(path for exit_path in chosen for path in self.exits[exit_path])

    def _info(self, layer: Any, path: str, inbound: tuple[str, ...], context: _Context,
              record: CallRecord | None) -> LayerInfo:
        if record is None or record.output_shape is None:
            input_shapes, output_shape = self.fallback(layer)
        else:
            input_shapes, output_shape = record.input_shapes or (), record.output_shape
        return LayerInfo(
            name=path, type=_row_type(layer), input_shapes=tuple(input_shapes), output_shape=output_shape,
            scope=record.scopes[0] if record and record.scopes else None, inbound=inbound,
            layer=layer if _is_layer(layer) and not is_composite(layer) else _own_work(layer, path),
            parent=context.parent, depth=context.depth,
            extra_calls=tuple((ins, out) for ins, out in record.calls[1:] if out is not None) if record else (),
        )


def _row_type(operation: Any) -> str:
    """The class name; ``ops.<class>`` for a Keras operation that is not a layer (no layer formula applies)."""
    name = type(operation).__name__
    return name if _is_layer(operation) else f"ops.{name}"


def _outputs(layer: Any) -> list[Any]:
    try:
        return list(tf.nest.flatten(layer.outputs))
    except (AttributeError, ValueError):
        return []


def _inbound_names(layer: Any) -> list[str]:
    names: list[str] = []
    for node in getattr(layer, "_inbound_nodes", [])[:1]:
        for tensor in getattr(node, "input_tensors", []):
            history = getattr(tensor, "_keras_history", None)
            if history is not None and history.operation.name not in names:
                names.append(history.operation.name)
    return names


def _own_work(layer: Any, path: str) -> OwnWork:
    inside = {id(w) for sub in sublayers(layer, recursive=True) for w in sub.weights}
    own = [w for w in getattr(layer, "weights", []) if id(w) not in inside]
    params = sum(math.prod(int(d) for d in w.shape) for w in own)
    return OwnWork(path, params, getattr(layer, "compute_dtype", None) or "float32",
                   operation=None if _is_layer(layer) else layer)


def expand(model: Any, records: dict[int, CallRecord], fallback: Any) -> LayerTree:
    """The model's layers, nested models and composite layers expanded into leaves.

    ``fallback(layer) -> (input_shapes, output_shape)`` gives the shapes of a
    top-level layer that was never called while tracing (an InputLayer).
    """
    expander = _Expander(records, fallback)
    expander.expand(_children(model), _Context())
    return LayerTree(expander.layers, expander.composites, expander.scopes)


def expand_called(model: Any, records: dict[int, CallRecord], fallback: Any) -> LayerTree:
    """A subclassed model as one composite row (its own ops) over the layers its call ran, in call order."""
    expander = _Expander(records, fallback)
    expander.expand([model], _Context())
    return LayerTree(expander.layers, expander.composites, expander.scopes)


def layer_for(op_name: str, scopes: dict[str, str]) -> str | None:
    """The layer an op (or runtime kernel) name belongs to, by the longest scope (or op name) it lies in."""
    best: tuple[str, str] | None = None
    for scope, layer in scopes.items():
        inside = op_name == scope or op_name.startswith(scope + "/")
        if inside and (best is None or len(scope) > len(best[0])):
            best = (scope, layer)
    return best[1] if best else None
