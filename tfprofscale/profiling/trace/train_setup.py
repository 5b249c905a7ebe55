"""What a training step trains with: the loss, the optimizer and the labels.

In order of precedence: ``--optimizer`` overrides the optimizer; a model
file's ``train_setup(**params)`` returning ``(loss, optimizer)``; the loss
and optimizer the model file compiled the model with; else the loss that
fits the output (sparse categorical cross-entropy on integer labels for a
softmax or logits classifier, binary cross-entropy for a sigmoid output,
mean squared error otherwise) and ``keras.optimizers.Adam``. The choice and
where it came from are said in the report (``TrainSetup.description``).
Labels are generated to match the loss unless ``example_inputs`` returns
``(x, y)``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from tfprofscale.errors import InputError
from tfprofscale.formulas.optimizers import make_optimizer
from tfprofscale.records import Shape

#: Label kinds: integer class ids, one-hot rows, 0/1 floats, or real values shaped like the output.
SPARSE, ONE_HOT, BINARY, DENSE = "sparse", "one-hot", "binary", "dense"

OPTIMIZER_NAMES = ("sgd", "momentum", "adam", "adamw", "rmsprop")


@dataclass(frozen=True)
class TrainSetup:
    """The loss and optimizer a train step uses, what labels they take and where they came from."""

    loss: Any
    optimizer: Any
    loss_name: str
    optimizer_name: str
    label_kind: str
    source: str  # "compiled", "train_setup", "default"
    optimizer_source: str

    @property
    def description(self) -> str:
        """One line for the report: ``loss X (source), optimizer Y (source)``."""
        return (f"loss {self.loss_name} ({self.source}), optimizer {self.optimizer_name} "
                f"({self.optimizer_source})")


def check_optimizer_name(name: str | None) -> None:
    """InputError unless ``name`` is None or one of OPTIMIZER_NAMES."""
    if name is not None and name not in OPTIMIZER_NAMES:
        raise InputError(f"--optimizer {name!r}: unknown optimizer (known: {', '.join(OPTIMIZER_NAMES)})")


def resolve_setup(model: Any, train_setup: Callable[..., Any] | None, params: dict[str, Any],
                  optimizer_name: str | None) -> TrainSetup:
    """The loss and optimizer for ``model`` (see the module docstring for the order)."""
    import keras

    check_optimizer_name(optimizer_name)
    if not model.trainable_weights:
        raise InputError(f"model {model.name!r} has no trainable weights: there is nothing to train")
    if train_setup is not None:
        loss, optimizer = _pair(train_setup(**params))
        loss, optimizer, source = keras.losses.get(loss), keras.optimizers.get(optimizer), "train_setup"
    elif getattr(model, "compiled", False) and getattr(model, "loss", None) is not None:
        loss, optimizer, source = model.loss, model.optimizer, "compiled"
    else:
        loss, source = default_loss(model), "default"
        optimizer = keras.optimizers.Adam()
    optimizer_source = source
    if optimizer_name is not None:
        optimizer, optimizer_source = make_named_optimizer(optimizer_name), "--optimizer"
    name = loss_name(loss)
    return TrainSetup(loss, optimizer, name, _optimizer_label(optimizer, optimizer_name), label_kind(name),
                      source, optimizer_source)


def make_named_optimizer(name: str) -> Any:
    """The Keras optimizer ``--optimizer NAME`` stands for (trainmath's ``make_optimizer``)."""

    return make_optimizer(name)


def _pair(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InputError(f"train_setup() returned {type(value).__name__}, not a (loss, optimizer) pair")
    return value[0], value[1]


def _optimizer_label(optimizer: Any, asked: str | None) -> str:
    if asked is not None:
        return asked
    inner = getattr(optimizer, "inner_optimizer", None)
    return type(inner or optimizer).__name__ + (" (loss-scaled)" if inner is not None else "")


def default_loss(model: Any) -> Any:
    """The loss that fits the model's output: by its last layer's activation (see the module docstring)."""
    import keras

    activation = _last_activation(model)
    output = _output_shapes(model)[0]
    if activation == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    if activation == "sigmoid":
        return keras.losses.BinaryCrossentropy(from_logits=False)
    if activation == "linear" and len(output) >= 2 and output[-1] >= 2 and _is_classifier_head(model):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return keras.losses.MeanSquaredError()


def _last_layer(model: Any) -> Any:
    layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"]
    return layers[-1] if layers else None


def _last_activation(model: Any) -> str | None:
    layer = _last_layer(model)
    if layer is None:
        return None
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) if activation is not None else None


def _is_classifier_head(model: Any) -> bool:
    """A Dense layer with no activation at the end, on rank-2 output: logits of a classifier."""
    layer = _last_layer(model)
    return type(layer).__name__ == "Dense" and len(_output_shapes(model)[0]) == 2


def _output_shapes(model: Any) -> list[Shape]:
    outputs = model.outputs if isinstance(model.outputs, (list, tuple)) else [model.outputs]
    return [tuple(-1 if d is None else int(d) for d in t.shape) for t in outputs]


def loss_name(loss: Any) -> str:
    """A loss's name as Keras spells it (``sparse_categorical_crossentropy``, ``mean_squared_error`` ...)."""
    if isinstance(loss, str):
        return loss
    if isinstance(loss, (list, tuple)):
        return "+".join(loss_name(each) for each in loss)
    if isinstance(loss, dict):
        return "+".join(loss_name(each) for each in loss.values())
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    from_logits = getattr(loss, "from_logits", None)
    return f"{name} (from_logits)" if from_logits else str(name)


def label_kind(name: str) -> str:
    """What labels a loss named ``name`` takes."""
    lowered = name.lower()
    if "sparse" in lowered:
        return SPARSE
    if "categorical" in lowered or lowered in ("kl_divergence", "kld", "poisson"):
        return ONE_HOT
    if "binary" in lowered or "hinge" in lowered:
        return BINARY
    return DENSE


def label_specs(output_shapes: Sequence[Shape], kind: str) -> list[tf.TensorSpec]:
    """The labels' TensorSpecs for outputs of ``output_shapes`` (batch fixed) and a loss taking ``kind``."""
    specs = []
    for index, shape in enumerate(output_shapes):
        if kind == SPARSE:
            if len(shape) < 2:
                raise InputError(f"loss sparse_categorical_crossentropy does not fit model output {index} of shape "
                                 f"{shape}: it needs a class axis")
            specs.append(tf.TensorSpec(shape[:-1], tf.int32, name=f"labels_{index}"))
        else:
            specs.append(tf.TensorSpec(shape, tf.float32, name=f"labels_{index}"))
    return specs


def generated_labels(specs: Sequence[tf.TensorSpec], output_shapes: Sequence[Shape], kind: str,
                     seed: int = 0) -> list[tf.Tensor]:
    """Labels that fit ``specs``: random class ids, one-hot rows, 0/1 floats or standard normal values."""
    rng = np.random.default_rng(seed)
    labels = []
    for spec, shape in zip(specs, output_shapes):
        dims = tuple(spec.shape)
        if kind == SPARSE:
            labels.append(tf.constant(rng.integers(0, shape[-1], dims), dtype=tf.int32))
        elif kind == ONE_HOT:
            labels.append(tf.one_hot(rng.integers(0, shape[-1], dims[:-1]), shape[-1], dtype=tf.float32))
        elif kind == BINARY:
            labels.append(tf.constant(rng.integers(0, 2, dims), dtype=tf.float32))
        else:
            labels.append(tf.constant(rng.standard_normal(dims), dtype=tf.float32))
    return labels


def split_example(made: Any, input_count: int) -> tuple[Any, Any | None]:
    """``example_inputs``' value as (x, y): ``(x, y)`` when it returns labels, else (value, None).

    A file returns ``(x, y)`` where ``x`` is what it returns for inference:
    for a one-input model any pair is ``(x, y)``; for several inputs, a pair
    whose first item is itself a list or tuple.
    """
    pair = isinstance(made, (list, tuple)) and len(made) == 2
    if pair and (input_count == 1 or isinstance(made[0], (list, tuple))):
        return made[0], made[1]
    return made, None


def checked_labels(given: Any, specs: Sequence[tf.TensorSpec], kind: str, call: str) -> list[tf.Tensor]:
    """Labels from ``example_inputs`` as tensors of the specs' shapes; InputError naming the difference."""
    values = list(given) if isinstance(given, (list, tuple)) and len(specs) > 1 else [given]
    if len(values) != len(specs):
        raise InputError(f"{call} returned {len(values)} label array(s), the model has {len(specs)} output(s)")
    labels = []
    for value, spec in zip(values, specs):
        array = np.asarray(value)
        shape = tuple(array.shape)
        want = tuple(spec.shape)
        if shape != want and not (kind == SPARSE and shape == (*want, 1)):
            raise InputError(f"{call}: labels have shape {shape}, the loss on this output takes {want}")
        dtype = spec.dtype if kind != SPARSE or not np.issubdtype(array.dtype, np.integer) else array.dtype
        labels.append(tf.convert_to_tensor(array.reshape(want), dtype=dtype))
    return labels
