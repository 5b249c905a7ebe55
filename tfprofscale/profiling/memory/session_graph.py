"""A traced function run in a ``tf.compat.v1.Session`` with its variables, never frozen.

``session_graph(concrete_function)`` imports the function's GraphDef (which
holds no weight values: a captured variable is a resource placeholder) into a
new ``tf.Graph`` with ``input_map`` sending each captured variable's
placeholder to a ``VarHandleOp`` of the same shape and dtype. Each variable is
initialised once, by an ``AssignVariableOp`` fed a NumPy view of the model's
own buffer: no copy in the GraphDef, and none in the Session where TensorFlow
allows (a fed, aligned array is shared; ``AssignVariableOp`` keeps the tensor
it is given, copy-on-write). Other captured tensors are fed the same way on
every step. So the same route serves

- an inference function (``model(x, training=False)``): the memory stage's
  in-step peak;
- a training step (a ``tf.function`` with ``GradientTape`` and
  ``optimizer.apply``, which assigns its variables and so cannot be frozen):
  the optimizer's slots and iteration counter are captured variables like the
  weights, and the step updates them in the Session from run to run.

A variable the function only reads shares the model's buffer (zero-copy);
one it assigns (a training step's weights and optimizer slots, a counter) is
copied once, so a training step run here updates the Session's variables,
never the model's.

API::

    graph = session_graph(concrete_function)        # SessionGraphError (one line) if it cannot
    step = graph.run(inputs)                        # one FULL_TRACE step: step.outputs, step.run_metadata
    step = graph.run(inputs, trace=False)           # untraced (warm-up); run_metadata is None
    graph.variables                                 # [CapturedVariable(name, placeholder, value)]
    graph.close()                                   # or ``with session_graph(f) as graph:``

``run`` feeds ``inputs`` (one array per non-captured input of the function,
in order) and fetches the function's outputs plus its control outputs (the
assignments of a training step). The Session runs ops one at a time
(``inter_op_parallelism_threads=1``) so that the order, and the peak, are the
same from run to run, without constant folding.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from tfprofscale.errors import InputError
from tfprofscale.profiling.graph.shape_graph import (
    assigned_placeholders,
    check_protobuf_size,
    make_var_handle,
)


class SessionGraphError(InputError):
    """The function cannot be run in a Session (one line saying why)."""


@dataclass(frozen=True)
class CapturedVariable:
    """A variable the function captures: its placeholder's name in the graph and the model's value (a view)."""

    name: str
    placeholder: str
    value: np.ndarray

    @property
    def bytes(self) -> int:
        """Bytes of its value."""
        return int(self.value.nbytes)


@dataclass
class SessionStep:
    """What one Session step returned: the function's outputs and, when traced, the RunMetadata."""

    outputs: list[Any]
    run_metadata: Any = None


@dataclass
class SessionGraph:
    """The function's graph imported with its variables as VarHandleOps, in an open Session."""

    graph: tf.Graph
    input_names: list[str]
    output_names: list[str]
    target_names: list[str]
    variables: list[CapturedVariable]
    session: Any
    _fed_captures: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def run(self, inputs: Sequence[Any], trace: bool = True) -> SessionStep:
        """One step on ``inputs``; with ``trace`` a FULL_TRACE RunMetadata (every allocation record)."""
        if len(inputs) != len(self.input_names):
            raise SessionGraphError(f"the function takes {len(self.input_names)} input(s), given {len(inputs)}")
        feeds = dict(self._fed_captures)
        feeds.update({name: np.asarray(value) for name, value in zip(self.input_names, inputs)})
        options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE) if trace else None
        run_metadata = tf.compat.v1.RunMetadata() if trace else None
        try:
            outputs = self.session.run(self.output_names + self.target_names, feeds, options=options,
                                       run_metadata=run_metadata)
        except (tf.errors.OpError, ValueError, TypeError) as error:
            raise SessionGraphError(f"cannot run the traced graph in a Session: {_one_line(error)}") from None
        return SessionStep(outputs[: len(self.output_names)], run_metadata)

    def close(self) -> None:
        """Close the Session (its variables and kernels are freed)."""
        self.session.close()

    def __enter__(self) -> SessionGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def session_graph(function: Any, graph_def: Any = None) -> SessionGraph:
    """The ConcreteFunction ``function`` in a Session, its variables initialised once from the model's buffers.

    ``graph_def`` is the function's GraphDef (default ``function.graph.as_graph_def()``),
    or one derived from it that keeps the captured placeholders' names (e.g. inlined).
    SessionGraphError, in one line, when a capture is neither a variable nor a plain
    tensor, or the graph cannot be imported or initialised.
    """
    captures = list(function.graph.captures)
    captured = {internal.name for _, internal in captures}
    graph_def = function.graph.as_graph_def() if graph_def is None else graph_def
    variables, fed = _captured_values(function, captures, assigned_placeholders(graph_def))
    check_protobuf_size(graph_def, "the traced graph")
    with_variables, initial_values, initialisers = _with_variable_nodes(graph_def, variables)
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.graph_util.import_graph_def(with_variables, name="")
        except (ValueError, TypeError, tf.errors.OpError) as error:
            raise SessionGraphError(f"cannot import the traced graph: {_one_line(error)}") from None
    session = tf.compat.v1.Session(graph=graph, config=session_config())
    try:
        session.run(initialisers, {initial_values[v.placeholder]: v.value for v in variables})
    except (tf.errors.OpError, ValueError, TypeError) as error:
        session.close()
        raise SessionGraphError(f"cannot initialise the variables in a Session: {_one_line(error)}") from None
    inputs = [t.name for t in function.inputs if t.name not in captured]
    outputs = [t.name for t in function.outputs]
    targets = [op.name for op in function.graph.control_outputs if graph_def_has(graph, op.name)]
    return SessionGraph(graph, inputs, outputs, targets, variables, session,
                        {f"{name}:0": value for name, value in fed.items()})


def graph_def_has(graph: tf.Graph, name: str) -> bool:
    """Whether the imported graph has an op called ``name``."""
    try:
        graph.get_operation_by_name(name)
    except KeyError:
        return False
    return True


def _captured_values(function: Any, captures: list[tuple[Any, Any]], assigned: set[str]
                     ) -> tuple[list[CapturedVariable], dict[str, np.ndarray]]:
    """Captured variables (by their resource placeholder) and other captured tensors (by placeholder name).

    Values are read here, in eager mode, before any new graph is entered. A
    variable the function only reads shares the model's buffer; one it
    assigns (``assigned``) is copied, so that the step updates the Session's
    copy and never the model's (the Session would write into a shared buffer
    in place).
    """
    by_handle = {id(v.handle): v for v in function.graph.variables}
    variables, fed = [], {}
    for external, internal in captures:
        if internal.dtype == tf.resource:
            variable = by_handle.get(id(external))
            if variable is None:
                raise SessionGraphError(f"the traced function captures a resource that is not a variable "
                                        f"({internal.name}): a Session cannot rebuild it")
            variables.append(CapturedVariable(variable.name, internal.op.name,
                                              _buffer_view(variable, copy=internal.op.name in assigned)))
        else:
            fed[internal.op.name] = np.asarray(external)
    return variables, fed


def _with_variable_nodes(graph_def: Any, variables: list[CapturedVariable]
                         ) -> tuple[Any, dict[str, str], list[str]]:
    """A copy of ``graph_def`` where each variable's placeholder is a VarHandleOp of the same name, with
    a placeholder for its initial value and the AssignVariableOp that initialises it.

    Written as NodeDefs (one import for the whole graph): building the same
    ops through Python took 1.4 s for ResNet50's 320 variables.
    Returns the GraphDef, {variable placeholder: initial value's tensor name} and the initialisers' names.
    """
    from tensorflow.core.framework import graph_pb2

    copy = graph_pb2.GraphDef()
    copy.CopyFrom(graph_def)
    by_name = {v.placeholder: v for v in variables}
    taken = {node.name for node in copy.node}
    initial_values, initialisers = {}, []
    for node in copy.node:
        variable = by_name.get(node.name)
        if variable is None:
            continue
        dtype = tf.as_dtype(variable.value.dtype).as_datatype_enum
        make_var_handle(node, dtype, variable.value.shape)
        initial_values[node.name] = f"{_free(taken, node.name + '/initial_value')}:0"
    for name, value_tensor in initial_values.items():
        value = copy.node.add(name=value_tensor[:-2], op="Placeholder")
        value.attr["dtype"].type = tf.as_dtype(by_name[name].value.dtype).as_datatype_enum
        value.attr["shape"].shape.CopyFrom(tf.TensorShape(by_name[name].value.shape).as_proto())
        assign = copy.node.add(name=_free(taken, name + "/initialise"), op="AssignVariableOp")
        assign.input.extend([name, value.name])
        assign.attr["dtype"].type = value.attr["dtype"].type
        initialisers.append(assign.name)
    return copy, initial_values, initialisers


def _free(taken: set[str], name: str) -> str:
    """``name``, or ``name_1``, ``name_2`` ... whichever no node of the graph has; then marked taken."""
    candidate, index = name, 0
    while candidate in taken:
        index += 1
        candidate = f"{name}_{index}"
    taken.add(candidate)
    return candidate


def session_config() -> Any:
    """One op at a time, no constant folding (neither Grappler's nor the classic optimizer's)."""
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=1, allow_soft_placement=True)
    config.graph_options.rewrite_options.constant_folding = rewriter_config_pb2.RewriterConfig.OFF
    config.graph_options.optimizer_options.opt_level = tf.compat.v1.OptimizerOptions.L0
    config.graph_options.optimizer_options.do_function_inlining = True
    return config


def traced_graph_step(graph: tf.Graph, fetches: list[Any], feeds: dict[str, Any],
                      initialisers: Sequence[Any] = ()) -> Any:
    """RunMetadata of one FULL_TRACE step of a plain ``graph`` (after ``initialisers`` and one untraced step)."""
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    run_metadata = tf.compat.v1.RunMetadata()
    try:
        with tf.compat.v1.Session(graph=graph, config=session_config()) as session:
            if initialisers:
                session.run(list(initialisers))
            session.run(fetches, feeds)
            session.run(fetches, feeds, options=options, run_metadata=run_metadata)
    except (tf.errors.OpError, ValueError, TypeError) as error:
        raise SessionGraphError(f"cannot run the graph in a Session: {_one_line(error)}") from None
    return run_metadata


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _buffer_view(variable: Any, copy: bool) -> np.ndarray:
    """The variable's value as a NumPy view of its buffer, or a copy of it when ``copy``.

    ``ReadVariableOp`` hands out the variable's own buffer and DLPack shares
    it (``numpy()`` would copy, into an array that is not 64-byte aligned,
    which the Session's feed would copy once more).
    """
    value = tf.raw_ops.ReadVariableOp(resource=variable.handle, dtype=variable.dtype)
    view = np.from_dlpack(value)
    return np.array(view) if copy else view
