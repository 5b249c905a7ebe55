"""Document 002's memory model: peak of live activations (not their sum), workspace, the allocator's view."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import tensorflow as tf

from tfprofscale.audit.memory_model import (
    Buffer, MemoryEstimate, estimate_memory, im2col_workspace_bytes, memory_causes, parameter_tensors, peak_live,
    tracked_size,
)


def test_chain_peak_is_the_largest_adjacent_pair_not_the_sum():
    chain = [Buffer("a", 100), Buffer("b", 300, ("a",)), Buffer("c", 50, ("b",)), Buffer("d", 200, ("c",))]
    peak = peak_live(chain)
    # live while b runs: a (its input) + b = 400; while c: 300 + 50; while d: 50 + 200; the sum is 650
    assert peak.bytes == 100 + 300
    assert peak.layer == "b" and set(peak.live) == {"a", "b"}


def test_branches_keep_a_tensor_alive_until_its_last_consumer():
    graph = [Buffer("x", 40), Buffer("a", 100, ("x",)), Buffer("b", 200, ("x",)), Buffer("c", 30, ("a", "b"))]
    # x lives until b (step 2), a until c (step 3): while b runs x + a + b = 340; while c: a + b + c = 330
    peak = peak_live(graph)
    assert peak.bytes == 40 + 100 + 200 and peak.layer == "b"


def test_a_view_keeps_the_buffer_it_views_alive():
    graph = [Buffer("x", 40), Buffer("flatten", 0, ("x",)), Buffer("dense", 10, ("flatten",))]
    # dense reads x's buffer through the view: x + dense = 50 (without the alias x would be dead: 10)
    assert peak_live(graph).bytes == 40 + 10


def test_a_model_output_lives_to_the_end():
    graph = [Buffer("x", 10), Buffer("side", 500, ("x",)), Buffer("y", 20, ("x",)), Buffer("z", 5, ("y",))]
    # side is consumed by nobody (a model output): it stays live to the last step, x + side + y = 530
    assert peak_live(graph).bytes == 10 + 500 + 20


def test_workspace_counts_only_while_its_layer_runs():
    chain = [Buffer("a", 100), Buffer("b", 300, ("a",), workspace_bytes=1000), Buffer("c", 50, ("b",))]
    assert peak_live(chain).bytes == 100 + 300 + 1000


def test_allocator_view_of_one_allocation():
    assert tracked_size(262_143) == 0
    assert tracked_size(262_144) == 262_144
    assert tracked_size(262_145) == 262_144 + 256


def test_im2col_workspace_and_parameter_tensors():
    conv = {"batch": 2, "out_h": 5, "out_w": 5, "kernel_h": 3, "kernel_w": 3, "in_channels": 2, "out_channels": 4,
            "stride_h": 1, "stride_w": 1, "groups": 1, "use_bias": True}
    assert im2col_workspace_bytes("Conv2D", conv, 4) == (2 * 5 * 5) * (3 * 3 * 2) * 4
    assert im2col_workspace_bytes("Conv2D", {**conv, "kernel_h": 1, "kernel_w": 1}, 4) == 0
    assert im2col_workspace_bytes("Dense", {}, 4) == 0
    assert parameter_tensors("Conv2D", conv, 3 * 3 * 2 * 4 + 4) == [3 * 3 * 2 * 4, 4]
    dense = {"in_features": 6, "out_features": 3, "use_bias": False}
    assert parameter_tensors("Dense", dense, 18) == [18]


def row(name, layer_type, shape, activation_bytes, params=0, geometry=None, inbound=None):
    return SimpleNamespace(name=name, type=layer_type, output_shape=list(shape), activation_bytes=activation_bytes,
                           params=params, geometry=geometry or {}, inbound=inbound)


def test_estimate_uses_inbound_names_when_the_report_has_them():
    dense = {"in_features": 4, "out_features": 4, "use_bias": True}
    layers = [row("x", "InputLayer", (1, 4), 16, inbound=()),
              row("a", "Dense", (1, 4), 16, 20, dense, ("x",)),
              row("b", "Dense", (1, 4), 16, 20, dense, ("x",)),
              row("add", "Add", (1, 4), 16, inbound=("a", "b"))]
    report = SimpleNamespace(layers=layers)
    estimate = estimate_memory(report)
    # x lives until b: while b runs x + a + b = 48; parameters: 2 x (16 + 4) floats = 160 B
    assert estimate.activation_peak_bytes == 48 and estimate.activation_sum_bytes == 64
    assert estimate.parameter_bytes == 2 * (16 + 4) * 4
    assert estimate.total_bytes == 160 + 48 and not estimate.chain_assumed
    assert estimate.tracked_total_bytes == 0 and estimate.input_bytes == 16


def estimate(**numbers):
    base = dict(parameter_bytes=0, parameter_tensor_bytes=(), activation_peak_bytes=0, activation_sum_bytes=0,
                workspace_max_bytes=0, peak_layer=None, live_at_peak=(), input_bytes=0, chain_assumed=True)
    return MemoryEstimate(**{**base, **numbers})


def part(causes, prefix):
    """The bytes of the one cause whose label starts with ``prefix``."""
    (found,) = [c.bytes for c in causes if c.cause.startswith(prefix)]
    return found


def test_memory_causes_add_up_to_the_error():
    e = estimate(total_bytes=1_000_000, tracked_unrounded_bytes=900_000, tracked_total_bytes=900_100,
                 tracked_without_workspace_bytes=800_000, tracked_resident_bytes=500_000)
    above = memory_causes(e, 950_000, 520_000)
    assert sum(c.bytes for c in above) == 950_000 - 1_000_000
    assert part(above, "tensors under the allocator's 262,144 B tracking threshold") == 900_000 - 1_000_000
    assert part(above, "allocations rounded up to 256 B") == 900_100 - 900_000
    assert part(above, "im2col workspace bound not seen") == 0          # the peak is above the full estimate
    assert part(above, "buffers TensorFlow holds before the step") == 520_000 - 500_000
    assert part(above, "not in the model, during the step") == 950_000 - 900_100 - 20_000
    below = memory_causes(e, 850_000, 520_000)
    assert part(below, "im2col workspace bound not seen") == 850_000 - 900_100
    assert part(below, "fewer bytes live than modelled") == -20_000     # the resident excess is not in the peak
    assert sum(c.bytes for c in below) == 850_000 - 1_000_000


def allocator_peak(nbytes: int) -> int | None:
    @tf.function
    def fill(n):
        return tf.reduce_sum(tf.ones([n], tf.float32))

    n = tf.constant(nbytes // 4)
    fill(n)
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
    except ValueError:
        return None
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    fill(n)
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] - before


@pytest.mark.parametrize("nbytes", [262_140, 262_144, 262_148, 1_000_004])
def test_tracked_size_is_what_the_allocator_really_shows(nbytes):
    peak = allocator_peak(nbytes)
    if peak is None:
        pytest.skip("no CPU allocator statistics here (oneDNN off)")
    assert peak == tracked_size(nbytes)
