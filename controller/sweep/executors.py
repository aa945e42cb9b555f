"""Where a sweep's trials run: in this process, in local worker processes, or on a Dask
cluster. Each executor takes the same tasks and yields ``(index, result)`` pairs as the
trials finish, in whatever order they finish; the sweep puts them back in plan order.

Local worker processes are started with ``spawn`` (not ``fork``): a spawned worker holds
no copy of the parent's pipes, so when the parent is killed its workers see the pipe
close and exit instead of lingering. Workers ignore Ctrl-C; the parent terminates them.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Generator, Sequence
from typing import Any

from controller.sweep.worker import FileOptions, TrialFailure, TrialOutput, run_guarded
from controller.validation import ConfigError

Task = tuple[dict[str, Any], FileOptions]  # (trial config, which files to keep)
Result = tuple[int, TrialOutput | TrialFailure]
DASK_CONNECT_TIMEOUT_S = 10.0


def _star_guarded(item: tuple[int, dict[str, Any], FileOptions]) -> Result:
    return run_guarded(*item)


def run_serial(tasks: Sequence[Task]) -> Generator[Result, None, None]:
    """Every trial in this process, one after the other (``--workers 1``)."""
    for index, (config, options) in enumerate(tasks):
        yield run_guarded(index, config, options)


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_processes(tasks: Sequence[Task], workers: int) -> Generator[Result, None, None]:
    """Trials on ``workers`` local processes (no more than there are trials), yielded as
    they finish."""
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(max(1, min(workers, len(tasks))), initializer=_ignore_ctrl_c)
    try:
        items = [(i, config, options) for i, (config, options) in enumerate(tasks)]
        yield from pool.imap_unordered(_star_guarded, items, chunksize=1)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def run_dask(tasks: Sequence[Task], address: str) -> Generator[Result, None, None]:
    """Trials on the Dask cluster whose scheduler listens at ``address``."""
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
            client.submit(run_guarded, i, config, options, pure=False)
            for i, (config, options) in enumerate(tasks)
        ]
        for future in as_completed(futures, loop=client.loop):
            yield future.result()
    finally:
        client.cancel(futures)
        client.close()
