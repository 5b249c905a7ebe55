"""Model files that exit, misdefine the protocol, or fail at run time: one line, exit status 2."""
from __future__ import annotations

import errno
import json
import os

import pytest

from tests.cli_faults import DENSE_TEMPLATE, one_line_error
from tfprofscale.cli import main
from tfprofscale.errors import InputError

FAST = ("--steps", "1", "--warmup", "0", "--no-trace", "--quiet")


def dense_file(folder, source, name):
    """Write a model file as is (no dedent: the template is already flush left)."""
    path = folder / name
    path.write_text(source)
    return path


@pytest.mark.parametrize("extra, doing, status", [
    ("import sys\nsys.exit(0)", "importing it", "0"),
    ("raise SystemExit(3)", "importing it", "3"),
    ("import os\nos._exit(0)", "importing it", "0 (os._exit)"),
])
def test_an_exit_at_import_is_an_error(capsys, tmp_path, extra, doing, status):
    path = dense_file(tmp_path, DENSE_TEMPLATE.format(extra=extra), "exits.py")
    line = one_line_error(capsys, "profile", str(path), *FAST)
    assert line == f"tfprofscale profile: error: model file exits.py exited with status {status} while {doing}"


def test_an_exit_in_build_model_is_an_error(capsys, write_model):
    path = write_model("""
        import sys
        PARAMS = {"units": 2}

        def build_model(units=2):
            sys.exit(0)
    """, "builder.py")
    line = one_line_error(capsys, "profile", str(path), *FAST)
    assert line == ("tfprofscale profile: error: model file builder.py exited with status 0 while building the "
                    "model (build_model(units=2))")


def test_os_exit_in_example_inputs_is_an_error(capsys, tmp_path):
    path = dense_file(tmp_path, DENSE_TEMPLATE.format(extra="import os") + "\n\ndef example_inputs(batch_size):\n    os._exit(0)\n",
                       "inputs_exit.py")
    line = one_line_error(capsys, "profile", str(path), *FAST)
    assert line.endswith("model file inputs_exit.py exited with status 0 (os._exit) while calling example_inputs")
    assert os._exit.__name__ == "_exit"  # the real os._exit is back once the user code has returned


def test_an_exit_in_load_data_is_an_error(tmp_path):
    from tfprofscale.profiling.trace.loading import load_model_file

    path = dense_file(tmp_path, DENSE_TEMPLATE.format(extra="import sys") + "\n\ndef load_data(path):\n    sys.exit('no data')\n",
                       "data_exit.py")
    with pytest.raises(InputError) as caught:
        load_model_file(path).load_data("somewhere")
    assert str(caught.value) == "model file data_exit.py exited with status 1 (no data) while calling load_data"


@pytest.mark.parametrize("source, message", [
    ("build_model = 5\n", "build_model is a int, not a function"),
    ("PARAMS = 5\n\ndef build_model():\n    pass\n", "PARAMS is a int, not a dict of parameter defaults"),
    ("PARAMS = {1: 2}\n\ndef build_model(**params):\n    pass\n", "PARAMS key 1 is not a parameter name"),
    ("example_inputs = 'x'\n\ndef build_model():\n    pass\n", "example_inputs is a str, not a function"),
])
def test_protocol_names_of_the_wrong_kind(capsys, tmp_path, source, message):
    path = tmp_path / "proto.py"
    path.write_text(source)
    line = one_line_error(capsys, "profile", str(path), *FAST)
    assert line == f"tfprofscale profile: error: model file {path}: {message}"


def test_nul_bytes_say_not_a_text_file(capsys, tmp_path):
    path = tmp_path / "binary.py"
    path.write_bytes(b"import keras\n\0\0\0")
    line = one_line_error(capsys, "profile", str(path), *FAST)
    assert line == f"tfprofscale profile: error: model file {path} is not a text file (it contains NUL bytes)"


def test_example_inputs_that_raises(capsys, tmp_path):
    path = dense_file(tmp_path, DENSE_TEMPLATE.format(extra="") + "\n\ndef example_inputs(batch_size):\n    raise ValueError('boom')\n",
                       "raises.py")
    line = one_line_error(capsys, "profile", str(path), "--batch-size", "4", *FAST)
    assert line == "tfprofscale profile: error: model file raises.py: example_inputs(4) failed: ValueError: boom"


def test_example_inputs_of_the_wrong_shape(capsys, tmp_path):
    path = dense_file(tmp_path, DENSE_TEMPLATE.format(extra="import numpy as np") +
                       "\n\ndef example_inputs(batch_size):\n    return np.zeros((batch_size, 9), 'float32')\n",
                       "shape.py")
    line = one_line_error(capsys, "profile", str(path), "--batch-size", "4", *FAST)
    assert line == ("tfprofscale profile: error: model file shape.py: example_inputs(4): input 'x' has shape "
                    "(4, 9), the model takes (4, 10)")


def test_example_inputs_of_the_wrong_count(capsys, tmp_path):
    path = dense_file(tmp_path, DENSE_TEMPLATE.format(extra="import numpy as np") +
                       "\n\ndef example_inputs(batch_size):\n    x = np.zeros((batch_size, 10))\n    return [x, x]\n",
                       "count.py")
    line = one_line_error(capsys, "profile", str(path), *FAST)
    assert line.endswith("model file count.py: example_inputs(1) returned 2 input(s), the model takes 1")


def test_an_op_failing_at_run_time_names_the_op(capsys, write_model):
    path = write_model("""
        import keras
        import tensorflow as tf

        class Check(keras.layers.Layer):
            def call(self, x):
                tf.debugging.assert_less(x, tf.constant(-100.0), message="values too large")
                return x

        def build_model():
            inputs = keras.Input((4,))
            return keras.Model(inputs, Check(name="check")(inputs))
    """, "asserts.py")
    line = one_line_error(capsys, "profile", str(path), *FAST)
    assert line.startswith("tfprofscale profile: error: the model failed at run time: op ")
    assert "check" in line.split(": op ")[1].split(":")[0] and "/Assert" in line
    assert "InvalidArgumentError: assertion failed: [values too large]" in line


def test_a_batch_that_cannot_fit_is_refused_before_allocating(capsys, tmp_path, monkeypatch):
    from tfprofscale.profiling.trace import input_budget

    monkeypatch.setattr(input_budget, "available_memory_bytes", lambda: 2**30)
    path = dense_file(tmp_path, DENSE_TEMPLATE.format(extra=""), "big.py")
    line = one_line_error(capsys, "profile", str(path), "--batch-size", "1000000000", *FAST)
    # Refused from the declared shapes before tracing (issue 21): 10^9 examples x (10 input + 2 output) float32
    # elements x 4 bytes = 4.8e10 B
    assert 1_000_000_000 * (10 + 2) * 4 / 2**30 == pytest.approx(44.70, abs=0.01)
    assert line == ("tfprofscale profile: error: batch size 1000000000: the inputs and the largest layer output "
                    "need 44.7 GiB, more than the 1.0 GiB of memory available: use a smaller --batch-size")


def test_a_model_file_is_imported_once_per_profile(capsys, write_model, tmp_path):
    counter = tmp_path / "imports.txt"
    path = dense_file(tmp_path, DENSE_TEMPLATE.format(extra=f"open({str(counter)!r}, 'a').write('x')"), "counted.py")
    assert main(["profile", str(path), *FAST]) == 0
    assert counter.read_text() == "x"


def test_output_paths_are_checked_before_the_model_is_imported(capsys, write_model, tmp_path):
    counter = tmp_path / "imports.txt"
    path = dense_file(tmp_path, DENSE_TEMPLATE.format(extra=f"open({str(counter)!r}, 'a').write('x')"), "counted.py")
    (tmp_path / "afile").write_text("")
    line = one_line_error(capsys, "profile", str(path), "--json", str(tmp_path / "afile" / "x.json"), *FAST)
    assert line == (f"tfprofscale profile: error: --json {tmp_path}/afile/x.json: {tmp_path}/afile is a regular "
                    "file, not a folder")
    assert not counter.exists()


def test_weights_of_another_shape_name_the_layer(capsys, cnn_file, tmp_path):
    from tfprofscale.profiling.trace import loading

    model_file = loading.load_model_file(cnn_file)
    weights = tmp_path / "eight.weights.h5"
    loading.build(model_file, {"filters": 8, "units": 3}).save_weights(str(weights))
    line = one_line_error(capsys, "profile", str(cnn_file), "--param", "filters=16", "--weights", str(weights), *FAST)
    assert line == (f"tfprofscale profile: error: --weights {weights} does not fit this model: layer 'conv' (Conv2D): "
                    "conv/kernel has shape (3, 3, 1, 16) in the model, (3, 3, 1, 8) in the file "
                    "(2 layers in all could not be loaded)")


def test_weights_that_are_a_directory(capsys, cnn_file, tmp_path):
    line = one_line_error(capsys, "profile", str(cnn_file), "--weights", str(tmp_path), *FAST)
    assert line == f"tfprofscale profile: error: --weights {tmp_path} is a directory, not a file"


def test_a_full_disk_during_the_trace_keeps_the_measurement(capsys, cnn_file, tmp_path, monkeypatch):
    from tfprofscale.profiling.runtime import measure as runtime

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runtime, "_trace", full_disk)
    status = main(["profile", str(cnn_file), "--steps", "2", "--warmup", "0", "--trace-steps", "1", "--quiet",
                   "--logdir", str(tmp_path / "runs"), "--json", str(tmp_path / "r.json")])
    out, err = capsys.readouterr()
    assert status == 0
    assert "conv (Conv2D)" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["totals"]["step_time_ms"]["n"] >= 2 and report["trace_dir"] is None
    trace_warnings = [w for w in report["warnings"] if w.startswith("the profiler trace in ")]
    assert len(trace_warnings) == 1 and "No space left on device" in trace_warnings[0]
    assert f"Warning:       {trace_warnings[0]}" in out.splitlines()  # in the printed footer
