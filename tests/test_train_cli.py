"""``profile --train`` and its flags on the command line, and sweeps with ``mode = infer train``.

conftest's 2-layer CNN at batch 2, filters 8: 10x10x1 -> Conv2D(8, 3x3 VALID, relu) 8x8x8 -> MaxPool 2 ->
4x4x8 -> Flatten 128 -> Dense(3) logits (default loss: sparse categorical cross-entropy from logits).
Backward FLOPs by TensorFlow's statistics (see tests/test_train_step.py for the rules):
  conv:   Conv2DBackpropFilter 2 * N2 * 10*10 * 3*3 * 1 * 8 = 28800; BiasAddGrad 2*8*8*8 - 8 = 1016; no dX
  pool:   MaxPoolGrad (2*2 + 1) * 2*4*4*8 = 1280
  logits: dX (2,128) k=3: 2*3*256 = 1536; dW (128,3) k=2: 2*2*384 = 1536; BiasAddGrad 2*3 - 3 = 3
"""
from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import pytest

from tests.cli_faults import one_line_error
from tests.conftest import TWO_LAYER_CNN
from tfprofscale.cli import main

FAST = ("--steps", "3", "--warmup", "1", "--no-trace", "--max-time", "0.3", "--quiet", "--no-cost-model")


def test_train_profile_prints_phases_and_writes_the_train_json(capsys, cnn_file, tmp_path):
    status = main(["profile", str(cnn_file), "--train", "--batch-size", "2", *FAST, "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert status == 0
    assert "TRAIN step" in out and "Bwd FLOPs" in out and "Ledger:" in out
    assert "loss sparse_categorical_crossentropy (from_logits) (default), optimizer Adam (default)" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["mode"] == "train"
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["conv"]["graph_backward_flops"] == 28800 + 1016
    assert layers["pool"]["graph_backward_flops"] == 1280
    assert layers["logits"]["graph_backward_flops"] == 1536 + 1536 + 3
    # forward FLOPs as for inference: conv 2*9*8*(2*8*8) + 2*8*8*8 = 19456, pool 4*2*4*4*8 = 1024,
    # logits 2*128*3*2 + 6 = 1542
    assert (layers["conv"]["graph_flops"], layers["pool"]["graph_flops"], layers["logits"]["graph_flops"]) == \
        (19456, 1024, 1542)
    totals = data["totals"]
    assert totals["graph_train_flops"] == sum(totals["graph_flops_by_phase"].values())
    assert totals["train_to_forward"] == pytest.approx(totals["graph_train_flops"] / totals["graph_flops"])
    ledger = data["memory"]["ledger"]
    assert ledger["total_measured_bytes"] == totals["peak_bytes"] > 0
    # Adam: weights 8*9+8 + 128*3+3 = 467 floats = 1868 B, slots twice that, plus iterations (8 B) and lr (4 B)
    lines = {line["term"]: line for line in ledger["lines"]}
    assert lines["weights"]["measured_bytes"] == 1868
    assert lines["optimizer slots"]["measured_bytes"] == 2 * 1868 + 12


@pytest.mark.parametrize("flags, fragment", [
    (("--train", "--optimizer", "nadamx"), "unknown optimizer"),
    (("--optimizer", "sgd"), "--optimizer chooses the optimizer of the training step: it needs --train"),
    (("--train", "--memory-budget", "1GiB", "--target-batch", "0"), "--target-batch must be an integer >= 1"),
    (("--train", "--target-batch", "4"), "--target-batch needs --memory-budget"),
    (("--memory-budget", "lots"), "--memory-budget 'lots' is not a size"),
    (("--train", "--memory-budget", "100B"), "below the model's weights and optimizer state alone"),
    (("--memory-budget", "1KiB"), "below the model's weights alone"),
])
def test_bad_train_flags_are_one_line(capsys, cnn_file, flags, fragment):
    assert fragment in one_line_error(capsys, "profile", str(cnn_file), *flags, *FAST)


UNTRAINABLE = TWO_LAYER_CNN.replace('return keras.Model(inputs, outputs, name="two_layer_cnn")',
                                    'model = keras.Model(inputs, outputs, name="two_layer_cnn")\n'
                                    '        model.trainable = False\n        return model')
WRONG_LABELS = TWO_LAYER_CNN + """
    import numpy as np


    def example_inputs(batch_size, **params):
        return np.zeros((batch_size, 10, 10, 1), "float32"), np.zeros((batch_size, 5), "int32")
"""
SCALAR_OUTPUT = """
    import keras


    def build_model():
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Reshape(())(keras.layers.Dense(1)(inputs)))


    def train_setup():
        return "sparse_categorical_crossentropy", "sgd"
"""


@pytest.mark.parametrize("source, fragment", [
    (UNTRAINABLE, "has no trainable weights"),
    (WRONG_LABELS, "example_inputs(2): labels have shape (2, 5), the loss on this output takes (2,)"),
    (SCALAR_OUTPUT, "loss sparse_categorical_crossentropy does not fit model output 0 of shape (2,)"),
])
def test_models_that_cannot_be_trained_are_one_line(capsys, write_model, source, fragment):
    path = write_model(source, "model.py")
    assert fragment in one_line_error(capsys, "profile", str(path), "--train", "--batch-size", "2", *FAST)


def test_a_tf_function_model_is_not_trainable_here(capsys):
    model = str(Path(__file__).resolve().parents[1] / "models" / "function_mlp.py")
    assert "--train needs a keras.Model" in one_line_error(capsys, "profile", model, "--train", *FAST)


def test_sweep_with_modes_infer_and_train_gives_both_rows(tmp_path, capsys):
    (tmp_path / "model.py").write_text(textwrap.dedent(TWO_LAYER_CNN))
    (tmp_path / "grid.ini").write_text("[sweep]\nmodel = model.py\nbatch_size = 2\nsteps = 3\nwarmup = 1\n"
                                       "trace_steps = 0\nmode = infer train\n")
    assert main(["sweep", str(tmp_path / "grid.ini"), "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "results.csv", newline="") as handle:
        rows = {row["mode"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"infer", "train"}
    assert rows["infer"]["status"] == rows["train"]["status"] == "ok"
    # the train step's forward FLOPs are inference's (no dropout or normalization here): 19456 + 1024 + 1542
    assert int(rows["infer"]["graph_flops"]) == int(rows["train"]["graph_flops"]) == 22022
    assert float(rows["train"]["train_to_forward"]) > 1 and rows["infer"]["train_to_forward"] == ""
    # fit and the audit's validation take one mode at a time (inference by default)
    from tfprofscale.audit.validation import load_sweep

    infer, train = load_sweep(tmp_path / "out"), load_sweep(tmp_path / "out", mode="train")
    assert len(infer) == len(train) == 1 and infer[0].config["mode"] == "infer" and train[0].config["mode"] == "train"


def test_memory_budget_finds_the_batch_between_two_measured_peaks(capsys, cnn_file, tmp_path):
    status = main(["profile", str(cnn_file), "--train", "--batch-size", "2", *FAST, "--memory-budget", "1MiB",
                   "--target-batch", "1000", "--json", str(tmp_path / "r.json")])
    assert status == 0
    data = json.loads((tmp_path / "r.json").read_text())
    found, plan = data["max_batch"], data["accumulation"]
    assert found["budget_bytes"] == 2**20
    assert found["measured_peak_bytes"] <= 2**20 < found["next_batch_measured_peak_bytes"]
    assert found["measured"][str(found["batch_size"])] == found["measured_peak_bytes"]
    assert plan["target_batch"] == 1000 and plan["micro_batch"] * plan["steps"] >= 1000
    # the accumulators: one per trainable variable, 467 float32 = 1868 B
    assert plan["extra_bytes"] == 1868
    assert "Max batch:" in capsys.readouterr().out


def test_a_budget_no_batch_fits_is_said_and_the_profile_kept(capsys, cnn_file, tmp_path):
    # above the variables (1868 B of weights, 2 * 1868 B of Adam slots, 12 B of scalars) but below any step's peak
    status = main(["profile", str(cnn_file), "--train", "--batch-size", "2", *FAST, "--memory-budget", "6000",
                   "--json", str(tmp_path / "r.json")])
    assert status == 0
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["max_batch"]["batch_size"] is None and "no batch fits" in data["max_batch"]["reason"]
    assert any("no batch fits" in warning for warning in data["warnings"])
    assert data["totals"]["graph_train_flops"] > 0


def test_jit_compile_train_step_attributes_hlo_time_to_layers(capsys, cnn_file, tmp_path):
    status = main(["profile", str(cnn_file), "--train", "--jit-compile", "--batch-size", "2", "--steps", "3",
                   "--warmup", "1", "--trace-steps", "2", "--max-time", "0.3", "--quiet", "--no-cost-model",
                   "--logdir", str(tmp_path / "runs"), "--json", str(tmp_path / "r.json")])
    assert status == 0
    out = capsys.readouterr().out
    assert "XLA (jit_compile)" in out and "HloCostAnalysis" in out
    data = json.loads((tmp_path / "r.json").read_text())
    xla = data["xla"]
    assert xla["entry_instructions"] > 0 and xla["flops"] is None
    # the parameters are the inputs (2*10*10*1 floats), the labels (2 int32) and every variable the step reads
    assert xla["argument_bytes"] >= 2 * 100 * 4 + 2 * 4 + 3 * 1868
    layers = {layer["name"]: layer for layer in data["layers"]}
    attributed = sum(layer["time_us"] for layer in data["layers"])
    assert attributed == pytest.approx(xla["hlo_time_us"] - xla["unattributed_time_us"])
    assert layers["conv"]["backward_time_us"] > 0 and layers["logits"]["forward_time_us"] > 0
