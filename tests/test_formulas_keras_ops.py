"""Keras operations that are not layers (rows ``ops.<ClassName>``): hand arithmetic, tfprof, a model's coverage."""
from __future__ import annotations

import keras
import numpy as np
import pytest

import tfprofscale
from tests.layer_harness import costed

ops = keras.ops


@pytest.fixture(scope="module")
def operations():
    """Operations on a (16, 32) sequence, a (1, 32) row broadcast against it, and a (32, 8) matrix; batch 2.

    Rows are named after the operations (``add``, ``not_equal``...): a fresh session restarts Keras' naming.
    """
    keras.backend.clear_session()
    x, v, m = keras.Input((16, 32), name="x"), keras.Input((1, 32), name="v"), keras.Input((32, 8), name="m")
    outputs = [
        ops.add(x, v), ops.subtract(x, v), ops.multiply(x, 2.0), ops.divide(x, v), ops.maximum(x, v),
        ops.minimum(x, v), ops.power(x, 2.0), ops.negative(x), ops.square(x), ops.log(x), ops.reciprocal(x),
        ops.mean(x, axis=1), ops.sum(x, axis=-1), ops.max(x, axis=1),
        ops.matmul(x, m), ops.softmax(x), ops.relu(x), ops.gelu(x), ops.gelu(x, approximate=False),
        ops.einsum("bij,bjk->bik", x, m), ops.transpose(x, (0, 2, 1)), ops.concatenate([x, x], axis=1),
        ops.reshape(x, (-1, 512)), ops.expand_dims(v, 1), ops.sqrt(x), ops.exp(x),
        ops.not_equal(x, v), ops.greater(x, 0.5), ops.tensordot(x, m[0], axes=1), ops.outer(v[0, 0], v[0, 0]),
    ]
    return costed(keras.Model([x, v, m], outputs), batch=2)


X = 2 * 16 * 32              # elements of x at batch 2


def _cost(operations, name):
    return operations.costs[name]


@pytest.mark.parametrize("name, flops", [
    ("add", X),                          # (2, 16, 32) + (2, 1, 32) broadcast: one add per output element
    ("subtract", X), ("divide", X), ("maximum", X), ("minimum", X),
    ("multiply", X),                     # a Python scalar is not an input: still one multiply per element
    ("not_equal", X), ("greater", X),       # one comparison per (broadcast) output element
    ("power", X), ("negative", X), ("square", X), ("log", X), ("reciprocal", X), ("sqrt", X), ("exp", X),
    ("mean", (X - 2 * 32) + 2 * 32),     # folds 16 rows into 1 per (batch, column): in - out adds, out divides
    ("sum", X - 2 * 16),                 # 32 columns into 1 per (batch, row)
    ("max", X - 2 * 32),
    ("matmul", 2 * (2 * 16 * 8) * 32),   # (2, 16, 32) @ (2, 32, 8): 256 outputs, 32 multiply-adds each
    ("einsum", 2 * 2 * 16 * 32 * 8),     # the same product written as an einsum
    ("tensordot", 2 * (2 * 16 * 8) * 32),  # (2, 16, 32) . (32, 8) over one axis: c = sqrt(1024 * 256 / 256) = 32
    ("outer", 32 * 32),                  # (32,) outer (32,): one product per output element, nothing summed
    ("softmax", 5 * X), ("relu", 1 * X),
    ("gelu", 9 * X),                     # keras.ops.gelu is the tanh approximation by default
    ("gelu_1", 5 * X),                   # approximate=False: the erf form
    ("transpose", 0), ("concatenate", 0), ("reshape", 0), ("expand_dims", 0),
])
def test_flops_by_hand(operations, name, flops):
    assert _cost(operations, name).supported
    assert _cost(operations, name).flops == flops


def test_matmul_and_einsum_count_multiply_adds_as_macs(operations):
    assert _cost(operations, "matmul").macs == 2 * 16 * 8 * 32
    assert _cost(operations, "einsum").macs == 2 * 16 * 8 * 32
    assert _cost(operations, "add").macs == 0


def test_views_allocate_nothing_and_copies_do(operations):
    assert _cost(operations, "reshape").activation_bytes == 0
    assert _cost(operations, "transpose").activation_bytes == 4 * X
    assert _cost(operations, "concatenate").activation_bytes == 4 * 2 * X


#: Operations whose TensorFlow op tfprof counts the same way (AddV2, Sub, Mul, RealDiv, Maximum, Minimum, Pow,
#: Neg, Square, Log, Reciprocal, NotEqual, Greater: one per element; Mean: one per input element; Sum: in - out;
#: Softmax: 5 per element; BatchMatMulV2 and tensordot's MatMul: 2*m*n*k; outer's Mul: one per element).
#: Not here: Sqrt, Exp, Relu, Max (no statistics in tfprof: 0), gelu (its composite graph counts Pow 1 and
#: Tanh/Erfc 0: the conventions differ), Einsum (no tfprof statistics: numpy below).
SAME_IN_TFPROF = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "power", "negative", "square",
                  "log", "reciprocal", "not_equal", "greater", "mean", "sum", "softmax", "matmul", "transpose",
                  "concatenate", "reshape", "tensordot", "outer"]


@pytest.mark.parametrize("name", SAME_IN_TFPROF)
def test_flops_agree_with_tfprof(operations, name):
    assert _cost(operations, name).flops == operations.graph_flops.get(name, 0)


def test_einsum_agrees_with_numpy():
    """Independent route: summing einsum over arrays of ones counts one product per index combination."""
    shapes = [(2, 16, 32), (2, 32, 8)]
    products = int(np.einsum("bij,bjk->bik", *(np.ones(s) for s in shapes)).sum())
    x, m = keras.Input(shapes[0][1:]), keras.Input(shapes[1][1:])
    model = keras.Model([x, m], ops.einsum("bij,bjk->bik", x, m))
    cost = next(iter(c for c in costed(model, batch=2).costs.values() if c.layer_type == "ops.Einsum"))
    assert cost.flops == 2 * products


def test_residual_add_gets_a_formula_and_coverage_is_complete():
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(8, name="dense")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(inputs + hidden))
    report = tfprofscale.profile(model, batch_size=4, trace=False, steps=1, warmup=0)
    add = next(row for row in report.layers if row.type == "ops.Add")
    assert add.analytic_flops == 4 * 8 == add.graph_flops      # one AddV2 per element of the (4, 8) sum
    assert report.totals.formula_coverage == 1.0
