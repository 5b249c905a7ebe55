"""Trained weights loaded into a built model, a mismatch said in one line (which layer, which shapes)."""
from __future__ import annotations

import re
import warnings
from typing import Any

from tfprofscale.errors import InputError
from tfprofscale.inputs import check_input_file
from tfprofscale.profiling.trace.user_code import first_line

# Keras 3's message for a variable of another shape: it goes on to dump both tensors (about 80 lines).
_FAILED_OBJECT = re.compile(r"for object <(?P<type>\w+) name=(?P<layer>[^,>]+)")
_SHAPES = re.compile(r"variable\.shape=(?P<model>\([^)]*\)), Received: value\.shape=(?P<file>\([^)]*\))")
_VARIABLE = re.compile(r"Target variable: <Variable path=(?P<path>[^,>\s]+)")
_COUNT = re.compile(r"A total of (?P<count>\d+) objects could not be loaded")


def load_weights(model: Any, weights: str) -> None:
    """``model.load_weights(weights)``; InputError in one line if the file is missing or does not fit."""
    check_weights_format(weights)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(weights)
        except Exception as error:  # h5py/keras raise many types for a wrong file
            raise InputError(f"--weights {weights} does not fit this model: {mismatch_summary(error)}") from None
    for warning in caught:  # a failed load's warnings repeat its error; a successful load's are shown
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


#: The first bytes of the files Keras' ``load_weights`` reads: HDF5 (.weights.h5, .h5) and zip (.keras).
WEIGHTS_MAGIC = (b"\x89HDF\r\n\x1a\n", b"PK\x03\x04")


def check_weights_format(weights: str) -> None:
    """InputError unless ``weights`` is a readable file that starts as an HDF5 or a .keras (zip) file."""
    check_input_file(weights, "--weights")
    try:
        with open(weights, "rb") as handle:
            start = handle.read(8)
    except OSError as error:
        raise InputError(f"--weights {weights} cannot be read: {error.strerror or error}") from None
    if start.startswith(WEIGHTS_MAGIC):
        return
    text = start.lstrip()
    kind = ("JSON text" if text[:1] in (b"{", b"[") else "empty" if not start else
            "text" if start.decode("latin-1").isprintable() else f"bytes {start[:4].hex(' ')}")
    raise InputError(f"--weights {weights}: not a Keras weights file (it is {kind}; Keras saves weights as HDF5, "
                     "name.weights.h5, e.g. by `tfprofscale train --save`)")


def mismatch_summary(error: BaseException) -> str:
    """One line from Keras' load error: the layer and variable whose shape differs, else its first line."""
    message = str(error)
    failed, shapes = _FAILED_OBJECT.search(message), _SHAPES.search(message)
    if failed is None or shapes is None:
        return f"{type(error).__name__}: {first_line(error)}"
    variable = _VARIABLE.search(message)
    count = _COUNT.search(message)
    name = variable["path"] if variable else failed["layer"]
    in_all = f" ({count['count']} layers in all could not be loaded)" if count and int(count["count"]) > 1 else ""
    return (f"layer {failed['layer']!r} ({failed['type']}): {name} has shape {shapes['model']} in the model, "
            f"{shapes['file']} in the file{in_all}")
