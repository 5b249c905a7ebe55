"""Before and while the model runs: will the step fit in memory, and which op failed if it fails."""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from tfprofscale.errors import InputError
from tfprofscale.profiling.trace.input_budget import check_fits, tensor_bytes

#: How much of a failing op's message is shown (TensorFlow's run to dozens of lines).
MESSAGE_CHARS = 240
_NODE = re.compile(r"\{\{node ([^}]+)\}\}")
_FUNCTION_PREFIX = re.compile(r"^(\{\{function_node [^}]*\}\}\s*)+")


def check_step_fits(traced: Any, costs: Sequence[Any]) -> None:
    """InputError if the inputs plus the largest layer output cannot fit in the available memory."""
    input_bytes = sum(tensor_bytes(tuple(x.shape), x.dtype.size) for x in traced.inputs)
    largest = max((cost.activation_bytes or 0 for cost in costs), default=0)
    check_fits(traced.batch_size, "the inputs and the largest layer output", input_bytes + largest)


@contextmanager
def model_run_errors() -> Iterator[None]:
    """A TensorFlow op that fails while the model runs becomes one line: the op and its message."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as error:
        raise InputError(f"the model failed at run time: {describe_op_error(error)}") from None


def describe_op_error(error: Any) -> str:
    """``op NAME: TYPE: first line of the message`` from a ``tf.errors.OpError``."""
    message = str(getattr(error, "message", None) or error)
    nodes = _NODE.findall(message)
    op = getattr(getattr(error, "op", None), "name", None) or (nodes[-1] if nodes else None)
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    first = _FUNCTION_PREFIX.sub("", first)
    if len(first) > MESSAGE_CHARS:
        first = first[:MESSAGE_CHARS - 3] + "..."
    return (f"op {op}: " if op else "") + f"{type(error).__name__}: {first}"
