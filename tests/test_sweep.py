"""Sweeps end to end: the output directory, resume after SIGKILL, failures, the lock, the executor.

The model is conftest's 2-layer CNN: 10x10x1 input, Conv2D(filters, 3x3
VALID) -> 8x8xf, MaxPool 2 -> 4x4xf, Flatten -> 16f, Dense(3). By hand:
  params      = (3*3*1*f + f) + (16f*3 + 3)                      = 58f + 3
  graph FLOPs = batch * (2*8*8*f*9 + 8*8*f   conv + bias
                         + 2*2*4*4*f         max-pool windows
                         + 2*16f*3 + 3)      matmul + bias       = batch * (1376f + 3)
"""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import TWO_LAYER_CNN
from tfprofscale.cli import main
from tfprofscale.errors import InputError
from tfprofscale.sweep.config import load_sweep_config
from tfprofscale.sweep.executor import LocalProcessPool, Outcome
from tfprofscale.sweep.runner import SweepLock, SweepOptions, run_sweep
from tfprofscale.sweep.tables import results_row

REPO = Path(__file__).resolve().parent.parent
CONTRACT_COLUMNS = ("filters,batch_size,repeat,Layers,BatchSize,ConvSize,TotalTime,MeanTime,params,analytic_flops,"
                    "analytic_macs,graph_flops,activation_bytes,analytic_memory_bytes,peak_bytes,measured_peak_bytes,"
                    "weights_bytes,input_bytes,estimated_peak_bytes,tf_estimated_peak_bytes,allocator_peak_bytes,"
                    "in_step_measured_peak_bytes,in_step_estimated_peak_bytes,total_measured_peak_bytes,"
                    "total_estimated_peak_bytes,step_time_median_ms,"
                    "step_time_p10_ms,step_time_p90_ms,step_time_cv,accuracy,status,error,warnings,host,machine,"
                    "graph_train_flops,train_flops,train_to_forward,update_flops,model_sha256").split(",")
GRID_2X2 = """\
[sweep]
model = {model}
batch_size = 1 2
steps = 3
warmup = 1
trace_steps = {trace_steps}

[grid]
filters = 4 8
"""
BUILD_DELAY_VARIABLE = "TFPROFSCALE_TEST_BUILD_DELAY_S"
SLOW_CNN = TWO_LAYER_CNN.replace(
    "    def build_model(filters=8, units=3):\n",
    "    def build_model(filters=8, units=3):\n"
    f"        import os, time; time.sleep(float(os.environ.get({BUILD_DELAY_VARIABLE!r}, '0')))\n")
MISBEHAVING = """
    import os
    import signal

    import keras

    PARAMS = {"behaviour": "fine"}


    def build_model(behaviour="fine"):
        if behaviour == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if behaviour == "raise":
            raise ValueError("behaviour 'raise' refuses to be built")
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def sweep_files(folder: Path, model_source: str, trace_steps: int = 2) -> tuple[Path, Path]:
    (folder / "model.py").write_text(textwrap.dedent(model_source))
    ini = folder / "grid.ini"
    ini.write_text(GRID_2X2.format(model="model.py", trace_steps=trace_steps))
    return ini, folder / "out"


# ---------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The 2x2 sweep (filters 4 8, batch 1 2) run once through the command line."""
    folder = tmp_path_factory.mktemp("sweep")
    ini, out = sweep_files(folder, TWO_LAYER_CNN)
    status = main(["sweep", str(ini), "--out", str(out)])
    return status, out, ini


def test_sweep_writes_one_row_per_configuration_with_hand_computed_costs(swept):
    status, out, _ = swept
    assert status == 0
    rows = read_csv(out / "results.csv")
    assert list(rows[0]) == CONTRACT_COLUMNS
    by_config = {(int(r["filters"]), int(r["batch_size"])): r for r in rows}
    assert sorted(by_config) == [(4, 1), (4, 2), (8, 1), (8, 2)]
    for (f, batch), row in by_config.items():
        assert row["status"] == "ok" and row["error"] == ""
        assert int(row["params"]) == 58 * f + 3
        assert int(row["graph_flops"]) == batch * (1376 * f + 3)
        assert int(row["BatchSize"]) == batch and row["Layers"] == "" and row["ConvSize"] == ""
        assert float(row["step_time_p10_ms"]) <= float(row["step_time_median_ms"]) <= float(row["step_time_p90_ms"])
        assert int(row["measured_peak_bytes"]) > 0
        assert int(row["peak_bytes"]) == sum(int(row[c]) for c in ("weights_bytes", "input_bytes", "measured_peak_bytes"))
        assert row["host"] == socket.gethostname()
    assert len({row["machine"] for row in rows}) == 1 and len(rows[0]["machine"]) == 10  # one local machine


def test_sweep_writes_layers_reports_and_traces(swept):
    _, out, _ = swept
    layers = read_csv(out / "layers.csv")
    assert list(layers[0])[:3] == ["config_id", "filters", "batch_size"]
    assert len(layers) == 4 * 5  # input, conv, pool, flatten, logits per configuration
    conv = next(r for r in layers if r["config_id"] == "filters=8,batch_size=2,r0" and r["name"] == "conv")
    assert conv["output_shape"] == "2x8x8x8" and int(conv["params"]) == 3 * 3 * 1 * 8 + 8
    assert json.loads(conv["geometry"])["kernel_h"] == 3

    from tfprofscale.records import Report

    reports = sorted((out / "reports").glob("*.json"))
    assert [p.stem for p in reports] == sorted(f"filters={f},batch_size={b},r0" for f in (4, 8) for b in (1, 2))
    record = json.loads(reports[0].read_text())
    assert record["status"] == "ok" and record["config"] == {"filters": 4, "batch_size": 1} and record["repeat"] == 0
    assert Report.from_dict(record["report"]).totals.params == 58 * 4 + 3
    for path in reports:
        assert list((out / "runs" / path.stem / "plugins" / "profile").glob("*/*.xplane.pb"))
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["configurations"] == 4 and manifest["finished"] is not None
    assert not (out / ".lock").exists()


def test_sweep_writes_hparams_sessions_with_the_results_metrics(swept):
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, out, _ = swept
    rows = {(r["filters"], r["batch_size"]): r for r in read_csv(out / "results.csv")}
    sessions = 0
    for run in (out / "runs").iterdir():
        if not run.is_dir():
            continue
        values, hparams = {}, None
        for event_file in run.glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(event_file)):
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name == "hparams":
                        data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                        hparams = {k: float(v.string_value) if v.HasField("string_value") else v.number_value
                                   for k, v in data.session_start_info.hparams.items()}  # integers are text
                    else:
                        values[value.tag] = float(tf.make_ndarray(value.tensor))
        row = rows[(str(int(hparams["filters"])), str(int(hparams["batch_size"])))]
        assert values["graph_flops"] == float(row["graph_flops"])
        assert values["step_time_median_ms"] == pytest.approx(float(row["step_time_median_ms"]), rel=1e-6)
        sessions += 1
    assert sessions == 4
    assert list((out / "runs").glob("events.out.tfevents.*"))  # the experiment summary


def test_sweep_writes_plots_and_an_index(swept):
    _, out, _ = swept
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert plots == ["boxplots.png", "correlation.png", "layer_time_vs_flops.png",
                     "memory_estimate_vs_measured.png", "scaling_batch_size.png", "scaling_filters.png"]
    report = (out / "report.md").read_text()
    for name in plots:
        assert f"(plots/{name})" in report
    assert "4 profiled, 0 failed" in report
    pages = sorted(p.name for p in (out / "html").glob("*.html"))  # report.html links one page per configuration
    assert (out / "report.html").is_file() and len(pages) == 4 and (out / "html" / "plotly.min.js").is_file()


def test_rerun_resumes_without_profiling_again(swept, capsys):
    _, out, ini = swept
    before = {p.name: p.stat().st_mtime_ns for p in (out / "reports").glob("*.json")}
    assert main(["sweep", str(ini), "--out", str(out)]) == 0
    assert "4 configurations: 4 ok, 0 failed (4 done by an earlier run)" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "reports").glob("*.json")} == before


# ---------------------------------------------------------------- kill and resume

def test_sigkill_mid_sweep_then_resume_gives_every_configuration_once(tmp_path):
    assert SLOW_CNN != TWO_LAYER_CNN  # the delay really is in build_model
    ini, out = sweep_files(tmp_path, SLOW_CNN, trace_steps=0)
    command = [sys.executable, "-m", "tfprofscale", "sweep", str(ini), "--out", str(out)]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    environment.pop(BUILD_DELAY_VARIABLE, None)
    # Only the run to be killed is slowed down, so that the kill lands mid-sweep; the resumed run need not wait.
    slowed = {**environment, BUILD_DELAY_VARIABLE: "1.5"}
    process = subprocess.Popen(command, cwd=REPO, env=slowed, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not list((out / "reports").glob("*.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list((out / "reports").glob("*.json")))
    assert 1 <= done_before < 4, "the kill should land mid-sweep (each configuration sleeps 1.5 s)"
    assert (out / ".lock").exists()  # left by the killed sweep: stale, to be taken over

    finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"({done_before} done by an earlier run)" in finished.stdout
    rows = read_csv(out / "results.csv")
    keys = [(r["filters"], r["batch_size"], r["repeat"]) for r in rows]
    assert sorted(keys) == sorted((f, b, "0") for f in ("4", "8") for b in ("1", "2"))
    assert all(r["status"] == "ok" for r in rows)
    assert len(list((out / "reports").glob("*.json"))) == 4
    assert not list((out / "reports").glob(".*"))  # no half-written file left behind
    assert not (out / ".lock").exists()


# ---------------------------------------------------------------- failures

def test_failing_configurations_are_recorded_and_the_rest_finish(tmp_path, capsys):
    (tmp_path / "misbehaving.py").write_text(textwrap.dedent(MISBEHAVING))
    ini = tmp_path / "fail.ini"
    ini.write_text("[sweep]\nmodel = misbehaving.py\nsteps = 2\nwarmup = 0\ntrace_steps = 0\n"
                   "[grid]\nbehaviour = crash raise fine\n")
    out = tmp_path / "out"
    assert main(["sweep", str(ini), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "3 configurations: 1 ok, 2 failed" in captured.out
    assert "3/3" in captured.err and "failed=2" in captured.err  # the progress bar
    rows = {r["behaviour"]: r for r in read_csv(out / "results.csv")}
    assert rows["crash"]["status"] == "failed" and "killed by SIGKILL" in rows["crash"]["error"]
    assert rows["raise"]["status"] == "failed" and "behaviour 'raise' refuses to be built" in rows["raise"]["error"]
    assert rows["fine"]["status"] == "ok" and int(rows["fine"]["params"]) == 4 * 2 + 2
    crash = json.loads((out / "reports" / "behaviour=crash,batch_size=1,r0.json").read_text())
    assert crash["report"] is None and crash["status"] == "failed"
    assert "failed: `behaviour=raise,batch_size=1,r0`" in (out / "report.md").read_text()


# ---------------------------------------------------------------- lock

def test_a_live_lock_is_refused_with_one_line(tmp_path, capsys):
    ini, out = sweep_files(tmp_path, TWO_LAYER_CNN)
    out.mkdir()
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (out / ".lock").write_text(f"{holder.pid}\n")
        status = main(["sweep", str(ini), "--out", str(out)])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert f"is in use by another sweep (pid {holder.pid})" in err
    assert not (out / "reports").exists()


def test_a_stale_lock_is_taken_over_and_released(tmp_path):
    exited = subprocess.Popen(["true"])
    exited.wait()  # reaped: its pid is no longer alive
    (tmp_path / ".lock").write_text(f"{exited.pid}\n")
    with SweepLock(tmp_path) as lock:
        assert lock.holder() == os.getpid()
        with pytest.raises(InputError, match=f"pid {os.getpid()}"):
            SweepLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()


# ---------------------------------------------------------------- resume logic, with a stand-in executor

class RecordingExecutor:
    """An executor that runs nothing: every task fails at once; it remembers what it was given."""

    def __init__(self) -> None:
        self.given: list[str] = []

    def map_unordered(self, function, tasks):
        for task in tasks:
            self.given.append(task.config_id)
            yield Outcome(task, error="not run: stand-in executor")


def test_resume_skips_recorded_configurations_and_no_resume_starts_over(tmp_path):
    ini, out = sweep_files(tmp_path, TWO_LAYER_CNN)
    config = load_sweep_config(ini)
    first, again, over = RecordingExecutor(), RecordingExecutor(), RecordingExecutor()
    run_sweep(config, SweepOptions(out, progress=False), first)
    run_sweep(config, SweepOptions(out, progress=False), again)
    summary = run_sweep(config, SweepOptions(out, resume=False, progress=False), over)
    assert len(first.given) == 4 and again.given == [] and sorted(over.given) == sorted(first.given)
    assert summary.resumed == 0 and len(summary.failed) == 4
    record = json.loads((out / "reports" / "filters=4,batch_size=1,r0.json").read_text())
    assert record["error"] == "not run: stand-in executor"


def test_resume_with_other_settings_is_refused(tmp_path):
    ini, out = sweep_files(tmp_path, TWO_LAYER_CNN)
    run_sweep(load_sweep_config(ini), SweepOptions(out, progress=False), RecordingExecutor())
    ini.write_text(ini.read_text().replace("steps = 3", "steps = 9"))
    with pytest.raises(InputError, match="other settings \\(steps: 3 there, 9 now\\).*--no-resume"):
        run_sweep(load_sweep_config(ini), SweepOptions(out, progress=False), RecordingExecutor())


# ---------------------------------------------------------------- document 001's columns

def test_document_001_columns_from_the_step_time_mean():
    record = {"config_id": "x", "config": {"total_layers": 6, "batch_size": 16}, "repeat": 0, "status": "ok",
              "error": None, "report": {"params": {"total_layers": 6, "conv_size": 5},
                                        "totals": {"step_time_ms": {"median": 2.0, "mean": 2.5, "n": 10}}}}
    row = results_row(record, ["total_layers"])
    assert (row["Layers"], row["BatchSize"], row["ConvSize"]) == (6, 16, 5)
    assert row["MeanTime"] == pytest.approx(0.0025)          # 2.5 ms in seconds
    assert row["TotalTime"] == pytest.approx(10 * 0.0025)    # 10 timed steps
    del record["report"]["totals"]["step_time_ms"]["mean"]
    assert results_row(record, ["total_layers"])["MeanTime"] is None  # no mean measured: nothing made up


# ---------------------------------------------------------------- the local pool alone

def pool_job(task: int) -> tuple[int, int]:
    if task == 3:
        raise ValueError("three is refused")
    if task == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    if task == 6:
        os._exit(7)
    return task * task, os.getpid()


def test_local_pool_reuses_workers_and_survives_their_death():
    outcomes = {o.task: o for o in LocalProcessPool(workers=1).map_unordered(pool_job, range(9))}
    assert sorted(outcomes) == list(range(9))
    assert [outcomes[t].value[0] for t in (0, 1, 2, 4, 7, 8)] == [0, 1, 4, 16, 49, 64]
    assert outcomes[3].error == "ValueError: three is refused"
    assert outcomes[5].error.startswith("worker process killed by SIGKILL (9)")
    assert outcomes[6].error == "worker process exited with status 7"
    pids = [outcomes[t].value[1] for t in (0, 1, 2, 4)]
    assert len(set(pids)) == 1  # one long-lived worker until it was killed at task 5
    assert outcomes[7].value[1] != pids[0]  # ...then a new one


def test_local_pool_with_two_workers_runs_every_task_once():
    outcomes = list(LocalProcessPool(workers=2).map_unordered(pool_job, [0, 1, 2, 4, 7, 8]))
    assert sorted(o.task for o in outcomes) == [0, 1, 2, 4, 7, 8]
    assert all(o.ok for o in outcomes)


# ---------------------------------------------------------------- training with --data

def test_document_001_file_with_data_trains_once_per_model_and_measures_accuracy(tmp_path, capsys):
    from tests.test_datasets import write_fashion_idx

    data = tmp_path / "data"
    data.mkdir()
    write_fashion_idx(data, n_train=32, n_test=10)
    ini = tmp_path / "p17.ini"
    ini.write_text("[CONFIGURATION]\nTraining_Iterations = 1\nBatch_Size = 1 2\nTot_Layers = 4\nFilter_Size = 3\n"
                   "Learning_Rate = 0.01\nDropout = 0.75\nEvaluation_Iterations = 2\n")
    out = tmp_path / "out"
    status = main(["sweep", str(ini), "--model", str(REPO / "models" / "fashion_mnist.py"), "--data", str(data),
                   "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    rows = read_csv(out / "results.csv")
    accuracies = {float(r["accuracy"]) for r in rows}
    assert len(rows) == 2 and len(accuracies) == 1           # both batch sizes profile the same trained weights
    assert accuracies.pop() in {k / 10 for k in range(11)}  # k correct out of the 10 test images
    records = [json.loads(p.read_text()) for p in sorted((out / "reports").glob("*.json"))]
    training = [record["training"] for record in records]
    assert training[0] == training[1]
    assert (training[0]["epochs"], training[0]["learning_rate"], training[0]["train_examples"]) == (1, 0.01, 32)
    assert records[0]["report"]["params"]["dropout"] == 0.25  # keep probability 0.75
    assert len(list((out / "weights").glob("*.weights.h5"))) == 1


def test_workers_take_data_only_from_the_sweep(monkeypatch):
    from tfprofscale.datasets import DATA_ENV_VAR
    from tfprofscale.sweep.runner import prepare_worker

    monkeypatch.setenv(DATA_ENV_VAR, "/somewhere")
    prepare_worker()
    assert DATA_ENV_VAR not in os.environ  # no accuracy of an untrained model without --data


# ---------------------------------------------------------------- report.md headline numbers

def test_report_headlines_from_hand_made_records(tmp_path):
    """Median step time = a * (1 + batch) ms for a in 1 2, batch in 1 4; one failure."""
    from tfprofscale.sweep.config import parse_sweep_file
    from tfprofscale.sweep.report import report_markdown

    ini = tmp_path / "s.ini"
    ini.write_text("[sweep]\nmodel = m.py\nbatch_size = 1 4\n[grid]\na = 1 2 3\n")
    config = parse_sweep_file(ini)
    records = []
    for a, batch in [(1, 1), (1, 4), (2, 1), (2, 4)]:
        totals = {"step_time_ms": {"median": a * (1 + batch), "n": 50}, "params": 10 * a, "graph_flops": 1000 * batch,
                  "peak_bytes": 2048 * batch}
        report = {"params": {"a": a}, "device": "CPU:0", "tensorflow": "2.21.0", "totals": totals, "layers": []}
        records.append({"config_id": f"a={a},batch_size={batch},r0", "config": {"a": a, "batch_size": batch},
                        "repeat": 0, "status": "ok", "error": None, "report": report})
    records.append({"config_id": "a=3,batch_size=1,r0", "config": {"a": 3, "batch_size": 1}, "repeat": 0,
                    "status": "failed", "error": "InputError: a=3 cannot be built", "report": None})
    text = report_markdown(config, records, ["a"], [])
    assert "4 profiled, 1 failed" in text and "on CPU:0 with TensorFlow 2.21.0" in text
    # fastest 1*(1+1) = 2 ms, slowest 2*(1+4) = 10 ms
    assert "median step time from 2 ms (a=1, batch_size=1) to 10 ms (a=2, batch_size=4), a factor of 5" in text
    # a=1: median(2, 5) = 3.5 ms; a=2: median(4, 10) = 7 ms
    assert "a 1 -> 2: median step time 3.5 ms -> 7 ms (x2;" in text
    # per example: batch 1 -> median(2, 4) = 3 ms; batch 4 -> median(5/4, 10/4) = 1.875 ms; 3 / 1.875 = 1.6
    assert "per example: 3 ms at batch 1, 1.88 ms at batch 4 (batching makes each example x1.6 cheaper" in text
    assert "measured peak memory 2.00 KiB to 8.00 KiB" in text  # 2048 and 8192 bytes, binary units (issue 21)
    assert "- failed: `a=3,batch_size=1,r0`: InputError: a=3 cannot be built" in text
    assert "Noisy or doubtful" not in text  # no configuration warned


def test_warnings_reach_results_csv_and_report_md(tmp_path):
    from tfprofscale.sweep.config import parse_sweep_file
    from tfprofscale.sweep.report import report_markdown

    ini = tmp_path / "s.ini"
    ini.write_text("[sweep]\nmodel = m.py\nbatch_size = 1\n[grid]\na = 1 2\n")
    warned = ["noisy timing: step times vary with CV 40%", "busy machine: load average 3.00 at the start"]
    records = []
    for a, warnings in [(1, []), (2, warned)]:
        report = {"params": {"a": a}, "device": "CPU:0", "tensorflow": "2.21.0", "layers": [], "warnings": warnings,
                  "totals": {"step_time_ms": {"median": float(a), "n": 50}, "params": 1, "graph_flops": 1}}
        records.append({"config_id": f"a={a},r0", "config": {"a": a, "batch_size": 1}, "repeat": 0,
                        "status": "ok", "error": None, "report": report})
    assert results_row(records[0], ["a"])["warnings"] == ""
    assert results_row(records[1], ["a"])["warnings"] == " | ".join(warned)
    text = report_markdown(parse_sweep_file(ini), records, ["a"], [])
    assert "1 of 2 configurations warned" in text
    assert f"- **noisy timing**, 1 configuration (`a=2,r0`): {warned[0]}" in text  # grouped by kind (issue 21)
    assert f"- **busy machine**, 1 configuration (`a=2,r0`): {warned[1]}" in text and "`a=1,r0`" not in text
