"""Sweeps that survive hangs, retries, huge grids, a killed parent and a lost trace; the machine fingerprint."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

from tests.conftest import TWO_LAYER_CNN
from tfprofscale.cli import main
from tfprofscale.errors import InputError
from tfprofscale.sweep.config import load_sweep_config, parse_sweep_file
from tfprofscale.sweep.executor import LocalProcessPool, Outcome
from tfprofscale.sweep.grid import count_configurations, iter_grid
from tfprofscale.sweep.runner import SweepOptions, run_sweep

REPO = Path(__file__).resolve().parent.parent
# "hang" writes its worker's pid next to the model file, then sleeps for an hour.
HANGS = """
    import os
    import pathlib
    import time

    import keras

    PARAMS = {"behaviour": "fine"}


    def build_model(behaviour="fine"):
        if behaviour == "hang":
            (pathlib.Path(__file__).parent / "hung.pid").write_text(str(os.getpid()))
            time.sleep(3600)
        if behaviour == "raise":
            raise ValueError("behaviour 'raise' refuses to be built")
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
"""
FOUR_PARAMETERS = """
    import keras

    PARAMS = {"a": 0, "b": 0, "c": 0, "d": 0}


    def build_model(a=0, b=0, c=0, d=0):
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(2)(inputs))
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_sweep(folder: Path, model: str, grid: str, sweep_extra: str = "") -> Path:
    (folder / "model.py").write_text(textwrap.dedent(model))
    ini = folder / "grid.ini"
    ini.write_text(f"[sweep]\nmodel = model.py\nsteps = 2\nwarmup = 0\ntrace_steps = 0\n{sweep_extra}[grid]\n{grid}\n")
    return ini


# ---------------------------------------------------------------- time limit, local pool

def test_a_hanging_configuration_times_out_locally_and_the_sweep_goes_on(tmp_path, capsys):
    ini = write_sweep(tmp_path, HANGS, "behaviour = hang raise", sweep_extra="timeout = 5\n")
    out = tmp_path / "out"
    assert main(["sweep", str(ini), "--out", str(out)]) == 1  # nothing succeeded
    assert "2 configurations: 0 ok, 2 failed, 1 of them timed out" in capsys.readouterr().out
    rows = {r["behaviour"]: r for r in read_csv(out / "results.csv")}
    assert rows["hang"]["status"] == "timed_out"
    assert rows["hang"]["error"] == "timed out after 5 s (its worker process was killed)"
    record = json.loads((out / "reports" / "behaviour=hang,batch_size=1,r0.json").read_text())
    assert record["timeout_s"] == 5 and record["elapsed_s"] >= 5 and record["report"] is None
    # The single worker was killed; a new one ran the next configuration.
    assert rows["raise"]["status"] == "failed" and "refuses to be built" in rows["raise"]["error"]
    assert not _alive(int((tmp_path / "hung.pid").read_text()))


def test_the_command_line_timeout_overrides_the_file(tmp_path):
    ini = write_sweep(tmp_path, HANGS, "behaviour = hang", sweep_extra="timeout = 900\n")
    out = tmp_path / "out"
    assert main(["sweep", str(ini), "--out", str(out), "--timeout", "3", "--no-resume"]) == 1  # nothing succeeded
    assert read_csv(out / "results.csv")[0]["error"] == "timed out after 3 s (its worker process was killed)"


def pool_sleeps(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_the_time_limit_counts_from_the_start_of_the_task_not_the_start_of_the_worker():
    """A new worker's start-up (``initializer``, here 4 s) is not the task's: 1 s tasks fit a 3 s limit."""
    pool = LocalProcessPool(workers=1, initializer=_slow_start, timeout_s=3)
    outcomes = list(pool.map_unordered(pool_sleeps, [1.0, 1.0, 60.0, 1.0]))
    assert [(o.task, o.ok, o.timed_out) for o in outcomes] == [(1.0, True, False), (1.0, True, False),
                                                               (60.0, False, True), (1.0, True, False)]


def _slow_start() -> None:
    time.sleep(4)


# ---------------------------------------------------------------- --retry-failed

class FlakyExecutor:
    """Stands in for the workers: configurations named in ``failing`` fail (or time out); counts what it ran."""

    def __init__(self, failing: set[str] = frozenset(), timing_out: set[str] = frozenset()) -> None:
        self.failing, self.timing_out, self.ran = failing, timing_out, []

    def map_unordered(self, function, tasks):
        for task in tasks:
            self.ran.append(task.config_id)
            if task.config_id in self.timing_out:
                yield Outcome(task, error="timed out after 1 s (stand-in)", timed_out=True)
            elif task.config_id in self.failing:
                yield Outcome(task, error="OSError: truncated IDX file (stand-in)")
            else:
                yield Outcome(task, value=stand_in_value(task, "stand-in"))


def stand_in_value(task, host: str) -> dict:
    """What a worker returns, reduced to what the tables and report.md read."""
    totals = {"step_time_ms": {"median": float(task.batch_size), "n": 2}, "params": 1, "graph_flops": 2}
    report = {"params": task.params, "device": "CPU:0", "tensorflow": "2.21.0", "totals": totals, "layers": []}
    return {"report": report, "host": host}


def test_retry_failed_runs_exactly_the_failed_and_timed_out_configurations(tmp_path):
    ini = write_sweep(tmp_path, TWO_LAYER_CNN, "filters = 4 8 16")
    config = load_sweep_config(ini)
    out = tmp_path / "out"
    first = FlakyExecutor(failing={"filters=8,batch_size=1,r0"}, timing_out={"filters=16,batch_size=1,r0"})
    run_sweep(config, SweepOptions(out, progress=False, timeout_s=1), first)
    assert len(first.ran) == 3
    good = out / "reports" / "filters=4,batch_size=1,r0.json"
    kept = good.stat().st_mtime_ns

    plain_resume = FlakyExecutor()
    run_sweep(config, SweepOptions(out, progress=False), plain_resume)
    assert plain_resume.ran == []  # a resume keeps failures as they are

    retry = FlakyExecutor()
    summary = run_sweep(config, SweepOptions(out, progress=False, retry_failed=True), retry)
    assert sorted(retry.ran) == ["filters=16,batch_size=1,r0", "filters=8,batch_size=1,r0"]
    assert summary.ran == 2 and summary.resumed == 1 and summary.failed == {}
    assert good.stat().st_mtime_ns == kept  # the good result was not touched
    assert {r["filters"]: r["status"] for r in read_csv(out / "results.csv")} == {"4": "ok", "8": "ok", "16": "ok"}


def test_an_executor_reporting_a_configuration_twice_is_recorded_once(tmp_path):
    class Twice:
        def map_unordered(self, function, tasks):
            for task in tasks:
                yield Outcome(task, value=stand_in_value(task, "first"))
                yield Outcome(task, value=stand_in_value(task, "second"))

    ini = write_sweep(tmp_path, TWO_LAYER_CNN, "filters = 4 8")
    summary = run_sweep(load_sweep_config(ini), SweepOptions(tmp_path / "out", progress=False), Twice())
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert summary.ran == 2 and [r["host"] for r in rows] == ["first", "first"]


# ---------------------------------------------------------------- grid limits

def test_a_grid_of_10_to_the_8_configurations_is_refused_without_being_expanded(tmp_path, capsys):
    values = " ".join(str(v) for v in range(100))
    ini = write_sweep(tmp_path, FOUR_PARAMETERS, f"a = {values}\nb = {values}\nc = {values}\nd = {values}")
    config = load_sweep_config(ini)
    assert count_configurations(config) == 100 ** 4
    tracemalloc.start()
    with pytest.raises(InputError, match=r"has 100,000,000 configurations \(100 a x 100 b x 100 c x 100 d x "
                                         r"1 batch sizes x 1 repeats\), over the limit of 10,000"):
        run_sweep(config, SweepOptions(tmp_path / "out", progress=False), FlakyExecutor())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000  # 10^8 configurations would need gigabytes: none was made
    assert not (tmp_path / "out").exists()  # refused before anything was written
    assert main(["sweep", str(ini), "--out", str(tmp_path / "out")]) == 2
    assert "over the limit of 10,000: shrink the grid, or raise the limit with --max-configs N" in capsys.readouterr().err


def test_huge_repeats_are_refused_and_max_configs_raises_the_limit(tmp_path, capsys):
    ini = write_sweep(tmp_path, TWO_LAYER_CNN, "filters = 4 8", sweep_extra="repeats = 1000000000\n")
    assert main(["sweep", str(ini), "--out", str(tmp_path / "out")]) == 2
    assert "has 2,000,000,000 configurations" in capsys.readouterr().err
    ini.write_text(ini.read_text().replace("repeats = 1000000000", "repeats = 3"))
    config = load_sweep_config(ini)
    with pytest.raises(InputError, match="6 configurations .* over the limit of 5"):
        run_sweep(config, SweepOptions(tmp_path / "out", progress=False, max_configs=5), FlakyExecutor())
    executor = FlakyExecutor()
    run_sweep(config, SweepOptions(tmp_path / "out", progress=False, max_configs=6), executor)
    assert len(executor.ran) == 2 * 3


def test_the_grid_is_expanded_lazily_in_grid_order(tmp_path):
    ini = tmp_path / "g.ini"
    ini.write_text("[sweep]\nmodel = m.py\nbatch_size = 1 2\nrepeats = 2\n[grid]\na = 1 2 3\nb = x y\n")
    grid = iter_grid(parse_sweep_file(ini))
    assert next(grid).config_id == "a=1,b=x,batch_size=1,r0"
    assert next(grid).config_id == "a=1,b=x,batch_size=1,r1"
    assert next(grid).config_id == "a=1,b=x,batch_size=2,r0"
    assert len(list(grid)) == 3 * 2 * 2 * 2 - 3


def test_timeout_and_scheduler_keys_are_checked(tmp_path, capsys):
    ini = write_sweep(tmp_path, TWO_LAYER_CNN, "filters = 4", sweep_extra="timeout = -1\n")
    assert main(["sweep", str(ini)]) == 2
    assert "[sweep] timeout: value -1 must be a finite number > 0" in capsys.readouterr().err
    ini = write_sweep(tmp_path, TWO_LAYER_CNN, "filters = 4", sweep_extra="scheduler = localhost\n")
    assert main(["sweep", str(ini)]) == 2
    assert "[sweep] scheduler: 'localhost' is not a scheduler address like tcp://HOST:8786" in capsys.readouterr().err
    assert main(["sweep", str(ini), "--timeout", "0"]) == 2
    assert "--timeout 0: must be a number of seconds > 0" in capsys.readouterr().err
    assert main(["sweep", str(ini), "--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"]) == 2
    assert "--workers 2 with --scheduler: the cluster's workers run the configurations" in capsys.readouterr().err


# ---------------------------------------------------------------- no orphans

def test_workers_and_the_resource_tracker_exit_when_the_sweep_is_sigkilled(tmp_path):
    ini = write_sweep(tmp_path, HANGS, "behaviour = hang")
    command = [sys.executable, "-m", "tfprofscale", "sweep", str(ini), "--out", str(tmp_path / "out")]
    parent = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hung = tmp_path / "hung.pid"
    try:
        _wait_until(lambda: hung.exists() and hung.read_text(), seconds=180)
        children = _children(parent.pid)
        worker = int(hung.read_text())
        assert worker in children and len(children) == 2  # the worker and multiprocessing's resource tracker
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait_until(lambda: not any(_alive(pid) for pid in children), seconds=30), \
            f"left behind: {[pid for pid in children if _alive(pid)]}"
    finally:
        parent.kill()
        parent.wait()


def _children(pid: int) -> list[int]:
    listing = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in listing.split()]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


# ---------------------------------------------------------------- nothing measured is lost

def test_a_failed_trace_export_keeps_step_times_and_flops(cnn_file, tmp_path, monkeypatch):
    """Graph FLOPs of the 2-layer CNN at batch 1 with 8 filters: 1376 * 8 + 3 (tests/test_sweep.py)."""
    import tensorflow as tf

    from tfprofscale.profiling.runtime import measure as runtime
    from tfprofscale.profiling.pipeline import ProfileOptions, run_profile

    def disk_full(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(runtime, "_trace", disk_full)
    report = run_profile(str(cnn_file), ProfileOptions(batch_size=1, steps=3, warmup=0, trace_steps=2,
                                                      logdir=str(tmp_path / "runs"), progress=False))
    assert report.trace_dir is None and report.totals.graph_flops == 1376 * 8 + 3
    assert report.totals.step_time_ms.n >= 3 and report.totals.step_time_ms.median > 0
    assert any("No space left on device" in w and "step times and memory are kept" in w for w in report.warnings)


def test_a_sweep_whose_run_folder_cannot_be_written_keeps_the_measurements(tmp_path):
    from tfprofscale.sweep.configuration import RunPlan, run_configuration
    from tfprofscale.sweep.grid import ConfigTask

    (tmp_path / "model.py").write_text(textwrap.dedent(TWO_LAYER_CNN))
    (tmp_path / "runs").write_text("a file where the run folder should be")
    plan = RunPlan(model=str(tmp_path / "model.py"), steps=2, warmup=0, trace_steps=2,
                   logdir=str(tmp_path / "runs" / "inside"), weights_dir=str(tmp_path / "weights"))
    result = run_configuration(plan, ConfigTask("filters=4,batch_size=2,r0", {"filters": 4}, 2, 0))
    report = result["report"]
    assert report["trace_dir"] is None and report["totals"]["graph_flops"] == 2 * (1376 * 4 + 3)
    assert report["totals"]["step_time_ms"]["n"] >= 2
    assert any("trace" in w and "step times" in w and "kept" in w for w in report["warnings"])


# ---------------------------------------------------------------- which machine

def test_the_machine_fingerprint_names_this_machine(tmp_path):
    """The CPU model read here from /proc/cpuinfo directly, the core count and TensorFlow's settings."""
    import tensorflow as tf

    from tfprofscale.sweep.machine import Machine, cpu_model, gpu_name, this_machine

    machine = this_machine()
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    if names:
        assert machine.cpu_model == " ".join(names[0].split())
    assert machine.cores == os.cpu_count() and machine.tensorflow == tf.__version__
    assert machine.intra_op_threads == tf.config.threading.get_intra_op_parallelism_threads()
    assert machine.description.startswith(f"{machine.cpu_model}, {os.cpu_count()} cores, TensorFlow {tf.__version__}")
    other = Machine("Other CPU", machine.cores, machine.tensorflow, machine.intra_op_threads, machine.inter_op_threads)
    assert other.fingerprint != machine.fingerprint and len(other.fingerprint) == 10
    same = Machine(machine.cpu_model, machine.cores, machine.tensorflow, machine.intra_op_threads,
                   machine.inter_op_threads, machine.gpu)
    assert same.fingerprint == machine.fingerprint
    fake_cpuinfo = tmp_path / "cpuinfo"
    fake_cpuinfo.write_text("processor\t: 0\nmodel name\t: Fake  CPU @ 2.0GHz\n")
    assert cpu_model(fake_cpuinfo) == "Fake CPU @ 2.0GHz"

    class Device:
        name = "/physical_device:GPU:0"

    assert gpu_name([], None) is None
    assert gpu_name([Device()], lambda d: {"device_name": "NVIDIA A100"}) == "NVIDIA A100"
    assert gpu_name([Device(), Device()], lambda d: {}) == "2 x /physical_device:GPU:0"
