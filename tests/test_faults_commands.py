"""train, fit, predict, audit and sweep: bad arguments and files refused in one line that names them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_faults import DENSE, one_line_error
from tfprofscale.cli import main

LATENCY_MODEL = {"kind": "tfprofscale latency model", "features": ["roofline_us", "bytes_beyond_l2", "ops"],
                 "coefficients_us": {"Dense": {"ops": 2.5}}, "overhead_us": 100.0,
                 "free_layer_types": ["InputLayer"], "n_configs": 3,
                 "traits": {"vector_floats": 8, "l2_bytes": None, "l3_bytes": None},
                 "peaks": {"flops_per_s": 1e9, "bytes_per_s": 1e9}}


@pytest.fixture
def dense_file(tmp_path: Path) -> Path:
    path = tmp_path / "dense.py"
    path.write_text(DENSE)
    return path


@pytest.fixture
def latency_file(tmp_path: Path) -> Path:
    path = tmp_path / "latency.json"
    path.write_text(json.dumps(LATENCY_MODEL))
    return path


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_train_refuses_a_learning_rate_that_cannot_train(capsys, dense_file, value):
    line = one_line_error(capsys, "train", str(dense_file), "--learning-rate", value)
    assert line == f"tfprofscale train: error: --learning-rate {float(value)}: must be a finite number > 0"


def test_train_refuses_a_save_path_before_training(capsys, dense_file, tmp_path):
    line = one_line_error(capsys, "train", str(dense_file), "--save", str(tmp_path))
    assert line == (f"tfprofscale train: error: --save {tmp_path}: the file name must end in .weights.h5 "
                    "(Keras weights format)")
    target = tmp_path / "sub.weights.h5"
    target.mkdir()
    line = one_line_error(capsys, "train", str(dense_file), "--save", str(target))
    assert line == f"tfprofscale train: error: --save {target}: is a directory, not a file"


def test_fit_on_a_file_says_it_is_not_a_sweep_directory(capsys, tmp_path):
    base = tmp_path / "base.json"
    base.write_text("{}")
    line = one_line_error(capsys, "fit", str(base))
    assert line == (f"tfprofscale fit: error: {base} is a file, not a sweep directory "
                    "(give the sweep's --out folder)")


def test_fit_refuses_its_out_path_before_any_work(capsys, tmp_path):
    (tmp_path / "reports").mkdir()
    line = one_line_error(capsys, "fit", str(tmp_path), "--out", str(tmp_path / "no" / "m.json"))
    assert line == f"tfprofscale fit: error: --out {tmp_path}/no/m.json: folder {tmp_path}/no does not exist"


def test_predict_names_the_missing_latency_model(capsys, dense_file, tmp_path):
    line = one_line_error(capsys, "predict", str(tmp_path / "nothere.json"), str(dense_file))
    assert line == f"tfprofscale predict: error: latency model {tmp_path / 'nothere.json'} does not exist"


@pytest.mark.parametrize("field, value, expected", [
    ("overhead_us", "abc", "must be a finite number, got str 'abc'"),
    ("coefficients_us", {"Dense": {"layers": "5"}}, "must be an object of layer type -> {feature: number}"),
    ("features", "layers", "must be a list of feature names, got str 'layers'"),
    ("n_configs", 3.5, "must be an integer, got float 3.5"),
    ("peaks", [1e9, 1e9], "must be an object, got list [1000000000.0, 1000000000.0]"),
])
def test_a_latency_model_with_wrong_value_types(capsys, dense_file, tmp_path, field, value, expected):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**LATENCY_MODEL, field: value}))
    line = one_line_error(capsys, "predict", str(path), str(dense_file))
    assert line.startswith(f"tfprofscale predict: error: {path}: latency model field {field} {expected}")


def test_a_latency_model_with_wrong_trait_types(capsys, dense_file, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**LATENCY_MODEL, "traits": {"vector_floats": "8", "l2_bytes": None,
                                                             "l3_bytes": None}}))
    line = one_line_error(capsys, "predict", str(path), str(dense_file))
    assert line == (f"tfprofscale predict: error: {path}: latency model field traits.vector_floats must be an "
                    "integer, got str '8'")


def test_a_latency_model_with_a_peak_that_is_not_positive(capsys, dense_file, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**LATENCY_MODEL, "peaks": {"flops_per_s": 0, "bytes_per_s": 1e9}}))
    line = one_line_error(capsys, "predict", str(path), str(dense_file))
    assert line == (f"tfprofscale predict: error: {path}: latency model field peaks.flops_per_s must be a "
                    "positive number, got int 0")


def test_dev_zero_as_a_latency_model(capsys, dense_file):
    line = one_line_error(capsys, "predict", "/dev/zero", str(dense_file))
    assert line == "tfprofscale predict: error: latency model /dev/zero is not a regular file"


def test_predict_with_a_huge_batch_makes_no_inputs(capsys, dense_file, latency_file, monkeypatch):
    from tfprofscale.profiling.trace import input_budget

    # With 1 GiB "available", making 10^9 x 10 float32 inputs would be refused: predict must not try.
    monkeypatch.setattr(input_budget, "available_memory_bytes", lambda: 2**30)
    status = main(["predict", str(latency_file), str(dense_file), "--batch-size", "1000000000"])
    out = capsys.readouterr().out
    assert status == 0
    # overhead 100 us + the Dense layer's two ops (MatMul, BiasAdd) at 2.5 us each = 105 us
    assert "predicted step latency: 0.105 ms (batch 1000000000)" in out


def test_a_fifo_as_a_sweep_config_does_not_hang(tmp_path):
    fifo = tmp_path / "grid.ini"
    os.mkfifo(fifo)
    result = subprocess.run([sys.executable, "-m", "tfprofscale", "sweep", str(fifo), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=60, env=_env())
    assert result.returncode == 2
    assert result.stderr == f"tfprofscale sweep: error: config file {fifo} is not a regular file\n"


def test_sweep_out_that_is_a_file(capsys, tmp_path):
    (tmp_path / "afile").write_text("")
    config = tmp_path / "grid.ini"
    config.write_text("[sweep]\nmodel = m.py\n")
    line = one_line_error(capsys, "sweep", str(config), "--out", str(tmp_path / "afile"))
    assert line == (f"tfprofscale sweep: error: --out {tmp_path}/afile: {tmp_path}/afile is a regular file, "
                    "not a folder")


def test_audit_on_a_fifo_says_not_a_regular_file(capsys, tmp_path):
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    line = one_line_error(capsys, "audit", str(fifo))
    assert line == f"tfprofscale audit: error: profile JSON {fifo} is not a regular file"


def test_audit_refuses_its_json_path_before_any_work(capsys, tmp_path):
    report = tmp_path / "r.json"
    report.write_text("{}")
    line = one_line_error(capsys, "audit", str(report), "--json", str(tmp_path / "no" / "a.json"))
    assert line == f"tfprofscale audit: error: --json {tmp_path}/no/a.json: folder {tmp_path}/no does not exist"


@pytest.fixture(scope="module")
def profile_dict(tmp_path_factory) -> dict:
    """A real profile of the dense model, as its JSON dict."""
    from tfprofscale.profiling.pipeline import profile

    path = tmp_path_factory.mktemp("profile") / "dense.py"
    path.write_text(DENSE)
    return profile(str(path), steps=1, warmup=0, trace=False).to_dict()


def test_audit_refuses_a_report_with_a_negative_batch(capsys, tmp_path, profile_dict):
    report = tmp_path / "r.json"
    report.write_text(json.dumps({**profile_dict, "batch_size": -1}))
    line = one_line_error(capsys, "audit", str(report))
    assert line == f"tfprofscale audit: error: {report}: batch_size is -1, it must be an integer >= 1"


def test_audit_of_a_sweep_skips_a_corrupt_report_and_names_it(tmp_path, profile_dict):
    from tfprofscale.audit.profiles import load_profiles

    reports = tmp_path / "reports"
    reports.mkdir()
    record = {"config_id": "a", "config": {"batch_size": 1}, "repeat": 0, "status": "ok", "error": None,
              "report": profile_dict}
    (reports / "a.json").write_text(json.dumps(record))
    (reports / "b.json").write_text('{"config_id": "b", "sta')
    loaded = load_profiles(tmp_path)
    assert [config_id for config_id, _, _ in loaded.profiles] == ["a"]
    assert loaded.failed == [f"skipped b.json: {reports / 'b.json'}: not valid JSON (line 1: Unterminated string "
                             "starting at)"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


@pytest.mark.parametrize("argv, expected", [
    (["train", "{model}", "--learning-rate", "nan"], "tfprofscale train: error: --learning-rate nan: must be a "
                                                     "finite number > 0"),
    (["profile", "{model}", "--json", "{tmp}/afile/x.json"], "tfprofscale profile: error: --json {tmp}/afile/x.json: "
                                                             "{tmp}/afile is a regular file, not a folder"),
    (["predict", "{tmp}/nothere.json", "{model}"], "tfprofscale predict: error: latency model {tmp}/nothere.json "
                                                   "does not exist"),
])
def test_stderr_is_exactly_one_line_and_tensorflow_is_not_imported(tmp_path, argv, expected):
    model = tmp_path / "dense.py"
    model.write_text(DENSE)
    (tmp_path / "afile").write_text("")
    arguments = [arg.format(model=model, tmp=tmp_path) for arg in argv]
    code = ("import sys\nfrom tfprofscale.cli import main\nstatus = main(sys.argv[1:])\n"
            "print('tensorflow' in sys.modules)\nsys.exit(status)")
    result = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True,
                            timeout=120, env=_env())
    assert result.returncode == 2
    assert result.stderr == expected.format(tmp=tmp_path) + "\n"
    assert result.stdout == "False\n"


def test_an_exit_at_import_is_one_line_in_a_real_process(tmp_path):
    model = tmp_path / "exits.py"
    model.write_text("import sys\nsys.exit(0)\n")
    result = subprocess.run([sys.executable, "-m", "tfprofscale", "profile", str(model)], capture_output=True,
                            text=True, timeout=120, env=_env())
    assert result.returncode == 2
    assert result.stderr == "tfprofscale profile: error: model file exits.py exited with status 0 while importing it\n"


def test_a_sweep_whose_model_file_exits_at_import(capsys, tmp_path):
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "grid.ini").write_text("[sweep]\nmodel = exits.py\n\n[grid]\nunits = 2\n")
    line = one_line_error(capsys, "sweep", str(tmp_path / "grid.ini"), "--out", str(tmp_path / "out"))
    assert line == "tfprofscale sweep: error: model file exits.py exited with status 0 while importing it"


def test_the_python_api_prints_nothing_on_stderr(tmp_path):
    model = tmp_path / "dense.py"
    model.write_text(DENSE)
    code = (f"import tfprofscale\nreport = tfprofscale.profile({str(model)!r}, steps=1, warmup=0, trace_steps=1, "
            "logdir='runs')\nprint(report.totals.params)")
    env = {key: value for key, value in _env().items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # as a user has it
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{10 * 2 + 2}\n"  # Dense(2) on 10 features: 10 x 2 weights + 2 biases
    assert result.stderr == ""


def test_a_logdir_that_is_a_file_is_refused_before_any_work(capsys, dense_file, tmp_path):
    (tmp_path / "runs").write_text("")
    line = one_line_error(capsys, "profile", str(dense_file), "--logdir", str(tmp_path / "runs"))
    assert line == (f"tfprofscale profile: error: --logdir {tmp_path}/runs: {tmp_path}/runs is a regular file, "
                    "not a folder")
