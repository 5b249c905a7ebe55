"""Optimizers of the training step: the state they keep per variable and their arithmetic per element.

``optimizer_spec`` reads a real ``keras.optimizers`` object; the per-element
update counts are read off Keras 3's ``update_step`` code (docs/training.md
lists them per optimizer). ``make_optimizer`` builds the ``--optimizer`` choices.
"""
from __future__ import annotations

from typing import Any

from tfprofscale.records import OptimizerSpec

#: The ``--optimizer`` choices.
OPTIMIZER_CHOICES = ("sgd", "momentum", "adam", "adamw", "rmsprop")


def optimizer_spec(optimizer: Any) -> OptimizerSpec:
    """Slots per variable and update flops per parameter element of a Keras 3 optimizer.

    Raises InputError for an optimizer class without a known update count.
    """
    raise NotImplementedError("train records: signature only, body follows")


def make_optimizer(name: str) -> Any:
    """The Keras optimizer for ``--optimizer NAME``; InputError naming the choices for any other name."""
    raise NotImplementedError("train records: signature only, body follows")
