"""A Keras model's inputs as the tracer feeds them: flat, named, packed back into the model's structure.

A functional model may take a tensor, a list, or a dict (nested or not) of
``keras.Input``s (every keras_hub backbone takes a dict). The tracer works on
the flat list, in the order Keras flattens the structure (``model.inputs``),
and packs it back before calling the model. Each input is known by its
``keras.Input`` layer's name and by its key path in the structure
(``token_ids``, ``features.age``), and ``--input-shape NAME=D1,D2`` may use
either.

A subclassed model (a ``call`` of its own) has no symbolic inputs: its inputs
are what the model file's ``example_inputs(batch_size)`` returns, in any
structure, or the shapes it was last built or called with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfprofscale.errors import InputError
from tfprofscale.records import Shape

GivenShapes = Sequence[Shape] | Mapping[str, Shape] | None

#: Words fed to a string input when the model has no vocabulary to draw from.
FALLBACK_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog")
#: Words per example string (a TextVectorization splits them; a StringLookup looks each string up whole).
WORDS_PER_STRING = 8


@dataclass(frozen=True)
class ModelInput:
    """One flat input: its InputLayer's name, key path in the input structure, shape and dtype."""

    name: str
    path: str | None
    dims: tuple[Any, ...]  # with the batch dimension; None where undefined
    dtype: Any


def functional_inputs(model: Any) -> list[ModelInput] | None:
    """The flat inputs of a functional model; None for a model without symbolic inputs (subclassed)."""
    try:
        inputs = list(model.inputs or ())
    except (AttributeError, ValueError):
        return None
    if not inputs:
        return None
    paths = _paths(getattr(model, "_inputs_struct", None), len(inputs))
    return [ModelInput(_layer_name(t) or getattr(t, "name", None) or f"input_{i}", paths[i], tuple(t.shape), t.dtype)
            for i, t in enumerate(inputs)]


def _paths(structure: Any, count: int) -> list[str | None]:
    """Key paths (``a.b``) of the flat inputs when the structure holds dicts; else None each."""
    import keras

    if structure is None or not _has_dict(structure):
        return [None] * count
    flat = keras.tree.flatten_with_path(structure)
    return [".".join(str(key) for key in path) for path, _ in flat] if len(flat) == count else [None] * count


def _has_dict(structure: Any) -> bool:
    if isinstance(structure, Mapping):
        return True
    return isinstance(structure, (list, tuple)) and any(_has_dict(item) for item in structure)


def _layer_name(tensor: Any) -> str | None:
    history = getattr(tensor, "_keras_history", None)
    return history.operation.name if history is not None else None


def model_caller(model: Any, flat_count: int) -> Callable[..., Any]:
    """``f(*flat_tensors)`` calling the model with them packed into its own input structure."""
    import keras

    structure = getattr(model, "_inputs_struct", None)
    if structure is not None and flat_count > 1:
        return lambda *xs: model(keras.tree.pack_sequence_as(structure, list(xs)), training=False)
    if flat_count > 1:
        return lambda *xs: model(list(xs), training=False)
    return lambda *xs: model(xs[0], training=False)


def subclassed_caller(model: Any, structure: Any) -> Callable[..., Any]:
    """``f(*flat_tensors)`` calling a subclassed model with them packed as ``example_inputs`` returned them."""
    if structure is None:
        return lambda *xs: model(xs[0], training=False)
    return lambda *xs: model(tf.nest.pack_sequence_as(structure, list(xs)), training=False)


def given_shapes(inputs: Sequence[ModelInput], given: GivenShapes) -> list[Shape | None]:
    """``--input-shape`` per flat input: positional (once per input, in order) or by name/key path."""
    if given is None:
        return [None] * len(inputs)
    if isinstance(given, Mapping):
        return _named_shapes(inputs, given)
    if len(given) != len(inputs):
        names = ", ".join(i.name for i in inputs)
        raise InputError(f"--input-shape given {len(given)} time(s) but the model has {len(inputs)} input(s)"
                         f" ({names}): give it once per input, in order, or as NAME=D1,D2")
    return [tuple(shape) for shape in given]


def _named_shapes(inputs: Sequence[ModelInput], given: Mapping[str, Shape]) -> list[Shape | None]:
    known = {name for i in inputs for name in (i.name, i.path) if name}
    unknown = [name for name in given if name not in known]
    if unknown:
        raise InputError(f"--input-shape {unknown[0]}=...: the model has no input of that name "
                         f"(its inputs: {', '.join(i.path or i.name for i in inputs)})")
    return [given.get(i.name, given.get(i.path or "")) for i in inputs]


def subclassed_specs(model: Any, made: Any, batch_size: int, source: str) -> tuple[Any, list[tf.TensorSpec]]:
    """(structure, flat TensorSpecs) of a subclassed model's inputs at ``batch_size``.

    From what ``example_inputs`` returned (``made``), else from the shapes the
    model was last built or called with; InputError when there is neither.
    """
    if made is not None:
        structure = tf.nest.map_structure(tf.convert_to_tensor, made)
        flat = tf.nest.flatten(structure)
        for tensor in flat:
            if tensor.shape.rank == 0 or tensor.shape[0] != batch_size:
                raise InputError(f"{source}example_inputs({batch_size}) returned an input of shape "
                                 f"{tuple(tensor.shape)}: its first dimension must be the batch, {batch_size}")
        return structure, [tf.TensorSpec(t.shape, t.dtype, name=f"input_{i}") for i, t in enumerate(flat)]
    built = getattr(model, "_build_shapes_dict", None) or {}
    if len(built) != 1:
        raise InputError(f"model {model.name!r} is a subclassed keras.Model with no defined input: give the "
                         "model file an example_inputs(batch_size), or build or call the model once in build_model")
    import keras

    dtype = tf.as_dtype(getattr(model, "input_dtype", None) or "float32")
    structure = keras.tree.map_shape_structure(lambda shape: _built_spec(model, shape, batch_size, dtype),
                                               next(iter(built.values())))
    specs = tf.nest.flatten(structure)
    return (structure if len(specs) > 1 else None), specs


def _built_spec(model: Any, shape: Any, batch_size: int, dtype: Any) -> tf.TensorSpec:
    """The spec of one input the model was built with, at ``batch_size``."""
    dims = tuple(shape)
    if not dims or any(d is None for d in dims[1:]):
        raise InputError(f"model {model.name!r} was built with an input of shape {dims}: every dimension beyond "
                         "the batch must be fixed; give the model file an example_inputs(batch_size)")
    return tf.TensorSpec((batch_size, *(int(d) for d in dims[1:])), dtype)


def string_words(model: Any) -> tuple[list[str], int]:
    """(words, words per string) to fill string inputs with.

    The words are the vocabulary of the model's lookup layers (so that lookups
    hit), else fixed English words; a string holds ``WORDS_PER_STRING`` of
    them when the model splits text (a TextVectorization), else one (a
    StringLookup looks each string up whole).
    """
    words: list[str] = []
    layers = list(getattr(model, "_flatten_layers", lambda **_: [])(include_self=False, recursive=True))
    splits = any(type(layer).__name__ == "TextVectorization" for layer in layers)
    for layer in layers:
        vocabulary = getattr(layer, "get_vocabulary", None)
        if vocabulary is None:
            continue
        try:
            words += [w for w in vocabulary() if isinstance(w, str) and w and not w.startswith("[")]
        except Exception:  # a lookup layer not adapted yet has no vocabulary: fall back to fixed words
            continue
    return words or list(FALLBACK_WORDS), WORDS_PER_STRING if splits else 1


def example_strings(shape: Shape, words: Sequence[str], per_string: int, rng: np.random.Generator) -> tf.Tensor:
    """A string tensor of ``shape``, each element ``per_string`` words drawn from ``words``."""
    count = int(np.prod(shape))
    picks = rng.integers(0, len(words), size=(count, per_string))
    texts = np.array([" ".join(words[i] for i in row) for row in picks], dtype=object).reshape(shape)
    return tf.constant(texts, dtype=tf.string)
