"""``--input-shape``: the per-example shape of each model input, as the user gives it.

``224,224,3`` is one input's shape without the batch dimension; a model with
several inputs takes one per input, in order, or one per input by name,
``token_ids=128`` (the ``keras.Input``'s name or its key in a dict of inputs,
``features.age`` when nested). Either all are named or none. Parsed here,
without TensorFlow, so that a bad value is refused at once with one line.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

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


def parse_input_shapes(texts: Iterable[str] | None, where: str = "--input-shape"
                       ) -> tuple[Shape, ...] | dict[str, Shape] | None:
    """One shape per ``--input-shape`` given, positional (a tuple) or by name (a dict); None when none was."""
    texts = list(texts or ())
    named = [_name_of(text) for text in texts]
    if any(named) and not all(named):
        raise InputError(f"{where}: give every input's shape by name (NAME=D1,D2) or none by name, not both")
    if not any(named):
        shapes = tuple(parse_input_shape(text, where) for text in texts)
        return shapes or None
    by_name: dict[str, Shape] = {}
    for name, text in zip(named, texts):
        if name in by_name:
            raise InputError(f"{where} {text!r}: input {name!r} given twice")
        by_name[name] = parse_input_shape(text.split("=", 1)[1], f"{where} {name}=")
    return by_name


def _name_of(text: str) -> str | None:
    """The NAME of ``NAME=D1,D2``; None for a positional shape."""
    name, sep, _ = str(text).partition("=")
    if not sep:
        return None
    name = name.strip()
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise InputError(f"--input-shape {text!r}: {name!r} is not an input name (NAME=D1,D2, e.g. token_ids=128)")
    return name


def check_input_shapes(shapes: Sequence[Sequence[int]] | Mapping[str, Sequence[int]],
                       where: str = "--input-shape") -> None:
    """InputError unless every shape is a non-empty tuple of integers >= 1 (and every name a string)."""
    if isinstance(shapes, Mapping):
        for name in shapes:
            if not isinstance(name, str) or not name:
                raise InputError(f"{where}: input name {name!r} is not a name")
        shapes = list(shapes.values())
    for shape in shapes:
        if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
            shown = ",".join(str(d) for d in shape)
            raise InputError(f"{where} {shown!r}: every dimension must be an integer >= 1")
