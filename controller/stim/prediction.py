"""Predicting the next toe off from the walker's recent stride times.

A detector confirms toe off only once the shank swings forward, about 100 ms after the
foot has left the ground, and the muscle then needs its electromechanical delay and
activation time (tens of ms each, DESIGN.md) before it lifts the foot. Stimulation timed
by the detected toe off is therefore late for the very moment it is needed. Gait is
periodic, so the next toe off is predicted as the last one plus the walker's stride time,
and a channel can start a set lead before it: the stride-time approach of Breen et al.
(IFESS 2003), who timed each stride's stimulus from the previous stride time, and of the
gait-cycle index of Azevedo Coste et al. 2014 (J NeuroEng Rehabil 11:118).

The stride time is the median of the last ``history_strides`` intervals between toe
offs, dated at the detector's estimate of when each toe off happened (not when it was
confirmed), so a single missed or spurious toe off does not shift it; a gap longer than
``max_stride_ms`` is a pause and restarts the history.

The predictor is kernel functions on a parameter row and a state row (float64 arrays)
shared by every channel of a trial. The history is a ring of ``history_strides`` slots in
the state row, followed by as many scratch slots in which the median sorts a copy, so
that nothing is allocated per sample.
"""

from __future__ import annotations

import math

import numpy as np

from controller.events import TOE_OFF
from controller.kernels import kernel, pack
from controller.stim.settings import PredictionConfig

# Parameter row.
PARAM_NAMES = (
    "history_strides",
    "min_strides",
    "max_stride_s",
)
(
    P_HISTORY_STRIDES,
    P_MIN_STRIDES,
    P_MAX_STRIDE_S,
) = range(len(PARAM_NAMES))
PARAMS_SIZE = len(PARAM_NAMES)

# State row: the scalars, then the ring of stride times, then the median's scratch.
STATE_NAMES = (
    "last_toe_off_s",
    "stride_s",  # the walker's stride time (median of the history), NaN until known
    "next_toe_off_s",  # predicted time of the next toe off; NaN while there is none
    "count",  # stride times in the ring
    "oldest",  # slot of the oldest stride time once the ring is full
)
(
    S_LAST_TOE_OFF_S,
    S_STRIDE_S,
    S_NEXT_TOE_OFF_S,
    S_COUNT,
    S_OLDEST,
) = range(len(STATE_NAMES))
S_RING = len(STATE_NAMES)


def state_size(config: PredictionConfig) -> int:
    """Length of the state row: the scalars, the ring and the scratch."""
    return S_RING + 2 * config.history_strides


def make_params(config: PredictionConfig) -> np.ndarray:
    """The predictor's parameters, from ``config``."""
    return pack(PARAM_NAMES, {
        "history_strides": config.history_strides,
        "min_strides": config.min_strides,
        "max_stride_s": config.max_stride_ms / 1000.0,
    })


def init_state(s: np.ndarray) -> None:
    """A predictor that has seen no toe off."""
    s[S_LAST_TOE_OFF_S] = math.nan
    s[S_STRIDE_S] = math.nan
    s[S_NEXT_TOE_OFF_S] = math.nan
    s[S_COUNT] = 0.0
    s[S_OLDEST] = 0.0


@kernel
def median(values: np.ndarray, count: int, scratch: np.ndarray) -> float:
    """``np.median(values[:count])`` to the bit, sorting a copy in ``scratch``.

    An insertion sort (the history is at most 20 long); for an even count the mean of
    the two middle values, summed and halved as numpy does.
    """
    for i in range(count):
        value = values[i]
        j = i
        while j > 0 and scratch[j - 1] > value:
            scratch[j] = scratch[j - 1]
            j -= 1
        scratch[j] = value
    middle = count // 2
    if count % 2 == 1:
        return scratch[middle]
    return (scratch[middle - 1] + scratch[middle]) / 2.0


@kernel
def _remember(p: np.ndarray, s: np.ndarray, stride_s: float) -> None:
    """Add a stride time, forgetting the oldest once ``history_strides`` are kept."""
    history = int(p[P_HISTORY_STRIDES])
    count = int(s[S_COUNT])
    if count < history:
        s[S_RING + count] = stride_s
        s[S_COUNT] = count + 1
    else:
        oldest = int(s[S_OLDEST])
        s[S_RING + oldest] = stride_s
        s[S_OLDEST] = (oldest + 1) % history


@kernel
def observe(p: np.ndarray, s: np.ndarray, events: np.ndarray) -> None:
    """Take in the events that became known now (an outbox, ``controller.detect.outbox``:
    the count, then (code, estimated time) pairs)."""
    for k in range(int(events[0])):
        if events[1 + 2 * k] != TOE_OFF:
            continue
        toe_off_s = events[2 + 2 * k]
        interval_s = toe_off_s - s[S_LAST_TOE_OFF_S]
        if interval_s > p[P_MAX_STRIDE_S]:
            s[S_COUNT] = 0.0
            s[S_OLDEST] = 0.0
        elif interval_s > 0.0:
            _remember(p, s, interval_s)
        s[S_LAST_TOE_OFF_S] = toe_off_s
        count = int(s[S_COUNT])
        history = int(p[P_HISTORY_STRIDES])
        s[S_STRIDE_S] = (
            median(s[S_RING:], count, s[S_RING + history:])
            if count >= p[P_MIN_STRIDES]
            else math.nan
        )
        s[S_NEXT_TOE_OFF_S] = s[S_LAST_TOE_OFF_S] + s[S_STRIDE_S]
