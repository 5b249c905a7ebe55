"""Timing processes forked from the fork server, in fresh `profile` processes as a user runs them.

Each test starts its own Python process: whether the server can start depends
on whether TensorFlow has run an op in that process, which pytest's own
process cannot promise.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.cli_faults import DENSE
from tests.test_processes import KILLED_IN_A_PROCESS

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ["--quiet", "--no-trace", "--no-cost-model", "--steps", "5", "--warmup", "1", "--max-time", "0.5"]


def run_python(*arguments: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *arguments], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def profile_steps(tmp_path: Path, source: str, *options: str, env: dict[str, str] | None = None) -> dict:
    model, out = tmp_path / "model.py", tmp_path / "report.json"
    model.write_text(source)
    done = run_python("-m", "tfprofscale", "profile", str(model), *PROFILE, "--json", str(out), *options, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text())["totals"]["step_time_ms"]


def test_profile_forks_its_timing_processes(tmp_path):
    steps = profile_steps(tmp_path, DENSE, "--processes", "3")
    assert [entry["started"] for entry in steps["processes"]] == ["profiling process", "forked", "forked"]
    assert all(entry["median"] > 0 and entry["n"] >= 5 for entry in steps["processes"])
    assert steps["processes_contributed"] == 3


def test_a_forked_process_killed_is_reported_with_its_signal_and_the_others_kept(tmp_path):
    steps = profile_steps(tmp_path, KILLED_IN_A_PROCESS, "--processes", "3",
                          env={"TFPROFSCALE_TEST_KILL_IN_PROCESS": "2"})
    assert steps["processes"][1] == {"process": 2, "failed": "killed by SIGKILL (killed from outside, e.g. by the "
                                                            "out-of-memory killer)"}
    assert steps["processes"][2]["started"] == "forked" and steps["processes"][2]["median"] > 0
    assert (steps["processes_requested"], steps["processes_contributed"]) == (3, 2)


def test_after_an_op_no_server_starts_and_the_timing_processes_re_import(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(DENSE)
    script = textwrap.dedent(f"""
        import json
        import tensorflow as tf
        tf.constant(1.0) + 1.0  # an op: TensorFlow's runtime now exists in this process
        from tfprofscale.profiling.runtime import fork_server
        assert fork_server.start() is None
        import tfprofscale
        report = tfprofscale.profile({str(model)!r}, processes=2, trace=False, tf_cost_model=False, steps=5,
                                     warmup=1, max_time=0.5, progress=False)
        print(json.dumps([entry["started"] for entry in report.totals.step_time_ms.processes]))
    """)
    done = run_python("-c", script)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["profiling process", "re-imported"]


def test_a_timing_process_past_its_limit_is_killed(tmp_path):
    # A model whose build sleeps 60 s, given 1 s: the server kills the forked process and says so (None).
    model = tmp_path / "model.py"
    model.write_text(DENSE.replace("def build_model():", "def build_model():\n    import time\n    time.sleep(60)"))
    script = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from tfprofscale.quiet import import_tensorflow_quietly
        import_tensorflow_quietly()
        from tfprofscale.profiling.runtime import fork_server
        from tfprofscale.profiling.runtime.processes import worker_request
        from tfprofscale.profiling.pipeline import ProfileOptions
        server = fork_server.start()
        folder = Path({str(tmp_path)!r})
        (folder / "request.json").write_text(json.dumps(worker_request({str(model)!r}, {{}}, ProfileOptions(),
                                                                       "CPU:0")))
        print(server.run(2, folder / "request.json", folder / "result.json", folder / "stderr", 1.0))
    """)
    started = time.perf_counter()
    done = run_python("-c", script, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "None"
    assert time.perf_counter() - started < 50  # not the model's 60 s sleep: it was killed (a bound, not a timing)


def test_the_server_ends_with_the_process_that_started_it(tmp_path):
    script = textwrap.dedent("""
        import os
        from tfprofscale.quiet import import_tensorflow_quietly
        import_tensorflow_quietly()
        from tfprofscale.profiling.runtime import fork_server
        print(fork_server.start().pid, flush=True)
        os._exit(0)  # no clean-up: the server must still go
    """)
    done = run_python("-c", script, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    server_pid = int(done.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{server_pid}").exists() and _state(server_pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{server_pid}").exists() or _state(server_pid) == "Z"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"


def test_a_local_sweep_worker_forks_the_timing_processes_of_every_configuration(tmp_path):
    # The worker starts its server before its first configuration's first op, and keeps it for the next ones.
    (tmp_path / "model.py").write_text(DENSE.replace("def build_model():", "def build_model(units=2):"))
    (tmp_path / "grid.ini").write_text("[sweep]\nmodel = model.py\nsteps = 5\nwarmup = 1\ntrace_steps = 0\n"
                                       "max_time = 0.5\nprocesses = 2\n\n[grid]\nunits = 2 3\n")
    done = run_python("-m", "tfprofscale", "sweep", str(tmp_path / "grid.ini"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    reports = sorted((tmp_path / "out" / "reports").glob("*.json"))
    assert len(reports) == 2
    for path in reports:
        steps = json.loads(path.read_text())["report"]["totals"]["step_time_ms"]
        assert [entry["started"] for entry in steps["processes"]] == ["profiling process", "forked"]
