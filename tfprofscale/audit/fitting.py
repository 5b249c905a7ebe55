"""Least-squares straight lines: time = slope * FLOPs + intercept (document 002)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class LinearFit:
    """``y = slope * x + intercept`` fitted to ``n`` points, with its R²."""

    slope: float
    intercept: float
    r2: float | None
    n: int

    def predict(self, x: float | np.ndarray) -> float | np.ndarray:
        """The fitted line at ``x``."""
        return self.slope * np.asarray(x, dtype=float) + self.intercept


def fit_line(x: Sequence[float], y: Sequence[float]) -> LinearFit:
    """Ordinary least squares of ``y`` on ``x``; R² is None when y is constant.

    Needs at least two distinct x values (ValueError otherwise).
    """
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or len(np.unique(xs)) < 2:
        raise ValueError("a line needs at least two distinct x values and as many y values")
    slope, intercept = np.polyfit(xs, ys, 1)
    residual = float(np.sum((ys - (slope * xs + intercept)) ** 2))
    total = float(np.sum((ys - ys.mean()) ** 2))
    return LinearFit(float(slope), float(intercept), 1.0 - residual / total if total > 0 else None, len(xs))
