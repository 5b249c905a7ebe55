"""Held-out validation on sweep directories of synthetic CNNs (tests/test_latency.py's law and machine)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_latency import BEYOND, NO_CACHES, ONE_GIGA, TRAINING, cnn, true_step_ms
from tests.test_roofline import make_report
from tfprofscale.audit.latency import ConfigSample
from tfprofscale.audit.validation import (
    PREDICTORS, affine_fit, error_summary, held_out_validation, load_sweep, repeatability, validate_samples,
)
from tfprofscale.errors import InputError

N_CONV, BATCHES = (1, 2, 3), (1, 2, 4, 8)
TF_FACTOR = 3.0  # the fake "TensorFlow estimate" of every configuration: 3 x the truth


def write_sweep(folder, configs):
    """Reports of (n_conv, batch, repeat, slowdown) configurations; one failed configuration besides."""
    (folder / "reports").mkdir(parents=True)
    for n_conv, batch, repeat, slowdown in configs:
        config_id = f"n_conv={n_conv},batch_size={batch},r{repeat}"
        layers = cnn(n_conv, 32, batch, 16, 1)
        report = make_report(layers, [], median_ms=true_step_ms(layers) * slowdown)
        report.totals.tf_estimated_step_ms = TF_FACTOR * true_step_ms(layers)
        report.totals.step_time_ms = type(report.totals.step_time_ms)(
            median=true_step_ms(layers) * slowdown, p10=0.0, p90=0.0, min=true_step_ms(layers), cv=0.0, n=30)
        record = {"config_id": config_id, "config": {"n_conv": n_conv, "batch_size": batch}, "repeat": repeat,
                  "status": "ok", "error": None, "elapsed_s": 1.0, "report": report.to_dict()}
        (folder / "reports" / f"{config_id}.json").write_text(json.dumps(record))
    failed = {"config_id": "n_conv=9,batch_size=1,r0", "config": {"n_conv": 9, "batch_size": 1}, "repeat": 0,
              "status": "failed", "error": "InputError: too deep", "elapsed_s": 0.1, "report": None}
    (folder / "reports" / "n_conv=9,batch_size=1,r0.json").write_text(json.dumps(failed))
    return folder


@pytest.fixture
def sweep_dir(tmp_path):
    configs = [(n, b, 0, 1.0) for n in N_CONV for b in BATCHES]
    configs.append((2, 4, 1, 1.5))  # a repeat disturbed by another process: 50% slower
    return write_sweep(tmp_path / "sweep", configs)


def test_repeats_merge_at_their_smallest_statistic(sweep_dir):
    samples = load_sweep(sweep_dir)
    assert len(samples) == 12  # 3 x 4; the failed one left out, the repeat merged
    merged = next(s for s in samples if s.config == {"n_conv": 2, "batch_size": 4})
    truth = true_step_ms(cnn(2, 32, 4, 16, 1))
    assert merged.repeats == 2 and merged.config_id == "n_conv=2,batch_size=4,r0"
    assert merged.measured_ms == pytest.approx(truth)
    assert sorted(merged.repeat_ms) == pytest.approx([truth, 1.5 * truth])
    assert merged.tf_estimated_ms == pytest.approx(TF_FACTOR * truth)
    fastest = next(s for s in load_sweep(sweep_dir, "min") if s.config == merged.config)
    assert fastest.repeat_ms == pytest.approx((truth, truth)) and fastest.statistic == "min"
    with pytest.raises(InputError, match="statistic 'mean'"):
        load_sweep(sweep_dir, "mean")


def test_repeatability_by_hand():
    samples = [ConfigSample("a", {}, [], 1.0, 0, repeat_ms=(1.0, 1.5)), ConfigSample("b", {}, [], 2.0, 0),
               ConfigSample("c", {}, [], 2.0, 0, repeat_ms=(2.0, 2.2, 2.1))]
    result = repeatability(samples)  # spreads (1.5 - 1) / 1 = 50%, (2.2 - 2) / 2 = 10%
    assert result.n_configs == 2 and result.median_spread == pytest.approx(0.30)
    assert result.p90_spread == pytest.approx(0.10 + 0.9 * 0.40)  # numpy's linear interpolation
    assert repeatability(samples[1:2]) is None


def test_error_summary_by_hand():
    # |errors| = 1.5/10, 1/20, 0/40 = 15%, 5%, 0%: MAPE = 20% / 3, two of three within 10%
    errors = error_summary([10, 20, 40], [11.5, 19, 40])
    assert errors.mape == pytest.approx(0.20 / 3) and errors.share_within == pytest.approx(2 / 3) and errors.n == 3


def test_affine_baseline_by_hand():
    # t = 1 + 0.001 * FLOPs exactly on three configurations: the relative fit finds it, >= 0
    train = [ConfigSample(str(f), {}, [], 1 + 0.001 * f, f) for f in (1000, 3000, 7000)]
    predict = affine_fit(train, lambda s: s.graph_flops)
    assert predict(ConfigSample("x", {}, [], 0.0, 20_000)) == pytest.approx(21.0)
    assert affine_fit(train[:2], lambda s: s.graph_flops)(train[0]) is None  # too few to fit


def test_validation_splits_predict_every_configuration_once(sweep_dir):
    report = validate_samples(load_sweep(sweep_dir), traits=NO_CACHES, peaks=ONE_GIGA)
    names = [split.name for split in report.splits]
    assert names == ["configurations (5-fold)", "leave each n_conv out", "leave each batch_size out"]
    folds, by_n_conv, by_batch = report.splits
    # 12 configurations: 5 folds of 3, 3, 2, 2, 2 -> at least 9 to train on; n_conv: 12 - 4; batch: 12 - 3
    assert (folds.n_train, by_n_conv.n_train, by_batch.n_train) == (9, 8, 9)
    for split in report.splits:
        assert split.n_test == 12 and split.n_skipped == 0
        assert split.model.mape == pytest.approx(0.0, abs=1e-6) and split.model.share_within == 1.0
        assert split.errors["TensorFlow cost model"].mape == pytest.approx(TF_FACTOR - 1)  # 3x: 200% off
        assert split.errors["TensorFlow cost model, calibrated"].mape == pytest.approx(0.0, abs=1e-6)
        assert split.errors["affine: fixed + per FLOP"].mape > 0.01  # per-op costs are not per FLOP
    assert report.repeatability.n_configs == 1 and report.repeatability.median_spread == pytest.approx(0.5)
    text = "\n".join(report.lines())
    assert "repeats differ by a median 50.0%" in text and "leave each batch_size out" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data["splits"][0]["pairs"][0]["predicted_ms"]) == set(PREDICTORS)


def test_held_out_groups_inside_and_outside_the_range():
    beyond = [ConfigSample(s.config_id, s.config, s.layers, s.measured_ms, s.graph_flops,
                           tf_estimated_ms=None) for s in BEYOND]
    report = held_out_validation(TRAINING[:7], {"inside": TRAINING[7:], "outside": beyond},
                                 traits=NO_CACHES, peaks=ONE_GIGA)
    inside, outside = report.groups
    assert (inside.name, inside.n_train, inside.n_test) == ("inside", 7, 3)
    assert outside.model.mape == pytest.approx(0.0, abs=1e-6) and outside.model.share_within == 1.0
    assert "TensorFlow cost model" not in outside.errors  # no estimate: no figure, never a 0
    assert np.isfinite(outside.errors["affine: fixed + per FLOP"].mape)


def test_structural_ops_that_ran_are_not_counted_as_the_layers_ops():
    from tests.test_roofline import conv_row, fused_conv_ops
    from tfprofscale.audit.validation import computing_layers

    ops = fused_conv_ops(time_us=20.0)  # a ReadVariableOp kernel ran beside the fused conv
    report = make_report([conv_row(ops=[op.name for op in ops])], ops)
    (row,) = computing_layers(report)
    assert row.ops == ["conv/convolution", "conv/BiasAdd", "conv/Relu"]
    assert len(report.layers[0].ops) == 4  # the report itself is left as it was
