"""The latency model on synthetic CNNs whose step times a known roofline law generates.

Machine: peaks of 1 GFLOP/s and 1 GB/s (roofline time in us = max(blocked
FLOPs, bytes) / 1000), 16 float lanes, no cache sizes (no bytes beyond L2).
The law, in us: 40 per step; per Conv2D 1.5 x roofline + 2 per op; per
MaxPooling2D 3 x roofline + 1 per op; per Dense 1.2 x roofline + 4 per op.
Every conv is followed by one pool (3 ops and 1 op), so their per-op costs
cannot be told apart: the fit ties them to one coefficient, (3 x 2 + 1 x 1)
/ (3 + 1) = 1.75 us per op, which predicts exactly what the law does.
"""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from tfprofscale.audit.latency import ConfigSample, LatencyModel, fit_latency_model, layer_type_fits
from tfprofscale.audit.latency_features import Peaks
from tfprofscale.profiling.runtime.machine_peaks import MachineTraits
from tfprofscale.errors import InputError
from tfprofscale.records import LayerRow

NO_CACHES = MachineTraits(vector_floats=16, l2_bytes=None, l3_bytes=None)
ONE_GIGA = Peaks(flops_per_s=1e9, bytes_per_s=1e9)
OVERHEAD_US = 40.0
LAW = {"Conv2D": (1.5, 2.0), "MaxPooling2D": (3.0, 1.0), "Dense": (1.2, 4.0)}  # x roofline, us per op


def row(name, layer_type, output_shape, params, flops, in_elements, ops, geometry):
    """A layer row with what the features read; ``roofline_us`` worked out by hand alongside."""
    out_elements = math.prod(output_shape)
    channels = output_shape[-1]
    blocked = flops * math.ceil(channels / 16) * 16 / channels
    bytes_moved = 4 * (in_elements + params + out_elements)
    layer = LayerRow(name=name, type=layer_type, output_shape=output_shape, params=params, analytic_flops=flops,
                     analytic_macs=None, graph_flops=flops, activation_bytes=4 * out_elements, time_us=None,
                     achieved_gflops=None, ops=[f"{name}/op{i}" for i in range(ops)], geometry=geometry)
    layer.roofline_us = max(blocked, bytes_moved) / 1e3  # by hand: 1 FLOP and 1 byte per ns
    return layer


def conv(index, batch, side, c_in, c_out, k=3):
    flops = 2 * batch * side * side * k * k * c_in * c_out + batch * side * side * c_out  # conv + bias
    return row(f"conv{index}", "Conv2D", [batch, side, side, c_out], k * k * c_in * c_out + c_out, flops,
               batch * side * side * c_in, 3,
               {"batch": batch, "in_h": side, "in_w": side, "in_channels": c_in})


def pool(index, batch, side, channels):
    half = side // 2
    return row(f"pool{index}", "MaxPooling2D", [batch, half, half, channels], 0, 4 * batch * half * half * channels,
               batch * side * side * channels, 1, {"batch": batch, "in_h": side, "in_w": side, "channels": channels})


def dense(name, batch, n_in, n_out, ops):
    return row(name, "Dense", [batch, n_out], n_in * n_out + n_out, 2 * batch * n_in * n_out + batch * n_out,
               batch * n_in, ops, {"rows": batch, "in_features": n_in})


def free(name, layer_type, shape):
    return LayerRow(name=name, type=layer_type, output_shape=shape, params=0, analytic_flops=0, analytic_macs=0,
                    graph_flops=0, activation_bytes=0, time_us=None, achieved_gflops=None)


def cnn(n_conv, side, batch, filters, n_hidden):
    """n x (conv + pool), Flatten, n_hidden Dense(32, relu) (3 ops), Dense(10) logits (2 ops)."""
    layers, channels = [free("image", "InputLayer", [batch, side, side, 3])], 3
    for index in range(n_conv):
        layers += [conv(index, batch, side, channels, filters), pool(index, batch, side, filters)]
        side, channels = side // 2, filters
    layers.append(free("flatten", "Flatten", [batch, side * side * channels]))
    width = side * side * channels
    for index in range(n_hidden):
        layers.append(dense(f"fc{index}", batch, width, 32, ops=3))
        width = 32
    return layers + [dense("logits", batch, width, 10, ops=2)]


def true_step_ms(layers):
    layer_us = sum(LAW[r.type][0] * r.roofline_us + LAW[r.type][1] * len(r.ops) for r in layers if r.type in LAW)
    return (OVERHEAD_US + layer_us) / 1e3


def sample(n_conv, side, batch, filters, n_hidden):
    layers = cnn(n_conv, side, batch, filters, n_hidden)
    config = {"n_conv": n_conv, "side": side, "batch": batch, "filters": filters, "n_hidden": n_hidden}
    return ConfigSample(",".join(f"{k}={v}" for k, v in config.items()), config, layers, true_step_ms(layers),
                        sum(r.graph_flops for r in layers))


TRAINING = [sample(n, side, batch, filters, hidden)
            for n, side, batch, filters, hidden in [
                (1, 16, 1, 8, 1), (2, 16, 1, 16, 0), (1, 32, 2, 8, 0), (2, 32, 1, 32, 1), (1, 16, 4, 32, 1),
                (2, 16, 2, 8, 1), (1, 32, 1, 16, 0), (2, 32, 4, 16, 0), (1, 16, 2, 16, 0), (2, 32, 2, 8, 1)]]
BEYOND = [sample(4, 64, 1, 16, 1), sample(3, 128, 2, 32, 2), sample(2, 32, 16, 8, 1), sample(5, 64, 8, 32, 0)]


def fitted() -> LatencyModel:
    return fit_latency_model(TRAINING, traits=NO_CACHES, peaks=ONE_GIGA)


def test_the_fit_recovers_the_generating_coefficients():
    model = fitted()
    assert model.overhead_us == pytest.approx(OVERHEAD_US, rel=1e-6)
    for layer_type, (per_roofline, _) in LAW.items():
        assert model.coefficients_us[layer_type]["roofline_us"] == pytest.approx(per_roofline, rel=1e-6)
    assert model.coefficients_us["Dense"]["ops"] == pytest.approx(4.0, rel=1e-6)
    assert model.coefficients_us["Conv2D"]["bytes_beyond_l2"] == 0.0  # no cache size: never non-zero


def test_the_fit_extrapolates_to_more_layers_larger_inputs_and_batches():
    model = fitted()
    largest = max(s.measured_ms for s in TRAINING)
    assert all(s.measured_ms > largest for s in BEYOND[:2])  # outside the training range
    for beyond in BEYOND:
        assert model.predict_ms(beyond.layers) == pytest.approx(beyond.measured_ms, rel=1e-6)


def test_with_two_percent_noise_the_extrapolation_stays_within_the_noise():
    from dataclasses import replace

    noise = [0.02, -0.02, 0.01, -0.01, 0.02, -0.02, 0.0, 0.01, -0.01, 0.0]  # fixed, so the test is deterministic
    noisy = [replace(s, measured_ms=s.measured_ms * (1 + e)) for s, e in zip(TRAINING, noise)]
    model = fit_latency_model(noisy, traits=NO_CACHES, peaks=ONE_GIGA)
    for beyond in BEYOND:
        assert abs(model.predict_ms(beyond.layers) / beyond.measured_ms - 1) < 0.02


def test_conv_and_pool_per_op_costs_are_tied_and_said_so():
    model = fitted()
    shared = (3 * 2.0 + 1 * 1.0) / (3 + 1)
    assert model.coefficients_us["Conv2D"]["ops"] == pytest.approx(shared, rel=1e-6)
    assert model.coefficients_us["MaxPooling2D"]["ops"] == pytest.approx(shared, rel=1e-6)
    tie = "Conv2D and MaxPooling2D: one shared ops coefficient (they always occur in the same proportion in the data)"
    assert model.ties == [tie]
    assert "not separable: Conv2D and MaxPooling2D" in "\n".join(model.lines())


def test_zero_cost_layers_are_priced_at_zero_seen_or_not():
    model = fitted()
    assert model.free_layer_types == ["Flatten", "InputLayer"]
    unseen = [free("drop", "Dropout", [1, 32]), free("noise", "GaussianNoise", [1, 32]),
              free("reshape", "Reshape", [1, 4, 8]), free("perm", "Permute", [1, 8, 4])]
    layers = cnn(1, 16, 1, 8, 1)
    with_free = layers[:-1] + unseen + layers[-1:]
    assert model.predict_ms(with_free) == pytest.approx(model.predict_ms(layers))
    assert model.layer_times_us(unseen) == [0.0, 0.0, 0.0, 0.0]


def test_a_working_layer_type_never_fitted_is_refused_by_name(tmp_path):
    model = fitted()
    norm = LayerRow(name="bn9", type="BatchNormalization", output_shape=[1, 8], params=32, analytic_flops=32,
                    analytic_macs=0, graph_flops=32, activation_bytes=32, time_us=None, achieved_gflops=None)
    with pytest.raises(InputError, match="bn9.*BatchNormalization"):
        model.predict_ms([norm])
    model.save(tmp_path / "m.json")
    assert LatencyModel.load(tmp_path / "m.json") == model
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="not a latency model"):
        LatencyModel.load(tmp_path / "other.json")


def test_fitting_needs_three_configurations():
    with pytest.raises(InputError, match="at least 3"):
        fit_latency_model(TRAINING[:2], traits=NO_CACHES, peaks=ONE_GIGA)


def test_features_against_a_cache_size():
    # conv of cnn(1, 16, 1, 8): reads 16*16*3 + 224 params, writes 16*16*8 floats = (768 + 224 + 2048) * 4 bytes
    layer = conv(0, 1, 16, 3, 8)
    with_l2 = fit_latency_model(TRAINING, traits=MachineTraits(16, 10_000, None), peaks=ONE_GIGA)
    from tfprofscale.audit.latency_features import latency_features

    work = latency_features(layer, with_l2.traits, ONE_GIGA)
    assert work["bytes_beyond_l2"] == (768 + 224 + 2048) * 4 - 10_000
    assert work["roofline_us"] == pytest.approx(layer.roofline_us) and work["ops"] == 3


# --- per-layer-type lines ----------------------------------------------------------------------------------

def test_layer_type_fit_recovers_a_known_line():
    flops = [1e5, 2e5, 4e5, 8e5, 1.6e6]
    frame = pd.DataFrame({"type": "Conv2D", "name": ["c0", "c1", "c2", "c3", "c4"], "graph_flops": flops,
                          "analytic_flops": flops, "time_us": [30.0, 40.0, 60.0, 100.0, 180.0]})  # 1e-4 us/FLOP + 20
    (fit,) = layer_type_fits(frame)
    assert fit.layer_type == "Conv2D" and fit.n == 5
    assert fit.slope_us_per_flop == pytest.approx(1e-4) and fit.intercept_us == pytest.approx(20.0)
    assert fit.achieved_gflops == pytest.approx(10.0)  # 1 FLOP per 0.1 ns
    assert fit.r2 == pytest.approx(1.0)


def test_layer_type_fit_weighs_relative_errors_and_gives_no_r2_from_few_layers():
    # times 10, 20, 1000 us at 1, 2, 3 kFLOP: minimise sum(((a x + b - t) / t)^2); the big layer does not rule
    frame = pd.DataFrame({"type": "MaxPooling2D", "name": ["p0", "p1", "p2"], "config_id": ["a", "b", "c"],
                          "graph_flops": [1000, 2000, 3000], "analytic_flops": [1000, 2000, 3000],
                          "time_us": [10.0, 20.0, 1000.0]})
    (fit,) = layer_type_fits(frame)
    # weighted normal equations, rows (x/t, 1/t) against 1: x/t = 100, 100, 3; 1/t = 0.1, 0.05, 0.001
    import numpy as np

    rows = np.array([[100, 0.1], [100, 0.05], [3, 0.001]])
    a, b = np.linalg.solve(rows.T @ rows, rows.T @ np.ones(3))
    assert (fit.slope_us_per_flop, fit.intercept_us) == (pytest.approx(a), pytest.approx(b))
    assert fit.r2 is None and "no R² from 3 points (needs 4)" in fit.lines()[0]
    assert fit.largest_residuals[0]["layer"] == "p2"  # 3 kFLOP at 1000 us: the line cannot reach it


# --- fit / predict on the command line --------------------------------------------------------------------

def write_latency_model(path):
    """A hand-set model: 100 us per step, conv 2 x roofline, 1 us per pool op, 7 us per Dense op."""
    model = LatencyModel(features=("roofline_us", "bytes_beyond_l2", "ops"),
                         coefficients_us={"Conv2D": {"roofline_us": 2.0}, "MaxPooling2D": {"ops": 1.0},
                                          "Dense": {"ops": 7.0}},
                         overhead_us=100.0, free_layer_types=["Flatten", "InputLayer"], n_configs=3,
                         traits=NO_CACHES, peaks=ONE_GIGA)
    model.save(path)
    return path


def test_predict_prints_the_hand_computed_latency(capsys, cnn_file, tmp_path):
    from tests.test_cli_profile import run_cli

    model_json = write_latency_model(tmp_path / "model.json")
    status, out, _ = run_cli(capsys, "predict", str(model_json), str(cnn_file), "--batch-size", "2")
    assert status == 0
    # conv: graph FLOPs 2 * 2*8*8*8 * 9 + 2*8*8*8 (BiasAdd) = 19456, 8 channels blocked to 16: 38912 FLOPs;
    # bytes (200 input + 80 params + 1024 output floats) * 4 = 5216: roofline 38.912 us, x 2 = 77.824 us
    # pool: 1 op -> 1 us; Dense: 2 ops (MatMul, BiasAdd) -> 14 us; overhead 100 us
    assert "predicted step latency: 0.193 ms (batch 2)" in out  # 192.824 us
    assert "conv (Conv2D)" in out and "77.8 us" in out


def test_predict_prices_fashion_mnist_dropout_at_zero(capsys, tmp_path):
    from pathlib import Path

    from tests.test_cli_profile import run_cli

    model_json = write_latency_model(tmp_path / "model.json")
    fashion = Path(__file__).resolve().parent.parent / "models" / "fashion_mnist.py"
    status, out, err = run_cli(capsys, "predict", str(model_json), str(fashion))
    assert status == 0, err
    dropout_line = next(line for line in out.splitlines() if line.startswith("dropout (Dropout)"))
    assert dropout_line.split()[-2] == "0.0"


def test_fit_then_predict_round_trip_on_a_tiny_real_sweep(capsys, cnn_file, tmp_path, monkeypatch):
    from tests.test_cli_profile import run_cli
    from tfprofscale.profiling.runtime import machine_peaks as roofline
    from tfprofscale.profiling.runtime import measure as runtime
    from tfprofscale.profiling.pipeline import ProfileOptions, run_profile

    peaks = roofline.MachinePeaks(flops_per_s=1e9, bytes_per_s=1e9, host="h", tensorflow="t")
    monkeypatch.setattr(roofline, "machine_peaks", lambda *args, **kwargs: peaks)
    folder = tmp_path / "sweep"
    (folder / "reports").mkdir(parents=True)
    for filters, batch in ((4, 1), (8, 2), (16, 1)):
        report = run_profile(str(cnn_file), ProfileOptions(batch_size=batch, steps=3, warmup=1, trace=False,
                                                           params={"filters": filters}))
        config_id = f"filters={filters},batch_size={batch},r0"
        record = {"config_id": config_id, "config": {"filters": filters, "batch_size": batch}, "repeat": 0,
                  "status": "ok", "error": None, "elapsed_s": 1.0, "report": report.to_dict()}
        (folder / "reports" / f"{config_id}.json").write_text(json.dumps(record))
    status, out, _ = run_cli(capsys, "fit", str(folder), "--out", str(tmp_path / "model.json"))
    assert status == 0 and "no held-out validation" in out
    saved = json.loads((tmp_path / "model.json").read_text())
    assert set(saved["coefficients_us"]) == {"Conv2D", "MaxPooling2D", "Dense"}
    assert saved["free_layer_types"] == ["Flatten", "InputLayer"] and saved["n_configs"] == 3
    monkeypatch.setattr(runtime, "measure", lambda *args, **kwargs: pytest.fail("predict ran the model"))
    status, out, _ = run_cli(capsys, "predict", str(tmp_path / "model.json"), str(cnn_file),
                             "--param", "filters=8", "--batch-size", "2")
    assert status == 0
    parts = [float(line.split()[-2]) for line in out.splitlines() if line.endswith(" us")]
    total_ms = float(out.split("predicted step latency: ")[1].split()[0])
    assert len(parts) == 5 + 1  # five layers and the overhead
    assert math.isclose(sum(parts) / 1e3, total_ms, abs_tol=1e-3)


def test_fit_on_a_folder_without_reports(capsys, tmp_path):
    from tests.test_cli_profile import assert_one_line_error, run_cli

    status, _, err = run_cli(capsys, "fit", str(tmp_path), "--out", str(tmp_path / "m.json"))
    assert_one_line_error(status, err, "no finished configuration")


def test_predict_with_a_missing_model_file(capsys, cnn_file, tmp_path):
    from tests.test_cli_profile import assert_one_line_error, run_cli

    status, _, err = run_cli(capsys, "predict", str(tmp_path / "nope.json"), str(cnn_file))
    assert_one_line_error(status, err, "nope.json", "does not exist")


def test_predict_names_the_layer_the_model_cannot_price(capsys, cnn_file, tmp_path):
    from tests.test_cli_profile import assert_one_line_error, run_cli

    model_json = tmp_path / "conv_only.json"
    conv_only = LatencyModel(("roofline_us",), {"Conv2D": {"roofline_us": 1.0}}, 10.0, ["Flatten", "InputLayer"], 3,
                             NO_CACHES, ONE_GIGA)
    conv_only.save(model_json)
    status, _, err = run_cli(capsys, "predict", str(model_json), str(cnn_file))
    assert_one_line_error(status, err, "pool", "MaxPooling2D")


def test_a_layer_type_the_fit_cannot_separate_is_shown_as_left_out_not_as_free():
    # Every configuration ends in the same Dense(64 -> 10): its columns are constant, like the overhead's, so the
    # fit leaves Dense out and the overhead takes its time: 40 us + 1.2 x roofline + 4 us per op for 2 ops.
    from tfprofscale.cli.fit import prediction_lines

    head = dense("logits", 1, 64, 10, ops=2)
    samples = []
    for n, side, batch, filters in [(1, 16, 1, 8), (2, 16, 1, 16), (1, 32, 2, 8), (2, 32, 1, 32), (1, 16, 4, 32),
                                    (2, 16, 2, 8), (1, 32, 1, 16), (2, 32, 4, 16)]:
        layers = cnn(n, side, batch, filters, 0)[:-1] + [head]
        samples.append(ConfigSample(f"c{len(samples)}", {}, layers, true_step_ms(layers), 0))
    model = fit_latency_model(samples, traits=NO_CACHES, peaks=ONE_GIGA)
    dense_us = 1.2 * head.roofline_us + 4.0 * 2
    assert model.left_out_types == ["Dense"]
    assert model.overhead_us == pytest.approx(OVERHEAD_US + dense_us, rel=1e-6)
    layers = samples[0].layers
    assert [model.left_out(r) for r in layers] == [False, False, False, False, True]  # image, conv0, pool0, flatten
    lines = prediction_lines(model, layers, 1)
    assert lines[4] == "logits (Dense)" + " " * 6 + "  " + " " * 9 + "– us  (left out of the fit)"  # width 20
    assert "left out of the fit: Dense" in lines[-2]
    assert lines[-1] == f"predicted step latency: {samples[0].measured_ms:.3f} ms (batch 1)"
