"""The generated CNN of document 000: n x (Conv2D + MaxPooling2D), then Flatten, FC, logits.

Each "layer" is a Conv2D (``filters`` kernels of ``kernel_size`` x
``kernel_size``, stride ``stride``, ``padding``, ReLU) followed by a
MaxPooling2D (``pool_size`` x ``pool_size`` window, stride ``pool_size``,
no padding), as in the original code (``tf.layers.conv2d(padding='SAME')``
then ``max_pooling2d([2, 2], strides=2)``). Then Flatten,
Dense(``fc_units``, ReLU) and Dense(``n_classes``) producing logits.
Layers are named ``conv0, pool0, conv1, ... fc, logits`` as in the original.

The defaults are document 000's example (4 layers, 32 filters, 400x400x3
input, 2 classes, 3x3 kernel, stride 2, 512 FC units), whose printed
shapes 400 -> 200 -> 100 -> 50 -> 25 -> 13 -> 6 -> 3 -> 1 this model
reproduces. The document's printout lists each conv with its *input* size
("CONV0 [400x400x32]") and its parameter text says "52 fc units" where the
printed weights (16384 = 32 x 512) show 512: the defaults follow the numbers.

Improvements on the original: a configuration that cannot be built (a
kernel larger than the feature map a 'valid' conv meets, a feature map
pooled down to nothing, a non-positive value) is rejected before any layer
is built, with an ``InputError`` naming the parameter and the layer; the
original let TensorFlow fail somewhere inside graph construction. Stride,
padding and pool size, fixed in the original, are parameters.
"""
from __future__ import annotations

import math

import keras

from tfprofscale.errors import InputError
from tfprofscale.model_checks import require_positive_int

PARAMS = {
    "n_layers": 4,
    "filters": 32,
    "kernel_size": 3,
    "stride": 2,
    "input_size": 400,
    "channels": 3,
    "n_classes": 2,
    "fc_units": 512,
    "padding": "same",
    "pool_size": 2,
}

PADDINGS = ("same", "valid")


def build_model(n_layers: int = 4, filters: int = 32, kernel_size: int = 3, stride: int = 2,
                input_size: int = 400, channels: int = 3, n_classes: int = 2, fc_units: int = 512,
                padding: str = "same", pool_size: int = 2) -> keras.Model:
    """The generated CNN for one configuration; raises InputError if it cannot be built."""
    for name, value in (("n_layers", n_layers), ("filters", filters), ("kernel_size", kernel_size),
                        ("stride", stride), ("input_size", input_size), ("channels", channels),
                        ("n_classes", n_classes), ("fc_units", fc_units), ("pool_size", pool_size)):
        require_positive_int(name, value)
    if padding not in PADDINGS:
        raise InputError(f"padding={padding!r}: must be one of {', '.join(PADDINGS)}")
    check_feature_map_sizes(n_layers, kernel_size, stride, input_size, padding, pool_size)

    inputs = keras.Input(shape=(input_size, input_size, channels), name="image")
    tensor = inputs
    for index in range(n_layers):
        tensor = keras.layers.Conv2D(filters, kernel_size, strides=stride, padding=padding,
                                     activation="relu", name=f"conv{index}")(tensor)
        tensor = keras.layers.MaxPooling2D(pool_size, strides=pool_size, padding="valid",
                                           name=f"pool{index}")(tensor)
    tensor = keras.layers.Flatten(name="flatten")(tensor)
    tensor = keras.layers.Dense(fc_units, activation="relu", name="fc")(tensor)
    outputs = keras.layers.Dense(n_classes, name="logits")(tensor)
    return keras.Model(inputs, outputs, name="generated_cnn")


def check_feature_map_sizes(n_layers: int, kernel_size: int, stride: int, input_size: int,
                            padding: str, pool_size: int) -> list[int]:
    """The side of the feature map after each conv+pool layer; InputError where it breaks."""
    sides, side = [], input_size
    for index in range(n_layers):
        if padding == "valid" and kernel_size > side:
            raise InputError(
                f"kernel_size={kernel_size} is larger than the {side}x{side} feature map that "
                f"conv{index} (layer {index + 1} of n_layers={n_layers}) meets with padding='valid'"
            )
        side = _conv_output_side(side, kernel_size, stride, padding)
        if side < pool_size:
            raise InputError(
                f"n_layers={n_layers} is too deep: pool{index} (layer {index + 1}) meets a {side}x{side} "
                f"feature map and pool_size={pool_size} shrinks it to zero (input_size={input_size}, "
                f"stride={stride})"
            )
        side //= pool_size
        sides.append(side)
    return sides


def _conv_output_side(side: int, kernel_size: int, stride: int, padding: str) -> int:
    """Output side of a square conv, by TensorFlow's 'same' / 'valid' rule."""
    if padding == "same":
        return math.ceil(side / stride)
    return (side - kernel_size) // stride + 1
