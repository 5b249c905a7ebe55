"""Where configurations run: a small executor interface and a local pool of worker processes.

An ``Executor`` has one method, ``map_unordered(function, tasks)``: it runs
``function(task)`` for every task, somewhere, and yields one ``Outcome`` per
task as each finishes, in any order. A task that raises, or whose worker
dies, still yields an ``Outcome`` (with ``error`` set); the iteration goes on.
``function`` and the tasks must pickle (a module-level function or a
``functools.partial`` of one, dataclasses of plain values). Nothing else of
the sweep depends on how the executor runs them, so a cluster engine (Ray
tasks, a Dask ``Client.map`` + ``as_completed``) can implement the same
method.

``LocalProcessPool`` keeps N long-lived worker processes ('spawn' start
method, so each imports TensorFlow once, fresh, and then runs many tasks).
A worker runs one task at a time; if it dies (a crash, a segfault, the
kernel's OOM killer) its task's outcome says how (exit status or signal),
a new worker replaces it, and the remaining tasks continue.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Iterator, Protocol, TypeVar

Task = TypeVar("Task")


@dataclass(frozen=True)
class Outcome(Generic[Task]):
    """What became of one task: its return value, or why it has none."""

    task: Task
    value: Any = None
    error: str | None = None
    elapsed_s: float = 0.0

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


class LocalProcessPool:
    """``workers`` long-lived processes on this machine; ``initializer()`` runs once in each."""

    def __init__(self, workers: int = 1, initializer: Callable[[], None] | None = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers
        self.initializer = initializer
        self._context = multiprocessing.get_context("spawn")

    def map_unordered(self, function: Callable[[Task], Any], tasks: Iterable[Task]) -> Iterator[Outcome[Task]]:
        """Run ``function`` over ``tasks`` in the workers; one ``Outcome`` per task as it finishes."""
        pending = deque(tasks)
        idle = [self._start(function) for _ in range(min(self.workers, len(pending)))]
        busy: dict[_Worker, tuple[Task, float]] = {}
        try:
            while pending or busy:
                while idle and pending:
                    self._dispatch(idle.pop(), pending, busy, idle, function)
                for worker in self._finished(busy):
                    task, started = busy.pop(worker)
                    outcome, alive = worker.collect(task, time.perf_counter() - started)
                    if alive:
                        idle.append(worker)
                    elif pending:
                        idle.append(self._start(function))
                    yield outcome
        finally:
            _stop_all(idle, busy=list(busy))

    def _dispatch(self, worker: "_Worker", pending: deque, busy: dict, idle: list,
                  function: Callable[[Any], Any]) -> None:
        """Send the next task to ``worker``; a worker found dead while idle is replaced."""
        task = pending.popleft()
        try:
            worker.connection.send(task)
        except (BrokenPipeError, ConnectionResetError):
            worker.process.join(timeout=10)
            worker.connection.close()
            pending.appendleft(task)
            idle.append(self._start(function))
            return
        busy[worker] = (task, time.perf_counter())

    def _start(self, function: Callable[[Any], Any]) -> "_Worker":
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_worker_loop, args=(theirs, function, self.initializer),
                                        daemon=True, name="tfprofscale-worker")
        process.start()
        theirs.close()
        return _Worker(process, ours)

    @staticmethod
    def _finished(busy: dict["_Worker", Any]) -> list["_Worker"]:
        """The busy workers that have a result to read or have died."""
        waitables = [w.connection for w in busy] + [w.process.sentinel for w in busy]
        ready = set(multiprocessing.connection.wait(waitables))
        return [w for w in busy if w.connection in ready or w.process.sentinel in ready]


@dataclass(eq=False)
class _Worker:
    """One worker process and the parent's end of its pipe."""

    process: Any
    connection: Any

    def collect(self, task: Any, elapsed_s: float) -> tuple[Outcome, bool]:
        """The task's outcome, and whether the worker is still alive to take another."""
        try:
            value, error = self.connection.recv()
        except (EOFError, OSError):
            self.process.join(timeout=10)
            self.connection.close()
            return Outcome(task, error=describe_exit(self.process.exitcode), elapsed_s=elapsed_s), False
        return Outcome(task, value=value, error=error, elapsed_s=elapsed_s), True

    def stop(self) -> None:
        """Ask the worker to finish: it exits when it reads None."""
        try:
            self.connection.send(None)
        except (OSError, ValueError):
            pass


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


def _worker_loop(connection: Any, function: Callable[[Any], Any], initializer: Callable[[], None] | None) -> None:
    """The worker process: run tasks from the pipe until it sends None or closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
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
            connection.send(_run_one(function, task))
        except (BrokenPipeError, ConnectionResetError):
            return  # the parent is gone or stopped listening


def _run_one(function: Callable[[Any], Any], task: Any) -> tuple[Any, str | None]:
    try:
        value = function(task)
    except (Exception, KeyboardInterrupt, SystemExit) as error:  # any failure of one task is its outcome
        return None, describe_exception(error)
    return value, None
