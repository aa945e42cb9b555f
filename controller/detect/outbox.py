"""The event outbox a detection kernel fills at each sample.

A kernel can confirm more than one event at one sample (the fused detector hears from
two sensors), so kernels write events into a small preallocated float array instead of
returning them: ``out[0]`` is the count, then (event code, estimated time) pairs. Numba
kernels can fill it without allocating.
"""

from __future__ import annotations

import numpy as np

from controller.kernels import kernel

#: Capacity of the outbox, in events.
MAX_EVENTS = 4
SIZE = 1 + 2 * MAX_EVENTS


def new_outbox() -> np.ndarray:
    """An empty outbox."""
    return np.zeros(SIZE)


@kernel
def push(out: np.ndarray, code: int, t_est_s: float) -> None:
    """Append an event (ignored when ``code`` is 0, ``Event.NONE``, or the box is full)."""
    count = int(out[0])
    if code == 0 or count >= MAX_EVENTS:
        return
    out[1 + 2 * count] = code
    out[2 + 2 * count] = t_est_s
    out[0] = count + 1
