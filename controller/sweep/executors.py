"""Where a sweep's trials run: in this process, in local worker processes, or on a Dask
cluster. Each executor takes the same tasks and yields ``(index, result)`` pairs as the
trials finish, in whatever order they finish; the sweep puts them back in plan order.

Local worker processes are started with ``spawn`` (not ``fork``): a spawned worker holds
no copy of the parent's pipes, so when the parent is killed its workers see the pipe
close and exit instead of lingering. Workers ignore Ctrl-C; the parent ends them (by
SIGKILL: ``_end_by_sigkill``).

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

import dataclasses
import multiprocessing
import signal
from collections.abc import Generator, Sequence
from typing import Any

from controller.sweep import underway
from controller.sweep.underway import TICK_S, UnderWay
from controller.sweep.worker import FileOptions, TrialFailure, TrialOutput, run_guarded
from controller.validation import ConfigError

Task = tuple[dict[str, Any], FileOptions]  # (trial config, which files to keep)
Result = tuple[int, TrialOutput | TrialFailure]
DASK_CONNECT_TIMEOUT_S = 10.0


def _star_guarded(item: tuple[int, dict[str, Any], FileOptions]) -> Result:
    return run_guarded(*item)


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


def _start_worker(shares: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    underway.use_shares(shares)


def run_processes(
    tasks: Sequence[Task], workers: int, *, under_way: UnderWay | None = None
) -> Generator[Result, None, None]:
    """Trials on ``workers`` local processes (no more than there are trials), yielded as
    they finish."""
    context = multiprocessing.get_context("spawn")
    shares = under_way.shares if under_way is not None else None
    pool = context.Pool(max(1, min(workers, len(tasks))), initializer=_start_worker,
                        initargs=(shares,))
    try:
        items = [(i, config, options) for i, (config, options) in enumerate(tasks)]
        results = pool.imap_unordered(_star_guarded, items, chunksize=1)
        while True:
            try:
                yield results.next(TICK_S)
            except multiprocessing.TimeoutError:  # none finished meanwhile
                if under_way is not None:
                    under_way.tick()
            except StopIteration:
                break
        pool.close()
    finally:
        _end_by_sigkill(pool)
        pool.terminate()
        pool.join()


def _end_by_sigkill(pool: Any) -> None:
    """Make ``pool.terminate`` end its workers by SIGKILL, not SIGTERM.

    In a worker running a trial, SIGTERM is the trial's e-stop
    (``controller.safety.estop``): the trial ends gracefully, or completes when the
    signal comes where Python drops the exception it raises (a finaliser, a weak
    reference's callback), and the worker then waits for its next task on the queue
    whose lock the terminating pool holds; the pool waited for it forever (Ctrl-C during
    the trials of ``fes sweep --workers 2`` hung 5 times in 10 at 600 s per trial, 6 in
    15 with one more round; none in 10 with SIGKILL).
    A worker holds nothing that needs its own clean-up: the sweep removes the folders of
    unfinished trials (``controller.sweep.store``). The workers are the pool's private
    ``_pool`` list; a Python without it gets SIGTERM, as before.
    """
    for worker in getattr(pool, "_pool", ()):
        worker.terminate = worker.kill


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
