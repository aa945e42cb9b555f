"""The float64 arrays the watchdog's kernels work on, and what each index holds.

Three arrays, owned by the ``Watchdog`` shell and handed as they are to a compiled loop
(``Watchdog.kernel_arrays``):

- ``limits``: the ``SafetyLimits`` of the installation, one number per field in the
  order of ``controller.safety.rules.LIMIT_FIELDS``: the limit of a rule is at the
  index of its rule code (``SafetyLimits.kernel_array``); then, in the slot
  ``controller.safety.sensors.SENSORS``, the sensors a valid sample needs.
- ``state``: everything the watchdog remembers between calls: a header (last trial
  time, sensor and phase health, the latch, counters, the log's fill) and one block per
  channel (on/off, held charge and peak current, its last change) with its ring of
  closed on-intervals for the duty cycle (``new_state``).
- ``log``: the interventions not yet turned into ``Intervention`` objects, one record
  per row (``new_log``); ``state[S_LOG_COUNT]`` rows are in use.

Duty-cycle ring: at most one on-interval of a channel closes per submit, and only the
intervals that end inside the ``DUTY_WINDOW_S`` window are kept, so at the fastest loop
(``MAX_SAMPLE_RATE_HZ``) a ring of ``DUTY_RING_INTERVALS`` cannot fill. A caller that
submits faster than any trial can (a test, a broken loop) fills it; the kernel then
merges the two oldest intervals with the gap between them, which over-counts the duty
cycle, the safe direction (``docs/safety.md``).
"""

from __future__ import annotations

import math

import numpy as np

from controller.kernels import fresh_zeros
from controller.safety.limits import DUTY_WINDOW_S, MAX_SAMPLE_RATE_HZ

# ---- state: the header ----------------------------------------------------------------
(
    S_LAST_T,  # trial time of the last accepted submit (-inf before the first)
    S_FIRST_OBSERVED,  # time of the first observed sample with a finite time (NaN: none)
    S_LAST_GOOD,  # time of the last valid sample (NaN: none yet)
    S_UNKNOWN_SINCE,  # since when the phase is unknown (NaN: known)
    S_LATCHED,  # 1 while a fault holds every output off
    S_FAULT_RULE,  # rule code of the latched fault
    S_FAULTS,  # faults latched so far
    S_CLAMPED,  # commands not delivered as asked so far
    S_LOG_COUNT,  # rows of ``log`` in use
    S_UNLOGGED,  # interventions that found the log full (then latched)
    S_CHANNELS,  # number of output channels
    S_RING_INTERVALS,  # capacity of each channel's ring of closed intervals
) = range(12)
HEADER_SIZE = 12
# ---- state: one block per channel, then its ring of (begin, end) pairs ----------------
(
    C_ON,  # 1 while the channel stimulates
    C_ON_SINCE,  # start of the current on-interval (NaN while off)
    C_CHARGE,  # charge per phase held now (uC), 0 while off
    C_LAST_CHANGE,  # time the channel's held charge or on/off last changed (-inf: never)
    C_CLOSED_TOTAL,  # running total of the ring's interval lengths
    C_RING_HEAD,  # ring index of the oldest interval
    C_RING_COUNT,  # intervals in the ring
    C_REFUSAL_LOGGED,  # 1 once a command on it was refused and logged under this latch
    C_AMPLITUDE,  # peak current of either phase held now (mA), 0 while off
) = range(9)
CHANNEL_FIELDS = 9
#: Ring capacity: one interval per sample over the window at the fastest loop, plus the
#: two a submit can leave before the next duty-cycle query prunes the ring.
DUTY_RING_INTERVALS = math.ceil(DUTY_WINDOW_S * MAX_SAMPLE_RATE_HZ) + 2

# ---- log: one record per row ----------------------------------------------------------
(
    L_T,  # trial time of the intervention
    L_KIND,  # KIND_LATCH, KIND_CLAMP or KIND_REFUSED
    L_RULE,  # rule code
    L_CHANNEL,  # channel (-1: all)
    L_SOURCE,  # what was requested: a row of the submit (>= 0) or a SOURCE_* code
    L_FAULT_RULE,  # for KIND_REFUSED: the rule of the fault that is latched
    L_VALUE,  # the value its detail states (a time, a duty cycle, a gap...)
    L_OTHER,  # a second number of the detail (a limit, a peak, a previous time)
    L_REQUESTED,  # 7 columns: the requested command row (when L_SOURCE >= 0)
) = range(9)
L_DELIVERED = L_REQUESTED + 7  # 7 columns: the delivered command row (KIND_CLAMP)
LOG_COLUMNS = L_DELIVERED + 7

KIND_LATCH, KIND_CLAMP, KIND_REFUSED = 1.0, 2.0, 3.0
#: What a fault concerned when it was not a command of the submit.
SOURCE_HELD_ON = -1.0  # a channel on from an earlier command
SOURCE_NO_SENSOR = -2.0  # no valid sensor sample
SOURCE_TIME = -3.0  # the submit's time itself
SOURCE_LOG = -4.0  # the interventions log
ALL_CHANNELS = -1


def channel_block_size(ring_intervals: int) -> int:
    """Floats per channel: its fields and its ring."""
    return CHANNEL_FIELDS + 2 * ring_intervals


def new_state(channels: int, ring_intervals: int = DUTY_RING_INTERVALS) -> np.ndarray:
    """The state of a watchdog that has seen nothing, with every channel off."""
    if ring_intervals < 2:
        raise ValueError("a duty-cycle ring needs room for at least two intervals")
    block = channel_block_size(ring_intervals)
    # Zeros in pages of their own: most of a channel's duty-cycle ring is never written.
    state = fresh_zeros(HEADER_SIZE + channels * block)
    state[S_LAST_T] = -math.inf
    state[[S_FIRST_OBSERVED, S_LAST_GOOD, S_UNKNOWN_SINCE]] = math.nan
    state[S_CHANNELS] = channels
    state[S_RING_INTERVALS] = ring_intervals
    for channel in range(channels):
        base = HEADER_SIZE + channel * block
        state[base + C_ON_SINCE] = math.nan
        state[base + C_LAST_CHANGE] = -math.inf
    return state


def new_log(rows: int) -> np.ndarray:
    """An empty interventions log with room for ``rows`` records (zeros; a large one in
    pages of its own, each mapped only once a record is written into it)."""
    return fresh_zeros((rows, LOG_COLUMNS))
