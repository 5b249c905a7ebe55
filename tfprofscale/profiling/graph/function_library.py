"""Into the function library: the bodies of call and loop ops, and how often they run.

tfprof counts only the top-level graph. Keras runs some layers in nested
functions (``Conv2D(groups>1)`` in a ``StatefulPartitionedCall``, RNNs in a
``While`` whose body and cond are library functions). This module finds the
body graph of each such op and the number of times it runs per call:

- ``PartitionedCall`` / ``StatefulPartitionedCall``: its ``f``, once.
- ``While`` / ``StatelessWhile``: its ``body``, ``trip_count`` times, worked
  out from the graph where it is static (the cond compares a loop variable
  that the body steps by a constant against a constant bound, or the loop
  counter against ``maximum_iterations``); None otherwise.
- ``If`` / ``Case``: which branch runs is not static: not entered.

It also says which ops really run: those that feed the function's outputs or
its control outputs. TensorFlow prunes the rest (for example the RNN cell
step Keras traces once outside the loop to learn its output shapes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import tensorflow as tf

CALL_OP_TYPES = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
WHILE_OP_TYPES = frozenset({"While", "StatelessWhile"})
BRANCH_OP_TYPES = frozenset({"If", "StatelessIf", "Case", "StatelessCase"})
_COMPARISONS = {"Less": "<", "LessEqual": "<=", "Greater": ">", "GreaterEqual": ">="}
_PASS_THROUGH = frozenset({"Identity", "LogicalAnd"})


@dataclass(frozen=True)
class Body:
    """A function body an op runs, and how many times it runs per execution of that op."""

    graph: Any  # FuncGraph
    name: str
    runs: int | None


def bodies(op: tf.Operation, library: "FunctionLookup") -> list[Body]:
    """The function bodies ``op`` runs (none for ordinary ops and for branches)."""
    if op.type in CALL_OP_TYPES:
        name = op.get_attr("f").name
        graph = library.graph(name, op)
        return [Body(graph, name, 1)] if graph is not None else []
    if op.type in WHILE_OP_TYPES:
        body_name, cond_name = op.get_attr("body").name, op.get_attr("cond").name
        body, cond = library.graph(body_name, op), library.graph(cond_name, op)
        if body is None:
            return []
        return [Body(body, body_name, trip_count(op, body, cond) if cond is not None else None)]
    return []


class FunctionLookup:
    """Library functions by name: the traced FuncGraphs where Python still holds them, else
    rebuilt from the graph's function library (``GraphDef.library``) with the caller's input shapes."""

    def __init__(self, graph: Any) -> None:
        self.graphs = [graph]
        self._library: dict[str, Any] | None = None

    def graph(self, name: str, caller: tf.Operation) -> Any:
        """The FuncGraph of function ``name``, or None when it is not found."""
        for graph in [caller.graph, *self.graphs]:
            function = getattr(graph, "_functions", {}).get(name)
            body = getattr(function, "graph", None) if function is not None else None
            if body is not None:
                if body not in self.graphs:
                    self.graphs.append(body)
                return body
        return self.imported(name, caller)

    def imported(self, name: str, caller: tf.Operation) -> Any:
        """Function ``name`` rebuilt from the library's FunctionDef, shapes inferred from the caller's inputs."""
        from tensorflow.python.framework.function_def_to_graph import function_def_to_graph

        if self._library is None:
            self._library = {f.signature.name: f for f in self.graphs[0].as_graph_def(add_shapes=True).library.function}
        definition = self._library.get(name)
        if definition is None:
            return None
        return function_def_to_graph(definition, input_shapes=[t.shape for t in caller.inputs])


def live_ops(graph: Any) -> set[str]:
    """Names of the ops that feed the graph's outputs or control outputs (the ones that run)."""
    wanted = [t.op for t in getattr(graph, "outputs", [])] + list(getattr(graph, "control_outputs", []))
    if not wanted:
        return {op.name for op in graph.get_operations()}
    seen: set[str] = set()
    stack = list(wanted)
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return seen


def trip_count(while_op: tf.Operation, body: Any, cond: Any) -> int | None:
    """Iterations of a While loop, from its cond's bounds where they are static; the tightest wins."""
    counts = [count for count in (_bound_trips(while_op, body, cond, comparison)
                                  for comparison in _comparisons(cond)) if count is not None]
    return min(counts) if counts else None


def _comparisons(cond: Any) -> Iterable[tf.Operation]:
    """The comparisons the cond's result is a conjunction of."""
    stack = [t.op for t in cond.outputs[:1]]
    while stack:
        op = stack.pop()
        if op.type in _COMPARISONS:
            yield op
        elif op.type in _PASS_THROUGH:
            stack.extend(t.op for t in op.inputs)


def _bound_trips(while_op: tf.Operation, body: Any, cond: Any, comparison: tf.Operation) -> int | None:
    """Trips for ``variable OP bound`` with the variable stepped by a constant in the body."""
    left, right = comparison.inputs
    variable = _loop_variable_index(cond, left)
    if variable is None:
        return None
    start = static_value(while_op.inputs[variable])
    step = _constant_step(body, variable)
    bound = _bound_value(while_op, body, cond, right)
    if start is None or step is None or bound is None or step == 0:
        return None
    return _iterations(float(start), float(step), float(bound), _COMPARISONS[comparison.type])


def _iterations(start: float, step: float, bound: float, relation: str) -> int | None:
    if relation in ("<", "<=") and step < 0 or relation in (">", ">=") and step > 0:
        return None
    distance = (bound - start) / step
    if relation in ("<", ">"):
        return max(0, math.ceil(distance))
    return max(0, math.floor(distance) + 1)


def _loop_variable_index(cond: Any, tensor: tf.Tensor) -> int | None:
    """Which loop variable a cond tensor is (its placeholder's position), else None."""
    for index, placeholder in enumerate(cond.inputs):
        if placeholder is tensor:
            return index
    return None


def _bound_value(while_op: tf.Operation, body: Any, cond: Any, tensor: tf.Tensor) -> float | None:
    """A constant bound, or a loop variable the body passes through unchanged with a static start."""
    constant = static_value(tensor)
    if constant is not None:
        return constant
    index = _loop_variable_index(cond, tensor)
    if index is None or not _passed_through(body, index):
        return None
    return static_value(while_op.inputs[index])


def _passed_through(body: Any, index: int) -> bool:
    output = body.outputs[index]
    while output.op.type == "Identity":
        output = output.op.inputs[0]
    return output is body.inputs[index]


def _constant_step(body: Any, index: int) -> float | None:
    """``d`` when the body's next value of loop variable ``index`` is that variable plus constant ``d``."""
    output = body.outputs[index]
    while output.op.type == "Identity":
        output = output.op.inputs[0]
    op = output.op
    if op.type not in ("AddV2", "Add", "Sub") or body.inputs[index] not in op.inputs[:1]:
        return None
    step = static_value(op.inputs[1])
    if step is None:
        return None
    return -step if op.type == "Sub" else step


def static_value(tensor: tf.Tensor) -> float | None:
    """A scalar tensor's value when it is fixed in the graph (constant-folding pure constant subgraphs)."""
    value = tf.get_static_value(tensor)
    if value is None:
        value = _fold(tensor)
    if value is None or np.size(value) != 1:
        return None
    return float(np.asarray(value).reshape(()))


_FOLDABLE_LIMIT = 32


def _fold(tensor: tf.Tensor) -> Any:
    """Evaluate a small subgraph made only of stateless ops over constants."""
    ops, stack = {}, [tensor.op]
    while stack:
        op = stack.pop()
        if op.name in ops:
            continue
        if op.type == "Placeholder" or op.op_def.is_stateful or op.control_inputs or len(ops) > _FOLDABLE_LIMIT:
            return None
        ops[op.name] = op
        stack.extend(t.op for t in op.inputs)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.node.extend(op.node_def for op in tensor.graph.get_operations() if op.name in ops)
    folded = tf.Graph()
    with folded.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    try:
        with tf.compat.v1.Session(graph=folded) as session:
            return session.run(tensor.name)
    except (tf.errors.OpError, ValueError, TypeError):
        return None
