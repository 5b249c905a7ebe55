"""The hand formulas' entry point: every layer family registered, one call to cost a model.

The families live one per module (convolution, dense, pooling, normalization,
activation layers, reshape ...); each registers its formulas with
``registry.formula_for`` when imported, which this module does.
"""
from __future__ import annotations

from tfprofscale.formulas import activation_layers, convolution, dense, normalization, pooling, reshape  # noqa: F401
from tfprofscale.formulas import attention, keras_ops, merge, preprocessing, recurrent  # noqa: F401
from tfprofscale.formulas.registry import DIAGNOSTIC_TERMS, analyze_layers, layer_cost, supported_layer_types

__all__ = ["DIAGNOSTIC_TERMS", "analyze_layers", "layer_cost", "supported_layer_types"]
