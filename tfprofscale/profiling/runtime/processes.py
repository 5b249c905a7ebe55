"""``--processes N``: the timed part repeated in N - 1 fresh worker processes, one after another.

The profiling process is the first: it times the step as always (and
traces it); then N - 1 workers (``timing_worker``) each build the model
afresh, warm up, calibrate and time the step the same way, one after
another so that they never compete for the CPUs. A worker is forked from
the fork server when this process started one (``fork_server``: TensorFlow
imported, no op run), else it re-imports TensorFlow (``python -m``); each
process's entry says which (``started``). ``across_processes.combine``
makes one ``step_time_ms`` of them. A worker that dies (killed, out of
memory, a crash) is reported with its exit reason; the others are kept.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from tfprofscale.profiling.runtime import fork_server
from tfprofscale.profiling.runtime.across_processes import combine, exit_reason
from tfprofscale.records import StepTimes

PROCESS_ENV = "TFPROFSCALE_TIMING_PROCESS"  # 1-based number of the timing process, set in each worker


def time_in_more_processes(first: Any, request: dict[str, Any], count: int,
                           say: Callable[[str], None]) -> tuple[Any, list[str]]:
    """``first`` (this process's StepTimes) combined with those of ``count - 1`` fresh workers; with warnings."""
    per_process, failures, notes, started = [first], [], [], {1: "profiling process"}
    for number in range(2, count + 1):
        how = "forked from the fork server" if fork_server.server() else "re-imports TensorFlow and the model"
        say(f"timing in process {number} of {count} (a fresh process: {how})")
        outcome = run_worker(number, request)
        if isinstance(outcome, str):
            failures.append({"process": number, "failed": outcome})
            continue
        per_process.append(StepTimes(**outcome["step_times"]))
        started[number] = outcome["started"]
        if outcome.get("budget_note"):
            notes.append(f"process {number}: {outcome['budget_note']}")
    warnings = [f"timing process {entry['process']} of {count} died ({entry['failed']}); step_time_ms combines "
                f"the {len(per_process)} that finished" for entry in failures]
    return combine(per_process, failures, count, started), warnings + notes[:1]


def run_worker(number: int, request: dict[str, Any]) -> dict[str, Any] | str:
    """Run one timing worker (forked if there is a fork server); its result dict, or why it failed."""
    with tempfile.TemporaryDirectory(prefix="tfprofscale-timing-") as folder:
        request_path, result_path = Path(folder) / "request.json", Path(folder) / "result.json"
        request_path.write_text(json.dumps(request))
        timeout = 300 + 20 * float(request["rule"]["max_time_s"])
        ended, started = _forked(number, Path(folder), timeout), "forked"
        if ended is None:
            ended, started = _reimported(number, request_path, result_path, timeout), "re-imported"
        returncode, stderr = ended
        if returncode is None:
            return f"timed out after {timeout:.0f} s and was killed"
        if returncode != 0 or not result_path.exists():
            last = [line for line in stderr.splitlines() if line.strip()][-1:]
            return exit_reason(returncode) + (f": {last[0].strip()}" if last else "")
        return {**json.loads(result_path.read_text()), "started": started}


def _forked(number: int, folder: Path, timeout: float) -> tuple[int | None, str] | None:
    """Exit code (None: timed out) and stderr of a timing process forked from the server; None without one."""
    server = fork_server.server()
    if server is None:
        return None
    try:
        returncode = server.run(number, folder / "request.json", folder / "result.json", folder / "stderr",
                                timeout)
    except OSError:  # the server is gone: re-import instead
        return None
    stderr = (folder / "stderr").read_text(errors="replace") if (folder / "stderr").exists() else ""
    return returncode, stderr


def _reimported(number: int, request_path: Path, result_path: Path, timeout: float) -> tuple[int | None, str]:
    """Exit code (None: timed out) and stderr of ``python -m ...timing_worker``."""
    try:
        done = subprocess.run([sys.executable, "-m", "tfprofscale.profiling.runtime.timing_worker",
                               str(request_path), str(result_path)], env=_worker_env(number),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, ""
    return done.returncode, done.stderr or ""


def worker_request(model_path: str, params: dict[str, Any], options: Any, device: str) -> dict[str, Any]:
    """What a worker needs to rebuild, trace and time the model as this process did."""
    rule = options.stop_rule()
    return {"model": str(Path(model_path).resolve()), "params": params, "batch_size": options.batch_size,
            "input_shapes": options.input_shapes, "weights": options.weights, "threads": options.threads,
            "device": device, "steps": options.steps, "warmup": options.warmup, "rule": asdict(rule)}


def _worker_env(number: int) -> dict[str, str]:
    """This environment, with this package importable and the worker's number in ``PROCESS_ENV``."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the tfprofscale package
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env[PROCESS_ENV] = str(number)
    return env
