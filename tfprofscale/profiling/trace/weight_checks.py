"""Checks on the Keras model's weights themselves (not on any graph): untrained biases.

Biases are read from the layers' bias variables, so the check does not depend
on how the bias is added in the graph (``BiasAdd`` for Dense, ``AddV2`` for
Keras 3 convolutions, a cast first under ``mixed_float16``) nor on freezing.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

#: Layers named in the warning before "and N more".
SHOWN_LAYERS = 5


def untrained_bias_warnings(model: Any) -> list[str]:
    """One warning when the model's biases are all zero (freshly initialised weights), naming their layers.

    A trained model has non-zero biases; all-zero ones mean the initial
    values are what is measured. Layers without a bias (``use_bias=False``)
    are not looked at; nothing is said when the model holds no bias at all.
    """
    biased = list(_biases(model))
    zero = [name for name, bias in biased if not np.any(bias)]
    if not biased or len(zero) < len(biased):
        return []
    more = len(zero) - SHOWN_LAYERS
    shown = ", ".join(zero[:SHOWN_LAYERS]) + (f" and {more} more" if more > 0 else "")
    warning = (f"untrained weights: the biases of {shown} are all zero; these initial values are what was measured "
               "(give --weights for the trained model)")
    return [warning]


def _biases(model: Any) -> Iterator[tuple[str, np.ndarray]]:
    """(layer name, bias values) of every layer of the model, nested ones included, that has a bias variable."""
    import keras

    for layer in model._flatten_layers(include_self=False, recursive=True):
        bias = getattr(layer, "bias", None)
        if isinstance(bias, keras.Variable):
            yield layer.name, keras.ops.convert_to_numpy(bias)
