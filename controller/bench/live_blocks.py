"""Benchmark of what a live trial's process allocates in its first minute: Python's
allocated blocks, and CPython's tuple free lists, at trial times.

    python -m controller.bench.live_blocks [--duration-s S] [--every-s S] [--speed X]
                                           [--rate-hz HZ] [--fill]

It runs ``fes run`` in this process (``run_live_trial``, no status line) against ``fes
board-emulator --no-truth --speed X`` (a board that sends no ground truth, as a real
one), with the watchdog's wall-clock rules at 1 s (``WALL_CLOCK_MS``: memory is what is
measured, and a loaded machine trips the 30 ms ones), and prints, every ``--every-s`` of
trial time read by the loop itself, ``sys.getallocatedblocks()``, the frames the board
driver has sent (it keeps a record of the latest sent with each of the 256 sequence
numbers, ``Board._sent``) and the free lists of 1- and 7-item tuples
(``tuple_free_lists``).

What it shows (docs/files.md, "A live trial over hours"): the loop starts after a full
collection (``controller.hotpath.gc_paused``), which empties CPython's free lists; the
driver's ``tuple(generator)``s (``Board.apply``'s changed settings, a frame's fields in
``hw.protocol``) each leave a tuple of 1 or 7 items in its free list, up to CPython's
``PyTuple_MAXFREELIST`` of 2,000 a length, and the collector, paused, never empties them
again. ``--fill`` fills those two lists as the loop starts (``fill_tuple_free_lists``, as
``tests/test_live_memory.py`` does), so that what remains is what the trial holds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from controller.bench.live_memory import _start_emulator, add_trial_options, check_trial_options
from controller.bench.startup import fes_command
from controller.config import TrialConfig, load_config

#: CPython's bound on the tuples it keeps for reuse, per length from 1 to 20
#: (``PyTuple_MAXFREELIST``, Include/internal/pycore_tuple.h in CPython 3.11 and 3.12,
#: pycore_freelist.h from 3.13).
TUPLE_FREE_LIST = 2000
#: The lengths of tuple whose free lists a live trial's loop fills (the measurements in
#: docs/files.md, "A live trial over hours"): the one changed setting of ``Board.apply``
#: and a HEARTBEAT's one field, a STIM_SHAPED setting's seven fields.
TRIAL_TUPLE_LENGTHS = (1, 7)
#: The watchdog's wall-clock rules in a measurement of memory (``live_config``).
WALL_CLOCK_MS = 1000.0
WALL_CLOCK_RULES = ("heartbeat_timeout_ms", "sensor_timeout_ms", "ack_timeout_ms")
_FREE_LINE = re.compile(r"^\s*(\d+) free (\d+)-sized PyTupleObjects", re.MULTILINE)


def tuple_free_lists() -> dict[int, int]:
    """Tuples in CPython's free list of each length, read from what
    ``sys._debugmallocstats`` writes to the process's stderr (file descriptor 2, taken
    for the call); empty where the interpreter writes no such line."""
    with tempfile.TemporaryFile("w+") as text:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(text.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        text.seek(0)
        return {int(n): int(free) for free, n in _FREE_LINE.findall(text.read())}


def fill_tuple_free_lists(lengths: Sequence[int] = TRIAL_TUPLE_LENGTHS) -> None:
    """Fill CPython's free lists of tuples of ``lengths`` (``TUPLE_FREE_LIST`` each):
    that many tuples of each length alive at once, then freed, go there."""
    held = [tuple([None] * n) for n in lengths for _ in range(TUPLE_FREE_LIST)]
    del held


@contextlib.contextmanager
def filled_after(paused: contextlib.AbstractContextManager[None]) -> Iterator[None]:
    """``paused`` (``controller.hotpath.gc_paused()``: a full collection, which empties
    the free lists, then no collection), and the trial's tuple free lists filled inside
    it, before the loop's first sample."""
    with paused:
        fill_tuple_free_lists()
        yield


def live_config(duration_s: float, rate_hz: float) -> TrialConfig:
    """A trial of ``duration_s`` at ``rate_hz`` with the wall-clock rules at
    ``WALL_CLOCK_MS``, past what ``fes run`` accepts (``model_copy`` does not
    validate): memory is measured, not the loop's timing."""
    config = load_config(None, {"loop": {"duration_s": duration_s,
                                         "sample_rate_hz": rate_hz}})
    return config.model_copy(update={"safety": config.safety.model_copy(
        update=dict.fromkeys(WALL_CLOCK_RULES, WALL_CLOCK_MS))})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.bench.live_blocks",
                                     description=__doc__.split("\n\n")[0])
    add_trial_options(parser, duration_s=45.0, every_s=1.0, speed=2.0)
    parser.add_argument("--fill", action="store_true",
                        help="fill the trial's tuple free lists as the loop starts")
    args = parser.parse_args(argv)
    check_trial_options(parser, args)
    from controller import loop
    from controller.trial import live

    # Preallocated, so that the readings themselves hold no more blocks as they are taken:
    # trial time, blocks, frames the driver sent, free 1-tuples, free 7-tuples (-1: not
    # read).
    readings = np.full((int(args.duration_s / args.every_s) + 1, 5), -1.0)
    taken = [0]
    read = live.LiveSource.read

    def counted_read(self: live.LiveSource) -> object:
        sample = read(self)
        due_s = self._clock._due_s
        if taken[0] < len(readings) and due_s >= taken[0] * args.every_s:
            blocks = sys.getallocatedblocks()
            free = tuple_free_lists()
            readings[taken[0]] = (due_s, blocks, self._board.stats.frames_out,
                                  *(free.get(n, -1) for n in TRIAL_TUPLE_LENGTHS))
            taken[0] += 1
        return sample

    live.LiveSource.read = counted_read  # type: ignore[method-assign,assignment]
    if args.fill:
        paused = loop.gc_paused
        loop.gc_paused = lambda: filled_after(paused())  # type: ignore[assignment]
    folder = Path(tempfile.mkdtemp(prefix="fes-bench-live-blocks-"))
    emulator, link = _start_emulator(fes_command(), folder, args.speed, args.rate_hz)
    try:
        result = live.run_live_trial(live_config(args.duration_s, args.rate_hz), link,
                                     folder / "trial", limits=live.LinkLimits(1.0, 1.0))
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(10.0)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"fes run against fes board-emulator --no-truth --speed {args.speed:g} at "
          f"{args.rate_hz:g} Hz{', tuple free lists filled' if args.fill else ''}: "
          f"{result.message}")
    print("trial s | blocks | per s | frames sent | free 1-tuples | free 7-tuples")
    for k, (t_s, blocks, frames, *free) in enumerate(readings[: taken[0]]):
        before = readings[k - 1] if k else None
        rate = "" if before is None else f"{(blocks - before[1]) / (t_s - before[0]):.0f}"
        print(f"{t_s:7.1f} | {blocks:.0f} | {rate} | {frames:.0f} | "
              + " | ".join(f"{n:.0f}" if n >= 0 else "?" for n in free))
    return 0


if __name__ == "__main__":
    sys.exit(main())
