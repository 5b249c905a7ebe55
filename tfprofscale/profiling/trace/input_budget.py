"""Will a batch fit in memory? Checked from the shapes before anything is allocated.

``profile --batch-size 1000000000`` would otherwise die in numpy with a
33-line ``_ArrayMemoryError`` (or be killed by the kernel) after tracing.
"""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

from tfprofscale.errors import InputError


def tensor_bytes(shape: Sequence[int], dtype_size: int) -> int:
    """Bytes of a dense tensor of ``shape`` whose elements take ``dtype_size`` bytes."""
    return math.prod(int(d) for d in shape) * dtype_size


def specs_bytes(specs: Sequence[Any]) -> int:
    """Bytes of the tensors described by TensorSpecs with fully known shapes."""
    return sum(tensor_bytes(tuple(spec.shape), spec.dtype.size) for spec in specs)


def making_inputs_bytes(specs: Sequence[Any]) -> int:
    """Peak bytes while example inputs are made: each tensor plus its numpy source (float64 when random)."""
    return sum(tensor_bytes(tuple(spec.shape), spec.dtype.size + max(spec.dtype.size, 8)) for spec in specs)


def check_model_fits(model: Any, batch_size: int) -> None:
    """InputError if a Keras model's inputs and largest layer output at ``batch_size`` cannot fit in memory.

    Decided from the shapes the model declares, before tracing (tracing at a
    batch of a million takes tens of seconds before the traced check could
    refuse it); dimensions the model leaves undefined count as unknown (0).
    """
    try:
        inputs = model.inputs if hasattr(model, "layers") else None
    except (AttributeError, ValueError, RuntimeError):  # a subclassed or unbuilt model declares none
        inputs = None
    input_bytes = sum(_declared_bytes(tensor, batch_size) for tensor in inputs or [])
    check_fits(batch_size, "the inputs and the largest layer output",
               input_bytes + largest_layer_output_bytes(model, batch_size))


def _declared_bytes(tensor: Any, batch_size: int) -> int:
    """Bytes of a symbolic tensor at ``batch_size``; 0 when a dimension beyond the batch is undefined."""
    shape = getattr(tensor, "shape", None)
    if shape is None or len(shape) == 0 or any(d is None for d in tuple(shape)[1:]):
        return 0
    return batch_size * tensor_bytes(tuple(shape)[1:], _dtype_size(getattr(tensor, "dtype", None)))


def largest_layer_output_bytes(model: Any, batch_size: int) -> int:
    """Bytes of the largest layer output a Keras model declares, at ``batch_size`` (0 where no shape is known).

    Read from the layers' symbolic outputs (functional and sequential
    models), so it costs nothing: no tracing, no tensor.
    """
    largest = 0
    for layer in getattr(model, "layers", None) or []:
        if type(layer).__name__ == "InputLayer":  # its output is the input, counted as such
            continue
        try:
            outputs = layer.output
        except (AttributeError, ValueError, RuntimeError):
            continue
        for output in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
            largest = max(largest, _declared_bytes(output, batch_size))
    return largest


def _dtype_size(dtype: Any) -> int:
    """Bytes per element of a Keras or TensorFlow dtype (a name or an object); 4 when unknown."""
    import numpy as np  # deferred: the command line's --help stays free of NumPy

    try:
        return np.dtype(getattr(dtype, "name", dtype)).itemsize
    except TypeError:  # strings and unknown dtypes: count 4 bytes
        return 4


def available_memory_bytes() -> int | None:
    """Memory the kernel says is available now (``MemAvailable``), or None where it cannot tell."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_fits(batch_size: int, what: str, needed_bytes: int, available: int | None = None) -> None:
    """InputError if ``needed_bytes`` exceed the available memory (skipped when it is unknown).

    At batch 1 a smaller batch cannot help: the advice is then a smaller input.
    """
    available = available_memory_bytes() if available is None else available
    if available is not None and needed_bytes > available:
        advice = ("use a smaller --batch-size" if batch_size > 1 else
                  "even one example is too large: use a smaller --input-shape (or model parameters)")
        raise InputError(f"batch size {batch_size}: {what} need {_gib(needed_bytes)}, more than the "
                         f"{_gib(available)} of memory available: {advice}")


def _gib(value: int) -> str:
    return f"{value / 2**30:,.1f} GiB"
