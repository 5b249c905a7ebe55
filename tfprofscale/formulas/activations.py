"""Per-element costs of activation functions: by formula, and as TensorFlow counts them.

``ACTIVATION_FLOPS_PER_ELEMENT`` is what the analytic formulas charge (each
elementary operation 1, exp/log/erf/tanh 1 each); ``TF_ACTIVATION_FLOPS_PER_ELEMENT``
is what TensorFlow's profiler counts for the same Keras activation. The
audit's "activation not counted by TensorFlow" cause is their difference.
"""
from __future__ import annotations

from typing import Any

import keras

#: Elementary operations per output element; exp, log, erf, tanh and sqrt count
#: 1 each, ``a if cond else b`` counts its comparison (TensorFlow's flops registry
#: counts Log as 1, Rsqrt as 2). Keys are the Keras functions' ``__name__``
#: (``swish`` is ``silu``, ``hard_swish`` is ``hard_silu``), plus ``prelu`` (the
#: PReLU layer) and ``gelu_approximate`` (``gelu(x, approximate=True)``).
ACTIVATION_FLOPS_PER_ELEMENT: dict[str, tuple[int, str]] = {
    "linear": (0, "x"),
    "relu": (1, "max(x, 0)"),
    "relu6": (2, "min(max(x, 0), 6)"),
    "leaky_relu": (2, "max(x, slope * x)"),
    "prelu": (4, "max(x, 0) + alpha * min(x, 0)"),
    "elu": (4, "x if x > 0 else alpha * (exp(x) - 1)"),
    "selu": (5, "scale * elu(x, alpha)"),
    "celu": (7, "max(x, 0) + min(0, alpha * (exp(x / alpha) - 1))"),
    "sigmoid": (4, "1 / (1 + exp(-x))"),
    "hard_sigmoid": (4, "relu6(x + 3) / 6"),
    "log_sigmoid": (5, "-log(1 + exp(-x))"),
    "sparse_sigmoid": (4, "0 if x <= -1 else (1 if x >= 1 else (x + 1) / 2)"),
    "tanh": (1, "tanh(x)"),
    "hard_tanh": (2, "max(-1, min(x, 1))"),
    "tanh_shrink": (2, "x - tanh(x)"),
    "hard_shrink": (2, "x if |x| > threshold else 0"),
    "soft_shrink": (4, "x - t if x > t else (x + t if x < -t else 0)"),
    "threshold": (1, "x if x > threshold else default_value"),
    "softplus": (3, "log(1 + exp(x))"),
    "sparse_plus": (5, "0 if x <= -1 else (x if x >= 1 else (x + 1)^2 / 4)"),
    "squareplus": (5, "(x + sqrt(x^2 + b)) / 2"),
    "softsign": (3, "x / (1 + |x|)"),
    "silu": (5, "x * sigmoid(x)"),
    "hard_silu": (5, "x * hard_sigmoid(x)"),
    "gelu": (5, "0.5 * x * (1 + erf(x / sqrt(2)))"),
    "gelu_approximate": (9, "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))"),
    "mish": (5, "x * tanh(softplus(x))"),
    "glu": (5, "a * sigmoid(b), [a, b] = split(x) (per output element: half the input)"),
    "exponential": (1, "exp(x)"),
    "softmax": (5, "exp(x - max) / sum(exp(x - max))"),
    "log_softmax": (5, "x - max - log(sum(exp(x - max)))"),
}

#: FLOPs per output element TensorFlow 2.21's profiler counts for each Keras
#: activation, measured with tfprof on an ``Activation`` layer (``prelu``: a
#: PReLU layer; ``gelu_approximate`` and ``threshold``: the function in a
#: tf.function). Ops with no FLOPs statistics count 0: Relu, Sigmoid, Tanh,
#: Elu, Exp, Expm1, Erfc, Softplus, Sqrt, Abs, SelectV2, LogSoftmax ...;
#: Softmax is registered at 5; composite activations count their Mul, Add,
#: Neg, RealDiv, Pow, Square, Maximum, Minimum and comparison ops 1 each.
#: ``sparsemax`` is absent: it sorts each row, so its cost is not per element.
#: PReLU computes relu(x) - alpha * relu(-x): 3 per element, plus a Neg per alpha.
TF_ACTIVATION_FLOPS_PER_ELEMENT: dict[str, int] = {
    "linear": 0, "relu": 0, "relu6": 0, "leaky_relu": 0, "prelu": 3, "elu": 0, "selu": 0, "celu": 5,
    "sigmoid": 0, "hard_sigmoid": 2, "log_sigmoid": 2, "sparse_sigmoid": 4,
    "tanh": 0, "hard_tanh": 2, "tanh_shrink": 1, "hard_shrink": 1, "soft_shrink": 4, "threshold": 1,
    "softplus": 0, "sparse_plus": 5, "squareplus": 4, "softsign": 0,
    "silu": 2, "hard_silu": 3, "gelu": 4, "gelu_approximate": 7, "mish": 1, "glu": 1,
    "exponential": 0, "softmax": 5, "log_softmax": 0,
}


#: Activations that change the shape (glu halves the last axis): costed only as an Activation layer.
SHAPE_CHANGING_ACTIVATIONS = frozenset({"glu"})


def activation_cost(function: Any, *, in_activation_layer: bool = False) -> tuple[str, int] | None:
    """(name, formula FLOPs per output element) of a Keras activation; None if it has no entry."""
    name = keras_activation_name(function)
    if name is None or (name in SHAPE_CHANGING_ACTIVATIONS and not in_activation_layer):
        return None
    return name, ACTIVATION_FLOPS_PER_ELEMENT[name][0]


#: Activation functions of other Keras libraries that are exactly a table entry, by (module, name):
#: keras_hub's ``gelu_approximate(x)`` returns ``keras.activations.gelu(x, approximate=True)``.
KNOWN_LIBRARY_ACTIVATIONS = {("keras_hub.src.utils.keras_utils", "gelu_approximate"): "gelu_approximate"}


def keras_activation_name(function: Any) -> str | None:
    """The name of a ``keras.activations`` function with a table entry; None for anything else."""
    name = getattr(function, "__name__", None)
    known = KNOWN_LIBRARY_ACTIVATIONS.get((getattr(function, "__module__", None), name))
    if known is not None:
        return known
    if name not in ACTIVATION_FLOPS_PER_ELEMENT:
        return None
    try:
        return name if keras.activations.get(name) is function else None
    except ValueError:
        return None
