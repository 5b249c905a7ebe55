"""Per-element costs of activation functions: by formula, and as TensorFlow counts them.

``ACTIVATION_FLOPS_PER_ELEMENT`` is what the analytic formulas charge (each
elementary operation 1, exp/log/erf/tanh 1 each); ``TF_ACTIVATION_FLOPS_PER_ELEMENT``
is what TensorFlow's profiler counts for the same Keras activation. The
audit's "activation not counted by TensorFlow" cause is their difference.
"""
from __future__ import annotations

from typing import Any

import keras

#: Elementary operations per output element; exp, log, erf and tanh count 1
#: each (TensorFlow's flops registry counts Log as 1, Rsqrt as 2).
ACTIVATION_FLOPS_PER_ELEMENT: dict[str, tuple[int, str]] = {
    "linear": (0, "x"),
    "relu": (1, "max(x, 0)"),
    "relu6": (2, "min(max(x, 0), 6)"),
    "leaky_relu": (2, "max(x, slope * x)"),
    "elu": (4, "x if x > 0 else alpha * (exp(x) - 1)"),
    "selu": (5, "scale * elu(x, alpha)"),
    "sigmoid": (4, "1 / (1 + exp(-x))"),
    "hard_sigmoid": (4, "relu6(x + 3) / 6"),
    "tanh": (1, "tanh(x)"),
    "softplus": (3, "log(1 + exp(x))"),
    "softsign": (3, "x / (1 + |x|)"),
    "silu": (5, "x * sigmoid(x)"),
    "hard_silu": (5, "x * hard_sigmoid(x)"),
    "gelu": (5, "0.5 * x * (1 + erf(x / sqrt(2)))"),
    "mish": (5, "x * tanh(softplus(x))"),
    "exponential": (1, "exp(x)"),
    "softmax": (5, "exp(x - max) / sum(exp(x - max))"),
    "log_softmax": (5, "x - max - log(sum(exp(x - max)))"),
}

#: FLOPs per element TensorFlow 2.21's profiler counts for each Keras
#: activation, measured with tfprof on an ``Activation`` layer: Relu, Sigmoid,
#: Tanh, Elu ... have no FLOPs statistics (0); Softmax is registered at 5;
#: gelu, silu, hard_sigmoid, hard_silu and mish are built from Mul/Add/Neg/
#: RealDiv ops that are counted (1 each) next to ops that are not (Erfc, Sigmoid ...).
TF_ACTIVATION_FLOPS_PER_ELEMENT: dict[str, int] = {
    "linear": 0, "relu": 0, "relu6": 0, "leaky_relu": 0, "elu": 0, "selu": 0, "sigmoid": 0,
    "tanh": 0, "softplus": 0, "softsign": 0, "exponential": 0, "log_softmax": 0,
    "softmax": 5, "gelu": 4, "silu": 2, "hard_sigmoid": 2, "hard_silu": 3, "mish": 1,
}


def activation_cost(function: Any) -> tuple[str, int] | None:
    """(name, formula FLOPs per element) of a Keras activation; None if it has no entry."""
    name = getattr(function, "__name__", repr(function))
    if name not in ACTIVATION_FLOPS_PER_ELEMENT or keras.activations.get(name) is not function:
        return None
    return name, ACTIVATION_FLOPS_PER_ELEMENT[name][0]
