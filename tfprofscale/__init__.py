"""tfprofscale: formulas, TensorFlow's graph and the runtime, side by side.

``tfprofscale.profile(model_or_path, batch_size=1, ...)`` returns a ``Report``;
``report.to_frame()`` is its per-layer pandas DataFrame. ``@tfprofscale.formula("MyLayer")``
registers a model file's formula for its own layer type (formulas/custom.py). TensorFlow is imported
on first use, so ``import tfprofscale`` and ``--help`` stay fast.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["profile", "Report", "InputError", "formula"]

from tfprofscale.errors import InputError
from tfprofscale.quiet import import_tensorflow_quietly


def __getattr__(name: str) -> Any:
    """``profile``, ``Report`` and ``formula`` on first use (PEP 562): ``import tfprofscale`` and ``--help`` stay fast."""
    if name == "Report":
        from tfprofscale.records import Report

        return Report
    if name == "formula":
        from tfprofscale.formulas.custom import formula

        return formula
    if name == "profile":
        import_tensorflow_quietly()  # before any module imports TensorFlow: its start-up log stays off stderr
        from tfprofscale.profiling.pipeline import profile

        return profile
    raise AttributeError(f"module 'tfprofscale' has no attribute {name!r}")
