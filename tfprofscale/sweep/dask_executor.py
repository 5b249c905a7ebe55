"""An executor on a dask.distributed cluster: configurations measured on other machines.

Start a scheduler on one machine and workers on every machine that should
measure (``pip install -e '.[distributed]'`` on each)::

    dask scheduler                                   # on HOST, listens on tcp://HOST:8786
    dask worker tcp://HOST:8786 --nthreads 1 --nworkers 1

and run ``tfprofscale sweep CONFIG --scheduler tcp://HOST:8786``. One
thread per worker process, so a worker measures one configuration at a
time; run one worker process per machine for undisturbed timings (more
only as a deliberate trade of accuracy for throughput). ``dask-jobqueue``
(SLURM, PBS, ...) and ``dask-kubernetes`` start the same workers.

``DaskExecutor.map_unordered`` submits every task, then yields outcomes as
they finish (``as_completed``). Each worker runs the ``initializer`` once
(a worker plugin, also on workers that join or restart later), so it keeps
TensorFlow imported between configurations. A worker lost mid-task (killed,
machine gone) has its task re-run on another worker by the scheduler (up to
``distributed.scheduler.allowed-failures`` times, then the task fails with
``KilledWorker``). A task's clock starts when its worker starts it (an
event the task logs); one that runs past ``timeout_s`` is cancelled and its
worker restarted through its nanny. The driver, not the workers, writes the
results, so the model file and the sweep's run folder must be at the same
path on every worker (a shared file system), or traces turned off.
"""
from __future__ import annotations

import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Iterator

from distributed import WorkerPlugin

from tfprofscale.errors import InputError
from tfprofscale.sweep.executor import Outcome, Task, check_timeout, describe_exception, describe_timeout, run_one
from tfprofscale.sweep.scheduler_probe import probe_scheduler

START_TOPIC = "tfprofscale-task-started"
POLL_S = 0.05
CONNECT_TIMEOUT_S = 30
WORKERS_TIMEOUT_S = 120


class DaskExecutor:
    """Runs tasks on the dask.distributed cluster whose scheduler is at ``address``."""

    def __init__(self, address: str, initializer: Callable[[], None] | None = None,
                 timeout_s: float | None = None, workers_timeout_s: float = WORKERS_TIMEOUT_S) -> None:
        self.address = address
        self.initializer = initializer
        self.timeout_s = check_timeout(timeout_s)
        self.workers_timeout_s = workers_timeout_s
        self._client: Any = None

    def map_unordered(self, function: Callable[[Task], Any], tasks: Iterable[Task]) -> Iterator[Outcome[Task]]:
        """Run ``function`` over ``tasks`` on the cluster; one ``Outcome`` per task as it finishes."""
        self.connect()
        client, self._client = self._client, None
        try:
            yield from _ClusterRun(client, self.timeout_s).outcomes(function, tasks)
        finally:
            client.close()

    def connect(self) -> None:
        """Connect to the scheduler now (InputError if it does not answer or has no worker)."""
        if self._client is None:
            self._client = self._connected_client()

    def _connected_client(self) -> Any:
        """A client of the scheduler with the initializer registered and at least one worker."""
        from distributed import Client

        probe_scheduler(self.address)
        try:
            client = Client(self.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, MemoryError, ValueError) as error:
            raise InputError(f"--scheduler {self.address}: no Dask scheduler answers there "
                             f"({describe_exception(error)})") from None
        try:
            client.wait_for_workers(1, timeout=self.workers_timeout_s)
        except TimeoutError:
            client.close()
            raise InputError(f"--scheduler {self.address}: no worker joined within {self.workers_timeout_s:g} s "
                             f"(start them with `dask worker {self.address} --nthreads 1`)") from None
        if self.initializer is not None:
            client.register_plugin(_Initializer(self.initializer), name="tfprofscale-initializer")
        _warn_about_threads(client.nthreads())
        return client


def _warn_about_threads(threads: dict[str, int]) -> None:
    """One line on stderr for every worker that would run configurations side by side."""
    for address, count in sorted(threads.items()):
        if count > 1:
            print(f"warning: Dask worker {address} has {count} threads: it measures {count} configurations at "
                  f"once, and they disturb each other's timings (start it with --nthreads 1)", file=sys.stderr)


class _Initializer(WorkerPlugin):
    """A worker plugin: ``initializer()`` once in every worker process (joining or restarted ones too)."""

    def __init__(self, initializer: Callable[[], None]) -> None:
        self.initializer = initializer

    def setup(self, worker: Any) -> None:
        self.initializer()


#: Future states with an answer; a future reported done can go back to pending when its worker dies.
SETTLED = ("finished", "error", "cancelled")


def run_logged(function: Callable[[Any], Any], task: Any) -> tuple[Any, str | None]:
    """On a worker: announce the start (the driver's clock for the time limit), then run the task."""
    from distributed import get_worker

    worker = get_worker()
    worker.log_event(START_TOPIC, {"key": worker.get_current_task(), "worker": worker.address})
    return run_one(function, task)


class _ClusterRun:
    """One ``map_unordered`` call: the futures, when each started, and the outcomes."""

    def __init__(self, client: Any, timeout_s: float | None) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.started: dict[str, tuple[float, str]] = {}
        self.lock = threading.Lock()
        client.subscribe_topic(START_TOPIC, self._on_start)

    def _on_start(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        with self.lock:
            self.started[message["key"]] = (time.monotonic(), message["worker"])

    def outcomes(self, function: Callable[[Task], Any], tasks: Iterable[Task]) -> Iterator[Outcome[Task]]:
        """Submit every task; yield outcomes as they finish or run out of time."""
        from distributed import as_completed

        run_id = uuid.uuid4().hex[:8]
        futures = {}
        for number, task in enumerate(tasks):
            future = self.client.submit(run_logged, function, task, key=f"tfprofscale-{run_id}-{number}", pure=False)
            futures[future.key] = (future, task)
        finished = as_completed([future for future, _ in futures.values()], loop=self.client.loop)
        try:
            while futures:
                batch = finished.next_batch(block=False)
                for future in batch:
                    if future.key not in futures:
                        continue
                    if future.status not in SETTLED:  # its result was lost with its worker: Dask computes it again
                        finished.add(future)
                        continue
                    yield self._outcome(future, futures.pop(future.key)[1])
                for key in self._out_of_time(futures):
                    yield self._time_out(*futures.pop(key))
                if not batch:
                    time.sleep(POLL_S)
        finally:
            self.client.cancel([future for future, _ in futures.values()])

    def _outcome(self, future: Any, task: Task) -> Outcome[Task]:
        started, worker = self._start_of(future.key)
        elapsed = time.monotonic() - started if started is not None else 0.0
        if future.status == "finished":
            value, error = future.result()
            future.release()  # the cluster may forget it: a worker lost later must not compute it again
            return Outcome(task, value=value, error=error, elapsed_s=elapsed, host=_host(worker))
        return Outcome(task, error=_describe_failure(future), elapsed_s=elapsed, host=_host(worker))

    def _start_of(self, key: str) -> tuple[float | None, str | None]:
        with self.lock:
            return self.started.get(key, (None, None))

    def _out_of_time(self, futures: dict[str, Any]) -> list[str]:
        """The tasks running past the limit on a live worker.

        A start on a worker that has since left the cluster is forgotten: the
        scheduler runs that task again elsewhere, and its clock restarts then.
        """
        if self.timeout_s is None:
            return []
        now = time.monotonic()
        with self.lock:
            late = [key for key in futures if key in self.started and now - self.started[key][0] > self.timeout_s]
        if not late:
            return []
        workers = set(self.client.nthreads())
        with self.lock:
            for key in [key for key in late if self.started[key][1] not in workers]:
                del self.started[key]
        return [key for key in late if key in self.started]

    def _time_out(self, future: Any, task: Task) -> Outcome[Task]:
        """Cancel a task that ran too long and restart its worker (the only way to stop its thread)."""
        started, worker = self._start_of(future.key)
        self.client.cancel([future])
        what = _restart(self.client, worker)
        return Outcome(task, error=describe_timeout(self.timeout_s, what), elapsed_s=time.monotonic() - started,
                       timed_out=True, host=_host(worker))


def _restart(client: Any, worker: str) -> str:
    """Restart ``worker`` through its nanny; what became of it, for the error message."""
    try:
        client.restart_workers([worker], timeout=WORKERS_TIMEOUT_S)
    except Exception as error:  # no nanny, or it did not come back: the sweep goes on without it
        print(f"warning: could not restart Dask worker {worker} after a time-out ({describe_exception(error)}); "
              f"it may still be busy with the timed-out configuration", file=sys.stderr)
        return f"cancelled; its Dask worker {worker} could not be restarted"
    return f"cancelled, its Dask worker {worker} restarted"


def _describe_failure(future: Any) -> str:
    """Why a future has no result: the worker lost too often (KilledWorker), cancelled, or an error."""
    if future.status == "cancelled":
        return "cancelled on the Dask cluster"
    return describe_exception(future.exception())


def _host(worker: str | None) -> str | None:
    """The host part of a worker address ``tcp://HOST:PORT``."""
    if not worker:
        return None
    return worker.split("://", 1)[-1].rsplit(":", 1)[0]
