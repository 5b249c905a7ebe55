"""The train-step memory ledger: weights, gradients, optimizer slots, saved activations, temporaries, input
and labels, estimated from the layers and, where the allocation records tell, measured.
"""
from __future__ import annotations

from typing import Sequence

from tfprofscale.profiling.memory.step_memory import Allocation
from tfprofscale.records import LayerCost, LayerInfo, Ledger, OptimizerSpec

TERMS = ("weights", "gradients", "optimizer slots", "saved activations", "temporaries", "input and labels")


def estimate_ledger(layers: Sequence[LayerInfo], costs: Sequence[LayerCost], optimizer_spec: OptimizerSpec,
                    batch_size: int, policy: str | None = None, *, input_bytes: int | None = None,
                    label_bytes: int = 0) -> Ledger:
    """The estimated ledger of one training step of the model made of ``layers`` (batch fixed in their shapes).

    Weights at their variable dtype (float32 master weights under mixed
    precision), gradients for trainable weights only, slots from the spec,
    activations saved for the backward pass by TensorFlow's tape rules at the
    compute dtype, the largest temporary, and the fed input and labels.
    """
    raise NotImplementedError("train records: signature only, body follows")


def measured_ledger_terms(ledger: Ledger, allocations: Sequence[Allocation],
                          total_measured_bytes: int | None = None) -> Ledger:
    """``ledger`` with measured bytes filled in where one traced train step's allocation records tell.

    Ops are classed by name: forward ops, ``gradient_tape/...`` ops (backward)
    and optimizer ops; records cannot see variables, so weights and slots stay None.
    """
    raise NotImplementedError("train records: signature only, body follows")
