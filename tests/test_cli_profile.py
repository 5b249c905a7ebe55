"""The ``profile`` command line: output files, and one clear line for bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfprofscale.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]
    assert status == 2
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_profile_prints_the_table_and_writes_json_and_csv(capsys, cnn_file, tmp_path):
    status, out, _ = run_cli(capsys, "profile", str(cnn_file), "--steps", "3", "--warmup", "1",
                             "--trace-steps", "2", "--logdir", str(tmp_path / "runs"),
                             "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"))
    assert status == 0
    assert "conv (Conv2D)" in out and "Step time" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["totals"]["params"] == (3 * 3 * 8 + 8) + (128 * 3 + 3)
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("name,type,output_shape")
    assert list((tmp_path / "runs").glob("two_layer_cnn-b1/plugins/profile/*/*.xplane.pb"))
    assert f"(tensorboard --logdir {tmp_path / 'runs'}, Profile tab)" in out
    assert "Share: the layer's time over the sum of all layers' own times" in out
    assert data["totals"]["kernel_coverage"] <= 1 and data["totals"]["busy_time_us"] > 0


def test_threads_are_set_before_any_op_runs_and_recorded(cnn_file, tmp_path):
    """In a fresh process (this one's TensorFlow is already running): --threads 1,1 reaches TensorFlow."""

    result = subprocess.run(
        [sys.executable, "-m", "tfprofscale", "profile", str(cnn_file), "--quiet", "--threads", "1,1", "--steps", "3",
         "--warmup", "1", "--no-trace", "--max-time", "0.5", "--json", str(tmp_path / "r.json")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=300)
    assert result.returncode == 0, result.stderr
    steps = json.loads((tmp_path / "r.json").read_text())["totals"]["step_time_ms"]
    assert (steps["threads"]["intra_op"], steps["threads"]["inter_op"]) == (1, 1)
    assert steps["load_start"] is not None and steps["load_end"] is not None
    assert "threads intra-op 1, inter-op 1" in result.stdout
    assert "could not be applied" not in result.stdout


def test_missing_model_file(capsys, tmp_path):
    status, _, err = run_cli(capsys, "profile", str(tmp_path / "nope.py"))
    assert_one_line_error(status, err, "nope.py", "does not exist")


def test_model_path_is_a_directory(capsys, tmp_path):
    status, _, err = run_cli(capsys, "profile", str(tmp_path))
    assert_one_line_error(status, err, "is a directory, not a file")


def test_unreadable_model_file(capsys, cnn_file, monkeypatch):
    cnn_file.chmod(0)
    if os.geteuid() == 0:
        # root reads a mode-0 file anyway: have the permission check answer as it does for any other user,
        # rather than skip the test in a root container (where the suite normally runs).
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, *args, **kwargs: (
            False if os.fspath(path) == os.fspath(cnn_file) and mode & os.R_OK
            else real_access(path, mode, *args, **kwargs)))
    assert not os.access(cnn_file, os.R_OK)
    status, _, err = run_cli(capsys, "profile", str(cnn_file))
    assert_one_line_error(status, err, "not readable")


def test_model_file_that_is_not_python(capsys, tmp_path):
    path = tmp_path / "garbage.py"
    path.write_bytes(b"\x00\x01 this is not python (")
    status, _, err = run_cli(capsys, "profile", str(path))
    assert_one_line_error(status, err, "garbage.py")


def test_file_without_build_model_or_model(capsys, write_model):
    path = write_model("x = 1\n", "empty.py")
    status, _, err = run_cli(capsys, "profile", str(path))
    assert_one_line_error(status, err, "empty.py", "neither build_model() nor model")


def test_build_model_raising(capsys, write_model):
    path = write_model("def build_model():\n    raise ValueError('kernel 9 is larger than the 4x4 map')\n", "bad.py")
    status, _, err = run_cli(capsys, "profile", str(path))
    assert_one_line_error(status, err, "bad.py", "ValueError", "kernel 9 is larger")


def test_param_not_key_value(capsys, cnn_file):
    status, _, err = run_cli(capsys, "profile", str(cnn_file), "--param", "filters")
    assert_one_line_error(status, err, "'filters'", "KEY=VALUE")


def test_param_unknown_name(capsys, cnn_file):
    status, _, err = run_cli(capsys, "profile", str(cnn_file), "--param", "depth=3")
    assert_one_line_error(status, err, "'depth'", "filters, units")


def test_param_of_the_wrong_type(capsys, cnn_file):
    status, _, err = run_cli(capsys, "profile", str(cnn_file), "--param", "filters=many")
    assert_one_line_error(status, err, "filters", "expected int")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_batch_size_below_one(capsys, cnn_file, value):
    status, _, err = run_cli(capsys, "profile", str(cnn_file), "--batch-size", value)
    assert_one_line_error(status, err, "batch-size", value)


def test_batch_size_not_an_integer(capsys, cnn_file):
    with pytest.raises(SystemExit) as exit_info:
        main(["profile", str(cnn_file), "--batch-size", "2.5"])
    _, err = capsys.readouterr()
    assert_one_line_error(exit_info.value.code, err, "--batch-size", "2.5")


def test_input_shape_not_fully_defined(capsys, write_model):
    path = write_model("""
        import keras

        def build_model():
            inputs = keras.Input((None, None, 3))
            return keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    """, "open_shape.py")
    status, _, err = run_cli(capsys, "profile", str(path))
    assert_one_line_error(status, err, "(None, None, None, 3)", "beyond the batch")


def test_unwritable_logdir(capsys, cnn_file, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    status, _, err = run_cli(capsys, "profile", str(cnn_file), "--logdir", str(blocker / "runs"))
    assert_one_line_error(status, err, "--logdir", "a_file is a regular file, not a folder")


def test_bad_input_in_a_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tfprofscale", "profile", str(tmp_path / "missing.py")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"tfprofscale profile: error: model file {tmp_path / 'missing.py'} does not exist"]


def test_profile_with_data_reports_accuracy_over_the_test_split(capsys, tmp_path):
    from tests.test_datasets import MODELS, write_fashion_idx

    data = tmp_path / "fashion"
    data.mkdir()
    arrays = write_fashion_idx(data, n_train=4, n_test=7)
    status, out, _ = run_cli(capsys, "profile", str(MODELS / "fashion_mnist.py"), "--no-trace", "--steps", "2",
                             "--data", str(data), "--show-predictions", "7", "--json", str(tmp_path / "r.json"))
    assert status == 0
    lines = [line for line in out.splitlines() if line.startswith(("CORRECT", "WRONG"))]
    assert len(lines) == 7
    actual = [line.split("actual: ")[1].split(" |")[0] for line in lines]
    from tests.test_datasets import model_module
    assert actual == [model_module("fashion_mnist").CLASS_NAMES[label] for label in arrays["test_labels"]]
    accuracy = json.loads((tmp_path / "r.json").read_text())["totals"]["accuracy"]
    assert accuracy == sum(line.startswith("CORRECT") for line in lines) / 7


def test_bad_data_fails_before_anything_is_measured(capsys, cnn_file, tmp_path):
    from tests.test_datasets import MODELS

    data = tmp_path / "empty"
    data.mkdir()
    status, _, err = run_cli(capsys, "profile", str(MODELS / "fashion_mnist.py"), "--data", str(data),
                             "--logdir", str(tmp_path / "runs"))
    assert_one_line_error(status, err, str(data))
    assert not list((tmp_path / "runs").glob("*/plugins"))
