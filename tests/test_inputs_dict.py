"""Models whose inputs are a dict (nested or not) of keras.Inputs: traced, counted per branch, shapes by name."""
from __future__ import annotations

import json

import pytest

import tfprofscale
from tests.cli_faults import one_line_error
from tfprofscale.cli import main
from tfprofscale.errors import InputError
from tfprofscale.profiling.trace.input_shapes import parse_input_shapes

# Keys deliberately out of alphabetical order, and one nested: Keras flattens a dict by sorted keys,
# so feeding the inputs in creation order (what failed before) would swap them.
TWO_BRANCHES = """
    import keras

    def build_model():
        words = keras.Input((6,), name="words")
        age = keras.Input((4,), name="age")
        a = keras.layers.Dense(3, name="dense_age")(age)
        w = keras.layers.Dense(5, name="dense_words")(words)
        x = keras.layers.Concatenate(name="cat")([a, w])
        out = keras.layers.Dense(2, name="head")(x)
        return keras.Model({"words": words, "features": {"age": age}}, out, name="two_branches")
"""

UNDEFINED_LENGTH = """
    import keras

    def build_model():
        tokens = keras.Input((None, 4), name="tokens")
        extra = keras.Input((3,), name="extra")
        t = keras.layers.Dense(2, name="per_token")(tokens)
        e = keras.layers.Dense(2, name="dense_extra")(extra)
        return keras.Model({"tokens": tokens, "extra": extra}, [t, e], name="undefined_length")
"""

QUICK = dict(steps=1, warmup=0, trace=False, memory=False, tf_cost_model=False, max_time=0.05)


def rows(report):
    return {row.name: row for row in report.layers}


def test_dict_inputs_profile_with_flops_per_branch_by_hand(write_model):
    path = write_model(TWO_BRANCHES, "two_branches.py")
    layers = rows(tfprofscale.profile(str(path), batch_size=2, **QUICK))
    # batch 2: a Dense is 2*B*in*out multiply-adds plus B*out bias adds
    hand = {"dense_age": 2 * 2 * 4 * 3 + 2 * 3,      # 48 + 6 = 54
            "dense_words": 2 * 2 * 6 * 5 + 2 * 5,    # 120 + 10 = 130
            "head": 2 * 2 * 8 * 2 + 2 * 2}           # 64 + 4 = 68
    for name, flops in hand.items():
        assert layers[name].analytic_flops == flops
        assert layers[name].graph_flops == flops
    # the input rows are named after the keras.Input layers, each with its own shape
    assert layers["age"].output_shape == [2, 4] and layers["words"].output_shape == [2, 6]


def test_input_shape_by_name_fixes_an_undefined_dimension(write_model, tmp_path, capsys):
    path = write_model(UNDEFINED_LENGTH, "undefined_length.py")
    out = tmp_path / "r.json"
    status = main(["profile", str(path), "--batch-size", "2", "--input-shape", "tokens=5,4",
                   "--input-shape", "extra=3", "--steps", "1", "--warmup", "0", "--no-trace",
                   "--no-cost-model", "--max-time", "0.05", "--quiet", "--json", str(out)])
    assert status == 0, capsys.readouterr().err
    layers = {row["name"]: row for row in json.loads(out.read_text())["layers"]}
    assert layers["tokens"]["output_shape"] == [2, 5, 4]
    # per_token: 2*(2*5 tokens)*4*2 multiply-adds + 2*5*2 bias adds = 160 + 20
    assert layers["per_token"]["graph_flops"] == 180 and layers["per_token"]["analytic_flops"] == 180


def test_input_shape_by_key_path_and_positional(write_model):
    path = write_model(UNDEFINED_LENGTH, "undefined_length.py")
    named = tfprofscale.profile(str(path), batch_size=1, input_shapes={"tokens": (7, 4)}, **QUICK)
    assert rows(named)["per_token"].output_shape == [1, 7, 2]
    # positional: in Keras' flat order (sorted keys: extra, tokens)
    positional = tfprofscale.profile(str(path), batch_size=1, input_shapes=((3,), (7, 4)), **QUICK)
    assert rows(positional)["per_token"].output_shape == [1, 7, 2]


def test_parse_named_input_shapes():
    assert parse_input_shapes(["token_ids=128", "features.age=1"]) == {"token_ids": (128,), "features.age": (1,)}
    assert parse_input_shapes(["4,4"]) == ((4, 4),)
    with pytest.raises(InputError, match="by name .* or none by name"):
        parse_input_shapes(["token_ids=128", "4"])
    with pytest.raises(InputError, match="given twice"):
        parse_input_shapes(["a=1", "a=2"])
    with pytest.raises(InputError, match="not an input name"):
        parse_input_shapes(["3x=1"])


@pytest.mark.parametrize("shapes, expected", [
    (["--input-shape", "nope=5,4"], "no input of that name (its inputs: extra, tokens)"),
    (["--input-shape", "tokens=5,4", "--input-shape", "7"], "or none by name"),
    (["--input-shape", "tokens=5"], "needs 2"),
    (["--input-shape", "5,4"], "given 1 time(s) but the model has 2 input(s) (extra, tokens)"),
])
def test_bad_input_shapes_exit_2_in_one_line(write_model, capsys, shapes, expected):
    path = write_model(UNDEFINED_LENGTH, "undefined_length.py")
    line = one_line_error(capsys, "profile", str(path), "--no-trace", "--quiet", *shapes)
    assert expected in line


def test_input_rows_count_the_fed_dtype(write_model):
    path = write_model("""
        import keras

        def build_model():
            keras.mixed_precision.set_global_policy("mixed_float16")
            try:
                ids = keras.Input((3,), dtype="int32", name="ids")
                values = keras.Input((5,), name="values")
                e = keras.layers.Flatten()(keras.layers.Embedding(10, 2)(ids))
                out = keras.layers.Dense(1)(keras.layers.Concatenate()([e, values]))
                return keras.Model({"ids": ids, "values": values}, out, name="fed_dtypes")
            finally:
                keras.mixed_precision.set_global_policy("float32")
    """, "fed_dtypes.py")
    report = tfprofscale.profile(str(path), batch_size=2, **QUICK)
    layers = rows(report)
    assert layers["ids"].activation_bytes == 2 * 3 * 4      # int32: 4 bytes, not float16's 2
    assert layers["values"].activation_bytes == 2 * 5 * 4   # fed float32 under mixed_float16
    assert report.precision_policy == "mixed_float16"
    from tfprofscale.report.table import render

    assert "policy mixed_float16" in render(report).splitlines()[0]


def test_a_sweep_config_takes_input_shapes_by_name(tmp_path):
    from tfprofscale.sweep.config import load_sweep_config

    (tmp_path / "m.py").write_text("import keras\n\ndef build_model():\n    return None\n")
    config = tmp_path / "s.ini"
    config.write_text("[sweep]\nmodel = m.py\ninput_shape = tokens=5,4 extra=3\n")
    loaded = load_sweep_config(config)
    assert loaded.input_shapes == {"tokens": (5, 4), "extra": (3,)}
    assert loaded.settings()["input_shape"] == {"tokens": [5, 4], "extra": [3]}
