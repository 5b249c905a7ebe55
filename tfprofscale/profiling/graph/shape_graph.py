"""The traced function as a graph with shapes but no weight values, for Grappler.

Grappler's cost model (``MeasureCosts``) and static peak
(``DeterminePeakMemoryUsage``) read shapes and dtypes, never values. So the
traced function's GraphDef, inlined once by Grappler's function optimizer
(as freezing does: calls inlined, control flow lowered), has each captured
variable replaced by a ``Const`` of the variable's shape whose TensorProto
holds ONE value (a proto with a single ``float_val`` repeats it over the
shape: a few bytes whatever the variable's size). Every other conversion is
TensorFlow's own ``convert_to_constants``, so the graph has the same nodes,
names and shapes as the frozen one, and Grappler gives the same costs, op
count and static peak, without the copies of the weights that freezing and
Grappler's per-consumer ``OpInfo`` made (about 17x the weights at peak).

The inlined GraphDef still has the captured placeholders: the memory stage
imports that same GraphDef into a Session with its variables
(``memory.session_graph``), so the function is inlined once for both.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfprofscale.errors import InputError

PROTOBUF_LIMIT_BYTES = 2**31 - 1  # protobuf refuses to serialise a message of 2 GiB or more


class GraphLimitError(InputError):
    """The graph cannot be handed to TensorFlow's C++ side (one line naming the limit)."""


@dataclass
class ShapeGraph:
    """The traced graph with every captured variable a one-value Const of its shape."""

    graph_def: Any  # tf.compat.v1.GraphDef
    output_names: list[str]
    _metagraph: Any = field(default=None, repr=False)

    def metagraph(self) -> Any:
        """The graph as a MetaGraphDef whose TRAIN_OP collection holds the outputs (Grappler's fetches)."""
        if self._metagraph is None:
            import tensorflow as tf
            from tensorflow.core.protobuf import meta_graph_pb2

            metagraph = meta_graph_pb2.MetaGraphDef()
            metagraph.graph_def.CopyFrom(self.graph_def)
            fetches = metagraph.collection_def[tf.compat.v1.GraphKeys.TRAIN_OP].node_list.value
            fetches.extend(name.split(":")[0] for name in self.output_names)
            self._metagraph = metagraph
        return self._metagraph


def inlined_graph_def(function: Any) -> Any:
    """The function's GraphDef with calls inlined and control flow lowered (captures stay placeholders).

    GraphLimitError naming protobuf's limit when the graph itself (without
    any weight values) is over 2 GiB; InputError in one line for anything else.
    """
    from tensorflow.python.framework import convert_to_constants

    check_protobuf_size(function.graph.as_graph_def(), "the traced graph")
    try:
        return convert_to_constants._run_inline_graph_optimization(  # pylint: disable=protected-access
            function, lower_control_flow=True, aggressive_inlining=False)
    except Exception as error:  # Grappler raises its own status errors, protobuf EncodeError ...
        raise limit_or_input_error(error, "cannot inline the traced function") from None


def shape_graph(function: Any, inlined: Any) -> ShapeGraph:
    """``inlined`` (from ``inlined_graph_def(function)``) with variables as one-value Consts of their shape.

    A variable the function assigns (a layer's counter, a training step's
    weights and optimizer slots) cannot be a constant: it becomes a
    ``VarHandleOp`` of its shape and dtype instead, which holds no value either.
    """
    from tensorflow.python.framework import convert_to_constants

    assigned = assigned_placeholders(inlined)
    converter = convert_to_constants._ConverterData(inlined)  # pylint: disable=protected-access
    converter._tensor_data.update({name: data for name, data in _shape_only_data(function).items()  # pylint: disable=protected-access
                                   if name not in assigned})
    try:
        with _repeated_value_protos(convert_to_constants):
            graph_def, _ = convert_to_constants._replace_variables_by_constants(  # pylint: disable=protected-access
                converter_data=converter)
    except Exception as error:  # TensorFlow raises ValueError, TypeError, KeyError ... here
        raise limit_or_input_error(error, "cannot replace the variables by constants") from None
    _assigned_as_handles(graph_def, function, assigned)
    return ShapeGraph(graph_def, [t.name for t in function.outputs])


def assigned_placeholders(graph_def: Any) -> set[str]:
    """Names of the resource placeholders some op writes through (assignments, optimizer updates)."""
    writers = [node for node in graph_def.node if _writes(node.op)]
    for function in graph_def.library.function:
        writers += [node for node in function.node_def if _writes(node.op)]
    names = {node.name for node in graph_def.node if node.op == "Placeholder"}
    return {name.split(":")[0].lstrip("^") for node in writers for name in node.input} & names


def _writes(op_type: str) -> bool:
    return "Assign" in op_type or op_type.startswith(("ResourceApply", "ResourceSparseApply", "ResourceScatter"))


def _assigned_as_handles(graph_def: Any, function: Any, assigned: set[str]) -> None:
    """Each assigned variable's placeholder becomes a VarHandleOp of the variable's shape and dtype."""
    variables = captured_variables(function)
    for node in graph_def.node:
        variable = variables.get(node.name)
        if node.name in assigned and variable is not None:
            make_var_handle(node, variable.dtype.as_datatype_enum, tuple(variable.shape))


def make_var_handle(node: Any, dtype_enum: int, shape: tuple[int, ...]) -> None:
    """Turn a NodeDef (a captured resource placeholder) into a VarHandleOp of ``shape``, shared by its name."""
    import tensorflow as tf

    node.op = "VarHandleOp"
    for key in list(node.attr):
        del node.attr[key]
    node.attr["dtype"].type = dtype_enum
    node.attr["shape"].shape.CopyFrom(tf.TensorShape(shape).as_proto())
    node.attr["shared_name"].s = node.name.encode()
    node.attr["container"].s = b""


def captured_variables(function: Any) -> dict[str, Any]:
    """{captured placeholder's op name: the tf.Variable it stands for}, for every variable the function captures."""
    by_handle = {id(v.handle): v for v in function.graph.variables}
    pairs = ((internal.op.name, by_handle.get(id(external))) for external, internal in function.graph.captures)
    return {name: variable for name, variable in pairs if variable is not None}


def variable_bytes(function: Any) -> int:
    """Bytes of the variables the function captures, from their shapes and dtypes (no value is read)."""
    return sum(int(np.prod(v.shape)) * v.dtype.size for v in captured_variables(function).values())


def _shape_only_data(function: Any) -> dict[str, Any]:
    """Per captured placeholder: a variable's shape and dtype as a zero-stride array; other captures' values."""
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants

    by_handle = {id(v.handle): v for v in function.graph.variables}
    data = {}
    for index, (external, internal) in enumerate(function.graph.captures):
        variable = by_handle.get(id(external))
        if variable is not None:
            dtype = variable.dtype.as_numpy_dtype
            value = np.broadcast_to(np.asarray(_distinct_value(index), dtype), tuple(variable.shape))
        elif internal.dtype == tf.resource:
            continue  # a resource that is not a variable (a table): left as it is, as freezing does
        else:
            value = np.asarray(external)
        data[internal.op.name] = convert_to_constants._TensorData(  # pylint: disable=protected-access
            numpy=value, dtype=tf.as_dtype(value.dtype).as_datatype_enum, index=index)
    return data


def _distinct_value(index: int) -> float:
    """A different value per variable, so that no optimizer can take two variables' constants for one."""
    return float(index % 64 + 1)


@contextmanager
def _repeated_value_protos(converter_module: Any) -> Iterator[None]:
    """While converting, a zero-stride array becomes a TensorProto of its shape holding one value."""
    real = converter_module.tensor_util

    class RepeatedValueTensorUtil:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        @staticmethod
        def make_tensor_proto(values: Any, dtype: Any = None, shape: Any = None, **kwargs: Any) -> Any:
            if isinstance(values, np.ndarray) and values.size > 1 and not any(values.strides):
                return real.make_tensor_proto(values.reshape(-1)[:1], dtype, values.shape)
            return real.make_tensor_proto(values, dtype, shape, **kwargs)

    converter_module.tensor_util = RepeatedValueTensorUtil()
    try:
        yield
    finally:
        converter_module.tensor_util = real


def check_protobuf_size(message: Any, what: str) -> None:
    """GraphLimitError when ``message`` is over protobuf's 2 GiB serialisation limit."""
    size = message.ByteSize()
    if size > PROTOBUF_LIMIT_BYTES:
        raise GraphLimitError(f"{what} is {size / 2**30:.2f} GiB as a protobuf, over protobuf's 2 GiB limit "
                              "on a serialised message")


def limit_or_input_error(error: BaseException, doing: str) -> InputError:
    """One line for ``error``: naming protobuf's 2 GiB limit when that is what it was."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if "2GB" in text or "2 GB" in text or "maximum protobuf size" in text or type(error).__name__ == "EncodeError":
        return GraphLimitError(f"{doing}: a protobuf over protobuf's 2 GiB limit "
                               f"({type(error).__name__}: {first})".rstrip())
    return InputError(f"{doing}: {type(error).__name__}: {first}".rstrip(": "))
