"""Least squares on data whose answer is known in advance."""
import numpy as np
import pytest

from tfprofscale.audit.fitting import (
    MIN_POINTS_FOR_R2, fit_line, nonnegative_relative_least_squares, separable_columns,
)


def test_exact_line_is_recovered_with_r2_one():
    fit = fit_line([1, 2, 3, 4, 5], [5, 7, 9, 11, 13])  # y = 2x + 3
    assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(3.0)
    assert fit.r2 == pytest.approx(1.0) and fit.n == 5
    assert fit.predict(10) == pytest.approx(23.0)


def test_no_r2_from_two_points():
    fit = fit_line([1, 2], [5, 9])
    assert (fit.slope, fit.intercept) == (pytest.approx(4.0), pytest.approx(1.0))
    assert fit.r2 is None and MIN_POINTS_FOR_R2 == 4
    assert fit.r2_text == "no R² from 2 points (needs 4)"


def test_r2_of_symmetric_noise_is_computed_by_hand():
    # y = x + e with e = (+1, -1, 0, -1, +1): e is orthogonal to 1 and to x - mean, so the fit stays y = x
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    fit = fit_line(x, x + np.array([1.0, -1.0, 0.0, -1.0, 1.0]))
    assert fit.slope == pytest.approx(1.0) and fit.intercept == pytest.approx(0.0, abs=1e-12)
    # SS_res = 4; y = (1, 0, 2, 2, 5), mean 2: SS_tot = 1 + 4 + 0 + 0 + 9 = 14
    assert fit.r2 == pytest.approx(1 - 4 / 14)


def test_a_relative_fit_is_not_ruled_by_the_largest_point():
    # (1, 1), (2, 2), (3, 30): ordinary least squares bends to the 30; relative errors keep y = x for the first two
    x, y = [1.0, 2.0, 3.0], [1.0, 2.0, 30.0]
    ordinary, relative = fit_line(x, y), fit_line(x, y, relative=True)
    assert ordinary.slope == pytest.approx(14.5)  # sum((x - 2)(y - 11)) / sum((x - 2)^2) = 29 / 2
    rows = np.array([[1.0, 1.0], [1.0, 0.5], [0.1, 1 / 30]])  # (x/y, 1/y)
    slope, intercept = np.linalg.solve(rows.T @ rows, rows.T @ np.ones(3))
    assert (relative.slope, relative.intercept) == (pytest.approx(slope), pytest.approx(intercept))
    assert abs(relative.predict(1.0) - 1.0) < abs(ordinary.predict(1.0) - 1.0)


def test_one_distinct_x_is_refused():
    with pytest.raises(ValueError):
        fit_line([2, 2, 2], [1, 2, 3])


def test_nonnegative_relative_least_squares_recovers_exact_coefficients():
    x1, x2 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 1.0, 0.0, 2.0])
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
    by_hand = (1 / 2 + 1 / 2 + 3 / 11) / (1 / 4 + 1 / 4 + 9 / 121)
    assert nonnegative_relative_least_squares(design, target, min_support=2) == pytest.approx([by_hand, 0.0])


def test_proportional_columns_are_tied_or_dropped():
    # columns: 1, conv count n, pool count n (always equal), dense count (varies independently)
    n, dense = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 1.0, 2.0, 3.0])
    design = np.stack([np.ones(4), n, n, dense, np.zeros(4)], axis=1)
    target = 10 + 5 * n + 2 * dense
    tie_conv_and_pool = separable_columns(design, target, can_tie=lambda a, b: {a, b} == {1, 2})
    assert sorted(map(sorted, tie_conv_and_pool.groups)) == [[0], [1, 2], [3]]  # the zero column 4: nothing to fit
    assert tie_conv_and_pool.dropped == []
    no_ties = separable_columns(design, target, can_tie=lambda a, b: False)
    assert len(no_ties.dropped) == 1 and no_ties.dropped[0] in (1, 2)
    assert len(no_ties.groups) == 3


def test_well_separated_columns_stay_apart():
    design = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    separation = separable_columns(design, np.array([1.0, 2.0, 3.0]), can_tie=lambda a, b: True)
    assert separation.groups == [[0], [1]] and separation.dropped == []
