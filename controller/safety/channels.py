"""What one output channel has delivered over time: the watchdog's memory per channel.

The output holds each command until the next one, so a channel's history is a sequence
of on-intervals. From it come the three limits that depend on time rather than on one
pulse: continuous on-time, duty cycle over the sliding ``DUTY_WINDOW_S`` window, and
how far the charge per phase may rise at the next command. Times are trial seconds.

Kernels over a channel's block of the watchdog's ``state`` array (``base`` is where it
starts, ``channel_base``); the layout is in ``controller.safety.layout``. The duty cycle
keeps the closed intervals that end inside the window in a ring, with a running total of
their lengths, so each query costs O(1) amortised however many there are. A full ring
(only a caller submitting faster than any trial can fills it) merges its two oldest
intervals and the gap between them: the duty cycle is then over-counted, never under.
"""

from __future__ import annotations

import math

from controller.kernels import Floats, kernel
from controller.safety.layout import (
    C_AMPLITUDE,
    C_CHARGE,
    C_CLOSED_TOTAL,
    C_LAST_CHANGE,
    C_ON,
    C_ON_SINCE,
    C_RING_COUNT,
    C_RING_HEAD,
    CHANNEL_FIELDS,
    HEADER_SIZE,
    S_RING_INTERVALS,
)
from controller.safety.limits import DUTY_WINDOW_S, RISE_WINDOW_S
from controller.safety.pulse_math import first_max, first_min


@kernel
def channel_base(state: Floats, channel: int) -> int:
    """Index of ``channel``'s block in ``state``."""
    ring = int(state[S_RING_INTERVALS])
    return HEADER_SIZE + channel * (CHANNEL_FIELDS + 2 * ring)


@kernel
def is_on(state: Floats, base: int) -> bool:
    """Whether the channel stimulates now."""
    return state[base + C_ON] != 0.0


@kernel
def continuous_on_s(state: Floats, base: int, t_s: float) -> float:
    """How long the channel has stimulated without a break at ``t_s``."""
    return t_s - state[base + C_ON_SINCE] if is_on(state, base) else 0.0


@kernel
def _slot(state: Floats, base: int, k: int) -> int:
    """Index in ``state`` of the begin time of the k-th oldest interval of the ring."""
    ring = int(state[S_RING_INTERVALS])
    return base + CHANNEL_FIELDS + 2 * ((int(state[base + C_RING_HEAD]) + k) % ring)


@kernel
def _drop_oldest(state: Floats, base: int) -> None:
    ring = int(state[S_RING_INTERVALS])
    state[base + C_RING_HEAD] = (int(state[base + C_RING_HEAD]) + 1) % ring
    state[base + C_RING_COUNT] -= 1


@kernel
def duty(state: Floats, base: int, t_s: float) -> float:
    """Fraction of the window ending at ``t_s`` spent stimulating (time before the first
    command counts as off)."""
    start = t_s - DUTY_WINDOW_S
    while state[base + C_RING_COUNT] > 0:
        oldest = _slot(state, base, 0)
        begin, end = state[oldest], state[oldest + 1]
        if not end <= start:
            break
        state[base + C_CLOSED_TOTAL] -= end - begin
        _drop_oldest(state, base)
    total = state[base + C_CLOSED_TOTAL]
    if state[base + C_RING_COUNT] > 0:
        total -= first_max(0.0, start - state[_slot(state, base, 0)])
    if is_on(state, base):
        total += t_s - first_max(state[base + C_ON_SINCE], start)
    return first_max(0.0, total) / DUTY_WINDOW_S


@kernel
def allowed_charge_uc(state: Floats, base: int, t_s: float, rise_uc_per_s: float) -> float:
    """The highest charge per phase a command at ``t_s`` may deliver under the rise
    limit: the held charge plus the rise over the time since it last changed, at most
    ``RISE_WINDOW_S``. (Counted from the last change, not the last command, so the
    allowance does not depend on how often a caller repeats itself: an off repeated
    every sample, or a ramp's first steps that a stimulator delivers as off, leave a
    channel's count running.)"""
    dt_s = first_min(first_max(t_s - state[base + C_LAST_CHANGE], 0.0), RISE_WINDOW_S)
    return state[base + C_CHARGE] + rise_uc_per_s * dt_s


@kernel
def deliver(
    state: Floats, base: int, t_s: float, on: bool, charge_uc: float, amplitude_ma: float
) -> None:
    """The channel stimulates (``on``) with ``charge_uc`` per phase and a peak current of
    ``amplitude_ma`` (the larger phase's), or is off, from ``t_s`` on. (On and off are
    the caller's: a charge too small for a float in uC is still a pulse, and its time on
    still counts.)"""
    held_uc = first_max(0.0, charge_uc) if on else 0.0
    if on != is_on(state, base) or held_uc != state[base + C_CHARGE]:
        state[base + C_LAST_CHANGE] = t_s
    if on and not is_on(state, base):
        state[base + C_ON] = 1.0
        state[base + C_ON_SINCE] = t_s
    elif not on and is_on(state, base):
        _close(state, base, t_s)
    state[base + C_CHARGE] = held_uc
    state[base + C_AMPLITUDE] = first_max(0.0, amplitude_ma) if on else 0.0


@kernel
def force_off(state: Floats, base: int, t_s: float) -> None:
    """The output was switched off at ``t_s`` (a fault, an e-stop, a shutdown)."""
    if is_on(state, base):
        _close(state, base, t_s)
    state[base + C_CHARGE] = 0.0
    state[base + C_AMPLITUDE] = 0.0


@kernel
def _close(state: Floats, base: int, t_s: float) -> None:
    since = state[base + C_ON_SINCE]
    if t_s > since:
        if state[base + C_RING_COUNT] >= state[S_RING_INTERVALS]:
            _merge_oldest(state, base)
        new = _slot(state, base, int(state[base + C_RING_COUNT]))
        state[new] = since
        state[new + 1] = t_s
        state[base + C_RING_COUNT] += 1
        state[base + C_CLOSED_TOTAL] += t_s - since
    state[base + C_ON] = 0.0
    state[base + C_ON_SINCE] = math.nan


@kernel
def _merge_oldest(state: Floats, base: int) -> None:
    """Make room in a full ring: the two oldest intervals become one that also covers
    the gap between them (counted as on: the duty cycle can only be over-estimated)."""
    first, second = _slot(state, base, 0), _slot(state, base, 1)
    state[base + C_CLOSED_TOTAL] += state[second] - state[first + 1]
    state[second] = state[first]
    _drop_oldest(state, base)
