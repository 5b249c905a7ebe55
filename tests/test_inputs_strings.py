"""Models fed raw strings (TextVectorization, StringLookup inside): profiled, preprocessing layers get rows."""
from __future__ import annotations

import tfprofscale

TEXT = """
    import keras

    def build_model():
        vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=5, name="vectorize")
        vectorize.adapt(["the cat sat on the mat", "a dog ran in the park today"])
        text = keras.Input((1,), dtype="string", name="review")
        x = keras.layers.Embedding(20, 4, name="embed")(vectorize(text))
        x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
        return keras.Model(text, keras.layers.Dense(2, name="head")(x), name="text_model")
"""

LOOKUP = """
    import keras

    def build_model():
        colour = keras.Input((3,), dtype="string", name="colour")
        ids = keras.layers.StringLookup(vocabulary=["red", "green", "blue"], name="lookup")(colour)
        x = keras.layers.Flatten(name="flat")(keras.layers.Embedding(4, 2, name="embed")(ids))
        return keras.Model(colour, keras.layers.Dense(1, name="head")(x), name="lookup_model")
"""

QUICK = dict(steps=1, warmup=0, trace=False, memory=False, tf_cost_model=False, max_time=0.05)


def test_a_text_vectorization_model_profiles_on_strings_it_makes_itself(write_model):
    report = tfprofscale.profile(str(write_model(TEXT, "text_model.py")), batch_size=2, **QUICK)
    rows = {row.name: row for row in report.layers}
    assert list(rows) == ["review", "vectorize", "embed", "pool", "head"]
    assert rows["review"].activation_bytes == 2 * 24          # two strings, TensorFlow's 24-byte tstring each
    vectorize = rows["vectorize"]
    assert vectorize.output_shape == [2, 5] and vectorize.analytic_flops == 0
    assert vectorize.geometry["lookups"] == 2 * 5
    # string operations have no FLOPs statistics in TensorFlow: listed as uncounted, not as 0
    assert {"StringSplitV2", "LookupTableFindV2"} <= set(report.totals.uncounted_op_types)
    # after the strings the batch is known again, so TensorFlow counts the rest:
    # pool: a mean over 5 tokens of a 2x4 output: one operation per input element, 2*5*4 = 40
    # head: 2*2*4*2 multiply-adds + 2*2 bias adds = 32 + 4 = 36
    assert rows["head"].graph_flops == 36 and rows["head"].analytic_flops == 36
    assert rows["pool"].graph_flops == 40 and rows["pool"].analytic_flops == 40


def test_a_string_lookup_model_profiles(write_model):
    report = tfprofscale.profile(str(write_model(LOOKUP, "lookup_model.py")), batch_size=2, **QUICK)
    rows = {row.name: row for row in report.layers}
    assert rows["lookup"].output_shape == [2, 3] and rows["lookup"].geometry["lookups"] == 6
    assert rows["head"].graph_flops == 2 * 2 * 6 * 1 + 2  # 24 multiply-add FLOPs + 2 bias adds
    assert rows["colour"].activation_bytes == 2 * 3 * 24
