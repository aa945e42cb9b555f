"""Exact pulse timing of a train: where the pulses of a stimulation command fall.

A channel that is switched on emits its first pulse at the switch-on instant and then one
every 1/frequency seconds, as a board's pulse generator does. Both the simulated limb
(which turns pulses into muscle activation) and the trial metrics (which add up charge)
use this one rule, so the charge a summary reports is the charge the limb received.
"""

from __future__ import annotations

import numba
import numpy as np

# Index of the train state array.
_PHASE = 0  # time until the next pulse, in seconds; negative or zero means "due now"
_RUNNING = 1  # 1.0 while the train is running


def new_train() -> np.ndarray:
    """A stopped pulse train."""
    return np.zeros(2)


@numba.njit(cache=True)
def advance_train(state: np.ndarray, on: bool, frequency_hz: float, dt_s: float) -> int:
    """Number of pulses emitted in the next ``dt_s`` seconds and update ``state``.

    The command holds for the whole interval. Switching on fires a pulse at once; a
    change of frequency takes effect from the next pulse.
    """
    if not on or frequency_hz <= 0.0:
        state[_RUNNING] = 0.0
        state[_PHASE] = 0.0
        return 0
    if state[_RUNNING] == 0.0:
        state[_RUNNING] = 1.0
        state[_PHASE] = 0.0
    period = 1.0 / frequency_hz
    pulses = 0
    # A pulse is due at every instant in [0, dt) where the countdown reaches zero.
    while state[_PHASE] < dt_s - 1e-12:
        pulses += 1
        state[_PHASE] += period
    state[_PHASE] -= dt_s
    return pulses
