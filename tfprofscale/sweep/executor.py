"""Where configurations run: a one-method executor interface and a local pool of worker processes.

An ``Executor`` has one method, ``map_unordered(function, tasks)``: it runs
``function(task)`` for every task, somewhere, and yields one ``Outcome`` per
task as each finishes, in any order. A task that raises, whose worker dies,
or that runs past the executor's time limit still yields an ``Outcome``
(with ``error`` set, and ``timed_out`` for the last); the iteration goes on.
``function`` and the tasks must pickle (a module-level function or a
``functools.partial`` of one, dataclasses of plain values). How and where
tasks run (worker count, time limit, cluster address) is the executor's
own configuration, given when it is made, so executors are interchangeable:
``LocalProcessPool`` here, ``DaskExecutor`` (tfprofscale.sweep.dask_executor)
on a dask.distributed cluster.

``LocalProcessPool`` keeps N long-lived worker processes ('spawn' start
method, so each imports TensorFlow once, fresh, and then runs many tasks).
A worker runs one task at a time; if it dies (a crash, a segfault, the
kernel's OOM killer) its task's outcome says how (exit status or signal),
a new worker replaces it, and the remaining tasks continue. A task running
longer than ``timeout_s`` is killed with its worker. Workers exit when the
parent dies, by any signal (``tfprofscale.sweep.lifeline``).
"""
from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Iterator, Protocol, TypeVar

from tfprofscale.sweep import lifeline

Task = TypeVar("Task")
_STARTED = "started"  # a worker's message: it has the task and starts it now
_DIED = object()


@dataclass(frozen=True)
class Outcome(Generic[Task]):
    """What became of one task: its return value, or why it has none, and where it ran."""

    task: Task
    value: Any = None
    error: str | None = None
    elapsed_s: float = 0.0
    timed_out: bool = False
    host: str | None = None

    @property
    def ok(self) -> bool:
        """True when the task returned a value."""
        return self.error is None


class Executor(Protocol):
    """Runs a function over tasks and yields their outcomes as they finish."""

    def map_unordered(self, function: Callable[[Task], Any], tasks: Iterable[Task]) -> Iterator[Outcome[Task]]:
        """One ``Outcome`` per task, in completion order."""
        ...  # pragma: no cover - a protocol


def describe_exception(error: BaseException) -> str:
    """``Type: message`` on one line."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def describe_exit(exitcode: int | None) -> str:
    """Why a worker process ended, from its exit code (negative: killed by a signal)."""
    if exitcode is None:
        return "worker process vanished"
    if exitcode < 0:
        number = -exitcode
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if number == signal.SIGKILL else ""
        return f"worker process killed by {name} ({number}){hint}"
    return f"worker process exited with status {exitcode}"


def describe_timeout(timeout_s: float, what: str) -> str:
    """The error of a task that ran past its time limit."""
    return f"timed out after {timeout_s:g} s ({what})"


def check_timeout(timeout_s: float | None) -> float | None:
    """``timeout_s`` if it is None or a positive number of seconds, else ValueError."""
    if timeout_s is not None and (isinstance(timeout_s, bool) or not timeout_s > 0):
        raise ValueError(f"timeout_s must be a number of seconds > 0, got {timeout_s!r}")
    return timeout_s


class LocalProcessPool:
    """``workers`` long-lived processes on this machine; ``initializer()`` runs once in each.

    A task running longer than ``timeout_s`` seconds (None: no limit) is
    killed with its worker and yields a timed-out ``Outcome``. With
    ``fresh_per_task`` every task runs in a new process (a sweep's repeats
    then measure what separate processes measure).
    """

    def __init__(self, workers: int = 1, initializer: Callable[[], None] | None = None,
                 timeout_s: float | None = None, fresh_per_task: bool = False) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers
        self.initializer = initializer
        self.timeout_s = check_timeout(timeout_s)
        self.fresh_per_task = fresh_per_task
        self.host = socket.gethostname()
        self._context = multiprocessing.get_context("spawn")

    def map_unordered(self, function: Callable[[Task], Any], tasks: Iterable[Task]) -> Iterator[Outcome[Task]]:
        """Run ``function`` over ``tasks`` in the workers; one ``Outcome`` per task as it finishes."""
        pending = _Pending(tasks)
        idle = [self._start(function) for _ in range(pending.at_most(self.workers))]
        busy: dict[_Worker, tuple[Task, float | None]] = {}
        try:
            while pending or busy:
                while idle and pending:
                    self._dispatch(idle.pop(), pending, busy, idle, function)
                for worker, outcome in self._finished(busy):
                    if worker.process.is_alive() and self.fresh_per_task:
                        worker.stop()
                        if pending:
                            idle.append(self._start(function))
                    elif worker.process.is_alive():
                        idle.append(worker)
                    elif pending:
                        idle.append(self._start(function))
                    yield outcome
        finally:
            _stop_all(idle, busy=list(busy))

    def _dispatch(self, worker: "_Worker", pending: "_Pending", busy: dict, idle: list,
                  function: Callable[[Any], Any]) -> None:
        """Send the next task to ``worker``; a worker found dead while idle is replaced."""
        task = pending.take()
        try:
            worker.connection.send(task)
        except (BrokenPipeError, ConnectionResetError):
            worker.process.join(timeout=10)
            worker.connection.close()
            pending.put_back(task)
            idle.append(self._start(function))
            return
        busy[worker] = (task, None)

    def _start(self, function: Callable[[Any], Any]) -> "_Worker":
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_worker_loop, args=(theirs, function, self.initializer, os.getpid()),
                                        daemon=True, name="tfprofscale-worker")
        with _interrupts_held():  # an interrupt mid-start would cut the worker's start-up data (its EOFError)
            process.start()
        theirs.close()
        return _Worker(process, ours)

    def _finished(self, busy: dict["_Worker", Any]) -> list[tuple["_Worker", Outcome]]:
        """Wait until a busy worker has a result, has died or has run out of time; their outcomes.

        A task's clock starts when its worker says it has started it (after
        the worker's start-up, which a new worker's first task waits for).
        """
        waitables = [w.connection for w in busy] + [w.process.sentinel for w in busy]
        ready = set(multiprocessing.connection.wait(waitables, timeout=self._wait_s(busy)))
        finished = []
        for worker, (task, started) in list(busy.items()):
            if worker.connection in ready or worker.process.sentinel in ready:
                message = worker.receive()
                if message == _STARTED:
                    busy[worker] = (task, time.perf_counter())
                    continue
                elapsed = 0.0 if started is None else time.perf_counter() - started
                finished.append((worker, worker.outcome(task, message, elapsed, self.host)))
            elif self._out_of_time(started):
                worker.kill()
                elapsed = time.perf_counter() - started
                error = describe_timeout(self.timeout_s, "its worker process was killed")
                finished.append((worker, Outcome(task, error=error, elapsed_s=elapsed, timed_out=True,
                                                 host=self.host)))
        for worker, _ in finished:
            del busy[worker]
        return finished

    def _out_of_time(self, started: float | None) -> bool:
        return self.timeout_s is not None and started is not None and time.perf_counter() - started > self.timeout_s

    def _wait_s(self, busy: dict["_Worker", Any]) -> float | None:
        """Seconds until the first started task runs out of time (None: wait for ever)."""
        clocks = [started for _, started in busy.values() if started is not None]
        if self.timeout_s is None or not clocks:
            return None
        return max(0.0, min(clocks) + self.timeout_s - time.perf_counter())


class _Pending:
    """The tasks not started yet, read lazily from an iterable; a task can be put back."""

    def __init__(self, tasks: Iterable[Any]) -> None:
        self._tasks = iter(tasks)
        self._back: list[Any] = []

    def __bool__(self) -> bool:
        if self._back:
            return True
        for task in self._tasks:
            self._back.append(task)
            return True
        return False

    def take(self) -> Any:
        """The next task (call only when the pending tasks are not empty)."""
        if not self._back:
            self._back.append(next(self._tasks))
        return self._back.pop()

    def put_back(self, task: Any) -> None:
        """Return a task that could not be started; it is taken next."""
        self._back.append(task)

    def at_most(self, count: int) -> int:
        """How many tasks there are, up to ``count`` (those counted are kept to be taken)."""
        self._back[:0] = list(itertools.islice(self._tasks, count - len(self._back)))[::-1]
        return min(count, len(self._back))


@dataclass(eq=False)
class _Worker:
    """One worker process and the parent's end of its pipe."""

    process: Any
    connection: Any

    def receive(self) -> Any:
        """The next message from the worker: ``_STARTED``, ``(value, error)``, or ``_DIED`` if it is gone."""
        try:
            return self.connection.recv()
        except (EOFError, OSError):
            self.process.join(timeout=10)
            self.connection.close()
            return _DIED

    def outcome(self, task: Any, message: Any, elapsed_s: float, host: str) -> Outcome:
        """The task's outcome from the worker's reply, or how the worker died."""
        if message is _DIED:
            return Outcome(task, error=describe_exit(self.process.exitcode), elapsed_s=elapsed_s, host=host)
        value, error = message
        return Outcome(task, value=value, error=error, elapsed_s=elapsed_s, host=host)

    def kill(self) -> None:
        """End the worker now (SIGKILL) and close its pipe."""
        self.process.kill()
        self.process.join(timeout=10)
        self.connection.close()

    def stop(self) -> None:
        """Ask the worker to finish: it exits when it reads None."""
        try:
            self.connection.send(None)
        except (OSError, ValueError):
            pass


_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM held (recorded, not lost) in this process until the block ends, then delivered.

    A signal sent to the process may be taken by any thread (TensorFlow's
    among them), so a handler that only records it stands in for the block;
    the main thread also blocks them, which a worker process inherits, so it
    cannot be interrupted while it starts either (it unblocks them once it
    ignores Ctrl-C). Outside the main thread the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum))
                for number in _HELD_SIGNALS}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for number, handler in previous.items():
            signal.signal(number, handler)
        if received:
            signal.raise_signal(received[0])  # now handled as it would have been


def _stop_all(idle: list[_Worker], busy: list[_Worker]) -> None:
    """Idle workers are asked to finish; busy ones (left when the caller stops early) are killed."""
    for worker in busy:
        worker.process.kill()
    for worker in idle:
        worker.stop()
    deadline = time.monotonic() + 10
    for worker in idle + busy:
        worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.connection.close()


def _worker_loop(connection: Any, function: Callable[[Any], Any], initializer: Callable[[], None] | None,
                 parent_pid: int) -> None:
    """The worker process: run tasks from the pipe until it sends None or closes, or the parent dies."""
    lifeline.hold(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_SIGNALS)  # held while the parent started this process
    if initializer is not None:
        initializer()
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            connection.send(_STARTED)
            connection.send(run_one(function, task))
        except (BrokenPipeError, ConnectionResetError):
            return  # the parent is gone or stopped listening


def run_one(function: Callable[[Any], Any], task: Any) -> tuple[Any, str | None]:
    """``(function(task), None)``, or ``(None, "Type: message")`` if it raised."""
    try:
        value = function(task)
    except (Exception, KeyboardInterrupt, SystemExit) as error:  # any failure of one task is its outcome
        return None, describe_exception(error)
    return value, None
