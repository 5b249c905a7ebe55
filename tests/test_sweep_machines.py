"""Which machine measured what: one latency model per machine fingerprint, and predict's choice of machine."""
from __future__ import annotations

import json
import re

import pytest

from tests.test_cli_profile import run_cli
from tests.test_validation import BATCHES, N_CONV, write_sweep

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
    """The 3 x 4 synthetic sweep of test_validation measured on A (repeat 0) and again on B (repeat 1), twice as slow."""
    configs = [(n, b, repeat, 1.0 + repeat) for n in N_CONV for b in BATCHES for repeat in (0, 1)]
    folder = write_sweep(tmp_path / "sweep", configs)
    for path in (folder / "reports").glob("*.json"):
        record = json.loads(path.read_text())
        fingerprint = "bbbbbbbbbb" if record["repeat"] == 1 else "aaaaaaaaaa"
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
    # Each machine measured all 3 n_conv values x 4 batch sizes.
    assert {key: entry["model"]["n_configs"] for key, entry in models.items()} == {"aaaaaaaaaa": 12, "bbbbbbbbbb": 12}


def test_predict_refuses_another_machines_model_unless_named(capsys, tmp_path, two_machine_sweep, write_model,
                                                             monkeypatch):
    from tfprofscale.profiling.runtime import machine_peaks
    from tests.test_roofline import injected

    # Fixed peaks: the fits (and the validation around them) must not depend on what this shared machine
    # measures or has cached: measured twice under load, A's and B's models were fitted at different peaks.
    from tfprofscale.audit import latency, validation

    fixed = injected(2.15e11)
    for module in (machine_peaks, latency, validation):  # the two audit modules import the function by name
        monkeypatch.setattr(module, "machine_peaks", lambda refresh=False: fixed)
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
    # B measured every configuration exactly twice as slow, so its model predicts twice A's (within the fit's 1%).
    # Both figures are printed rounded to 0.001 ms: B - 2 A can be off by 0.0005 + 2 x 0.0005 from rounding alone.
    assert abs(predicted["bbbbbbbbbb"] - 2 * predicted["aaaaaaaaaa"]) <= 0.0015 + 0.01 * 2 * predicted["aaaaaaaaaa"]
    # Unrounded, in the model file: every fitted coefficient of B is twice A's.
    fitted = {key: entry["model"] for key, entry in json.loads(out_file.read_text())["machines"].items()}
    a, b = fitted["aaaaaaaaaa"], fitted["bbbbbbbbbb"]
    assert b["overhead_us"] == pytest.approx(2 * a["overhead_us"], rel=1e-6)
    for layer_type, weights in a["coefficients_us"].items():
        for name, value in weights.items():
            assert b["coefficients_us"][layer_type][name] == pytest.approx(2 * value, rel=1e-6, abs=1e-12)
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
    assert LatencyModel.load(out_file).n_configs == 12


def hand_made_records(machines_by_batch: dict[int, str]) -> list[dict]:
    """Median step time = a * (1 + batch) ms for a in 1 2, batch in 1 4 (as in test_sweep's headline test)."""
    records = []
    for a, batch in [(1, 1), (1, 4), (2, 1), (2, 4)]:
        fingerprint = machines_by_batch[batch]
        totals = {"step_time_ms": {"median": a * (1 + batch), "n": 50}, "params": 10 * a, "graph_flops": 1000 * batch,
                  "peak_bytes": 2048 * batch}
        report = {"params": {"a": a}, "device": "CPU:0", "tensorflow": "2.21.0", "totals": totals, "layers": []}
        records.append({"config_id": f"a={a},batch_size={batch},r0", "config": {"a": a, "batch_size": batch},
                        "repeat": 0, "status": "ok", "error": None, "report": report, "host": f"host-{fingerprint[0]}",
                        "machine": {"fingerprint": fingerprint, "description": MACHINES[fingerprint]}})
    return records


def test_report_gives_headlines_per_machine_when_there_are_several(tmp_path):
    from tfprofscale.sweep.config import parse_sweep_file
    from tfprofscale.sweep.report import report_markdown, write_summaries

    ini = tmp_path / "s.ini"
    ini.write_text("[sweep]\nmodel = m.py\nbatch_size = 1 4\n[grid]\na = 1 2\n")
    config = parse_sweep_file(ini)
    records = hand_made_records({1: "aaaaaaaaaa", 4: "bbbbbbbbbb"})
    text = report_markdown(config, records, ["a"], [])
    assert "### On machine aaaaaaaaaa (CPU A, 2 cores, host host-a; 2 configurations)" in text
    assert "### On machine bbbbbbbbbb (CPU B, 64 cores, host host-b; 2 configurations)" in text
    # machine A ran batch 1 only: 1*(1+1) = 2 ms and 2*(1+1) = 4 ms; machine B batch 4: 5 ms and 10 ms
    part_a, part_b = text.split("### On machine bbbbbbbbbb")
    assert "median step time from 2 ms (a=1) to 4 ms (a=2), a factor of 2" in part_a
    assert "median step time from 5 ms (a=1) to 10 ms (a=2), a factor of 2" in part_b
    paths = write_summaries(tmp_path, config, records, ["a"])
    names = sorted(path.name for path in paths)
    assert "aaaaaaaaaa_scaling_a.png" in names and "bbbbbbbbbb_scaling_a.png" in names
    assert not [name for name in names if not name.startswith(("aaaaaaaaaa_", "bbbbbbbbbb_"))]


def test_one_machine_is_named_once_in_the_headlines(tmp_path):
    from tfprofscale.sweep.config import parse_sweep_file
    from tfprofscale.sweep.report import report_markdown

    ini = tmp_path / "s.ini"
    ini.write_text("[sweep]\nmodel = m.py\nbatch_size = 1 4\n[grid]\na = 1 2\n")
    text = report_markdown(parse_sweep_file(ini), hand_made_records({1: "aaaaaaaaaa", 4: "aaaaaaaaaa"}), ["a"], [])
    assert "- measured on aaaaaaaaaa (CPU A, 2 cores, host host-a; 4 configurations)" in text
    assert "### On machine" not in text
