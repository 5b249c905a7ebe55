"""Timing processes forked from a server that imported TensorFlow but ran no op: fresh in under a second.

``--processes N`` needs N - 1 fresh timing processes. A fork of the profiling
process deadlocks on its first op (TensorFlow's thread pools do not survive
``fork``); a re-imported process (``timing_worker`` started by ``python -m``)
pays TensorFlow's import again, about 4 s on a quiet 2-core machine, more
than the whole timing of a small model. So right after the import, before
TensorFlow has run any op (its runtime, thread pools and allocator do not
exist yet), the profiling process forks a *server*; each timing process is a
fork of that server. It starts with TensorFlow imported and nothing else:
it builds, traces, warms up and times the model with runtime, thread pools,
allocator and buffers of its own. What the forked processes share is what
was loaded before the fork: the address-space layout of the libraries and
Python's hash seed (README, "Fork or re-import", for what that does to the
spread between processes).

The server is started only where that is safe: in the main thread of a
process whose TensorFlow has not run an op (the ``profile`` command, a
sweep's worker before its first configuration); elsewhere ``start`` returns
None and the timing processes are re-imported (as they are with
``TFPROFSCALE_FORK_SERVER=0``). It dies with the process that
started it, and its timing processes with it (Linux's parent-death signal),
and ends when that process closes its request pipe. A timing process past
its time limit is killed.
"""
from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import threading
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1  # prctl option: the signal this process gets when its parent dies (Linux)
DISABLE_ENV = "TFPROFSCALE_FORK_SERVER"  # "0": no server, every timing process re-imports TensorFlow


class ForkServer:
    """The profiling process's end of a running server: send a timing job, wait for its exit status."""

    def __init__(self, pid: int, requests_fd: int, replies_fd: int) -> None:
        self.pid = pid
        self._requests = os.fdopen(requests_fd, "w")
        self._replies = os.fdopen(replies_fd, "r")

    def run(self, number: int, request_path: Path, result_path: Path, stderr_path: Path,
            timeout_s: float) -> int | None:
        """Run ``timing_worker`` on the request in a fresh fork; its exit code (negative: signal), None if timed out.

        Raises OSError when the server is gone (the caller re-imports instead).
        """
        job = {"number": number, "request": str(request_path), "result": str(result_path),
               "stderr": str(stderr_path), "timeout_s": timeout_s, "environment": dict(os.environ)}
        self._requests.write(json.dumps(job) + "\n")
        self._requests.flush()
        reply = self._replies.readline()
        if not reply:
            raise OSError("the fork server ended")
        return json.loads(reply)["returncode"]


_server: ForkServer | None = None


def start() -> ForkServer | None:
    """This process's server, forked now if it is safe to (see the module doc); None where it is not."""
    global _server
    if _server is not None or threading.current_thread() is not threading.main_thread() \
            or not hasattr(os, "pidfd_open") or os.environ.get(DISABLE_ENV) == "0":  # pidfd: Linux 5.3 and later
        return _server
    from tensorflow.python.eager import context

    if context.context()._initialized:  # an op has run: a fork would deadlock on its first op
        return None
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(requests_write)
        os.close(replies_read)
        _serve(requests_read, replies_write)
    os.close(requests_read)
    os.close(replies_write)
    _server = ForkServer(pid, requests_write, replies_read)
    return _server


def server() -> ForkServer | None:
    """The server this process started, if any."""
    return _server


def _serve(requests_fd: int, replies_fd: int) -> None:
    """The server's loop: one forked timing process per job line, its exit code back; never returns."""
    try:
        _detach_from_parent()
        with os.fdopen(requests_fd) as requests, os.fdopen(replies_fd, "w") as replies:
            for line in requests:
                job = json.loads(line)
                replies.write(json.dumps({"returncode": _run_job(job)}) + "\n")
                replies.flush()
    finally:
        os._exit(0)


def _detach_from_parent() -> None:
    """Default signal handlers, output to /dev/null, and death with the parent (so no process outlives it)."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    _die_with_parent()


def _die_with_parent() -> None:
    """Ask Linux for SIGKILL when the parent process ends (nothing elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _run_job(job: dict[str, Any]) -> int | None:
    """Fork one timing process for the job and wait for it: its exit code, None if killed past the time limit."""
    pid = os.fork()
    if pid == 0:
        _time_in_child(job)
    if _ended_within(pid, job["timeout_s"]):
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _ended_within(pid: int, timeout_s: float) -> bool:
    """Whether the child ends within ``timeout_s``, waited on through a pidfd (no wake-ups while it times)."""
    pidfd = os.pidfd_open(pid)
    try:
        return bool(select.select([pidfd], [], [], timeout_s)[0])
    finally:
        os.close(pidfd)


def _time_in_child(job: dict[str, Any]) -> None:
    """In the forked timing process: stderr to the job's file, then ``timing_worker.main``; never returns."""
    status = 1
    try:
        _die_with_parent()
        error = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(error, 2)
        from tfprofscale.profiling.runtime.processes import PROCESS_ENV
        from tfprofscale.profiling.runtime.timing_worker import main

        os.environ.clear()  # the profiling process's environment now, not the server's at the fork
        os.environ.update(job["environment"], **{PROCESS_ENV: str(job["number"])})
        status = main([job["request"], job["result"]])
    finally:
        os._exit(status)
