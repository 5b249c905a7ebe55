"""Least squares for time models: straight lines, relative errors, coefficients >= 0, and what data cannot separate.

``fit_line``: ``y = slope * x + intercept`` (ordinary, or weighted so that
every point's *relative* error counts the same: a large layer no longer
rules the line). R² is reported only from ``MIN_POINTS_FOR_R2`` points on:
a line through two points always has R² = 1.

``nonnegative_relative_least_squares``: coefficients >= 0 minimising the
squared relative errors, the latency model's fit.

``separable_columns``: which columns of a design the data can tell apart.
Columns that are (nearly) linearly dependent after the relative scaling
(the smallest singular value of the unit-norm columns below
``COLLINEARITY_TOLERANCE``) cannot get coefficients of their own: every
configuration has, say, one pooling layer per convolution, so any cost can
be moved from one to the other. The two columns that weigh most in the
dependency are tied (one shared coefficient) when ``can_tie`` allows it,
else the later of the two in the design is left out (put the columns to
keep first: a per-step overhead before a per-layer cost that never
varies); repeat until the rest is well conditioned.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

MIN_POINTS_FOR_R2 = 4
COLLINEARITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class LinearFit:
    """``y = slope * x + intercept`` fitted to ``n`` points; R² None below MIN_POINTS_FOR_R2 or for a constant y."""

    slope: float
    intercept: float
    r2: float | None
    n: int
    relative: bool = False

    def predict(self, x: float | np.ndarray) -> float | np.ndarray:
        """The fitted line at ``x``."""
        return self.slope * np.asarray(x, dtype=float) + self.intercept

    @property
    def r2_text(self) -> str:
        """R² as printed, or why there is none."""
        if self.r2 is not None:
            return f"R² {self.r2:.3f}"
        if self.n < MIN_POINTS_FOR_R2:
            return f"no R² from {self.n} points (needs {MIN_POINTS_FOR_R2})"
        return "no R² (constant times)"


def fit_line(x: Sequence[float], y: Sequence[float], relative: bool = False) -> LinearFit:
    """Least squares of ``y`` on ``x``; with ``relative``, of ``(line - y) / y`` (y must be > 0).

    R² is of the same (weighted) fit. Needs at least two distinct x values
    (ValueError otherwise).
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or len(np.unique(xs)) < 2:
        raise ValueError("a line needs at least two distinct x values and as many y values")
    if relative and np.any(ys <= 0):
        raise ValueError("a relative fit needs every y > 0")
    weights = 1.0 / ys if relative else np.ones_like(ys)
    design = np.stack([xs, np.ones_like(xs)], axis=1) * weights[:, None]
    (slope, intercept), *_ = np.linalg.lstsq(design, ys * weights, rcond=None)
    residual = float(np.sum(((slope * xs + intercept - ys) * weights) ** 2))
    weighted_mean = float(np.sum(ys * weights ** 2) / np.sum(weights ** 2))
    total = float(np.sum(((ys - weighted_mean) * weights) ** 2))
    r2 = 1.0 - residual / total if total > 0 and len(xs) >= MIN_POINTS_FOR_R2 else None
    return LinearFit(float(slope), float(intercept), r2, len(xs), relative)


def nonnegative_relative_least_squares(design: np.ndarray, target: np.ndarray,
                                       min_support: int = 1) -> np.ndarray:
    """Coefficients >= 0 minimising sum(((design @ c - target) / target) ** 2).

    Least squares on scaled columns, refitted without the columns whose
    coefficient came out negative until none does (those get 0). A column
    non-zero in fewer than ``min_support`` rows gets 0: so few rows cannot
    tell its cost apart from noise.
    """
    scale = np.abs(design).max(axis=0)
    scale[scale == 0] = 1.0
    scaled = design / scale / target[:, None]
    active = [j for j in range(design.shape[1]) if np.count_nonzero(design[:, j]) >= min_support]
    solution = np.zeros(design.shape[1])
    while active:
        fitted, *_ = np.linalg.lstsq(scaled[:, active], np.ones(len(target)), rcond=None)
        if np.all(fitted >= 0):
            solution[active] = fitted
            break
        active = [j for j, value in zip(active, fitted) if value >= 0]
    return solution / scale


@dataclass(frozen=True)
class Separation:
    """Column groups that get one coefficient each (a tie: several columns), and the columns left out.

    An all-zero column is in neither: nothing to fit, its coefficient is 0.
    """

    groups: list[list[int]]
    dropped: list[int]


def separable_columns(design: np.ndarray, target: np.ndarray, can_tie: Callable[[int, int], bool],
                      tolerance: float = COLLINEARITY_TOLERANCE) -> Separation:
    """Tie or drop columns until the relative-scaled design is well conditioned (see the module doc)."""
    groups = [[j] for j in range(design.shape[1]) if np.any(design[:, j])]
    dropped: list[int] = []
    while len(groups) > 1:
        weights = _null_direction(_grouped(design, groups) / target[:, None], tolerance)
        if weights is None:
            break
        first, second = sorted(np.argsort(-np.abs(weights))[:2])
        if all(can_tie(a, b) for a in groups[first] for b in groups[second]):
            groups[first] = sorted(groups[first] + groups[second])
        else:
            dropped += groups[second]
        del groups[second]
    return Separation(groups, sorted(dropped))


def _grouped(design: np.ndarray, groups: list[list[int]]) -> np.ndarray:
    return np.stack([design[:, group].sum(axis=1) for group in groups], axis=1)


def _null_direction(matrix: np.ndarray, tolerance: float) -> np.ndarray | None:
    """The combination of unit-norm columns closest to zero, if it is below ``tolerance``; else None."""
    unit = matrix / np.linalg.norm(matrix, axis=0)
    _, singular, right = np.linalg.svd(unit, full_matrices=True)
    if len(singular) < unit.shape[1] or singular[-1] < tolerance * singular[0]:
        return right[-1]
    return None
