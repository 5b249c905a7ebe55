"""Sweep faults: files in the way, a corrupt manifest, an interrupt inside a worker, one-configuration reports."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from tfprofscale.cli import main
from tfprofscale.errors import InputError
from tfprofscale.sweep.executor import LocalProcessPool
from tfprofscale.sweep.hparams import _shown_values
from tfprofscale.sweep.report import _extremes
from tfprofscale.sweep.runner import ResultStore, SweepLock

DENSE = """import keras

PARAMS = {"units": 2}


def build_model(units=2):
    inputs = keras.Input((10,))
    return keras.Model(inputs, keras.layers.Dense(units, name="d")(inputs))
"""
GRID = "[sweep]\nmodel = dense.py\nsteps = 1\nwarmup = 0\ntrace_steps = 0\n\n[grid]\nunits = 2\n"


def interrupting_job(task: int) -> int:
    """A task whose user code raises KeyboardInterrupt (task 1), as a model file could."""
    if task == 1:
        raise KeyboardInterrupt("raised by user code")
    return os.getpid()


def test_a_keyboard_interrupt_inside_a_worker_is_that_task_s_failure():
    outcomes = {o.task: o for o in LocalProcessPool(workers=1).map_unordered(interrupting_job, [0, 1, 2])}
    assert outcomes[1].error == "KeyboardInterrupt: raised by user code"
    assert outcomes[0].ok and outcomes[2].ok
    assert outcomes[0].value == outcomes[2].value  # the same worker went on after the interrupt


def test_a_lock_that_is_a_directory(tmp_path):
    (tmp_path / ".lock").mkdir()
    with pytest.raises(InputError) as caught:
        SweepLock(tmp_path).acquire()
    assert str(caught.value) == f"{tmp_path}/.lock is not a lock file (a directory): remove it, or use another --out"


def test_a_corrupt_manifest_on_resume(tmp_path):
    (tmp_path / "sweep.json").write_text('{"model": "m.py", "batch')
    with pytest.raises(InputError) as caught:
        ResultStore(tmp_path).start({"model": "m.py"}, 1)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path}/sweep.json is corrupt (Unterminated string")
    assert message.endswith("): use --no-resume to start over, or another --out")


def test_a_manifest_that_is_not_an_object(tmp_path):
    (tmp_path / "sweep.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"sweep.json is corrupt \(a list, not an object\)"):
        ResultStore(tmp_path).start({"model": "m.py"}, 1)


def test_results_csv_that_is_a_directory_is_refused_before_any_work(capsys, tmp_path):
    (tmp_path / "dense.py").write_text(DENSE)
    (tmp_path / "grid.ini").write_text(GRID)
    out = tmp_path / "out"
    (out / "results.csv").mkdir(parents=True)
    status = main(["sweep", str(tmp_path / "grid.ini"), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1
    assert err.strip() == (f"tfprofscale sweep: error: {out}/results.csv is a directory: the sweep writes a file "
                           "there; remove it, or use another --out")
    assert not (out / "reports").exists()  # nothing was profiled


def test_one_configuration_says_one_time_not_a_range():
    ok = pd.DataFrame([{"step_time_median_ms": 0.632, "batch_size": 1}])
    assert _extremes(ok, []) == "median step time 0.632 ms over 1 profiled configuration(s)"


def test_two_configurations_still_give_the_range():
    ok = pd.DataFrame([{"step_time_median_ms": 1.0, "batch_size": 1, "status": "ok"},
                       {"step_time_median_ms": 3.0, "batch_size": 4, "status": "ok"}])
    assert _extremes(ok, ["batch_size"]) == ("median step time from 1 ms (batch_size=1) to 3 ms (batch_size=4), "
                                             "a factor of 3")


def test_hparams_show_integers_as_they_are_and_sorted():
    shown = _shown_values([1, 16, 4, 64, 4])
    assert shown == {1: " 1", 16: "16", 4: " 4", 64: "64"}
    assert sorted(shown.values()) == [" 1", " 4", "16", "64"]  # text order is numeric order
    assert _shown_values([0.5, 0.25]) == {0.5: 0.5, 0.25: 0.25}
    assert _shown_values([3]) == {3: "3"}
