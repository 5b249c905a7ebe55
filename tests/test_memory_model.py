"""The memory estimate: liveness in execution order with buffer forwarding, oneDNN workspaces, named terms."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from tfprofscale.profiling.memory.estimate import (
    ONEDNN_CONV_SCRATCH_BYTES, Buffer, estimate_memory, layer_buffers, memory_causes, peak_live, tracked_size,
)


def test_chain_with_forwarding_by_hand():
    chain = [Buffer("x", 100, kind="input"),
             Buffer("conv", 300, ("x",), {"convolution scratch": 50}),
             Buffer("relu", 300, ("conv",), kind="forward"),
             Buffer("pool", 80, ("relu",), {"max-pool workspace": 20}),
             Buffer("dense", 200, ("pool",))]
    peak = peak_live(chain)
    # x is fed (resident, not transient). conv: 300 + scratch 50 = 350. relu writes into conv's dying buffer: 300.
    # pool: 300 + 80 + workspace 20 = 400. dense: 80 + 200 = 280. Peak 400 at pool; the sum of outputs is 880.
    assert peak.bytes == 300 + 80 + 20 and peak.layer == "pool"
    assert peak.activation_bytes == 380 and peak.workspace == {"max-pool workspace": 20}
    assert set(peak.live) == {"conv", "pool"}


def test_residual_block_by_hand():
    block = [Buffer("x", 64, kind="input"),
             Buffer("a", 400, ("x",)),                       # conv
             Buffer("b", 400, ("a",)),                       # conv
             Buffer("bn", 400, ("b",), kind="forward"),      # b dies here: written in place
             Buffer("add", 400, ("a", "bn"), kind="forward"),  # both die here: written into a's buffer
             Buffer("relu", 400, ("add",), kind="forward"),
             Buffer("head", 40, ("relu",))]
    peak = peak_live(block)
    # The skip a stays live over b and bn: a + b = 800 at b (and at bn, at add). A chain model
    # (a dead after b reads it) would say 400 + 400 as well at b but 400 after; here head sees 400 + 40.
    assert peak.bytes == 800 and peak.layer == "b" and set(peak.live) == {"a", "b"}


def test_branches_and_a_forward_that_cannot_reuse_a_live_input():
    graph = [Buffer("x", 64, kind="input"),
             Buffer("a", 400, ("x",)),
             Buffer("bn", 400, ("a",), kind="forward"),      # a is read later by add: bn needs its own buffer
             Buffer("b", 200, ("bn",)),
             Buffer("c", 100, ("a",)),
             Buffer("cat", 300, ("b", "c"))]
    # a: 400; bn: 400 + 400; b: a + bn + b = 1000 (bn dies at b); c: a + b + c = 700; cat: b + c + cat = 600
    assert peak_live(graph).bytes == 1000 and peak_live(graph).layer == "b"


def test_a_view_keeps_the_buffer_it_views_alive():
    graph = [Buffer("x", 40, kind="input"), Buffer("conv", 400, ("x",)), Buffer("flatten", 0, ("conv",), kind="view"),
             Buffer("dense", 10, ("flatten",)), Buffer("out", 4, ("dense",))]
    # dense reads conv's buffer through the view: 400 + 10 (without the alias conv would be dead after flatten)
    assert peak_live(graph).bytes == 410 and peak_live(graph).layer == "dense"


def row(name, layer_type, shape, activation_bytes, params=0, geometry=None, inbound=None):
    return SimpleNamespace(name=name, type=layer_type, output_shape=list(shape), activation_bytes=activation_bytes,
                           params=params, geometry=geometry or {}, inbound=inbound)


CONV_1X1 = {"in_channels": 8, "kernel_h": 1, "kernel_w": 1, "out_h": 8, "out_w": 8}


def test_layer_kinds_and_onednn_workspaces_from_report_rows():
    rows = [row("image", "InputLayer", (2, 8, 8, 8), 2 * 8 * 8 * 8 * 4, inbound=()),
            row("pad", "ZeroPadding2D", (2, 10, 10, 8), 2 * 10 * 10 * 8 * 4, inbound=("image",)),
            row("conv", "Conv2D", (2, 8, 8, 16), 2 * 8 * 8 * 16 * 4, 8 * 16, CONV_1X1, ("pad",)),
            row("pool", "MaxPooling2D", (2, 4, 4, 16), 2 * 4 * 4 * 16 * 4, inbound=("conv",)),
            row("flatten", "Flatten", (2, 256), 0, inbound=("pool",)),
            row("bn", "BatchNormalization", (2, 256), 2 * 256 * 4, 4 * 256, inbound=("flatten",))]
    buffers = {b.name: b for b in layer_buffers(rows, threads=2)}
    assert [buffers[n].kind for n in ("image", "pad", "conv", "pool", "flatten", "bn")] == \
        ["input", "view", "new", "new", "view", "forward"]      # the pad is fused into the conv that reads it
    assert buffers["conv"].workspace == {"convolution scratch": ONEDNN_CONV_SCRATCH_BYTES}   # 1x1: no im2col
    assert buffers["pool"].workspace == {"max-pool workspace": 2 * 4 * 4 * 16}              # 1 B per element
    estimate = estimate_memory(SimpleNamespace(layers=rows), threads=2)
    # conv: out 8192 + scratch 12,336 = 20,528; pool: 8192 + 2048 + 512 = 10,752; bn writes into the pool buffer
    assert estimate.peak_layer == "conv"
    assert estimate.terms == {"parameters": (128 + 1024) * 4, "input": 4096, "activations": 8192, "layer internals": 0,
                              "convolution scratch": 12_336, "im2col": 0, "matmul scratch": 0, "max-pool workspace": 0}
    assert estimate.total_bytes == 4608 + 4096 + 8192 + 12_336


def test_single_channel_convolution_takes_the_gemm_path_with_im2col():
    geometry = {"in_channels": 1, "kernel_h": 3, "kernel_w": 3, "out_h": 28, "out_w": 28}
    (conv,) = layer_buffers([row("conv", "Conv2D", (1, 28, 28, 8), 28 * 28 * 8 * 4, 80, geometry)], threads=2)
    assert conv.workspace["im2col"] == 2 * (28 * 28) * (3 * 3 * 1) * 4     # one image's lowered matrix per thread


def test_causes_split_measured_minus_estimated_term_by_term():
    rows = [row("image", "InputLayer", (1, 4), 16, inbound=()), row("dense", "Dense", (1, 4), 16, 20, {}, ("image",))]
    estimate = estimate_memory(SimpleNamespace(layers=rows))
    record = SimpleNamespace(weights_bytes=72, input_bytes=16, measured_peak_bytes=16 + 256,
                             measured_terms={"parameters": 72, "input": 16, "activations": 16, "workspace": 256})
    causes = {c.cause.split(" ")[0]: c.bytes for c in memory_causes(estimate, record)}
    # parameters 80 B estimated, 72 held; activations equal; a 256 B temporary the model does not know
    assert causes == {"weights": 72 - 80, "kernel": 256}
    assert sum(causes.values()) == (72 + 16 + 272) - estimate.total_bytes


def test_allocator_view_of_one_allocation():
    assert tracked_size(262_143) == 0
    assert tracked_size(262_144) == 262_144
    assert tracked_size(262_145) == 262_144 + 256


ALLOCATOR_PROBE = """
import json, sys
import tensorflow as tf

@tf.function
def fill(n):
    return tf.reduce_sum(tf.ones([n], tf.float32))

peaks = {}
for nbytes in map(int, sys.argv[1:]):
    n = tf.constant(nbytes // 4)
    fill(n)
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
    except ValueError:
        peaks[nbytes] = None
        continue
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    fill(n)
    peaks[nbytes] = tf.config.experimental.get_memory_info("CPU:0")["peak"] - before
print(json.dumps(peaks))
"""
SIZES = [262_140, 262_144, 262_148, 1_000_004]


@pytest.fixture(scope="module")
def allocator_peaks() -> dict[int, int | None]:
    """The allocator's peak for one allocation of each size, in a fresh process: the statistics are
    process-wide, and chunks freed by earlier tests would be split and reused."""
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE, *map(str, SIZES)],
                            capture_output=True, text=True, timeout=300, check=True)
    return {int(k): v for k, v in json.loads(result.stdout.splitlines()[-1]).items()}


@pytest.mark.parametrize("nbytes", SIZES)
def test_tracked_size_is_what_the_allocator_really_shows(nbytes, allocator_peaks):
    peak = allocator_peaks[nbytes]
    if peak is None:
        pytest.skip("no CPU allocator statistics here (oneDNN off)")
    assert peak == tracked_size(nbytes)


def test_recurrent_layers_are_named_as_not_modelled():
    rows = [row("tokens", "InputLayer", (1, 20, 16), 1280, inbound=()),
            row("lstm", "LSTM", (1, 20, 32), 2560, 6272, {}, ("tokens",))]
    assert estimate_memory(SimpleNamespace(layers=rows)).unmodelled == ("lstm",)
