"""``--input-shape``: the per-example shape of each model input, as the user gives it.

``224,224,3`` is one input's shape without the batch dimension; a model with
several inputs takes one per input, in order. Parsed here, without
TensorFlow, so that a bad value is refused at once with one line.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from tfprofscale.errors import InputError

Shape = tuple[int, ...]


def parse_input_shape(text: str, where: str = "--input-shape") -> Shape:
    """``"224,224,3"`` -> ``(224, 224, 3)``; InputError naming ``where`` for anything else."""
    parts = [part.strip() for part in str(text).strip().strip("()[]").split(",")]
    if parts and parts[-1] == "":
        parts = parts[:-1]
    if not parts or any(not part for part in parts):
        raise InputError(f"{where} {text!r}: expected dimensions separated by commas, e.g. 224,224,3")
    try:
        dims = tuple(int(part) for part in parts)
    except ValueError:
        raise InputError(f"{where} {text!r}: every dimension must be a whole number, e.g. 224,224,3") from None
    if any(d < 1 for d in dims):
        raise InputError(f"{where} {text!r}: every dimension must be an integer >= 1 (give the shape of one "
                         "example, without the batch dimension: the batch is --batch-size)")
    check_input_shapes([dims], where)
    return dims


def parse_input_shapes(texts: Iterable[str] | None, where: str = "--input-shape") -> tuple[Shape, ...] | None:
    """One shape per ``--input-shape`` given; None when none was."""
    shapes = tuple(parse_input_shape(text, where) for text in texts or ())
    return shapes or None


def check_input_shapes(shapes: Sequence[Sequence[int]], where: str = "--input-shape") -> None:
    """InputError unless every shape is a non-empty tuple of integers >= 1."""
    for shape in shapes:
        if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
            shown = ",".join(str(d) for d in shape)
            raise InputError(f"{where} {shown!r}: every dimension must be an integer >= 1")
