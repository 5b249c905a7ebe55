"""The Fashion-MNIST classifier of document 001, for 4, 6, 8, 10 ... total layers.

Architecture for ``total_layers = 2 n + 2``: n pairs of Conv2D (``filters``
kernels of ``conv_size`` x ``conv_size``, 'same' padding, ReLU) and
MaxPooling2D (2x2, stride 2), then Flatten, Dense(``dense_units``, ReLU),
Dropout(``dropout``) and Dense(10, softmax). As in the document, "total
layers" counts the conv, pool and the two Dense layers, not Flatten and
Dropout: 4 layers = conv + pool + 2 fully connected, and each step of two
adds a conv and a pool. Input: 28x28x1 images in [0, 1]. With 28 -> 14 -> 7
-> 3 -> 1, every conv size (3, 5, 8 ...) builds up to 10 total layers.

What the original did (document 001 and its code, github
filippocollini/tensorflow_benchmark, ``mnist_training.py``) and what changed:

- Its printed "model structure" puts each layer's output shape on the line
  after the layer's name, so the 4-layer model is conv (None, 26, 1, 64),
  pool (None, 1, 1, 64), 64 features: the text model's architecture copied
  onto images, a 3x28 kernel spanning the whole image width, then a max-pool
  over the whole height. Here the kernels are square, as for images.
- Its deeper models used 'valid' k x k convs, 2x2 pools of stride 1 (a map
  shrinking by one pixel per pool) and a last conv k x (28 - n*k) to force a
  one-pixel-wide map, so the geometry did not work for every (layers, conv
  size) pair: with conv size 8 and 10 layers the last conv, 8 x 4, meets a
  4x4 map and cannot be built. Here the pools halve the map and the convs
  keep its size, so the whole grid builds.
- Its Dropout layer was created but its output never used (the last Dense
  read the first Dense's output), so dropout never acted: here it does.
- Its "dropout probability 0.75", passed to Keras as the rate, would drop
  three units in four; we read it as the TF1-style keep probability of the
  same course's other project (document 000's code has keep_prob 0.75), so
  the default rate is 0.25; ``--dropout`` sets it.
- It trained a 10-class softmax with binary cross-entropy, which makes Keras
  report a per-output binary accuracy; training here uses sparse categorical
  cross-entropy and reports accuracy over the test split.

The filter count (64) and the Dense width (64) are the document's.

``layout="p17"`` builds the conv stack as the document printed it instead
(conv ``conv_size`` x 28 'valid', (26, 1, 64) for conv size 3, then a pool
over the whole height) and deeper models as the closest buildable stack:
see ``tfprofscale.p17_layout``. ``layout="square"`` (above) is the default.
"""
from __future__ import annotations

import keras

from tfprofscale import datasets
from tfprofscale.errors import InputError
from tfprofscale.model_checks import require_positive_int, require_rate, require_total_layers
from tfprofscale.p17_layout import add_p17_stack, p17_stack, require_layout

CLASS_NAMES = ["t-shirt/top", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot"]
IMAGE_SIDE = 28
POOL_SIZE = 2

PARAMS = {
    "total_layers": 4,
    "conv_size": 3,
    "filters": 64,
    "dense_units": 64,
    "dropout": 0.25,
    "layout": "square",
}


def build_model(total_layers: int = 4, conv_size: int = 3, filters: int = 64,
                dense_units: int = 64, dropout: float = 0.25, layout: str = "square") -> keras.Model:
    """The classifier for one (total_layers, conv_size, layout); InputError if it cannot be built."""
    for name, value in (("conv_size", conv_size), ("filters", filters), ("dense_units", dense_units)):
        require_positive_int(name, value)
    require_rate("dropout", dropout)
    require_layout(layout, ("square", "p17"))

    inputs = keras.Input(shape=(IMAGE_SIDE, IMAGE_SIDE, 1), name="image")
    if layout == "p17":
        stack = p17_stack(IMAGE_SIDE, IMAGE_SIDE, conv_size, require_total_layers(total_layers))
        tensor = add_p17_stack(inputs, stack, filters)
    else:
        tensor = _square_stack(inputs, _conv_pool_pairs(total_layers), conv_size, filters)
    tensor = keras.layers.Flatten(name="flatten")(tensor)
    tensor = keras.layers.Dense(dense_units, activation="relu", name="dense")(tensor)
    tensor = keras.layers.Dropout(dropout, name="dropout")(tensor)
    outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="output")(tensor)
    return keras.Model(inputs, outputs, name="fashion_mnist_cnn")


def _square_stack(tensor: object, conv_pool_pairs: int, conv_size: int, filters: int) -> object:
    """conv (same, square kernel, ReLU) + 2x2 pool pairs, halving the map each time."""
    for index in range(conv_pool_pairs):
        tensor = keras.layers.Conv2D(filters, conv_size, padding="same", activation="relu",
                                     name=f"conv{index}")(tensor)
        tensor = keras.layers.MaxPooling2D(POOL_SIZE, strides=POOL_SIZE, name=f"pool{index}")(tensor)
    return tensor


def load_data(path: str | None = None, **params: object) -> datasets.LabeledData:
    """Fashion-MNIST from the four IDX files (gzipped or not) in ``path`` or $TFPROFSCALE_DATA."""
    return datasets.load_idx_images(path, CLASS_NAMES, (IMAGE_SIDE, IMAGE_SIDE), subdirectory="fashion-mnist")


def _conv_pool_pairs(total_layers: object) -> int:
    """How many conv+pool pairs ``total_layers`` means; InputError if the map would vanish."""
    pairs, side = require_total_layers(total_layers), IMAGE_SIDE
    for index in range(pairs):
        if side < POOL_SIZE:
            raise InputError(f"total_layers={total_layers} is too deep: pool{index} meets a {side}x{side} "
                             f"feature map, which a {POOL_SIZE}x{POOL_SIZE} pool shrinks to nothing "
                             f"(at most {2 * index + 2} total layers on {IMAGE_SIDE}x{IMAGE_SIDE} images)")
        side //= POOL_SIZE
    return pairs
