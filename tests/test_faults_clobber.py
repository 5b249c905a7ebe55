"""Issue 21, "destroys the user's data": an output that is an input, or another output, refused before any work.

Every test runs the command, checks exit status 2 and the one line, and that
the files concerned are byte for byte what they were (SHA-256 before and after).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.cli_faults import DENSE, one_line_error

REFUSAL = "writing it would destroy that file; choose another path"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hashes(*paths: Path) -> dict[Path, str]:
    return {path: sha256(path) for path in paths}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.py"
    path.write_text(DENSE)
    return path


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_profile_json_onto_the_model_file(capsys, model, tmp_path, link):
    target = {"same": model, "symlink": tmp_path / "s.py", "hardlink": tmp_path / "h.py"}[link]
    if link == "symlink":
        target.symlink_to(model)
    elif link == "hardlink":
        os.link(model, target)
    before = hashes(model)
    line = one_line_error(capsys, "profile", str(model), "--json", str(target), "--no-trace")
    assert line == (f"tfprofscale profile: error: --json {target}: is the same file as model file {model} "
                    f"(which this command reads): {REFUSAL}")
    assert hashes(model) == before


def test_profile_csv_onto_the_weights(capsys, model, tmp_path):
    weights = tmp_path / "fm.weights.h5"
    weights.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 40)  # stands for 9.6 MB of trained weights
    before = hashes(model, weights)
    line = one_line_error(capsys, "profile", str(model), "--weights", str(weights), "--csv", str(weights))
    assert line == (f"tfprofscale profile: error: --csv {weights}: is the same file as --weights {weights} "
                    f"(which this command reads): {REFUSAL}")
    assert hashes(model, weights) == before


def test_profile_json_and_csv_on_one_path(capsys, model, tmp_path):
    report = tmp_path / "x.out"
    report.write_text("an earlier report\n")
    before = hashes(model, report)
    line = one_line_error(capsys, "profile", str(model), "--json", str(report), "--csv", str(report))
    assert line == (f"tfprofscale profile: error: --csv {report}: is the same file as --json {report} "
                    f"(another output): {REFUSAL}")
    assert hashes(model, report) == before


def test_profile_json_onto_a_data_file(capsys, model, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    images = data / "t10k-images-idx3-ubyte"
    images.write_bytes(b"\x00\x00\x08\x01" + bytes(8))
    before = hashes(model, images)
    line = one_line_error(capsys, "profile", str(model), "--data", str(data), "--json", str(images))
    assert line == (f"tfprofscale profile: error: --json {images}: would replace a file inside --data {data}, "
                    "which this command reads: choose another path")
    assert hashes(model, images) == before


def test_train_save_onto_the_model_file_through_a_symlink(capsys, model, tmp_path):
    alias = tmp_path / "alias.weights.h5"
    alias.symlink_to(model)
    before = hashes(model)
    line = one_line_error(capsys, "train", str(model), "--save", str(alias))
    assert line == (f"tfprofscale train: error: --save {alias}: is the same file as model file {model} "
                    f"(which this command reads): {REFUSAL}")
    assert hashes(model) == before


def test_fit_out_onto_the_sweep_results(capsys, tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "reports").mkdir(parents=True)
    results = sweep / "results.csv"
    results.write_text("units,batch_size\n2,1\n")
    before = hashes(results)
    line = one_line_error(capsys, "fit", str(sweep), "--out", str(results))
    assert line == (f"tfprofscale fit: error: --out {results}: is the same file as the sweep's results.csv "
                    f"{results} (which this command reads): {REFUSAL}")
    assert hashes(results) == before


def test_audit_json_onto_the_audited_profile(capsys, tmp_path):
    profile = tmp_path / "r.json"
    profile.write_text(json.dumps({"model": "m"}))
    before = hashes(profile)
    line = one_line_error(capsys, "audit", str(profile), "--json", str(profile))
    assert line == (f"tfprofscale audit: error: --json {profile}: is the same file as the audited profile {profile} "
                    f"(which this command reads): {REFUSAL}")
    assert hashes(profile) == before


def test_audit_json_onto_its_own_audit_md(capsys, tmp_path):
    profile = tmp_path / "r.json"
    profile.write_text(json.dumps({"model": "m"}))
    line = one_line_error(capsys, "audit", str(profile), "--json", str(tmp_path / "audit.md"))
    assert line == (f"tfprofscale audit: error: audit report {tmp_path / 'audit.md'}: is the same file as --json "
                    f"{tmp_path / 'audit.md'} (another output): {REFUSAL}")


def test_sweep_whose_model_file_is_one_of_its_outputs(capsys, tmp_path):
    out = tmp_path / "out"
    (out / "reports").mkdir(parents=True)
    model = out / "reports" / "dense.py"
    model.write_text(DENSE.replace("def build_model():", "PARAMS = {'units': 2}\n\n\ndef build_model(units=2):"))
    ini = tmp_path / "grid.ini"
    ini.write_text(f"[sweep]\nmodel = {model}\nsteps = 1\nwarmup = 0\ntrace_steps = 0\n\n[grid]\nunits = 2\n")
    before = hashes(model, ini)
    line = one_line_error(capsys, "sweep", str(ini), "--out", str(out))
    assert line == (f"tfprofscale sweep: error: model file {model}: is inside the sweep's reports/ {out / 'reports'}, "
                    "which this command writes into: move it, or write elsewhere")
    assert hashes(model, ini) == before
    assert os.listdir(out / "reports") == ["dense.py"]  # nothing profiled


def test_a_sweep_resumed_after_its_model_file_changed_is_refused(capsys, tmp_path):
    """A record measured on another version of the model file (its sha256 differs) stops the resume."""
    from tfprofscale.sweep.config import load_sweep_config
    from tfprofscale.sweep.grid import iter_grid

    model = tmp_path / "dense.py"
    model.write_text(DENSE.replace("def build_model():", "PARAMS = {'units': 2}\n\n\ndef build_model(units=2):"))
    ini = tmp_path / "grid.ini"
    ini.write_text("[sweep]\nmodel = dense.py\nsteps = 1\nwarmup = 0\ntrace_steps = 0\n\n[grid]\nunits = 2 3\n")
    out = tmp_path / "out"
    (out / "reports").mkdir(parents=True)
    first = next(iter_grid(load_sweep_config(ini)))
    old_hash = hashlib.sha256(b"the model file as it was").hexdigest()
    record = out / "reports" / f"{first.config_id}.json"
    record.write_text(json.dumps({"config_id": first.config_id, "config": {"units": 2, "batch_size": 1},
                                  "repeat": 0, "status": "failed", "error": "x", "model_sha256": old_hash}))
    before = hashes(model, ini, record)
    line = one_line_error(capsys, "sweep", str(ini), "--out", str(out))
    assert line == (f"tfprofscale sweep: error: model file {model} changed since {out} measured 1 of its "
                    f"configurations (sha256 {old_hash[:12]}... then, {sha256(model)[:12]}... now): start fresh "
                    "with --no-resume, or use another --out")
    assert hashes(model, ini, record) == before
    assert sorted(os.listdir(out / "reports")) == [record.name]


def test_results_csv_carries_the_model_hash(tmp_path):
    from tfprofscale.sweep.report import results_row

    row = results_row({"config": {"units": 2, "batch_size": 1}, "repeat": 0, "status": "failed",
                       "model_sha256": "ab" * 32}, ["units"])
    assert row["model_sha256"] == "ab" * 32


def test_a_trace_lost_on_a_full_disk_leaves_no_truncated_xplane(cnn_file, tmp_path, monkeypatch):
    """The trace writes 10 bytes of an .xplane.pb, then the disk is full: the file goes, an earlier run stays."""
    import tensorflow as tf

    from tfprofscale.profiling.pipeline import ProfileOptions, run_profile
    from tfprofscale.profiling.runtime import measure as runtime

    logdir = tmp_path / "runs"
    earlier = logdir / "two_layer_cnn" / "plugins" / "profile" / "2026_01_01_00_00_00" / "host.xplane.pb"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"an earlier, complete trace")

    def full_disk(step, trace_steps, run_dir):
        truncated = Path(run_dir) / "plugins" / "profile" / "2026_12_06_07_00_00" / "host.xplane.pb"
        truncated.parent.mkdir(parents=True)
        truncated.write_bytes(b"\x0a\x08partial")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(runtime, "_trace", full_disk)
    report = run_profile(str(cnn_file), ProfileOptions(batch_size=1, steps=1, warmup=0, trace_steps=1,
                                                      logdir=str(logdir), progress=False, tf_cost_model=False,
                                                      run_name="two_layer_cnn"))
    assert report.trace_dir is None
    assert sorted(p.name for p in earlier.parent.parent.iterdir()) == ["2026_01_01_00_00_00"]
    assert earlier.read_bytes() == b"an earlier, complete trace"
