"""Models for the train-step peak check (tools/bench_train_peak.py): the issue's three and two held out."""
from __future__ import annotations

import keras


def resnet50() -> keras.Model:
    return keras.applications.ResNet50(weights=None, input_shape=(96, 96, 3))


def mobilenetv2() -> keras.Model:
    return keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))


def transformer(blocks: int = 4, width: int = 256, tokens: int = 128, heads: int = 4) -> keras.Model:
    """A small post-norm encoder over embedded tokens, mean-pooled into 10 classes."""
    inputs = keras.Input((tokens,), dtype="int32")
    x = keras.layers.Embedding(1000, width)(inputs)
    for _ in range(blocks):
        attended = keras.layers.MultiHeadAttention(heads, width // heads)(x, x)
        x = keras.layers.LayerNormalization()(keras.layers.Add()([x, attended]))
        hidden = keras.layers.Dense(2 * width, activation="relu")(x)
        x = keras.layers.LayerNormalization()(keras.layers.Add()([x, keras.layers.Dense(width)(hidden)]))
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def vggish() -> keras.Model:
    """Held out: plain 3x3 conv stacks with max pooling and two big Dense layers."""
    inputs = keras.Input((64, 64, 3))
    x = inputs
    for filters in (32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(512, activation="relu")(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def lstm() -> keras.Model:
    """Held out: embedded tokens through two LSTMs into 10 classes."""
    inputs = keras.Input((64,), dtype="int32")
    x = keras.layers.Embedding(2000, 128)(inputs)
    x = keras.layers.LSTM(256, return_sequences=True)(x)
    x = keras.layers.LSTM(256)(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


MODELS = {"resnet50": resnet50, "mobilenetv2": mobilenetv2, "transformer": transformer, "vggish": vggish,
          "lstm": lstm}
