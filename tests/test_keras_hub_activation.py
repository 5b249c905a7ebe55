"""keras_hub's own gelu_approximate is costed as keras' gelu(approximate=True) (skipped without keras_hub)."""
from __future__ import annotations

import pytest

from tfprofscale.formulas.activations import ACTIVATION_FLOPS_PER_ELEMENT, activation_cost


def test_keras_hub_gelu_approximate_has_the_table_cost():
    keras_utils = pytest.importorskip("keras_hub.src.utils.keras_utils")
    assert activation_cost(keras_utils.gelu_approximate) == ("gelu_approximate", 9)
    assert ACTIVATION_FLOPS_PER_ELEMENT["gelu_approximate"][0] == 9  # 0.5*x*(1+tanh(c*(x+0.044715*x^3)))


def test_a_function_of_the_same_name_elsewhere_is_not_trusted():
    def gelu_approximate(x):  # same name, unknown module: no entry
        return x

    assert activation_cost(gelu_approximate) is None
