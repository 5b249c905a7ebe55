"""Which machine measured what: one latency model per machine fingerprint, and predict's choice of machine."""
from __future__ import annotations

import json
import re

import pytest

from tests.test_cli_profile import run_cli
from tests.test_latency import BATCHES, N_CONV, write_sweep

MACHINES = {"aaaaaaaaaa": "CPU A, 2 cores", "bbbbbbbbbb": "CPU B, 64 cores"}
CONV_AND_DENSE = """
    import keras


    def build_model():
        inputs = keras.Input((4, 4, 1))
        x = keras.layers.Conv2D(10, 1, name="conv")(inputs)
        return keras.Model(inputs, keras.layers.Dense(10, name="fc")(x))
"""


@pytest.fixture
def two_machine_sweep(tmp_path):
    """The 3 x 4 synthetic sweep of test_latency; batches 1, 2 measured on A, batches 4, 8 on B, B twice as slow."""
    on_b = {4, 8}
    folder = write_sweep(tmp_path / "sweep", [(n, b, 0, 2.0 if b in on_b else 1.0) for n in N_CONV for b in BATCHES])
    for path in (folder / "reports").glob("*.json"):
        record = json.loads(path.read_text())
        fingerprint = "bbbbbbbbbb" if record["config"]["batch_size"] in on_b else "aaaaaaaaaa"
        record.update(host=f"host-{fingerprint[0]}",
                      machine={"fingerprint": fingerprint, "description": MACHINES[fingerprint]})
        path.write_text(json.dumps(record))
    return folder


def test_fit_fits_one_model_per_machine_and_says_so(capsys, tmp_path, two_machine_sweep):
    out_file = tmp_path / "models.json"
    status, out, err = run_cli(capsys, "fit", str(two_machine_sweep), "--out", str(out_file))
    assert status == 0, err
    assert "machine aaaaaaaaaa: CPU A, 2 cores" in out and "machine bbbbbbbbbb: CPU B, 64 cores" in out
    assert "one latency model per machine (2 machines)" in out
    models = json.loads(out_file.read_text())["machines"]
    # Each machine measured 3 n_conv values x 2 batch sizes.
    assert {key: entry["model"]["n_configs"] for key, entry in models.items()} == {"aaaaaaaaaa": 6, "bbbbbbbbbb": 6}


def test_predict_refuses_another_machines_model_unless_named(capsys, tmp_path, two_machine_sweep, write_model):
    out_file = tmp_path / "models.json"
    assert run_cli(capsys, "fit", str(two_machine_sweep), "--out", str(out_file))[0] == 0
    model_file = write_model(CONV_AND_DENSE, "conv_dense.py")
    status, _, err = run_cli(capsys, "predict", str(out_file), str(model_file))
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "was fitted on aaaaaaaaaa (CPU A, 2 cores); bbbbbbbbbb (CPU B, 64 cores), not on this machine" in err
    assert "give --machine FINGERPRINT" in err
    predicted = {}
    for fingerprint in MACHINES:
        status, out, err = run_cli(capsys, "predict", str(out_file), str(model_file), "--machine", fingerprint)
        assert status == 0, err
        predicted[fingerprint] = float(re.search(r"predicted step latency: ([0-9.]+) ms", out).group(1))
    # B measured every configuration exactly twice as slow, so every fitted coefficient is doubled.
    assert predicted["bbbbbbbbbb"] == pytest.approx(2 * predicted["aaaaaaaaaa"], rel=0.01)
    status, _, err = run_cli(capsys, "predict", str(out_file), str(model_file), "--machine", "cccccccccc")
    assert status == 2 and "--machine cccccccccc: " in err and "has no model for it" in err


def test_a_single_machine_model_file_is_the_latency_model_with_its_machine(capsys, tmp_path, two_machine_sweep):
    from tfprofscale.audit.latency import LatencyModel

    for path in (two_machine_sweep / "reports").glob("*.json"):
        if json.loads(path.read_text())["machine"]["fingerprint"] == "bbbbbbbbbb":
            path.unlink()
    out_file = tmp_path / "model.json"
    status, out, _ = run_cli(capsys, "fit", str(two_machine_sweep), "--out", str(out_file))
    assert status == 0 and "one latency model per machine (1 machine)" in out
    assert json.loads(out_file.read_text())["machine"] == {"fingerprint": "aaaaaaaaaa", "description": "CPU A, 2 cores"}
    assert LatencyModel.load(out_file).n_configs == 6
