"""A worker process's lifeline to its parent: when the parent dies, by any signal, the worker exits too.

Two guards, so that no worker outlives the sweep that started it (a hung
worker left with parent pid 1 would hold its CPU, and the multiprocessing
resource tracker, which exits only when every process holding its pipe is
gone, for ever):

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the
  worker the moment its parent dies, even by SIGKILL, even while the worker
  is stuck in native code;
- everywhere, a daemon thread that checks every ``interval_s`` whether the
  parent is still the parent (``os.getppid()``) and ends the process with
  ``os._exit`` when it is not. This covers other systems and a worker that
  started just as its parent died (before the ``prctl``).

Idle workers also end on their own: their pipe to the parent reads EOF.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
EXIT_STATUS_ORPHANED = 3


def hold(parent_pid: int, interval_s: float = 0.5) -> None:
    """Make this process exit when ``parent_pid`` is no longer its parent."""
    _ask_kernel_to_kill_on_parent_death()
    if os.getppid() != parent_pid:
        os._exit(EXIT_STATUS_ORPHANED)
    watchdog = threading.Thread(target=_watch, args=(parent_pid, interval_s), daemon=True,
                                name="tfprofscale-parent-watchdog")
    watchdog.start()


def _ask_kernel_to_kill_on_parent_death() -> bool:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux; False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, interval_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    os._exit(EXIT_STATUS_ORPHANED)
