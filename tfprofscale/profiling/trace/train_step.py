"""Trace one training step of a Keras model as Keras' own ``train_step`` runs it.

The forward pass with ``training=True``, the compiled loss
(``model.compute_loss``, regularisation included, scaled by a loss-scaling
optimizer), ``tf.GradientTape`` gradients of the trainable weights and
``optimizer.apply``: one ``tf.function``, traced at a fixed batch with the
labels as its last inputs. While tracing, the ops each phase creates are
recorded (``forward``, ``loss``, ``backward``, ``update``) and so are the
ops of each variable's update (the optimizer's ``update_step`` is wrapped),
so that every op, and every kernel named after it, has a phase and a layer:
gradient ops live under ``gradient_tape/<model>/<layer>/...`` and go to the
layer they differentiate; update ops go to the layer whose variable they
update; the loss and the optimizer's shared ops (learning rate, step
count) belong to no layer.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import tensorflow as tf

from tfprofscale.errors import InputError
from tfprofscale.profiling.trace import nesting
from tfprofscale.profiling.trace.tracing import (
    TracedModel,
    keras_input_specs,
    keras_layer_tree,
    made_example_inputs,
)
from tfprofscale.profiling.trace.train_setup import (
    TrainSetup,
    checked_labels,
    generated_labels,
    label_specs,
    split_example,
)
from tfprofscale.profiling.trace.user_code import first_line
from tfprofscale.records import Shape

FORWARD, LOSS, BACKWARD, UPDATE = "forward", "loss", "backward", "update"
PHASES = (FORWARD, LOSS, BACKWARD, UPDATE)
GRADIENT_SCOPE = "gradient_tape/"


@dataclass
class TrainTraced(TracedModel):
    """A traced training step: the TracedModel of its function, plus each op's phase and updated layer.

    ``inputs`` are the model's inputs followed by the labels (``label_count`` of them).
    """

    setup: TrainSetup | None = None
    label_count: int = 0
    phases: dict[str, str] = field(default_factory=dict)
    update_layers: dict[str, str] = field(default_factory=dict)
    variables: list[Any] = field(default_factory=list, repr=False)

    def layer_of(self, op_name: str) -> str | None:
        """The layer an op or kernel belongs to: the layer it computes, differentiates or updates."""
        updated = _by_prefix(op_name, self.update_layers)
        if updated is not None:
            return updated
        name = op_name.removeprefix(GRADIENT_SCOPE)
        return nesting.layer_for(name, self.scopes)

    def phase_of(self, op_name: str) -> str | None:
        """``forward``, ``loss``, ``backward`` or ``update`` (ops of function bodies by their call op)."""
        phase = _by_prefix(op_name, self.phases)
        if phase is None and op_name.startswith(GRADIENT_SCOPE):
            return BACKWARD
        return phase


def _by_prefix(name: str, table: dict[str, str]) -> str | None:
    """``table[name]``, else the entry of the longest ``/``-prefix of ``name`` (a body op's call site)."""
    while name:
        if name in table:
            return table[name]
        name = name.rpartition("/")[0]
    return None


def trace_train_step(model: Any, batch_size: int, setup: TrainSetup,
                     example_inputs: Callable[..., Any] | None = None, params: dict[str, Any] | None = None,
                     input_shapes: Sequence[Shape] | None = None, jit_compile: bool = False) -> TrainTraced:
    """Trace one training step of ``model`` at ``batch_size`` with ``setup``'s loss and optimizer."""
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    params = params or {}
    specs = keras_input_specs(model, batch_size, input_shapes)
    given: dict[str, Any] = {}
    inputs = made_example_inputs(specs, _inputs_only(example_inputs, len(specs), given), batch_size, params)
    outputs = output_shapes(model, specs)
    targets = label_specs(outputs, setup.label_kind)
    labels = (checked_labels(given["y"], targets, setup.label_kind, given["call"]) if given.get("y") is not None
              else generated_labels(targets, outputs, setup.label_kind))
    targets = [tf.TensorSpec(spec.shape, label.dtype, name=spec.name) for spec, label in zip(targets, labels)]
    optimizer = _compiled_optimizer(model, setup)
    recorder = _PhaseRecorder(optimizer)
    step = _step_function(model, optimizer, len(specs), len(targets), recorder)
    function = tf.function(step, jit_compile=jit_compile or None)
    try:
        with nesting.recording_calls(list(getattr(model, "operations", None) or model.layers)) as records, \
                recorder.watching():
            concrete = function.get_concrete_function(*specs, *targets)
    except (ValueError, TypeError, tf.errors.OpError) as error:
        raise InputError(f"the training step does not trace with loss {setup.loss_name} on output(s) "
                         f"{', '.join(map(str, outputs))}: {first_line(error)}") from None
    layers, scopes = keras_layer_tree(model, records, concrete.graph, specs, batch_size)
    traced = TrainTraced(concrete, (*inputs, *labels), layers, batch_size, model, scopes, source_function=function,
                         setup=setup, label_count=len(labels), variables=list(model.trainable_weights))
    traced.phases = recorder.phases(concrete.graph)
    traced.update_layers = recorder.update_layers(_variable_layers(layers))
    return traced


def _inputs_only(make: Callable[..., Any] | None, input_count: int, given: dict[str, Any]
                 ) -> Callable[..., Any] | None:
    """``example_inputs`` reduced to its inputs; labels it returns (``(x, y)``) are kept in ``given``."""
    if make is None:
        return None

    def inputs_only(batch_size: int, **params: Any) -> Any:
        x, y = split_example(make(batch_size, **params), input_count)
        given["y"], given["call"] = y, f"example_inputs({batch_size})"
        return x

    inputs_only.__wrapped__ = make  # messages name the model file's function
    return inputs_only


def output_shapes(model: Any, specs: Sequence[tf.TensorSpec]) -> list[Shape]:
    """The model's output shapes at the traced batch (symbolic, or by calling it on the specs when not fixed)."""
    outputs = model.outputs if isinstance(model.outputs, (list, tuple)) else [model.outputs]
    batch = int(specs[0].shape[0])
    shapes = [(batch, *(-1 if d is None else int(d) for d in tuple(t.shape)[1:])) for t in outputs]
    if all(-1 not in shape for shape in shapes):
        return shapes
    multi = len(specs) > 1
    forward = tf.function(lambda *xs: model(list(xs) if multi else xs[0], training=False))
    produced = tf.nest.flatten(forward.get_concrete_function(*specs).structured_outputs)
    return [tuple(int(d) for d in t.shape) for t in produced]


def _compiled_optimizer(model: Any, setup: TrainSetup) -> Any:
    """Compile ``model`` with the setup unless it already is; the optimizer it will apply, built."""
    current = getattr(model, "optimizer", None)
    if setup.optimizer is not current and setup.optimizer is not getattr(current, "inner_optimizer", None):
        model.compile(loss=setup.loss, optimizer=setup.optimizer, jit_compile=False)
    optimizer = model.optimizer
    optimizer.build(model.trainable_weights)
    return optimizer


def _step_function(model: Any, optimizer: Any, input_count: int, label_count: int,
                   recorder: _PhaseRecorder) -> Callable[..., Any]:
    """Keras' ``train_step`` without metrics: forward, loss, gradients, update; returns the loss."""

    def train_step(*tensors: Any) -> Any:
        xs, ys = tensors[:input_count], tensors[input_count:]
        x = list(xs) if input_count > 1 else xs[0]
        y = list(ys) if label_count > 1 else ys[0]
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            recorder.mark(FORWARD)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            loss = optimizer.scale_loss(loss)
            recorder.mark(LOSS)
        gradients = tape.gradient(loss, model.trainable_weights)
        recorder.mark(BACKWARD)
        optimizer.apply(gradients, model.trainable_weights)
        return loss

    return train_step


class _PhaseRecorder:
    """Counts the graph's ops at each phase's end, and the ops each variable's update creates."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer = getattr(optimizer, "inner_optimizer", None) or optimizer
        self.ends: dict[str, int] = {}
        self.updates: list[tuple[list[str], Any]] = []
        self._names: list[str] = []

    def mark(self, phase: str) -> None:
        """The ops created so far belong to ``phase`` and the phases before it."""
        self.ends[phase] = len(tf.compat.v1.get_default_graph().get_operations())

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Wrap the optimizer's per-variable ``update_step`` to record each variable's ops."""
        original = self.optimizer.update_step

        def update_step(gradient: Any, variable: Any, learning_rate: Any) -> Any:
            graph = tf.compat.v1.get_default_graph()  # a cond's branch under loss scaling: its names stay there
            start = len(graph.get_operations())
            result = original(gradient, variable, learning_rate)
            self.updates.append(([op.name for op in graph.get_operations()[start:]], variable))
            return result

        self.optimizer.update_step = update_step
        try:
            yield
        finally:
            del self.optimizer.update_step

    def phases(self, graph: tf.Graph) -> dict[str, str]:
        """Op name -> phase, by where the op was created."""
        self._names = [op.name for op in graph.get_operations()]
        table: dict[str, str] = {}
        start = 0
        for phase in (FORWARD, LOSS, BACKWARD):
            end = self.ends.get(phase, start)
            table.update((name, phase) for name in self._names[start:end])
            start = end
        table.update((name, UPDATE) for name in self._names[start:])
        return table

    def update_layers(self, variable_layers: dict[int, str]) -> dict[str, str]:
        """Op name -> the layer whose variable the op updates (ops of the step's own graph only)."""
        table: dict[str, str] = {}
        outer = set(self._names)
        for names, variable in self.updates:
            layer = variable_layers.get(id(variable))
            if layer is not None:
                table.update((name, layer) for name in names if name in outer)
        return table


def _variable_layers(layers: Sequence[Any]) -> dict[int, str]:
    """id(trainable variable) -> the deepest layer path that owns it (Keras' variable and the tf.Variable in it)."""
    owners: dict[int, str] = {}
    for info in sorted(layers, key=lambda each: each.depth):
        for variable in getattr(info.layer, "trainable_weights", None) or []:
            owners[id(variable)] = info.name
            owners[id(getattr(variable, "value", variable))] = info.name
    return owners

