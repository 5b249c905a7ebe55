"""Nested models and composite layers: leaf rows named by path, totals over leaves.

The reference is the same layers built flat: a nesting must change names,
parents and depths, never a number.
"""
from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from tfprofscale.errors import InputError
from tfprofscale.formulas import analytic
from tfprofscale.profiling.graph import graph_stats
from tfprofscale.profiling.trace import tracing
from tfprofscale.profiling.runtime.attribution import attribute_ops
from tfprofscale.profiling.assemble import layer_rows, totals
from tfprofscale.records import Report
from tfprofscale.profiling.runtime.measure import RuntimeResult
from tfprofscale.records import StepTimes
from tfprofscale.report.table import render

BATCH = 2


def untimed_report(model, batch_size=BATCH, input_shapes=None):
    traced = tracing.trace(model, batch_size, input_shapes=input_shapes)
    stats = graph_stats.graph_stats(traced.graph)
    ops = attribute_ops(stats, None, traced.layer_of)
    rows = layer_rows(traced.layers, analytic.analyze_layers(traced.layers), ops, stats, traced=False)
    steps = StepTimes(1.0, 1.0, 1.0, 1.0, 0.0, 1)
    measured = RuntimeResult("CPU:0", steps, None, None, None, [], None)
    return Report(model.name, {}, batch_size, tf.__version__, "CPU:0", totals(rows, ops, stats, measured), rows, ops)


def conv_block(name):
    return [keras.layers.Conv2D(4, 3, activation="relu", name=f"{name}_conv"),
            keras.layers.MaxPooling2D(2, name=f"{name}_pool")]


def flat_model():
    inputs = keras.Input((10, 10, 3), name="image")
    x = inputs
    for layer in [*conv_block("a"), keras.layers.Flatten(name="flat"), keras.layers.Dense(5, name="head")]:
        x = layer(x)
    return keras.Model(inputs, x, name="flat_model")


def nested_model():
    """a_conv, a_pool inside a Functional backbone; flat + head inside a Sequential inside a Sequential."""
    inner_in = keras.Input((10, 10, 3))
    x = inner_in
    for layer in conv_block("a"):
        x = layer(x)
    backbone = keras.Model(inner_in, x, name="backbone")
    head = keras.Sequential([keras.layers.Flatten(name="flat"),
                             keras.Sequential([keras.layers.Dense(5, name="head")], name="top")], name="classifier")
    inputs = keras.Input((10, 10, 3), name="image")
    return keras.Model(inputs, head(backbone(inputs)), name="nested_model")


@pytest.fixture(scope="module")
def both():
    return untimed_report(flat_model()), untimed_report(nested_model())


def test_nested_rows_are_named_by_path_with_parent_and_depth(both):
    _, nested = both
    named = {row.name: (row.parent, row.depth) for row in nested.layers}
    assert named == {
        "image": (None, 0),
        "backbone/a_conv": ("backbone", 1), "backbone/a_pool": ("backbone", 1),
        "classifier/flat": ("classifier", 1), "classifier/top/head": ("classifier/top", 2),
    }


def test_nested_totals_equal_the_same_layers_built_flat(both):
    flat, nested = both
    by_leaf = {row.name.rsplit("/", 1)[-1]: row for row in nested.layers}
    for row in flat.layers:
        twin = by_leaf[row.name.rsplit("/", 1)[-1]]
        assert (twin.params, twin.analytic_flops, twin.graph_flops, twin.output_shape) == \
               (row.params, row.analytic_flops, row.graph_flops, row.output_shape), row.name
    for field in ("params", "analytic_flops", "analytic_macs", "graph_flops", "formula_coverage"):
        assert getattr(nested.totals, field) == getattr(flat.totals, field), field


def test_flat_figures_by_hand(both):
    flat, _ = both
    conv = 2 * (3 * 3 * 3) * 4 * (8 * 8) * BATCH + 4 * 8 * 8 * BATCH   # Conv2D + BiasAdd (Relu uncounted)
    pool = (2 * 2) * (4 * 4 * 4) * BATCH                               # window area * outputs
    dense = 2 * 64 * 5 * BATCH + 5 * BATCH                             # MatMul + BiasAdd
    assert flat.totals.graph_flops == conv + pool + dense
    assert flat.totals.params == (3 * 3 * 3 * 4 + 4) + (64 * 5 + 5)
    assert flat.totals.formula_coverage == 1.0


def test_the_table_indents_nested_rows_under_a_header(both):
    _, nested = both
    text = render(nested)
    assert "\nbackbone/\n  a_conv (Conv2D)" in text
    assert "\nclassifier/\n  flat (Flatten)" in text and "\n  top/\n    head (Dense)" in text


class RawMatmul(keras.layers.Layer):
    """A custom layer whose call is raw TensorFlow ops: no formula can know it."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 3), name="kernel")

    def call(self, x):
        return tf.matmul(x, self.kernel)


class Residual(keras.layers.Layer):
    """A custom layer built of Keras layers, plus one raw op of its own (the residual add)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(6, name="inner")
        self.outer = keras.layers.Dense(6, name="outer")

    def call(self, x):
        return x + self.outer(self.inner(x))


@pytest.fixture(scope="module")
def custom():
    inputs = keras.Input((6,))
    x = Residual(name="residual")(inputs)
    outputs = RawMatmul(name="raw")(x)
    return untimed_report(keras.Model(inputs, outputs, name="custom"))


def test_a_raw_ops_layer_is_unsupported_with_graph_flops(custom):
    raw = next(row for row in custom.layers if row.name == "raw")
    assert not raw.supported and raw.analytic_flops is None
    assert raw.graph_flops == 2 * BATCH * 6 * 3   # MatMul (2, 6) x (6, 3)
    assert raw.params == 6 * 3
    assert "raw" in custom.totals.unsupported_layers


def test_a_composite_layer_is_costed_by_its_sublayers_and_its_own_ops(custom):
    rows = {row.name: row for row in custom.layers}
    dense = 2 * BATCH * 6 * 6 + BATCH * 6                  # MatMul + BiasAdd of one Dense(6) on 6 features
    assert rows["residual/inner"].graph_flops == rows["residual/inner"].analytic_flops == dense
    assert rows["residual/outer"].graph_flops == dense
    own = rows["residual"]                                 # the residual add, outside both sublayers
    assert own.graph_flops == BATCH * 6 and not own.supported and own.params == 0
    assert custom.totals.params == 2 * (6 * 6 + 6) + 6 * 3
    assert custom.totals.graph_flops == 2 * dense + BATCH * 6 + 2 * BATCH * 6 * 3
    assert custom.totals.formula_coverage == pytest.approx(2 * dense / custom.totals.graph_flops)


def undefined_input_model():
    inputs = keras.Input((None, None, 3))
    inner_in = keras.Input((None, None, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(2, 3, name="conv")(inner_in), name="inner")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(inner(inputs))
    return keras.Model(inputs, x, name="undefined")


def test_input_shape_fixes_undefined_dimensions_down_to_nested_layers():
    report = untimed_report(undefined_input_model(), input_shapes=[(9, 7, 3)])
    conv = next(row for row in report.layers if row.name == "inner/conv")
    assert conv.output_shape == [BATCH, 7, 5, 2]
    assert conv.graph_flops == 2 * (3 * 3 * 3) * 2 * (7 * 5) * BATCH + 2 * 7 * 5 * BATCH


def test_without_input_shape_the_refusal_suggests_it():
    with pytest.raises(InputError, match=r"\(None, None, None, 3\).*--input-shape"):
        tracing.trace(undefined_input_model(), BATCH)


@pytest.mark.parametrize("shapes, fragment", [
    ([(9, 7)], "has 2 dimension(s) but model input"),
    ([(9, 7, 4)], "a fixed dimension differs"),
    ([(9, 7, 3), (9, 7, 3)], "given 2 time(s) but the model has 1 input"),
])
def test_input_shape_that_does_not_fit_the_model(shapes, fragment):
    with pytest.raises(InputError) as error:
        tracing.trace(undefined_input_model(), BATCH, input_shapes=shapes)
    assert fragment in str(error.value) and "\n" not in str(error.value)


UNDEFINED_INPUT_MODEL_FILE = """
    import keras


    def build_model():
        inputs = keras.Input((None, None, 3))
        return keras.Model(inputs, keras.layers.Conv2D(2, 3, name="conv")(inputs), name="undefined")
"""


@pytest.mark.parametrize("value, fragment", [
    ("a,b", "whole number"), ("", "separated by commas"), ("8,,3", "separated by commas"), ("8,0,3", ">= 1"),
])
def test_cli_refuses_a_bad_input_shape_in_one_line(capsys, write_model, value, fragment):
    from tfprofscale.cli import main

    status = main(["profile", str(write_model(UNDEFINED_INPUT_MODEL_FILE)), "--input-shape", value, "--no-trace"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]
    assert status == 2 and len(lines) == 1 and fragment in lines[0] and "--input-shape" in lines[0]


def test_cli_profiles_an_undefined_input_with_input_shape(capsys, write_model, tmp_path):
    from tfprofscale.cli import main

    path = write_model(UNDEFINED_INPUT_MODEL_FILE)
    status = main(["profile", str(path), "--input-shape", "6,5,3", "--no-trace", "--steps", "2", "--warmup", "1",
                   "--quiet", "--json", str(tmp_path / "r.json")])
    assert status == 0
    import json

    conv = next(row for row in json.loads((tmp_path / "r.json").read_text())["layers"] if row["name"] == "conv")
    assert conv["output_shape"] == [1, 4, 3, 2]
    assert conv["graph_flops"] == 2 * (3 * 3 * 3) * 2 * (4 * 3) + 2 * 4 * 3   # Conv2D + BiasAdd
    status = main(["profile", str(path), "--no-trace", "--quiet"])
    assert status == 2 and "--input-shape" in capsys.readouterr().err


def test_a_keras_operation_that_is_not_a_layer_gets_a_row_with_its_graph_flops():
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(4, name="dense")(inputs)
    report = untimed_report(keras.Model(inputs, hidden + inputs, name="residual_sum"))
    [add] = [row for row in report.layers if row.type == "ops.Add"]
    assert add.graph_flops == BATCH * 4                           # one AddV2 over (2, 4)
    assert add.analytic_flops == BATCH * 4                        # the ops.Add formula, not the Add layer's
    assert report.totals.graph_flops == (2 * BATCH * 4 * 4 + BATCH * 4) + BATCH * 4
    assert all(op.layer is not None for op in report.ops if op.graph_flops)


def test_sweep_config_takes_one_input_shape_per_input(tmp_path):
    from tfprofscale.sweep.config import parse_sweep_file

    path = tmp_path / "sweep.ini"
    path.write_text("[sweep]\nbatch_size = 1\ninput_shape = 32,32,3 7\n")
    assert parse_sweep_file(path).input_shapes == ((32, 32, 3), (7,))
    path.write_text("[sweep]\nbatch_size = 1\ninput_shape = 32,x,3\n")
    with pytest.raises(InputError, match=r"sweep.ini \[sweep\] input_shape '32,x,3': every dimension"):
        parse_sweep_file(path)


def test_predict_takes_input_shape(capsys, write_model):
    from tfprofscale.cli import main

    status = main(["predict", "no-such-model.json", str(write_model(UNDEFINED_INPUT_MODEL_FILE)),
                   "--input-shape", "4,-1,3"])
    err = capsys.readouterr().err
    assert status == 2 and "--input-shape '4,-1,3': every dimension must be an integer >= 1" in err


def test_predict_traces_an_undefined_input_at_the_given_shape(write_model):
    from tfprofscale.cli.fit import untimed_layer_rows

    rows = untimed_layer_rows(str(write_model(UNDEFINED_INPUT_MODEL_FILE)), [], 1, ((6, 5, 3),))
    assert next(row for row in rows if row.name == "conv").output_shape == [1, 4, 3, 2]


def test_recorded_input_shapes_cover_every_tensor_argument_at_the_fixed_batch():
    query, value = keras.Input((5, 8), name="query"), keras.Input((7, 6), name="value")
    attention = keras.layers.MultiHeadAttention(2, 4, name="mha")(query=query, value=value)
    traced = tracing.trace(keras.Model([query, value], attention), BATCH)
    mha = next(info for info in traced.layers if info.name == "mha")
    assert mha.input_shapes == ((BATCH, 5, 8), (BATCH, 7, 6)) and mha.output_shape == (BATCH, 5, 8)
    assert mha.inbound == ("query", "value")
