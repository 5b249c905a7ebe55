"""Weights checked against the available memory as ``build_model`` creates them, before they are allocated.

A ``build_model`` that asks for more weights than the machine has would end
in TensorFlow's C++ allocator: an abort (exit 134) or the kernel's OOM
killer, with no word about which layer. Keras 3 creates every weight through
``Variable._initialize_with_initializer`` (the backend's class) with its shape known first, so
while ``weights_checked()`` is active each new weight's bytes (twice: the
initializer's value and the variable) plus the weights created so far are
compared with the memory available, and a weight that cannot fit raises
``WeightsTooLarge`` naming it, before anything is allocated. Weights made
some other way (``tf.Variable`` directly, numpy arrays) are not seen.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator

from tfprofscale.errors import InputError
from tfprofscale.profiling.trace.input_budget import available_memory_bytes


class WeightsTooLarge(InputError):
    """A weight that ``build_model`` asked for cannot fit in the available memory."""


@contextmanager
def weights_checked(available: int | None = None) -> Iterator[None]:
    """Within the block, every Keras weight is checked against the available memory before it is allocated."""
    from keras.src import backend

    variable_class = backend.Variable  # the backend's own class (TensorFlow's overrides the method)
    own = "_initialize_with_initializer" in vars(variable_class)
    original = getattr(variable_class, "_initialize_with_initializer", None)
    available = available_memory_bytes() if available is None else available
    if original is None or available is None:
        yield
        return
    created = [0]

    def checked(variable: Any, initializer: Any) -> Any:
        size = weight_bytes(variable)
        if created[0] + 2 * size > available:
            raise WeightsTooLarge(
                f"weight {getattr(variable, 'path', None) or variable.name} of shape {tuple(variable._shape)} "
                f"needs {_gib(size)} ({_gib(created[0])} of weights before it), more than the "
                f"{_gib(available)} of memory available: use smaller model parameters")
        created[0] += size
        return original(variable, initializer)

    variable_class._initialize_with_initializer = checked
    try:
        yield
    finally:
        if own:
            variable_class._initialize_with_initializer = original
        else:
            del variable_class._initialize_with_initializer


def weight_bytes(variable: Any) -> int:
    """Bytes of a Keras variable from its shape and dtype (4 per element when the dtype is unknown)."""
    import numpy as np  # deferred: the command line's --help stays free of NumPy

    try:
        itemsize = np.dtype(variable.dtype).itemsize
    except TypeError:
        itemsize = 4
    return math.prod(int(d) for d in variable._shape) * itemsize


def _gib(value: int) -> str:
    return f"{value / 2**30:,.1f} GiB"
