"""Sweeps on a real dask.distributed cluster on 127.0.0.1: two worker processes, one thread each.

The model is conftest's 2-layer CNN (costs by hand in tests/test_sweep.py):
params = 58f + 3, graph FLOPs = batch * (1376f + 3).
"""
from __future__ import annotations

import csv
import json
import socket
import textwrap
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from tests.conftest import TWO_LAYER_CNN
from tfprofscale.cli import main

TINY = "[sweep]\nmodel = model.py\nbatch_size = {batch}\nsteps = 2\nwarmup = 0\ntrace_steps = 0\n{extra}[grid]\n{grid}\n"
# Each build appends "<pid> <filters>" to ran.log; the first build of filters=8 kills its own worker process
# (SIGKILL, mid-configuration), once: the scheduler must run it again on a worker.
KILLS_ITS_WORKER_ONCE = TWO_LAYER_CNN.replace(
    "    def build_model(filters=8, units=3):\n",
    "    def build_model(filters=8, units=3):\n"
    "        import os, signal, pathlib\n"
    "        folder = pathlib.Path(__file__).parent\n"
    "        with open(folder / 'ran.log', 'a') as log:\n"
    "            log.write(f'{os.getpid()} {filters}\\n')\n"
    "        if filters == 8 and not (folder / 'killed').exists():\n"
    "            (folder / 'killed').write_text('')\n"
    "            os.kill(os.getpid(), signal.SIGKILL)\n")
HANGS = """
    import time

    import keras

    PARAMS = {"behaviour": "fine"}


    def build_model(behaviour="fine"):
        if behaviour == "hang":
            time.sleep(3600)
        if behaviour == "raise":
            raise ValueError("behaviour 'raise' refuses to be built")
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
"""


@pytest.fixture(scope="module")
def cluster():
    """A scheduler and two single-threaded worker processes (with nannies) on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as local_cluster:
        yield local_cluster


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_sweep(folder: Path, model: str, grid: str, batch: str = "1", extra: str = "") -> Path:
    (folder / "model.py").write_text(textwrap.dedent(model))
    ini = folder / "grid.ini"
    ini.write_text(TINY.format(batch=batch, grid=grid, extra=extra))
    return ini


def test_a_sweep_on_the_cluster_names_its_hosts_and_survives_a_killed_worker(tmp_path, cluster, capsys):
    ini = write_sweep(tmp_path, KILLS_ITS_WORKER_ONCE, "filters = 4 8", batch="1 2")
    out = tmp_path / "out"
    status = main(["sweep", str(ini), "--out", str(out), "--scheduler", cluster.scheduler_address])
    assert status == 0, capsys.readouterr().err
    rows = read_csv(out / "results.csv")
    keys = sorted((int(r["filters"]), int(r["batch_size"])) for r in rows)
    assert keys == [(4, 1), (4, 2), (8, 1), (8, 2)]  # every configuration, each once
    for row in rows:
        f, batch = int(row["filters"]), int(row["batch_size"])
        assert row["status"] == "ok", row["error"]
        assert int(row["params"]) == 58 * f + 3 and int(row["graph_flops"]) == batch * (1376 * f + 3)
        assert row["host"] == socket.gethostname() and row["machine"]
    assert len(list((out / "reports").glob("*.json"))) == 4
    runs = [line.split() for line in (tmp_path / "ran.log").read_text().splitlines()]
    # The two filters=8 configurations, plus the one whose worker was killed mid-build and that ran again.
    # (A finished result still held on the killed worker may be computed again by Dask: it is not recorded twice.)
    assert [filters for _, filters in runs].count("8") >= 3 and [filters for _, filters in runs].count("4") >= 2
    kill = next(number for number, (_, filters) in enumerate(runs) if filters == "8")
    assert runs[kill][0] not in {pid for pid, _ in runs[kill + 1:]}  # that worker process was gone for good
    record = json.loads((out / "reports" / "filters=8,batch_size=1,r0.json").read_text())
    assert record["machine"]["cores"] is not None and "TensorFlow" in record["machine"]["description"]


def test_a_hanging_configuration_times_out_on_the_cluster_and_its_worker_restarts(tmp_path, cluster):
    from distributed import Client

    ini = write_sweep(tmp_path, HANGS, "behaviour = hang raise fine")
    out = tmp_path / "out"
    status = main(["sweep", str(ini), "--out", str(out), "--scheduler", cluster.scheduler_address,
                   "--timeout", "8"])
    assert status == 0
    rows = {r["behaviour"]: r for r in read_csv(out / "results.csv")}
    assert rows["hang"]["status"] == "timed_out" and "timed out after 8 s" in rows["hang"]["error"]
    assert "restarted" in rows["hang"]["error"]
    assert json.loads((out / "reports" / "behaviour=hang,batch_size=1,r0.json").read_text())["timeout_s"] == 8
    assert rows["raise"]["status"] == "failed" and "refuses to be built" in rows["raise"]["error"]
    assert rows["fine"]["status"] == "ok" and int(rows["fine"]["params"]) == 4 * 2 + 2
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=120)
        assert sorted(client.nthreads().values()) == [1, 1]  # both workers back, free for the next sweep


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    import tfprofscale.sweep.dask_executor as dask_executor

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 2)
    ini = write_sweep(tmp_path, TWO_LAYER_CNN, "filters = 4")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status = main(["sweep", str(ini), "--out", str(tmp_path / "out"), "--scheduler", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert f"--scheduler tcp://127.0.0.1:{port}: no Dask scheduler answers there" in err


def test_a_start_on_a_worker_that_left_is_forgotten_not_timed_out():
    """Task a started 20 s ago on a live worker; b 20 s ago on a worker since lost; c 1 s ago. Limit 10 s."""
    import time

    from tfprofscale.sweep.dask_executor import _ClusterRun

    class FakeClient:
        def subscribe_topic(self, topic, handler):
            pass

        def nthreads(self):
            return {"tcp://127.0.0.1:1": 1}

    run = _ClusterRun(FakeClient(), timeout_s=10)
    now = time.monotonic()
    run.started.update({"a": (now - 20, "tcp://127.0.0.1:1"), "b": (now - 20, "tcp://127.0.0.1:2"),
                        "c": (now - 1, "tcp://127.0.0.1:1")})
    assert run._out_of_time({"a": None, "b": None, "c": None}) == ["a"]
    assert set(run.started) == {"a", "c"}  # b's clock restarts when the scheduler runs it again
