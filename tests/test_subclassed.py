"""Subclassed keras.Models (a call of their own): traced on their example inputs, one row per layer the call ran."""
from __future__ import annotations

import tfprofscale
from tests.cli_faults import one_line_error

SUBCLASSED = """
    import keras
    import numpy as np

    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.second = keras.layers.Dense(3, name="d2")          # tracked first, called second
            self.first = keras.layers.Dense(8, activation="relu", name="d1")
            self.unused = keras.layers.Dense(100, name="never_called")

        def call(self, x):
            return self.second(self.first(x))

    def build_model():
        return Net()
"""

WITH_EXAMPLE_INPUTS = SUBCLASSED + """
    def example_inputs(batch_size):
        return np.ones((batch_size, 5), "float32")
"""

BUILT = SUBCLASSED.replace("        return Net()", "        net = Net()\n        net.build((None, 5))\n"
                           "        return net")

QUICK = dict(steps=1, warmup=0, trace=False, memory=False, tf_cost_model=False, max_time=0.05)


def test_rows_per_layer_the_call_ran_in_call_order_with_flops_by_hand(write_model):
    report = tfprofscale.profile(str(write_model(WITH_EXAMPLE_INPUTS, "net.py")), batch_size=3, **QUICK)
    leaves = [row for row in report.layers if row.type == "Dense"]
    assert [row.name for row in leaves] == ["net/d1", "net/d2"]  # call order; the unused layer has no row
    assert all(row.parent == "net" and row.depth == 1 for row in leaves)
    d1, d2 = leaves
    # d1: 2*3*5*8 multiply-adds + 3*8 bias adds + 3*8 ReLUs = 240 + 24 + 24
    assert d1.analytic_flops == 288 and d1.output_shape == [3, 8] and d1.params == 5 * 8 + 8
    # d2: 2*3*8*3 + 3*3 = 144 + 9
    assert d2.analytic_flops == 153 and d2.params == 8 * 3 + 3
    # TensorFlow's profiler counts the same matmuls and bias adds (not the ReLU)
    assert d1.graph_flops == 264 and d2.graph_flops == 153
    assert report.totals.formula_coverage == 1.0


def test_a_model_built_in_build_model_needs_no_example_inputs(write_model):
    report = tfprofscale.profile(str(write_model(BUILT, "built.py")), batch_size=2, **QUICK)
    assert [row.name for row in report.layers if row.type == "Dense"] == ["net/d1", "net/d2"]
    assert report.layers[-1].analytic_flops == 2 * 2 * 8 * 3 + 2 * 3  # 96 + 6


def test_a_subclassed_model_with_no_way_to_make_inputs_exits_2(write_model, capsys):
    line = one_line_error(capsys, "profile", str(write_model(SUBCLASSED, "net.py")), "--no-trace", "--quiet")
    assert "subclassed keras.Model with no defined input: give the model file an example_inputs" in line


def test_example_inputs_of_the_wrong_batch_exit_2(write_model, capsys):
    source = SUBCLASSED + "\n    def example_inputs(batch_size):\n        return np.ones((4, 5), 'float32')\n"
    line = one_line_error(capsys, "profile", str(write_model(source, "net.py")), "--no-trace", "--quiet",
                          "--batch-size", "2")
    assert "example_inputs(2) returned an input of shape (4, 5): its first dimension must be the batch, 2" in line


def test_input_shape_is_refused_for_a_subclassed_model(write_model, capsys):
    line = one_line_error(capsys, "profile", str(write_model(WITH_EXAMPLE_INPUTS, "net.py")), "--no-trace",
                          "--quiet", "--input-shape", "5")
    assert "subclassed keras.Model" in line


def test_a_model_called_on_a_dict_is_traced_on_that_structure_and_its_own_ops_get_a_row():
    import keras
    import numpy as np

    class Two(keras.Model):
        def __init__(self):
            super().__init__(name="two")
            self.a, self.b = keras.layers.Dense(3, name="a"), keras.layers.Dense(3, name="b")

        def call(self, features):
            return self.a(features["x"]) + self.b(features["y"])  # the + is the model's own op

    model = Two()
    model({"x": np.ones((1, 4), "float32"), "y": np.ones((1, 5), "float32")})  # called once: built on a dict
    rows = {row.name: row for row in tfprofscale.profile(model, batch_size=2, **QUICK).layers}
    assert rows["two/a"].graph_flops == 2 * 2 * 4 * 3 + 2 * 3  # 48 + 6
    assert rows["two/b"].graph_flops == 2 * 2 * 5 * 3 + 2 * 3  # 60 + 6
    # the model's own AddV2 of two 2x3 outputs: 6 FLOPs in the graph, and no formula (a raw op)
    assert rows["two"].graph_flops == 6 and rows["two"].analytic_flops is None
