"""What the latency model prices: each layer's work against the machine, and which layers cost nothing.

Per layer (``latency_features``):

- ``roofline_us``: the roofline time, ``max(compute, memory)`` with compute
  = FLOPs (channels rounded up to the vector width: oneDNN computes 16
  float channels at a time on AVX-512, so 8 filters cost what 16 do) over
  the measured peak FLOP/s, and memory = bytes moved
  (``roofline.layer_bytes_moved``: inputs, parameters, outputs once) over
  the measured bandwidth. A time that scales with size by construction.
- ``bytes_beyond_l2``: bytes moved beyond the L2 cache size, streamed from
  L3 or memory rather than cache-resident: what makes large layers slower
  than their roofline.
- ``ops``: the layer's computing graph ops: a fixed cost per op.

Zero-cost layers (``is_free``): identity at inference (``IDENTITY_LAYER_TYPES``:
InputLayer, Dropout, Flatten, Reshape ...) or doing no work (no parameters,
no FLOPs, no op without a count), priced at zero whether fitting saw them or not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tfprofscale.audit.roofline import layer_bytes_moved, layer_features
from tfprofscale.profiling.runtime.machine_peaks import MachineTraits

if TYPE_CHECKING:
    from tfprofscale.records import LayerRow

PER_LAYER_FEATURES = ("roofline_us", "bytes_beyond_l2", "ops")
IDENTITY_LAYER_TYPES = frozenset({
    "InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "AlphaDropout", "ActivityRegularization", "Flatten", "Reshape", "Identity",
})


@dataclass(frozen=True)
class Peaks:
    """The measured compute and memory speeds the roofline feature is priced against."""

    flops_per_s: float
    bytes_per_s: float


def is_free(row: "LayerRow") -> bool:
    """True for a layer that is an identity at inference or does no work."""
    if row.type in IDENTITY_LAYER_TYPES:
        return True
    flops = row.graph_flops if row.graph_flops is not None else row.analytic_flops
    return not row.params and not flops and not row.uncounted_ops


def latency_features(row: "LayerRow", traits: MachineTraits, peaks: Peaks) -> dict[str, float]:
    """The layer's roofline time (us), bytes beyond L2 and op count (unknown bytes count as none)."""
    work = layer_features(row, traits)
    compute_us = work["blocked_flops"] / peaks.flops_per_s * 1e6
    memory_us = float(layer_bytes_moved(row) or 0) / peaks.bytes_per_s * 1e6
    return {"roofline_us": max(compute_us, memory_us), "bytes_beyond_l2": work["bytes_beyond_l2"],
            "bytes_beyond_l3": work["bytes_beyond_l3"], "ops": float(len(row.ops))}
