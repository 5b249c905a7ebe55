"""The hand-built models tools/formula_coverage.py measures: one function per text, sequence, segmentation
and video family (none of them in the tests)."""
from __future__ import annotations

from typing import Callable

import keras

L = keras.layers


def text_cnn() -> keras.Model:
    """Kim (2014)-style: embedding, three Conv1D widths, global max pooling, concatenate, dense."""
    tokens = keras.Input((100,), dtype="int32")
    x = L.Embedding(20_000, 128)(tokens)
    pooled = [L.GlobalMaxPooling1D()(L.Conv1D(100, k, activation="relu")(x)) for k in (3, 4, 5)]
    return keras.Model(tokens, L.Dense(2, activation="softmax")(L.Dropout(0.5)(L.Concatenate()(pooled))))


def recurrent(kind: str) -> Callable[[], keras.Model]:
    def build() -> keras.Model:
        tokens = keras.Input((100,), dtype="int32")
        x = L.Embedding(1000, 32)(tokens)
        x = {"lstm": L.LSTM(64), "gru": L.GRU(64), "bilstm": L.Bidirectional(L.LSTM(32))}[kind](x)
        return keras.Model(tokens, L.Dense(2, activation="softmax")(x), name=kind)
    return build


def tagger() -> keras.Model:
    """Masked Bidirectional GRU, LSTM and TimeDistributed Dense over tokens."""
    tokens = keras.Input((40,), dtype="int32")
    x = L.Embedding(500, 16, mask_zero=True)(tokens)
    x = L.LSTM(16, return_sequences=True)(L.Bidirectional(L.GRU(24, return_sequences=True))(x))
    return keras.Model(tokens, L.TimeDistributed(L.Dense(5, activation="softmax"))(x))


def transformer() -> keras.Model:
    """A text classifier: one encoder block with Add layers."""
    tokens = keras.Input((64,), dtype="int32")
    x = L.Embedding(1000, 64)(tokens)
    x = L.LayerNormalization()(L.Add()([x, L.MultiHeadAttention(4, 16)(x, x)]))
    x = L.LayerNormalization()(L.Add()([x, L.Dense(64)(L.Dense(128, activation="relu")(x))]))
    return keras.Model(tokens, L.Dense(2, activation="softmax")(L.GlobalAveragePooling1D()(x)))


def ops_transformer() -> keras.Model:
    """An encoder block written with ``x + attention(x)`` and keras.ops (rows ops.Add, ops.Mean ...)."""
    inputs = keras.Input((64, 64))
    x = L.LayerNormalization()(inputs + L.MultiHeadAttention(4, 16)(inputs, inputs))
    x = L.LayerNormalization()(x + L.Dense(64)(keras.ops.gelu(L.Dense(128)(x))))
    return keras.Model(inputs, L.Dense(2)(keras.ops.mean(x, axis=1)))


def decoder() -> keras.Model:
    """RMSNorm, causal GroupQueryAttention, EinsumDense feed-forward, UnitNormalization."""
    tokens = keras.Input((32,), dtype="int32")
    x = L.Embedding(500, 48)(tokens)
    h = L.RMSNormalization()(x)
    x = L.Add()([x, L.GroupQueryAttention(12, 4, 2)(h, h, use_causal_mask=True)])
    h = L.EinsumDense("btd,df->btf", (32, 96), activation="gelu", bias_axes="f")(L.LayerNormalization()(x))
    x = L.UnitNormalization()(L.Add()([x, L.EinsumDense("btf,fd->btd", (32, 48))(h)]))
    return keras.Model(tokens, L.Dense(500)(x))


def vit() -> keras.Model:
    """Patches by a strided Conv2D, two pre-norm encoder blocks, mean pooling."""
    image = keras.Input((32, 32, 3))
    x = L.Reshape((64, 64))(L.Conv2D(64, 4, strides=4)(image))
    for _ in range(2):
        h = L.LayerNormalization(epsilon=1e-6)(x)
        x = L.Add()([x, L.MultiHeadAttention(4, 16)(h, h)])
        h = L.LayerNormalization(epsilon=1e-6)(x)
        x = L.Add()([x, L.Dense(64)(L.Dense(128, activation="gelu")(h))])
    return keras.Model(image, L.Dense(10)(L.GlobalAveragePooling1D()(L.LayerNormalization(epsilon=1e-6)(x))))


def unet() -> keras.Model:
    """A two-level U-Net: Conv2D, MaxPooling2D, Conv2DTranspose, UpSampling2D, Concatenate."""
    image = keras.Input((64, 64, 3))
    d1 = L.Conv2D(16, 3, padding="same", activation="relu")(image)
    d2 = L.Conv2D(32, 3, padding="same", activation="relu")(L.MaxPooling2D()(d1))
    b = L.Conv2D(64, 3, padding="same", activation="relu")(L.MaxPooling2D()(d2))
    u2 = L.Conv2DTranspose(32, 2, strides=2, padding="same")(b)
    u2 = L.Conv2D(32, 3, padding="same", activation="relu")(L.Concatenate()([u2, d2]))
    u1 = L.Conv2D(16, 3, padding="same", activation="relu")(L.Concatenate()([L.UpSampling2D()(u2), d1]))
    return keras.Model(image, L.Conv2D(2, 1, activation="softmax")(u1))


def conv3d_net() -> keras.Model:
    """A small C3D-like stack: Conv3D, MaxPooling3D, GlobalAveragePooling3D, Dense."""
    clip = keras.Input((8, 32, 32, 3))
    x = L.MaxPooling3D((1, 2, 2))(L.Conv3D(16, 3, padding="same", activation="relu")(clip))
    x = L.GlobalAveragePooling3D()(L.Conv3D(32, 3, padding="same", activation="relu")(x))
    return keras.Model(clip, L.Dense(10)(x))


def conv_lstm() -> keras.Model:
    """ConvLSTM2D, TimeDistributed Conv2D, GroupNormalization."""
    clip = keras.Input((6, 16, 16, 3))
    x = L.ConvLSTM2D(8, 3, padding="same", return_sequences=True)(clip)
    x = L.ConvLSTM2D(4, 3)(L.TimeDistributed(L.Conv2D(4, 3))(x))
    return keras.Model(clip, L.Dense(3)(L.Flatten()(L.GroupNormalization(2)(x))))


def mobilenet_v2_as_a_layer() -> keras.Model:
    """Transfer learning: the backbone is one nested Functional layer."""
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3))
    inputs = keras.Input((96, 96, 3))
    return keras.Model(inputs, L.Dense(10)(L.GlobalAveragePooling2D()(base(inputs))), name="transfer")


HAND_BUILT: dict[str, Callable[[], keras.Model]] = {
    "text_cnn": text_cnn, "lstm": recurrent("lstm"), "gru": recurrent("gru"), "bilstm": recurrent("bilstm"),
    "tagger": tagger, "transformer": transformer, "ops_transformer": ops_transformer, "decoder": decoder,
    "vit": vit, "unet": unet, "conv3d_net": conv3d_net, "conv_lstm": conv_lstm,
    "mobilenet_v2_as_a_layer": mobilenet_v2_as_a_layer,
}
