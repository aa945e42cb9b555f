"""Where a sweep's trials run: in this process, in local worker processes, or on a Dask
cluster. Each executor takes the same tasks and yields ``(index, result)`` pairs as the
trials finish, in whatever order they finish; the sweep puts them back in plan order.

Local worker processes are the sweep's own (``_Workers``: ``multiprocessing.Process``
objects, one pipe each), started with ``spawn`` (not ``fork``): a spawned worker holds
no copy of the parent's pipes, so when the parent is killed its workers see the pipe
close and exit instead of lingering. Workers ignore Ctrl-C; the parent ends them by
SIGKILL (``Process.kill``, ``_Workers.kill_all``).

With ``under_way`` (``controller.sweep.underway``) the local executors let the sweep's
line move within the trials: each trial writes the fraction it has simulated into a
shared array, and the sweep redraws its line from it (in this process between blocks
of a trial, for ``run_serial``; while it waits for the next result, for
``run_processes``). ``run_dask`` takes it and ignores it.

The local executors pass ``FileOptions.staging`` on: their workers write each trial
straight into the sweep folder (``controller.sweep.worker``). ``run_dask`` clears it:
a Dask worker may be on another machine, so its trials' files come back as bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import signal
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from controller.sweep import underway
from controller.sweep.underway import TICK_S, UnderWay
from controller.sweep.worker import FileOptions, TrialFailure, TrialOutput, run_guarded
from controller.validation import ConfigError

Task = tuple[dict[str, Any], FileOptions]  # (trial config, which files to keep)
Result = tuple[int, TrialOutput | TrialFailure]
DASK_CONNECT_TIMEOUT_S = 10.0


def run_serial(
    tasks: Sequence[Task], *, under_way: UnderWay | None = None
) -> Generator[Result, None, None]:
    """Every trial in this process, one after the other (``--workers 1``)."""
    if under_way is not None:
        underway.use_shares(under_way.shares, under_way.tick)
    try:
        for index, (config, options) in enumerate(tasks):
            yield run_guarded(index, config, options)
    finally:
        underway.use_shares(None)


def _serve(connection: Connection, shares: Any) -> None:
    """A local worker: run each task the sweep sends on ``connection`` and send its
    result back, until the sweep sends None or is gone (its end of the pipe closed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the sweep's to handle
    underway.use_shares(shares)
    try:
        while (item := connection.recv()) is not None:
            connection.send(run_guarded(*item))
    except (EOFError, OSError):  # the sweep has ended: nothing to report to
        pass


@dataclass
class _Worker:
    """A worker process the sweep started, its end of the pipe, and the task it runs."""

    process: BaseProcess
    connection: Connection
    task: int | None = None


class _Workers:
    """The sweep's own worker processes (``spawn``): each has a pipe to the sweep, which
    sends it one task at a time and knows which one it runs. None shares a queue or a
    lock with another or with the sweep, so a worker ended at any moment holds nothing
    the others need."""

    def __init__(self, shares: Any) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._shares = shares
        self.running: list[_Worker] = []
        self.retired: list[BaseProcess] = []

    def start(self) -> _Worker:
        mine, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs, self._shares),
                                        name="fes-sweep-worker", daemon=True)
        process.start()
        theirs.close()  # the worker's end: ours closes when the worker's does
        worker = _Worker(process, mine)
        self.running.append(worker)
        return worker

    def give(self, worker: _Worker, index: int, task: Task) -> None:
        """Send ``worker`` the task ``index``; if it has died meanwhile, its sentinel
        says so and the task is reported as its failure."""
        worker.task = index
        with contextlib.suppress(OSError):
            worker.connection.send((index, *task))

    def retire(self, worker: _Worker) -> None:
        """Tell an idle worker to exit (it does once it has read this; not waited for
        here, a thread of its trial's could hold its exit up: ``kill_all`` reaps it)."""
        with contextlib.suppress(OSError):
            worker.connection.send(None)
        worker.connection.close()
        self.running.remove(worker)
        self.retired.append(worker.process)

    def kill_all(self) -> None:
        """End every worker still running, retired or not, by SIGKILL (``Process.kill``),
        then reap it.

        Not SIGTERM (``Process.terminate``): in a worker running a trial, SIGTERM is the
        trial's e-stop (``controller.safety.estop``), which ends the trial gracefully or,
        where Python drops the exception it raises, not at all (Ctrl-C during the trials
        of ``fes sweep --workers 2`` then hung 5 times in 10 at 600 s per trial, with
        ``multiprocessing.Pool``, whose terminate waited on a worker stuck on its task
        queue). A worker holds nothing that needs its own clean-up: the sweep removes
        the folders of unfinished trials (``controller.sweep.store``); a retired one
        has sent its last result."""
        processes = [w.process for w in self.running] + self.retired
        for process in processes:
            if process.exitcode is None:
                process.kill()
        for process in processes:
            process.join()
        for worker in self.running:
            worker.connection.close()
        self.running.clear()
        self.retired.clear()


def run_processes(
    tasks: Sequence[Task], workers: int, *, under_way: UnderWay | None = None
) -> Generator[Result, None, None]:
    """Trials on ``workers`` local processes (no more than there are trials), yielded as
    they finish. A worker that dies in a trial (killed, out of memory, a crash in
    compiled code) makes that trial a failure, and another worker takes its place."""
    pool = _Workers(under_way.shares if under_way is not None else None)
    todo = iter(enumerate(tasks))
    try:
        for _ in range(max(1, min(workers, len(tasks)))):
            _next_task(pool, pool.start(), todo)
        while pool.running:
            by_connection = {w.connection: w for w in pool.running}
            by_sentinel = {w.process.sentinel: w for w in pool.running}
            ready = wait([*by_connection, *by_sentinel], TICK_S)
            if not ready:  # none finished meanwhile
                if under_way is not None:
                    under_way.tick()
                continue
            answered = [by_connection[r] for r in ready if r in by_connection]
            died = [by_sentinel[r] for r in ready if r in by_sentinel]
            for worker in answered:
                try:
                    index, result = worker.connection.recv()
                except EOFError:  # the worker died: its pipe closed with it
                    yield from _lost(pool, worker, todo)
                    continue
                _next_task(pool, worker, todo)
                yield index, result
            for worker in died:
                # Retired; or its pipe still holds its result, or its end: read next round.
                if worker in pool.running and not worker.connection.poll():
                    yield from _lost(pool, worker, todo)
    finally:
        pool.kill_all()


def _lost(pool: _Workers, worker: _Worker, todo: Iterator[tuple[int, Task]]
          ) -> Generator[Result, None, None]:
    """A worker that died: its trial, if it had one, as a failure, and the next task
    to a new worker in its place."""
    pool.running.remove(worker)
    worker.connection.close()
    worker.process.join()
    if worker.task is not None:
        yield worker.task, TrialFailure(f"the worker process running this trial ended "
                                        f"(exit code {worker.process.exitcode})\n")
        if (item := next(todo, None)) is not None:
            pool.give(pool.start(), *item)


def _next_task(pool: _Workers, worker: _Worker, todo: Iterator[tuple[int, Task]]) -> None:
    """Give ``worker`` the next task, or retire it when none is left."""
    item = next(todo, None)
    if item is None:
        worker.task = None
        pool.retire(worker)
    else:
        pool.give(worker, *item)


def run_dask(
    tasks: Sequence[Task], address: str, *, under_way: UnderWay | None = None
) -> Generator[Result, None, None]:
    """Trials on the Dask cluster whose scheduler listens at ``address`` (``under_way``
    is not told: the cluster's workers share no memory with this process)."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ConfigError(
            "--scheduler", ["needs Dask: pip install 'fes-timing[dask]'"]
        ) from None
    try:
        client = Client(address, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            "--scheduler", [f"cannot reach a Dask scheduler at {address}: {exc}"]
        ) from None
    futures = []
    try:
        futures = [
            client.submit(run_guarded, i, config, dataclasses.replace(options, staging=None),
                          pure=False)
            for i, (config, options) in enumerate(tasks)
        ]
        for future in as_completed(futures, loop=client.loop):
            yield future.result()
    finally:
        client.cancel(futures)
        client.close()
