"""The walker's running mean stride time, one rule for every detector kernel.

The gyroscope kernel times its refractory period by the stride (toe off to toe off), the
heel kernel dates toe off by it (heel strike to heel strike). Both average the intervals
between successive events of one kind the same way, here, so that a pause or a missed
stride is left out of the cadence by one rule.
"""

from __future__ import annotations

from controller.kernels import kernel

#: An interval longer than this is a pause, not a stride: it does not enter the average
#: (60 steps/min, the slowest cadence in DESIGN.md, is 2 s).
MAX_STRIDE_S = 3.0
#: An interval this many times the mean stride or longer contains a missed stride.
SKIPPED = 1.75


@kernel
def running_mean(average: float, value: float, weight: float) -> float:
    """Running mean that starts at the first value (``average`` 0: none yet)."""
    if average == 0.0:
        return value
    return average + weight * (value - average)


@kernel
def stride_average(average: float, interval_s: float, weight: float) -> float:
    """The mean stride after an interval of ``interval_s`` between two events of one kind;
    unchanged when the interval is a pause or contains a missed stride."""
    if interval_s < MAX_STRIDE_S and (average == 0.0 or interval_s < SKIPPED * average):
        return running_mean(average, interval_s, weight)
    return average
