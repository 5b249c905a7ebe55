"""Formulas via the roofline, TensorFlow's cost model and the measurement, per layer type, on hand-built reports.

Peaks of 1 GFLOP/s and 1 GB/s: a layer's roofline time in ns is max(formula FLOPs, bytes moved).
conftest's CNN at batch 2 (tests/test_roofline.py): conv formula FLOPs 18432 + 2 * 1024 (bias, ReLU) = 20480,
bytes (200 + 80 + 1024) * 4 = 5216 -> 20.48 us; pool 1024 FLOPs, bytes (1024 + 256) * 4 = 5120 -> 5.12 us.
"""
from __future__ import annotations

import pytest

from tests.test_roofline import conv_row, dense_row, input_row, make_report, pool_row
from tfprofscale.profiling.runtime import machine_peaks as roofline
from tfprofscale.audit.analysis import audit_profiles
from tfprofscale.audit.profiles import LoadedProfiles
from tfprofscale.audit.render import audit_json, render_text
from tfprofscale.audit.time_views import (
    ROOFLINE,
    TENSORFLOW,
    layer_type_views,
    roofline_time_us,
    step_views,
)

PEAKS = roofline.MachinePeaks(flops_per_s=1e9, bytes_per_s=1e9, host="test", tensorflow="test")


def reports():
    first = make_report([input_row(time_us=0.0, tf_estimated_us=0.0), conv_row(time_us=30.0, tf_estimated_us=100.0),
                         pool_row(time_us=5.0, tf_estimated_us=5.05),
                         dense_row(time_us=4.0, tf_estimated_us=None,
                                   geometry={"rows": 2, "in_features": 128, "out_features": 3, "use_bias": True})],
                        [], median_ms=0.2)
    second = make_report([conv_row(time_us=10.0, tf_estimated_us=20.0)], [], median_ms=0.1)
    first.totals.tf_estimated_step_ms = 0.15
    return [first, second]


def test_roofline_time_from_the_formulas():
    assert roofline_time_us(conv_row(), PEAKS) == pytest.approx(20.48)
    assert roofline_time_us(pool_row(), PEAKS) == pytest.approx(5.12)
    assert roofline_time_us(conv_row(analytic_flops=None), PEAKS) is None


def test_views_per_layer_type_name_the_closest_estimate():
    # dense has no TensorFlow estimate, the input layer no measured time: both left out
    conv, pool = layer_type_views(reports(), PEAKS)
    assert (conv.name, conv.n, conv.measured_us) == ("Conv2D", 2, 40.0)
    assert conv.roofline_us == pytest.approx(2 * 20.48) and conv.tf_estimated_us == pytest.approx(120.0)
    # roofline 40.96 vs 40 measured: x1.024; TensorFlow 120 vs 40: x3
    assert conv.factors == {ROOFLINE: pytest.approx(40.96 / 40), TENSORFLOW: pytest.approx(3.0)}
    assert conv.closest == ROOFLINE
    # pool: roofline 5.12 vs 5: x1.024; TensorFlow 5.05 vs 5: x1.01
    assert pool.closest == TENSORFLOW and pool.factors[TENSORFLOW] == pytest.approx(1.01)


def test_the_whole_step_against_grappler_run_time():
    step = step_views(reports(), PEAKS)  # only the first report has a run time
    assert (step.n, step.measured_us, step.tf_estimated_us) == (1, pytest.approx(200.0), pytest.approx(150.0))
    # every layer's roofline: conv 20.48 + pool 5.12 + dense max(2 * 2*128*3 + 6 = 1542 FLOPs, 2596 bytes) = 2.596
    assert step.roofline_us == pytest.approx(20.48 + 5.12 + 2.596)
    assert step.closest == TENSORFLOW  # 200 / 150 = 1.33 against 200 / 28.2 = 7.1
    assert step_views(reports()[1:], PEAKS) is None


def test_the_audit_shows_the_section(monkeypatch):
    monkeypatch.setattr(roofline, "machine_peaks", lambda refresh=False: PEAKS)
    loaded = LoadedProfiles("hand", "sweep", [(f"c{i}", {}, r) for i, r in enumerate(reports())])
    audit = audit_profiles(loaded)
    text = render_text(audit)
    assert "Time: formulas via the roofline, TensorFlow's cost model, measured" in text
    conv_line = next(line for line in text.splitlines() if line.strip().startswith("Conv2D") and "x3.00" in line)
    assert "formulas via the roofline" in conv_line
    views = audit_json(audit)["time"]["views"]
    assert [view["name"] for view in views] == ["Conv2D", "MaxPooling2D"] and views[0]["closest"] == ROOFLINE
