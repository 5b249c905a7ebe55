"""Training, test accuracy and printed predictions for a model and its ``LabeledData``.

Labels are class indices; the model's last layer gives either softmax
probabilities or logits (both are handled). Accuracy and predictions are
always over the test split.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from tfprofscale.datasets import LabeledData
from tfprofscale.errors import InputError


@dataclass(frozen=True)
class TrainResult:
    """What one training run did: its settings and the per-epoch training curve."""

    epochs: int
    learning_rate: float
    batch_size: int
    train_examples: int
    loss_per_epoch: list[float]
    train_accuracy_per_epoch: list[float]
    wall_time_s: float


def train(model: keras.Model, data: LabeledData, epochs: int, learning_rate: float,
          batch_size: int = 64, progress: bool = True) -> TrainResult:
    """Train ``model`` in place on the training split with Adam and cross-entropy."""
    _require_positive("epochs", epochs, int)
    _require_positive("learning_rate", learning_rate, float)
    _require_positive("batch_size", batch_size, int)
    if len(data.x_train) == 0:
        raise InputError("the training split is empty: nothing to train on")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model)),
        metrics=["accuracy"],
    )
    started = time.perf_counter()
    history = model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size,
                        shuffle=True, verbose=2 if progress else 0)
    return TrainResult(
        epochs=epochs,
        learning_rate=float(learning_rate),
        batch_size=batch_size,
        train_examples=len(data.x_train),
        loss_per_epoch=[float(value) for value in history.history["loss"]],
        train_accuracy_per_epoch=[float(value) for value in history.history["accuracy"]],
        wall_time_s=time.perf_counter() - started,
    )


def predicted_classes(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The arg-max class of the model's output for each example of ``x``."""
    outputs = model.predict(x, batch_size=batch_size, verbose=0)
    return np.argmax(outputs, axis=-1)


def evaluate(model: keras.Model, data: LabeledData, batch_size: int = 256) -> float:
    """Accuracy in [0, 1] over exactly the test split."""
    _require_positive("batch_size", batch_size, int)
    predictions = predicted_classes(model, data.x_test, batch_size)
    return float(np.mean(predictions == np.asarray(data.y_test)))


def prediction_lines(model: keras.Model, data: LabeledData, n: int) -> list[str]:
    """One line per test example, for the first ``n``, as document 001 prints them.

    ``CORRECT  actual: coat | predicted: coat``, followed by
    ``  review: ...`` when the data set has the example's text.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"--show-predictions {n!r}: must be a non-negative integer")
    count = min(n, len(data.x_test))
    if count == 0:
        return []
    predictions = predicted_classes(model, data.x_test[:count])
    return [_prediction_line(data, index, int(predictions[index])) for index in range(count)]


def _prediction_line(data: LabeledData, index: int, predicted: int) -> str:
    """``CORRECT|WRONG  actual: ... | predicted: ...`` [``  review: ...``]."""
    actual = int(data.y_test[index])
    verdict = "CORRECT" if predicted == actual else "WRONG"
    line = f"{verdict}  actual: {data.class_names[actual]} | predicted: {data.class_names[predicted]}"
    text = data.describe(index)
    return line if text is None else f"{line}  review: {text}"


def outputs_probabilities(model: keras.Model) -> bool:
    """True when the model's last layer applies a softmax (it outputs probabilities, not logits)."""
    activation = getattr(model.layers[-1], "activation", None)
    return activation is keras.activations.softmax


def _require_positive(name: str, value: object, kind: type) -> None:
    """InputError unless ``value`` is a positive number of ``kind`` (an int passes as a float)."""
    kinds = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or not 0 < value < float("inf"):
        raise InputError(f"{name}={value!r}: must be a positive finite {'number' if kind is float else 'integer'}")
