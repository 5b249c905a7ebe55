"""Time fits and the latency model, on timing tables whose true coefficients are known."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tests.test_cli_profile import assert_one_line_error, run_cli
from tests.test_roofline import input_row, make_report
from tfprofscale.errors import InputError
from tfprofscale.audit.latency import (
    ConfigSample, LatencyModel, fit_latency_model, layer_type_fits, nonnegative_relative_least_squares,
)
from tfprofscale.audit.validation import error_summary, flops_proportional_baseline, load_sweep, validate_sweep
from tfprofscale.profiling.report import LayerRow
from tfprofscale.audit.roofline import MachineTraits

NO_CACHES = MachineTraits(vector_floats=16, l2_bytes=None, l3_bytes=None)

# The truth the synthetic tables are made from, in us.
OVERHEAD_US = 50.0
CONV_US_PER_FLOP, CONV_US_PER_LAYER = 1e-3, 20.0   # 1 GFLOP/s, 20 us fixed
DENSE_US_PER_FLOP, DENSE_US_PER_LAYER = 4e-3, 5.0   # 0.25 GFLOP/s, 5 us fixed


def conv(name: str, flops: int, batch: int = 1, positions: int = 1) -> LayerRow:
    """A conv layer whose output size is proportional to its FLOPs (no geometry: no bytes estimate)."""
    return LayerRow(name=name, type="Conv2D", output_shape=[batch, positions, 1, 10], params=10,
                    analytic_flops=flops, analytic_macs=flops // 2, graph_flops=flops,
                    activation_bytes=batch * positions * 10 * 4,
                    time_us=CONV_US_PER_FLOP * flops + CONV_US_PER_LAYER, achieved_gflops=None)


def dense(name: str, flops: int, batch: int = 1) -> LayerRow:
    return LayerRow(name=name, type="Dense", output_shape=[batch, 10], params=10, analytic_flops=flops,
                    analytic_macs=flops // 2, graph_flops=flops, activation_bytes=batch * 40,
                    time_us=DENSE_US_PER_FLOP * flops + DENSE_US_PER_LAYER, achieved_gflops=None)


def true_step_ms(layers: list[LayerRow]) -> float:
    return (OVERHEAD_US + sum(row.time_us or 0.0 for row in layers)) / 1e3


def sample(config_id: str, layers: list[LayerRow]) -> ConfigSample:
    return ConfigSample(config_id, {}, layers, true_step_ms(layers), sum(r.graph_flops or 0 for r in layers))


# --- per-layer-type lines -------------------------------------------------------------------------------

def test_layer_type_fit_recovers_a_known_line():
    flops = [1e5, 2e5, 4e5, 8e5]
    frame = pd.DataFrame({"type": "Conv2D", "name": ["c0", "c1", "c2", "c3"], "graph_flops": flops,
                          "analytic_flops": flops, "time_us": [30.0, 40.0, 60.0, 100.0]})  # 1e-4 us/FLOP + 20
    (fit,) = layer_type_fits(frame)
    assert fit.layer_type == "Conv2D" and fit.n == 4
    assert fit.slope_us_per_flop == pytest.approx(1e-4) and fit.intercept_us == pytest.approx(20.0)
    assert fit.achieved_gflops == pytest.approx(10.0)  # 1 FLOP per 0.1 ns
    assert fit.r2 == pytest.approx(1.0)


def test_layer_type_fit_r2_and_largest_residuals_by_hand():
    # time = 10 + flops / 1000 + e, e = (+1, -1, -1, +1): e is orthogonal to 1 and to x - mean, so the line stays
    frame = pd.DataFrame({"type": "MaxPooling2D", "name": ["p0", "p1", "p2", "p3"], "config_id": ["a", "b", "c", "d"],
                          "graph_flops": [0, 1000, 2000, 3000], "analytic_flops": [0, 1000, 2000, 3000],
                          "time_us": [11.0, 10.0, 11.0, 14.0]})
    (fit,) = layer_type_fits(frame)
    assert fit.slope_us_per_flop == pytest.approx(1e-3) and fit.intercept_us == pytest.approx(10.0)
    # SS_res = 4; SS_tot around the mean 11.5 = 0.25 + 2.25 + 0.25 + 6.25 = 9
    assert fit.r2 == pytest.approx(1 - 4 / 9)
    # line: 10, 11, 12, 13 -> relative errors -1/11, +1/10, +1/11, -1/14; the largest is p1's +10%
    worst = fit.largest_residuals[0]
    assert (worst["layer"], worst["config_id"]) == ("p1", "b")
    assert worst["measured_us"] == 10.0 and worst["predicted_us"] == pytest.approx(11.0)
    assert worst["relative_error"] == pytest.approx(0.1)
    assert {row["layer"] for row in fit.largest_residuals} == {"p0", "p1", "p2"}


def test_layer_type_fit_skips_untimed_rows_falls_back_to_formulas_and_unfittable_types():
    frame = pd.DataFrame({
        "type": ["Dense", "Dense", "Dense", "Dense", "InputLayer", "InputLayer", "InputLayer"],
        "name": ["d0", "d1", "d2", "d3", "i0", "i1", "i2"],
        "graph_flops": [100, None, 300, 400, 0, 0, 0], "analytic_flops": [100, 200, 300, 400, 0, 0, 0],
        "time_us": [1.0, 2.0, 3.0, None, 0.0, 0.0, 0.0],
    })
    (fit,) = layer_type_fits(frame)  # InputLayer: one FLOPs value, no line
    assert fit.layer_type == "Dense" and fit.n == 3  # d3 untimed; d1 counted by its formula
    assert fit.slope_us_per_flop == pytest.approx(0.01) and fit.intercept_us == pytest.approx(0.0, abs=1e-9)
    assert fit.largest_residuals[0]["config_id"] is None
    assert "Dense: time = FLOPs / (0.1 GFLOP/s)" in fit.lines()[0]


# --- the fitting machinery ------------------------------------------------------------------------------

def test_nonnegative_relative_least_squares_recovers_an_exact_solution():
    x1, x2 = np.array([1.0, 2.0, 3.0, 5.0]), np.array([4.0, 1.0, 7.0, 2.0])
    design = np.stack([np.ones(4), x1, x2], axis=1)
    assert nonnegative_relative_least_squares(design, 5 + 2 * x1 + 3 * x2) == pytest.approx([5, 2, 3])


def test_a_negative_coefficient_is_dropped_and_the_rest_refitted():
    # t = 2 * x1 - x2 exactly; without x2, minimise sum(((c * x1 - t) / t)^2): c = sum(x1/t) / sum((x1/t)^2)
    design = np.array([[2.0, 2.0], [4.0, 2.0]])
    target = np.array([2.0, 6.0])  # x1 / t = (1, 2/3): c = (5/3) / (13/9) = 15/13
    assert nonnegative_relative_least_squares(design, target) == pytest.approx([15 / 13, 0.0])


def test_a_column_seen_in_too_few_rows_is_left_out():
    design = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 5.0]])  # column 2 is non-zero in one row only
    target = np.array([2.0, 4.0, 11.0])                       # = 2 * x1 + 1 * x2 exactly
    assert nonnegative_relative_least_squares(design, target) == pytest.approx([2.0, 1.0])
    # without column 2: x1 / t = (1/2, 1/2, 3/11), c = sum(x1/t) / sum((x1/t)^2)
    by_hand = (1 / 2 + 1 / 2 + 3 / 11) / (1 / 4 + 1 / 4 + 9 / 121)
    assert nonnegative_relative_least_squares(design, target, min_support=2) == pytest.approx([by_hand, 0.0])


def test_error_summary_by_hand():
    # |errors| = 1.5/10, 1/20, 0/40 = 15%, 5%, 0%: MAPE = 20% / 3, two of three within 10%
    mape, within = error_summary([10, 20, 40], [11.5, 19, 40])
    assert mape == pytest.approx(0.20 / 3) and within == pytest.approx(2 / 3)


def test_flops_baseline_by_hand():
    train = [ConfigSample("a", {}, [], 2.0, 1000), ConfigSample("b", {}, [], 4.0, 3000)]
    # f/t = 500, 750 FLOP/ms: k = (500 + 750) / (500^2 + 750^2) = 1250 / 812500 ms per FLOP
    predict = flops_proportional_baseline(train)
    assert predict(ConfigSample("c", {}, [], 1.0, 2000)) == pytest.approx(2000 * 1250 / 812500)


def synthetic_samples() -> list[ConfigSample]:
    return [
        sample("1c1d", [input_row(), conv("c0", 1000), dense("d0", 100)]),
        sample("2c1d", [input_row(), conv("c0", 1000), conv("c1", 2000), dense("d0", 100)]),
        sample("1c2d", [input_row(), conv("c0", 3000), dense("d0", 100), dense("d1", 200)]),
        sample("3c1d", [input_row(), conv("c0", 500), conv("c1", 500), conv("c2", 500), dense("d0", 300)]),
        sample("2c2d", [input_row(), conv("c0", 4000), conv("c1", 1000), dense("d0", 50), dense("d1", 50)]),
        sample("1c1d'", [input_row(), conv("c0", 2500), dense("d0", 1000)]),
    ]


def test_latency_model_recovers_known_overhead_and_per_type_costs():
    model = fit_latency_model(synthetic_samples(), features=("flops", "layers"), traits=NO_CACHES)
    assert model.overhead_us == pytest.approx(OVERHEAD_US)
    assert model.coefficients_us["Conv2D"] == pytest.approx({"flops": 1e-3, "layers": 20.0})
    assert model.coefficients_us["Dense"] == pytest.approx({"flops": 4e-3, "layers": 5.0})
    assert model.free_layer_types == ["InputLayer"]
    unseen = [input_row(), conv("c0", 7000), conv("c1", 100), dense("d0", 10), dense("d1", 20), dense("d2", 30)]
    # 50 + (7 + 20) + (0.1 + 20) + (0.04 + 0.08 + 0.12 + 15) us
    assert model.predict_ms(unseen) == pytest.approx((50 + 27 + 20.1 + 15.24) / 1e3)
    assert model.layer_times_us(unseen)[0] == 0.0


def test_latency_model_refuses_a_layer_type_it_was_not_fitted_on(tmp_path):
    model = fit_latency_model(synthetic_samples(), features=("flops", "layers"), traits=NO_CACHES)
    pool = LayerRow(name="pool9", type="MaxPooling2D", output_shape=[1, 2, 2, 1], params=0, analytic_flops=16,
                    analytic_macs=0, graph_flops=16, activation_bytes=16, time_us=None, achieved_gflops=None)
    with pytest.raises(InputError, match="pool9.*MaxPooling2D"):
        model.predict_ms([conv("c0", 10), pool])
    model.save(tmp_path / "m.json")
    assert LatencyModel.load(tmp_path / "m.json") == model
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="not a latency model"):
        LatencyModel.load(tmp_path / "other.json")


def test_fitting_needs_three_configurations():
    with pytest.raises(InputError, match="at least 3"):
        fit_latency_model(synthetic_samples()[:2], traits=NO_CACHES)


# --- validation on a sweep directory --------------------------------------------------------------------

N_CONV, BATCHES = (1, 2, 3), (1, 2, 4, 8)


def sweep_layers(n_conv: int, batch: int) -> list[LayerRow]:
    """Every feature is a multiple of FLOPs or of the layer count, so held-out predictions are exact."""
    convs = [conv(f"conv{i}", 1000 * batch * (i + 1), batch, positions=i + 1) for i in range(n_conv)]
    return [input_row(output_shape=[batch, 4, 4, 1])] + convs + [dense("fc", 100 * batch, batch)]


def write_sweep(folder, configs):
    (folder / "reports").mkdir(parents=True)
    results, layer_frames = [], []
    for n_conv, batch, repeat, slowdown in configs:
        config_id = f"n_conv={n_conv},batch_size={batch},r{repeat}"
        layers = sweep_layers(n_conv, batch)
        report = make_report(layers, [], median_ms=true_step_ms(layers) * slowdown)
        record = {"config_id": config_id, "config": {"n_conv": n_conv, "batch_size": batch}, "repeat": repeat,
                  "status": "ok", "error": None, "elapsed_s": 1.0, "report": report.to_dict()}
        (folder / "reports" / f"{config_id}.json").write_text(json.dumps(record))
        results.append({"n_conv": n_conv, "batch_size": batch, "repeat": repeat,
                        "step_time_median_ms": report.totals.step_time_ms.median, "status": "ok", "error": ""})
        layer_frames.append(report.to_frame().assign(config_id=config_id, n_conv=n_conv, batch_size=batch))
    failed = {"config_id": "n_conv=9,batch_size=1,r0", "config": {"n_conv": 9, "batch_size": 1}, "repeat": 0,
              "status": "failed", "error": "InputError: too deep", "elapsed_s": 0.1, "report": None}
    (folder / "reports" / "n_conv=9,batch_size=1,r0.json").write_text(json.dumps(failed))
    pd.DataFrame(results).to_csv(folder / "results.csv", index=False)
    pd.concat(layer_frames).to_csv(folder / "layers.csv", index=False)
    return folder


@pytest.fixture
def sweep_dir(tmp_path):
    configs = [(n, b, 0, 1.0) for n in N_CONV for b in BATCHES]
    configs.append((2, 4, 1, 1.5))  # a repeat disturbed by another process: 50% slower
    return write_sweep(tmp_path / "sweep", configs)


def test_repeats_merge_into_one_configuration_at_their_smallest_median(sweep_dir):
    samples = load_sweep(sweep_dir)
    assert len(samples) == 12  # 3 x 4; the failed one left out, the repeat merged
    merged = next(s for s in samples if s.config == {"n_conv": 2, "batch_size": 4})
    assert merged.repeats == 2 and merged.config_id == "n_conv=2,batch_size=4,r0"
    assert merged.measured_ms == pytest.approx(true_step_ms(sweep_layers(2, 4)))


def test_validation_splits_hold_out_every_configuration_once(sweep_dir):
    report = validate_sweep(sweep_dir)
    names = [split.name for split in report.splits]
    assert names == ["configurations (5-fold)", "leave each n_conv out", "leave each batch_size out"]
    folds, by_n_conv, by_batch = report.splits
    # 12 configurations: 5 folds of 3, 3, 2, 2, 2 -> at least 9 to train on; n_conv: 12 - 4; batch: 12 - 3
    assert (folds.n_train, by_n_conv.n_train, by_batch.n_train) == (9, 8, 9)
    for split in report.splits:
        assert split.n_test == 12 and split.n_skipped == 0
        assert sorted(p["config_id"] for p in split.pairs) == sorted(s.config_id for s in load_sweep(sweep_dir))
        assert split.mape == pytest.approx(0.0, abs=1e-6) and split.share_within_10pct == 1.0
        assert split.baseline_mape > 0.05  # the truth has a fixed overhead that FLOPs alone cannot give


def test_held_out_baseline_is_fitted_without_the_held_out_value(sweep_dir):
    by_batch = validate_sweep(sweep_dir).splits[2]
    train = [(sweep_layers(n, b)) for n in N_CONV for b in BATCHES if b != 8]
    ratios = np.array([sum(r.graph_flops for r in rows) / true_step_ms(rows) for rows in train])
    k_ms_per_flop = ratios.sum() / (ratios ** 2).sum()
    pair = next(p for p in by_batch.pairs if p["config_id"] == "n_conv=3,batch_size=8,r0")
    flops = 8 * 1000 * (1 + 2 + 3) + 8 * 100
    assert pair["baseline_ms"] == pytest.approx(k_ms_per_flop * flops)
    assert pair["measured_ms"] == pytest.approx(pair["predicted_ms"])


def test_layer_fits_read_the_sweeps_layers_csv(sweep_dir):
    fits = {fit.layer_type: fit for fit in layer_type_fits(pd.read_csv(sweep_dir / "layers.csv"))}
    assert set(fits) == {"Conv2D", "Dense"}
    assert fits["Conv2D"].achieved_gflops == pytest.approx(1.0)
    assert fits["Conv2D"].intercept_us == pytest.approx(CONV_US_PER_LAYER)
    assert fits["Dense"].slope_us_per_flop == pytest.approx(DENSE_US_PER_FLOP)


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not a sweep report record"),
    ('{"config": {}, "status": "ok"}', "no config_id"),
    ('{"config_id": "a", "config": {}, "status": "ok", "report": {"totals": {}}}', "its report: not a tfprofscale profile JSON \\(no model\\)"),
])
def test_a_broken_report_record_is_bad_input_naming_the_file(tmp_path, content, message):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "a.json").write_text(content)
    with pytest.raises(InputError, match=f"a.json.*{message}"):
        load_sweep(tmp_path)


def test_too_few_configurations_give_no_validation(tmp_path):
    assert validate_sweep(write_sweep(tmp_path / "small", [(1, b, 0, 1.0) for b in BATCHES])) is None


def test_validation_report_is_json_ready_and_readable(sweep_dir):
    report = validate_sweep(sweep_dir)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["n_configs"] == 12 and len(data["splits"][0]["pairs"]) == 12
    assert set(data["splits"][0]["pairs"][0]) == {"config_id", "measured_ms", "predicted_ms", "baseline_ms"}
    text = "\n".join(report.lines())
    assert "per-step overhead" in text and "leave each batch_size out" in text


# --- fit / predict on the command line ------------------------------------------------------------------

def write_latency_model(path):
    """A hand-set model: 100 us per step, conv at 1 GFLOP/s, 0.01 us per pooled output, 7 us per Dense."""
    model = LatencyModel(features=("flops", "output_elements", "layers"),
                         coefficients_us={"Conv2D": {"flops": 1e-3}, "MaxPooling2D": {"output_elements": 0.01},
                                          "Dense": {"layers": 7.0}},
                         overhead_us=100.0, free_layer_types=["Flatten", "InputLayer"], n_configs=3,
                         traits=NO_CACHES)
    model.save(path)
    return path


def test_predict_prints_the_hand_computed_latency(capsys, cnn_file, tmp_path):
    model_json = write_latency_model(tmp_path / "model.json")
    status, out, _ = run_cli(capsys, "predict", str(model_json), str(cnn_file), "--batch-size", "2")
    assert status == 0
    # conv graph FLOPs at batch 2: 2 * 2*8*8*8 * 3*3*1 + 2*8*8*8 (BiasAdd) = 19456 -> 19.456 us
    # pool: 2*4*4*8 = 256 outputs -> 2.56 us; Dense: 7 us; overhead 100 us
    assert "predicted step latency: 0.129 ms (batch 2)" in out  # 129.016 us
    assert "conv (Conv2D)" in out and "19.5 us" in out


def test_fit_then_predict_round_trip_on_a_tiny_real_sweep(capsys, cnn_file, tmp_path, monkeypatch):
    from tfprofscale.profiling import runtime
    from tfprofscale.profiling.pipeline import ProfileOptions, run_profile

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
    status, _, err = run_cli(capsys, "fit", str(tmp_path), "--out", str(tmp_path / "m.json"))
    assert_one_line_error(status, err, "no finished configuration")


def test_predict_with_a_missing_model_file(capsys, cnn_file, tmp_path):
    status, _, err = run_cli(capsys, "predict", str(tmp_path / "nope.json"), str(cnn_file))
    assert_one_line_error(status, err, "nope.json", "does not exist")


def test_predict_names_the_layer_the_model_cannot_price(capsys, cnn_file, tmp_path):
    model_json = tmp_path / "conv_only.json"
    conv_only = LatencyModel(("flops",), {"Conv2D": {"flops": 1e-3}}, 10.0, ["Flatten", "InputLayer"], 3, NO_CACHES)
    conv_only.save(model_json)
    status, _, err = run_cli(capsys, "predict", str(model_json), str(cnn_file))
    assert_one_line_error(status, err, "pool", "MaxPooling2D")
