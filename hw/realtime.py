"""Keeping Python's garbage collector out of a real-time link.

A process that has imported numba, numpy and pydantic holds some 100 000 long-lived
objects; a full (generation 2) collection traverses all of them and takes about 50 ms on
an idle machine, more on a busy one (measured: 45 ms). In the middle of a live trial
that is a silent host for longer than the board's 100 ms communication timeout allows
once scheduling is added. ``frozen_heap`` collects once up front, before any timer
runs, then moves every object that exists into the permanent generation
(``gc.freeze``), so that later collections only look at objects made during the trial.
The loop's per-sample objects are freed by reference counting as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect now, freeze the heap for the block, unfreeze after."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
