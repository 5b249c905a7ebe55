"""Formulas a model file registers for its own layers, and a shared layer counted once per call."""
from __future__ import annotations

import textwrap

import pytest

import tfprofscale
from tests.cli_faults import one_line_error

SCALED_DENSE = """
    import keras
    import tensorflow as tf
    import tfprofscale

    class ScaledDense(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones")
            self.b = self.add_weight(shape=(self.units,), initializer="ones")

        def call(self, x):
            return 0.5 * (tf.matmul(x, self.w) + self.b)

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    {registration}

    def build_model():
        inputs = keras.Input((4,), name="x")
        return keras.Model(inputs, ScaledDense(3, name="scaled")(inputs), name="custom")
"""

DECORATED = """
    @tfprofscale.formula("ScaledDense")
    def scaled_dense(input_shapes, output_shape, config):
        batch, features = input_shapes[0]
        units = config["units"]
        return {"flops": 2 * batch * features * units + 2 * batch * units, "macs": batch * features * units}
"""

AS_DICT = """
    def scaled_dense(input_shapes, output_shape, config):
        batch, features = input_shapes[0]
        macs = batch * features * output_shape[-1]
        return {"flops": 2 * macs + 2 * batch * output_shape[-1], "macs": macs, "params": features * 3 + 3}

    FORMULAS = {"ScaledDense": scaled_dense}
"""

QUICK = dict(steps=1, warmup=0, trace=False, memory=False, tf_cost_model=False, max_time=0.05)


def source(registration: str) -> str:
    """The model file with ``registration`` at module level (indented as the template, which is dedented)."""
    return SCALED_DENSE.replace("    {registration}\n", textwrap.indent(textwrap.dedent(registration), "    ") + "\n")


@pytest.mark.parametrize("registration", [DECORATED, AS_DICT], ids=["decorator", "FORMULAS"])
def test_a_registered_formula_reaches_full_coverage(write_model, registration):
    report = tfprofscale.profile(str(write_model(source(registration), "custom.py")), batch_size=2, **QUICK)
    row = next(row for row in report.layers if row.name == "scaled")
    # batch 2, 4 -> 3: matmul 2*2*4*3 = 48, bias add 2*3 = 6, scale 2*3 = 6 -> 60 FLOPs, 24 MACs
    assert row.analytic_flops == 60 and row.analytic_macs == 24 and row.supported
    assert row.graph_flops == 60  # TensorFlow's profiler: MatMul 48 + AddV2 6 + Mul 6
    assert report.totals.formula_coverage == 1.0
    assert row.geometry["formula"] == "model file custom.py"


def test_without_a_formula_the_layer_is_not_covered(write_model):
    report = tfprofscale.profile(str(write_model(source(""), "custom.py")), batch_size=2, **QUICK)
    assert report.totals.formula_coverage == 0.0 and report.totals.unsupported_layers == ["scaled"]


@pytest.mark.parametrize("registration, expected", [
    ("FORMULAS = {'ScaledDense': 3}", "the formula for ScaledDense is a int, not a function"),
    ("FORMULAS = [1]", "FORMULAS is a list, not a dict"),
    ("tfprofscale.formula('ScaledDense')('not callable')", "the formula for ScaledDense is a str, not a function"),
    ("FORMULAS = {'ScaledDense': lambda i, o, c: (60, 24)}",
     "formula for ScaledDense returned a tuple, not a dict with 'flops' and 'macs'"),
    ("FORMULAS = {'ScaledDense': lambda i, o, c: 1 / 0}", "formula for ScaledDense raised ZeroDivisionError"),
    ("FORMULAS = {'ScaledDense': lambda i, o, c: {'flops': 10, 'macs': 6}}", "macs=6 > flops/2=5"),
    ("FORMULAS = {'ScaledDense': lambda i, o, c: {'flops': -1, 'macs': 0}}", "flops=-1: expected a whole number"),
    ("FORMULAS = {'ScaledDense': lambda i, o, c: {'flops': 60, 'macs': 24, 'params': 1}}",
     "returned params=1, Keras counts 15"),
])
def test_bad_registrations_exit_2_naming_the_file_and_the_layer_type(write_model, capsys, registration, expected):
    path = write_model(source(registration), "custom.py")
    line = one_line_error(capsys, "profile", str(path), "--no-trace", "--quiet", "--no-cost-model")
    assert "model file custom.py" in line and expected in line


SHARED = """
    import keras

    def build_model():
        inputs = keras.Input((6,), name="x")
        shared = keras.layers.Dense(6, name="shared")
        norm = keras.layers.LayerNormalization(name="norm")
        x = norm(shared(inputs))
        x = norm(shared(x))            # both layers called twice, as MLP-Mixer calls its LayerNormalization
        return keras.Model(inputs, keras.layers.Dense(2, name="head")(x), name="shared")
"""

ONCE = """
    import keras

    def build_model():
        inputs = keras.Input((6,), name="x")
        return keras.Model(inputs, keras.layers.LayerNormalization(name="norm")(inputs), name="once")
"""


def test_a_shared_layer_is_counted_once_per_call(write_model):
    report = tfprofscale.profile(str(write_model(SHARED, "shared.py")), batch_size=2, **QUICK)
    rows = {row.name: row for row in report.layers}
    shared = rows["shared"]
    # each call: 2*2*6*6 multiply-adds + 2*6 bias adds = 144 + 12 = 156; two calls 312; parameters once
    assert shared.analytic_flops == 312 and shared.analytic_macs == 144 and shared.params == 42
    assert shared.geometry["calls"] == 2
    assert shared.graph_flops == 312  # the graph holds both calls' MatMul and BiasAdd
    # the LayerNormalization: twice what the same layer costs called once (an independent model)
    once = tfprofscale.profile(str(write_model(ONCE, "once.py")), batch_size=2, **QUICK)
    single = next(row for row in once.layers if row.name == "norm")
    assert rows["norm"].analytic_flops == 2 * single.analytic_flops
    assert rows["norm"].graph_flops == 2 * single.graph_flops
    assert "calls" not in rows["head"].geometry


SUBCLASS_OF_KERAS = """
    import keras

    class MyAttention(keras.layers.MultiHeadAttention):   # a library's subclass (keras_hub's are alike)
        pass

    def build_model():
        x = keras.Input((6, 8), name="x")
        return keras.Model(x, MyAttention(num_heads=2, key_dim=4, name="attn")(x, x), name="subclass")
"""


def test_a_subclass_of_a_keras_layer_is_costed_by_its_base_formula(write_model):
    report = tfprofscale.profile(str(write_model(SUBCLASS_OF_KERAS, "subclass.py")), batch_size=2, **QUICK)
    rows = {row.name: row for row in report.layers}
    assert list(rows) == ["x", "attn"]  # one row, not its query/key/value/output sublayers
    attn = rows["attn"]
    assert attn.type == "MyAttention" and attn.geometry["formula_of"] == "MultiHeadAttention"
    # by hand, batch 2, 6 positions, width 8, 2 heads of 4:
    # q, k, v projections: 3 * (2*2*6*8*8 + 2*6*8) = 3 * (1536 + 96) = 4896
    # scores q.k: 2*2*2*6*6*4 = 1152, each scaled by 1/sqrt(4): 2*2*6*6 = 144 multiplies;
    # softmax 5 per score: 5*144 = 720; weighted sum: 1152
    # output projection: 2*2*6*8*8 + 2*6*8 = 1536 + 96 = 1632
    assert attn.analytic_flops == 4896 + 1152 + 144 + 720 + 1152 + 1632  # 9696
    assert attn.graph_flops == attn.analytic_flops  # TensorFlow's profiler counts the same ops
