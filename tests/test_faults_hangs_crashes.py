"""Issue 21, "runs for ever" and "crashes and wrong exit codes": each command's exit status and its one line.

Files the command reads are checked byte for byte before and after (SHA-256).
"""
from __future__ import annotations

import copy
import hashlib
import http.server
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.cli_faults import DENSE, one_line_error
from tfprofscale.cli import main

DATA = Path(__file__).resolve().parent / "data"
SWEEP_MODEL = DENSE.replace("def build_model():", "PARAMS = {'units': 2}\n\n\ndef build_model(units=2):")
GRID = "[sweep]\nmodel = dense.py\nsteps = 1\nwarmup = 0\ntrace_steps = 0\n\n[grid]\nunits = 2\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sweep_ini(tmp_path: Path) -> Path:
    (tmp_path / "dense.py").write_text(SWEEP_MODEL)
    ini = tmp_path / "grid.ini"
    ini.write_text(GRID)
    return ini


# ---------------------------------------------------------------- a --scheduler that is not one

class _Garbage(threading.Thread):
    """A TCP server that answers every connection with 64 bytes of 0xff (Dask would read a frame of 2**64 bytes)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]

    def run(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.sendall(b"\xff" * 64)


def test_an_http_server_as_scheduler_is_one_line(capsys, sweep_ini, tmp_path, monkeypatch):
    from tfprofscale.sweep import scheduler_probe

    monkeypatch.setattr(scheduler_probe, "ANSWER_S", 0.5)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.server_address[1]}"
    before = sha256(sweep_ini)
    try:
        line = one_line_error(capsys, "sweep", str(sweep_ini), "--out", str(tmp_path / "out"), "--scheduler", address)
    finally:
        server.shutdown()
    assert line == (f"tfprofscale sweep: error: --scheduler {address}: something accepts connections there but says "
                    "nothing within 0.5 s (an HTTP server, or another service): it is not a Dask scheduler")
    assert sha256(sweep_ini) == before and not (tmp_path / "out").exists()


def test_a_garbage_answering_scheduler_is_one_line(capsys, sweep_ini, tmp_path):
    garbage = _Garbage()
    garbage.start()
    address = f"tcp://127.0.0.1:{garbage.port}"
    line = one_line_error(capsys, "sweep", str(sweep_ini), "--out", str(tmp_path / "out"), "--scheduler", address)
    garbage.server.close()
    assert line == (f"tfprofscale sweep: error: --scheduler {address}: it answered bytes ff ff ff ff ff ff ff ff, "
                    "which is not Dask's protocol: it is not a Dask scheduler")


def test_a_real_dask_scheduler_passes_the_probe():
    from distributed import Scheduler

    from tfprofscale.sweep.scheduler_probe import probe_scheduler

    async def check() -> None:
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address=":0") as scheduler:
            await asyncio.get_running_loop().run_in_executor(None, probe_scheduler, scheduler.address)

    import asyncio

    asyncio.run(check())  # returns: no InputError


# ---------------------------------------------------------------- audit of a 12-configuration sweep

def _twelve_configuration_sweep(folder: Path) -> None:
    """units 2..5 x batch 1, 2, 4 from one real record (tests/data): step time 0.1 + 0.02 * units * batch ms."""
    template = json.loads((DATA / "dense_sweep_record.json").read_text())
    (folder / "reports").mkdir(parents=True)
    for units in (2, 3, 4, 5):
        for batch in (1, 2, 4):
            record = copy.deepcopy(template)
            record["config_id"] = f"units={units},batch_size={batch},r0"
            record["config"] = {"units": units, "batch_size": batch}
            report = record["report"]
            report["params"], report["batch_size"] = {"units": units}, batch
            step = report["totals"]["step_time_ms"]
            scale = (0.1 + 0.02 * units * batch) / step["median"]
            for key in ("median", "p10", "p90", "min", "mean"):
                if step.get(key) is not None:
                    step[key] *= scale
            (folder / "reports" / f"{record['config_id']}.json").write_text(json.dumps(record))
    (folder / "results.csv").write_text("units,batch_size\n")


def test_audit_of_a_twelve_configuration_sweep_draws_the_held_out_plot(capsys, tmp_path):
    sweep = tmp_path / "sweep"
    _twelve_configuration_sweep(sweep)
    (sweep / "plots").mkdir()
    (sweep / "plots" / "boxplots.png").write_bytes(b"the sweep's own figure")
    reports_before = {p.name: sha256(p) for p in (sweep / "reports").iterdir()}
    status = main(["audit", str(sweep)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "Traceback" not in captured.err
    assert sorted(os.listdir(sweep / "plots")) == ["audit_flops.png", "audit_memory.png", "audit_time.png",
                                                   "boxplots.png"]
    assert (sweep / "plots" / "boxplots.png").read_bytes() == b"the sweep's own figure"
    assert {p.name: sha256(p) for p in (sweep / "reports").iterdir()} == reports_before


def test_a_figure_that_fails_leaves_no_figure_behind(tmp_path, monkeypatch):
    from tfprofscale.audit import plots

    def broken(audit, path):
        raise TypeError("unhashable type: 'dict'")

    def drawn(audit, path):
        Path(path).write_bytes(b"png")
        return True

    monkeypatch.setattr(plots, "FIGURES", (("a.png", drawn, "a"), ("b.png", broken, "b")))
    with pytest.raises(TypeError):
        plots.write_figures(None, tmp_path / "plots")
    assert os.listdir(tmp_path / "plots") == []


# ---------------------------------------------------------------- profile --memory-trace from the CLI

def test_profile_memory_trace_from_the_cli_gets_the_model_file(capsys, tmp_path, monkeypatch):
    from tfprofscale.profiling.memory import measure as memory_measure

    model = tmp_path / "m.py"
    model.write_text(DENSE)
    calls = []

    def fake_trace(path, run_dir, batch_size, params, weights):
        calls.append(path)
        return str(tmp_path / "runs" / "m-memory"), None

    monkeypatch.setattr(memory_measure, "run_memory_trace", fake_trace)
    status = main(["profile", str(model), "--memory-trace", "--steps", "1", "--warmup", "0", "--trace-steps", "1",
                   "--max-time", "0.2", "--no-cost-model", "--quiet", "--logdir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert status == 0
    assert calls == [str(model.resolve())]
    assert f"Memory trace:  {tmp_path / 'runs' / 'm-memory'}" in out


# ---------------------------------------------------------------- more than the machine has

def test_build_model_asking_for_more_weights_than_the_machine_has(capsys, tmp_path):
    """Dense(10**10) on 10 inputs: kernel (10, 10**10) float32 = 4e11 B = 372.5 GiB, refused before allocation."""
    model = tmp_path / "huge.py"
    model.write_text("import keras\n\n\ndef build_model():\n    inputs = keras.Input((10,))\n"
                     "    return keras.Model(inputs, keras.layers.Dense(10**10, name='d')(inputs))\n")
    before = sha256(model)
    line = one_line_error(capsys, "profile", str(model), "--no-trace", "--quiet")
    assert line.startswith("tfprofscale profile: error: huge.py: build_model(): weight d/kernel of shape "
                           "(10, 10000000000) needs 372.5 GiB (0.0 GiB of weights before it), more than the ")
    assert line.endswith(" of memory available: use smaller model parameters")
    assert sha256(model) == before


def test_a_batch_too_large_is_refused_from_the_shapes_before_tracing(capsys, tmp_path, monkeypatch):
    """28x28x1 float32 input and a 28x28x32 conv output at batch 10**6:
    3,136 + 100,352 = 103,488 B per example -> 103,488,000,000 B = 96.4 GiB, against 1 GiB available."""
    from tfprofscale.profiling.trace import input_budget, tracing

    model = tmp_path / "conv.py"
    model.write_text("import keras\n\n\ndef build_model():\n    inputs = keras.Input((28, 28, 1))\n"
                     "    x = keras.layers.Conv2D(32, 3, padding='same', name='conv')(inputs)\n"
                     "    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))\n")
    monkeypatch.setattr(input_budget, "available_memory_bytes", lambda: 2**30)
    monkeypatch.setattr(tracing, "trace", lambda *a, **k: pytest.fail("traced before the batch was refused"))
    line = one_line_error(capsys, "profile", str(model), "--batch-size", "1000000", "--no-trace", "--quiet")
    assert line == ("tfprofscale profile: error: batch size 1000000: the inputs and the largest layer output need "
                    "96.4 GiB, more than the 1.0 GiB of memory available: use a smaller --batch-size")


# ---------------------------------------------------------------- signals

def test_sigterm_to_a_sweep_is_exit_143_in_one_line(capsys, sweep_ini, tmp_path, monkeypatch):
    from tfprofscale.sweep import runner

    def terminated_midway(config, options):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        pytest.fail("SIGTERM was not handled")

    monkeypatch.setattr(runner, "run_sweep", terminated_midway)
    before = sha256(sweep_ini)
    status = main(["sweep", str(sweep_ini), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 143
    assert err.splitlines() == [f"tfprofscale sweep: interrupted by SIGTERM: workers stopped; the configurations "
                                f"finished so far are kept in {tmp_path / 'out' / 'reports'} (run the same command "
                                "again to resume)"]
    assert sha256(sweep_ini) == before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is the command's only


def test_an_interrupt_while_a_worker_starts_waits_until_it_has_started():
    """Ctrl-C during process start would cut the worker's start-up data (its EOFError): it is held until after."""
    from tfprofscale.sweep.executor import _interrupts_held

    reached = []
    other = threading.Thread(target=time.sleep, args=(1.0,))  # a thread that could take the process's signal
    other.start()
    with pytest.raises(KeyboardInterrupt):
        with _interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the signal has arrived by now, whichever thread took it
            reached.append("after the kill, inside the block")
    other.join()
    assert reached == ["after the kill, inside the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
