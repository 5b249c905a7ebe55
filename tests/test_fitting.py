"""fit_line recovers lines known in advance."""
import numpy as np
import pytest

from tfprofscale.audit.fitting import fit_line


def test_exact_line_is_recovered_with_r2_one():
    fit = fit_line([1, 2, 3, 4], [5, 7, 9, 11])  # y = 2x + 3
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(3.0)
    assert fit.r2 == pytest.approx(1.0) and fit.n == 4
    assert fit.predict(10) == pytest.approx(23.0)


def test_r2_of_symmetric_noise_is_computed_by_hand():
    # y = x + e with e = (+1, -1, -1, +1): the fit stays y = x (e is orthogonal to 1 and x - mean)
    x = np.array([0.0, 1.0, 2.0, 3.0])
    fit = fit_line(x, x + np.array([1.0, -1.0, -1.0, 1.0]))
    assert fit.slope == pytest.approx(1.0) and fit.intercept == pytest.approx(0.0, abs=1e-12)
    # SS_res = 4; SS_tot = sum((y - 1.5)^2) with y = (1, 0, 1, 4): 0.25 + 2.25 + 0.25 + 6.25 = 9
    assert fit.r2 == pytest.approx(1 - 4 / 9)


def test_one_distinct_x_is_refused():
    with pytest.raises(ValueError):
        fit_line([2, 2, 2], [1, 2, 3])
