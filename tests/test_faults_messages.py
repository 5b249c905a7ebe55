"""Issue 21, "unclear or misleading": each bad input named in one line (exit 2), each unknown figure never shown as 0.

The files a command reads are checked byte for byte before and after (SHA-256).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from tests.cli_faults import DENSE, one_line_error
from tfprofscale.cli import main
from tfprofscale.errors import InputError


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.py"
    path.write_text(DENSE)
    return path


def _model_file(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("import keras\nimport tensorflow as tf\n\n\n" + body)
    return path


# ---------------------------------------------------------------- options profile would silently ignore

def test_show_predictions_without_data(capsys, model, monkeypatch):
    monkeypatch.delenv("TFPROFSCALE_DATA", raising=False)
    model_file = _model_file(model.parent, "withdata.py", DENSE.split("\n", 1)[1] + (
        "\n\ndef load_data(path):\n    raise RuntimeError('not called')\n"))
    before = sha256(model_file)
    line = one_line_error(capsys, "profile", str(model_file), "--show-predictions", "3", "--no-trace")
    assert line == ("tfprofscale profile: error: --show-predictions 3 needs --data DIR (or TFPROFSCALE_DATA): "
                    "the predictions are made on its test split")
    assert sha256(model_file) == before


def test_data_for_a_model_without_load_data(capsys, model, tmp_path):
    before = sha256(model)
    line = one_line_error(capsys, "profile", str(model), "--data", str(tmp_path), "--no-trace")
    assert line == (f"tfprofscale profile: error: --data {tmp_path}: model file {model} has no "
                    "load_data(path, **params), so it has no data to evaluate")
    assert sha256(model) == before


# ---------------------------------------------------------------- shapes

def test_a_negative_input_shape_reaches_its_check(capsys, model):
    line = one_line_error(capsys, "profile", str(model), "--input-shape", "-1,32,3")
    assert line == ("tfprofscale profile: error: --input-shape '-1,32,3': every dimension must be an integer >= 1 "
                    "(give the shape of one example, without the batch dimension: the batch is --batch-size)")


def test_one_example_too_large_does_not_advise_a_smaller_batch(capsys, tmp_path, monkeypatch):
    """100000 x 100000 x 3 float32 inputs made from float64 noise: 3e10 elements x (4 + 8) B = 3.6e11 B = 335.3 GiB."""
    from tfprofscale.profiling.trace import input_budget

    monkeypatch.setattr(input_budget, "available_memory_bytes", lambda: 2**30)
    conv = _model_file(tmp_path, "conv.py", "def build_model():\n    inputs = keras.Input((None, None, 3))\n"
                       "    return keras.Model(inputs, keras.layers.Conv2D(2, 3, name='c')(inputs))\n")
    line = one_line_error(capsys, "profile", str(conv), "--input-shape", "100000,100000,3", "--no-trace", "--quiet")
    assert line == ("tfprofscale profile: error: batch size 1: the model's inputs (while they are made) need 335.3 GiB,"
                    " more than the 1.0 GiB of memory available: even one example is too large: use a smaller "
                    "--input-shape (or model parameters)")


# ---------------------------------------------------------------- what build_model returns

@pytest.mark.parametrize("returned, expected", [
    ("42", "returned 42: a int object, not a keras.Model or a tf.function"),
    ("keras.layers.Dense(2, name='head')", "returned <Dense name=head, built=False>: a keras layer, not a keras.Model "
                              "(wrap it: keras.Model(inputs, layer(inputs)))"),
    ("None", "returned None: not a keras.Model or a tf.function (does it end with `return model`?)"),
])
def test_build_model_returning_something_else(capsys, tmp_path, returned, expected):
    path = _model_file(tmp_path, "odd.py", f"def build_model():\n    return {returned}\n")
    line = one_line_error(capsys, "profile", str(path), "--no-trace", "--quiet")
    assert line == f"tfprofscale profile: error: odd.py: build_model() {expected}"


def test_a_weight_larger_than_memory_is_named_not_tensorflow_internals(capsys, tmp_path, monkeypatch):
    """--param dense_units=100000000 on 10 inputs: kernel (10, 1e8) float32 = 4e9 B = 3.7 GiB against 1 GiB."""
    from tfprofscale.profiling.trace import weight_budget

    monkeypatch.setattr(weight_budget, "available_memory_bytes", lambda: 2**30)
    path = _model_file(tmp_path, "wide.py", "PARAMS = {'dense_units': 2}\n\n\ndef build_model(dense_units=2):\n"
                       "    inputs = keras.Input((10,))\n"
                       "    return keras.Model(inputs, keras.layers.Dense(dense_units, name='dense')(inputs))\n")
    line = one_line_error(capsys, "profile", str(path), "--param", "dense_units=100000000", "--no-trace", "--quiet")
    assert line == ("tfprofscale profile: error: wide.py: build_model(dense_units=100000000): weight dense/kernel of "
                    "shape (10, 100000000) needs 3.7 GiB (0.0 GiB of weights before it), more than the 1.0 GiB of "
                    "memory available: use smaller model parameters")


def test_tensorflow_function_node_prefix_is_dropped():
    from tfprofscale.profiling.trace.user_code import first_line

    error = RuntimeError("{{function_node __wrapped__RandomUniform_device_/job:localhost/replica:0/task:0/device:CPU:0}}"
                         " OOM when allocating tensor with shape[10,100000000] and type float on "
                         "/job:localhost/replica:0/task:0/device:CPU:0 by allocator mklcpu [Op:RandomUniform] name: \n"
                         "more lines")
    assert first_line(error) == ("OOM when allocating tensor with shape[10,100000000] and type float on "
                                 "/job:localhost/replica:0/task:0/device:CPU:0 by allocator mklcpu")


def test_an_input_is_named_after_its_input_layer(capsys, tmp_path):
    path = _model_file(tmp_path, "text.py", "def build_model():\n    inputs = keras.Input((2,), dtype='string')\n"
                       "    x = keras.layers.StringLookup(vocabulary=['a', 'b'])(inputs)\n"
                       "    return keras.Model(inputs, x)\n\n\n"
                       "def example_inputs(batch_size):\n    return tf.constant([['a']] * batch_size)\n")
    line = one_line_error(capsys, "profile", str(path), "--no-trace", "--quiet")
    assert re.fullmatch(r"tfprofscale profile: error: model file text\.py: example_inputs\(1\): input "
                        r"'input_layer(_\d+)?' has shape \(1, 1\), the model takes \(1, 2\)", line), line
    assert "keras_tensor" not in line  # Keras' name for the tensor, not the input layer's


# ---------------------------------------------------------------- files that are not what they claim

def test_a_193_mib_model_file(capsys, tmp_path):
    big = tmp_path / "big.py"
    with open(big, "wb") as handle:
        handle.truncate(193 * 2**20)  # sparse: no 193 MiB written
    line = one_line_error(capsys, "profile", str(big))
    assert line == (f"tfprofscale profile: error: model file {big} is 193 MiB: a model file is Python source of at "
                    "most 64 MiB (keep weights and data in their own files: --weights, --data)")


def test_json_given_as_weights(capsys, model, tmp_path):
    weights = tmp_path / "w.json"
    weights.write_text('{"kind": "tfprofscale latency model"}')
    before = sha256(weights)
    line = one_line_error(capsys, "profile", str(model), "--weights", str(weights))
    assert line == (f"tfprofscale profile: error: --weights {weights}: not a Keras weights file (it is JSON text; "
                    "Keras saves weights as HDF5, name.weights.h5, e.g. by `tfprofscale train --save`)")
    assert sha256(weights) == before


def test_an_idx_header_with_nine_dimensions(tmp_path):
    from tfprofscale.datasets import read_idx

    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 9]) + bytes(36) + bytes(100))  # 9 dimensions of 0, then 100 data bytes
    with pytest.raises(InputError) as caught:
        read_idx(path)
    assert str(caught.value) == (f"{path}: corrupt IDX header: byte 3 says 9 dimensions, which no data set tfprofscale"
                                 " reads has (images have 3, labels 1), and its shape (0, 0, 0, 0, 0, 0, 0, 0, 0) does "
                                 "not match the 100 bytes of data")


def test_an_ini_with_a_byte_order_mark_is_read(tmp_path):
    from tfprofscale.sweep.config import parse_sweep_file

    ini = tmp_path / "bom.ini"
    ini.write_bytes("\ufeff[sweep]\nmodel = m.py\nsteps = 3\n\n[grid]\nunits = 2 4\n".encode("utf-8"))
    config = parse_sweep_file(ini)
    assert config.steps == 3 and config.grid == {"units": [2, 4]}


def test_timeout_inf_in_an_ini(capsys, model, tmp_path):
    ini = tmp_path / "grid.ini"
    ini.write_text("[sweep]\nmodel = m.py\ntimeout = inf\n\n[grid]\n")
    before = sha256(ini)
    line = one_line_error(capsys, "sweep", str(ini), "--out", str(tmp_path / "out"))
    assert line == (f"tfprofscale sweep: error: {ini} [sweep] timeout: value inf must be a finite number of seconds "
                    "> 0 (leave timeout out for no limit)")
    assert sha256(ini) == before


def test_param_nan(capsys, tmp_path):
    path = _model_file(tmp_path, "drop.py", "PARAMS = {'dropout': 0.5}\n\n\ndef build_model(dropout=0.5):\n"
                       "    inputs = keras.Input((4,))\n    return keras.Model(inputs, keras.layers.Dropout(dropout)(inputs))\n")
    line = one_line_error(capsys, "profile", str(path), "--param", "dropout=nan", "--no-trace")
    assert line == ("tfprofscale profile: error: parameter dropout=nan: not a finite number; give a float like its "
                    "default 0.5")


# ---------------------------------------------------------------- unknown is never 0; the table fits

def _row(name: str, ops: list[str]):
    from tfprofscale.records import LayerRow

    return LayerRow(name=name, type="T", output_shape=[1], params=0, analytic_flops=0, analytic_macs=0,
                    graph_flops=0, activation_bytes=0, time_us=0.0, achieved_gflops=None, ops=ops, timed_ops=ops)


def test_a_layer_whose_kernels_the_trace_never_saw_has_no_time():
    """Kernel k ran 10 us and 30 us in two steps (median 20); layer 'unseen' has op u, absent from the trace."""
    from tfprofscale.records import KernelTime
    from tfprofscale.profiling.runtime.shares import apply_step_medians
    from tfprofscale.report.table import NO_OP, UNSEEN, _time_cell

    rows = [_row("seen", ["k"]), _row("unseen", ["u"]), _row("identity", [])]
    apply_step_medians(rows, [KernelTime("k", "MatMul", 20.0, 1, (10.0, 30.0))])
    assert [(r.time_us, r.time_share) for r in rows] == [(20.0, 1.0), (None, None), (0.0, 0.0)]
    assert [_time_cell(r, traced=True) for r in rows] == ["20.0", UNSEEN, NO_OP] == ["20.0", "–", "no op"]


def test_no_trace_says_not_traced_and_the_table_fits_columns(capsys, model, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    status = main(["profile", str(model), "--no-trace", "--quiet", "--steps", "1", "--warmup", "0",
                   "--max-time", "0.2", "--no-cost-model"])
    out = capsys.readouterr().out
    assert status == 0
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80, max(lines, key=len)
    table = lines[4:lines.index(lines[1], 2)]  # between the header's rule and the closing one
    assert [line.split()[:2] for line in table] == [["x", "(InputLayer)"], ["d", "(Dense)"]]
    assert all(line.endswith("not traced") for line in table)
    flat = " ".join(out.split())  # the footer wraps at 80 columns
    assert "Note: not traced: no profiler trace was taken (--no-trace), so no layer has a time" in flat
    assert any(line.startswith("Hidden:        Output shape") for line in lines)
    status = main(["profile", str(model), "--no-trace", "--quiet", "--steps", "1", "--warmup", "0",
                   "--max-time", "0.2", "--no-cost-model", "--wide"])
    wide = capsys.readouterr().out
    assert "Hidden:" not in wide and "Output shape" in wide and "Memory" in wide.splitlines()[2]


def test_columns_are_dropped_least_needed_first():
    from tfprofscale.report.fit_width import kept_columns

    titles = ["Layer (type)", "Output shape", "Params", "Memory", "GFLOP/s"]
    widths = [30, 18, 10, 11, 8]  # 30+18+10+11+8 + 4 spaces = 81
    assert kept_columns(titles, widths, 81) == [0, 1, 2, 3, 4]
    assert kept_columns(titles, widths, 80) == [0, 1, 2, 4]      # Memory goes first: 30+18+10+8+3 = 69
    assert kept_columns(titles, widths, 60) == [0, 1, 2]         # then GFLOP/s: 30+18+10+2 = 60
    assert kept_columns(titles, widths, 59) == [0, 2]            # then Output shape: 30+10+1 = 41
    assert kept_columns(titles, widths, None) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- one unit convention, grouped warnings, fits

def test_bytes_are_binary_in_the_audit_the_sweep_report_and_the_plots():
    from tfprofscale.audit.render import _amount
    from tfprofscale.report.units import bytes_formatter

    peak = 3_491_840  # 3.33 MiB (3,491,840 / 1,048,576 = 3.330), which the audit printed as "3.49M B"
    assert _amount(peak, "B") == "3.33 MiB"
    assert _amount(2_610_000, "FLOPs") == "2.61M FLOPs"
    assert bytes_formatter()(1.5 * 2**20, 0) == "1.5 MiB"
    assert bytes_formatter()(512, 0) == "512 B"


def test_report_md_lists_a_repeated_warning_once():
    from tfprofscale.sweep.report import _warning_lines

    records = [{"config_id": f"c{i}", "report": {"warnings": [
        f"noisy timing: step times vary with CV {20 + i}% over 50 steps", *(["untrained weights: zero biases"]
                                                                          if i == 0 else [])]}} for i in range(3)]
    lines = _warning_lines(records)
    bullets = [line for line in lines if line.startswith("- ")]
    assert bullets == [
        "- **noisy timing**, 3 configurations (`c0`, `c1`, `c2`): e.g. noisy timing: step times vary with CV 20% "
        "over 50 steps",
        "- **untrained weights**, 1 configuration (`c0`): untrained weights: zero biases",
    ]


def test_layer_time_fit_is_on_relative_errors():
    """Four small layers on time = FLOPs / 1000 us (1-4 us), and two large ones around that line (700 us at 1e6
    FLOPs, 2300 us at 2e6). On absolute errors the two large layers set the line and its intercept goes below
    zero (negative times for the small layers); on relative errors each small layer is within 10% of the line."""
    from tfprofscale.audit.fitting import fit_line
    from tfprofscale.sweep.plots import layer_time_fits

    flops = [1e3, 2e3, 3e3, 4e3, 1e6, 2e6]
    times = [1.0, 2.0, 3.0, 4.0, 700.0, 2300.0]
    fit = layer_time_fits([{"type": "Dense", "graph_flops": f, "time_us": t} for f, t in zip(flops, times)])[0]
    assert fit.fit.relative
    small = np.array(times[:4])
    assert np.all(np.abs(fit.fit.predict(flops[:4]) - small) / small < 0.10)
    assert np.all(fit_line(flops, times).predict(flops[:4]) < 0)  # the absolute fit: negative small-layer times
    assert fit.median_relative_error == pytest.approx(np.median(np.abs(fit.fit.predict(flops) - times) / times))
