"""The movie-review text classifier of document 001, for 4, 6, 8, 10 ... total layers.

Input: ``sequence_length`` (56) token ids, one review truncated or padded.
Embedding(``vocab_size``, 256), Reshape to (56, 256, 1), then n pairs of conv
and max-pool for ``total_layers = 2 n + 2``, then Flatten,
Dense(``dense_units``, ReLU), Dropout(``dropout``) and Dense(2, softmax).
"Total layers" counts conv, pool and the two Dense layers, as the document
does (4 layers = conv + pool + 2 fully connected).

The conv stack is the sentence CNN of Kim (2014) that the original adapted
(github bhaveshoswal/CNN-text-classification-keras): the first conv's kernel
is ``conv_size`` tokens tall and spans the whole embedding (conv_size x 256,
'valid'), giving (56 - conv_size + 1, 1, 64); each further conv is
conv_size x 1 with 'same' padding, sliding along the review only; every
pool but the last halves the sequence (2x1, stride 2), and the last pool is
a max over all remaining positions, giving (1, 1, 64). With 4 total layers
and conv size 3 this is exactly document 001's printed structure (whose
listing puts each layer's output shape on the line after its name):
conv (None, 54, 1, 64), pool (None, 1, 1, 64), Flatten 64, Dense 64, Dense 2.

What changed from the original code (github filippocollini/tensorflow_benchmark,
``text_training.py``):

- Its deeper models ran square k x k convs over the (56, 256, 1) embedding
  "image", mixing neighbouring embedding dimensions as if they were pixels,
  with 2x2 pools of stride 1 and a last conv k x (256 - n*k) to collapse
  the embedding axis. Here only the first conv reads across the embedding
  (as in Kim's model and the original 4-layer one), the rest run along the
  sequence, and the pools halve it.
- Its Dropout output was never used (the last Dense read the first Dense),
  so dropout never acted: here it does. Its "dropout probability 0.75",
  passed to Keras as the rate, would drop three units in four; we read it
  as the TF1-style keep probability of the same course's other project
  (document 000's code has keep_prob 0.75), so the default rate is 0.25.
- Its vocabulary came from the whole corpus, test reviews included; here
  it comes from the training split only, words outside it map to <unk>.
  ``vocab_size`` defaults to the original's 18765 embedding rows.

``layout="p17"`` builds every conv 'valid' as the original code did, with
its stride-1 pools, as the closest buildable stack (see
``tfprofscale.p17_layout``); its 4-layer model is the same as the default's.
``layout="kim"`` (above) is the default.
"""
from __future__ import annotations

import keras
import numpy as np

from tfprofscale import datasets
from tfprofscale.errors import InputError
from tfprofscale.model_checks import require_positive_int, require_rate, require_total_layers
from tfprofscale.p17_layout import add_p17_stack, p17_stack, require_layout

CLASS_NAMES = ["negative", "positive"]
SEQUENCE_POOL = 2

PARAMS = {
    "total_layers": 4,
    "conv_size": 3,
    "filters": 64,
    "dense_units": 64,
    "dropout": 0.25,
    "embedding_dim": 256,
    "sequence_length": 56,
    "vocab_size": 18765,
    "layout": "kim",
}


def build_model(total_layers: int = 4, conv_size: int = 3, filters: int = 64, dense_units: int = 64,
                dropout: float = 0.25, embedding_dim: int = 256, sequence_length: int = 56,
                vocab_size: int = 18765, layout: str = "kim") -> keras.Model:
    """The classifier for one (total_layers, conv_size, layout); InputError if it cannot be built."""
    for name, value in (("conv_size", conv_size), ("filters", filters), ("dense_units", dense_units),
                        ("embedding_dim", embedding_dim), ("sequence_length", sequence_length),
                        ("vocab_size", vocab_size)):
        require_positive_int(name, value)
    require_rate("dropout", dropout)
    require_layout(layout, ("kim", "p17"))

    inputs = keras.Input(shape=(sequence_length,), dtype="int32", name="tokens")
    tensor = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
    tensor = keras.layers.Reshape((sequence_length, embedding_dim, 1), name="reshape")(tensor)
    if layout == "p17":
        stack = p17_stack(sequence_length, embedding_dim, conv_size, require_total_layers(total_layers))
        tensor = add_p17_stack(tensor, stack, filters)
    else:
        heights = sequence_heights(total_layers, conv_size, sequence_length)
        tensor = _kim_stack(tensor, heights, conv_size, filters, embedding_dim)
    tensor = keras.layers.Flatten(name="flatten")(tensor)
    tensor = keras.layers.Dense(dense_units, activation="relu", name="dense")(tensor)
    tensor = keras.layers.Dropout(dropout, name="dropout")(tensor)
    outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="output")(tensor)
    return keras.Model(inputs, outputs, name="text_cnn")


def _kim_stack(tensor: object, heights: list[int], conv_size: int, filters: int, embedding_dim: int) -> object:
    """Kim's stack: conv0 across the embedding, then conv_size x 1 convs along the review, pools halving it."""
    for index, height in enumerate(heights):
        kernel = (conv_size, embedding_dim) if index == 0 else (conv_size, 1)
        padding = "valid" if index == 0 else "same"
        tensor = keras.layers.Conv2D(filters, kernel, padding=padding, activation="relu",
                                     name=f"conv{index}")(tensor)
        pool = (height, 1) if index == len(heights) - 1 else (SEQUENCE_POOL, 1)
        tensor = keras.layers.MaxPooling2D(pool, strides=pool, name=f"pool{index}")(tensor)
    return tensor


def sequence_heights(total_layers: object, conv_size: int, sequence_length: int) -> list[int]:
    """The sequence length each conv outputs (what its pool meets); InputError if one vanishes."""
    pairs = require_total_layers(total_layers)
    if conv_size > sequence_length:
        raise InputError(f"conv_size={conv_size} is longer than the {sequence_length} tokens conv0 meets "
                         f"(sequence_length={sequence_length})")
    heights = [sequence_length - conv_size + 1]
    for index in range(1, pairs):
        if heights[-1] < SEQUENCE_POOL:
            raise InputError(f"total_layers={total_layers} is too deep: pool{index - 1} meets a sequence of "
                             f"{heights[-1]} and a {SEQUENCE_POOL}x1 pool shrinks it to nothing "
                             f"(conv_size={conv_size}, sequence_length={sequence_length})")
        heights.append(heights[-1] // SEQUENCE_POOL)
    return heights


def example_inputs(batch_size: int, **params: object) -> np.ndarray:
    """Random token ids in range, shape (batch_size, sequence_length)."""
    merged = {**PARAMS, **params}
    generator = np.random.default_rng(0)
    return generator.integers(0, merged["vocab_size"], size=(batch_size, merged["sequence_length"]), dtype=np.int32)


def load_data(path: str | None = None, **params: object) -> datasets.LabeledData:
    """The sentence-polarity corpus (rt-polarity.pos / .neg) in ``path`` or $TFPROFSCALE_DATA."""
    merged = {**PARAMS, **params}
    return datasets.load_sentence_polarity(path, sequence_length=merged["sequence_length"],
                                           vocab_size=merged["vocab_size"])
