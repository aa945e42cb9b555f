"""Training and test mode: trains timed by the clock, not by the gait.

Training (the "exercise" mode of the Odstock ODFS Pace and of the WalkAide) strengthens
the muscle while seated: every enabled channel ramps up, holds for ``on_ms``, ramps down
and rests for ``off_ms``, over and over. Test mode is the ODFS test button: a single
burst on one channel, so that a bench engineer or clinician can set the amplitude while
watching the muscle. Gait phase and events are ignored in both (the patient is not
walking); the continuous on-time of a cycle is checked against the safety limit when the
config is loaded instead of being cut by the walking timeout.

``timed_step`` is a kernel on one channel's parameter and state rows: the envelope's
columns (``controller.stim.envelope``), then this module's.
"""

from __future__ import annotations

import math

import numpy as np

from controller.kernels import kernel
from controller.stim import envelope
from controller.stim.envelope import TIME_EPSILON_S
from controller.stim.settings import ChannelConfig

# Parameter row, after the envelope's columns.
P_HOLD_S = envelope.PARAMS_SIZE  # from a train's start to its ramp down
P_CYCLE_S = P_HOLD_S + 1  # from a train's start to the next one's (inf: a single train)
PARAMS_SIZE = P_HOLD_S + 2

# State row, after the envelope's columns.
S_NEXT_START_S = envelope.STATE_SIZE
S_RELEASE_S = S_NEXT_START_S + 1  # when the present train ramps down
STATE_SIZE = S_NEXT_START_S + 2


def write_params(config: ChannelConfig, on_ms: float, off_ms: float | None, p: np.ndarray) -> None:
    """Fill a timed channel's parameter row: trains of ``on_ms`` at full level, then
    ``off_ms`` of rest before the next (``off_ms=None``: a single train)."""
    envelope.write_params(config, p)
    hold_s = (config.ramp_up_ms + on_ms) / 1000.0
    p[P_HOLD_S] = hold_s
    p[P_CYCLE_S] = math.inf if off_ms is None else hold_s + (config.ramp_down_ms + off_ms) / 1000.0


def init_state(start_ms: float, s: np.ndarray) -> None:
    """A timed channel whose first train starts at ``start_ms``."""
    envelope.init_state(s)
    s[S_NEXT_START_S] = start_ms / 1000.0
    s[S_RELEASE_S] = math.inf


@kernel
def timed_step(p: np.ndarray, s: np.ndarray, t_s: float) -> None:
    """Advance a channel to ``t_s``; the gait does not matter."""
    if s[envelope.S_STAGE] == envelope.OFF and t_s >= s[S_NEXT_START_S] - TIME_EPSILON_S:
        envelope.start(s, t_s)
        s[S_RELEASE_S] = s[S_NEXT_START_S] + p[P_HOLD_S]
        s[S_NEXT_START_S] += p[P_CYCLE_S]
    elif envelope.rising_or_holding(s) and t_s >= s[S_RELEASE_S] - TIME_EPSILON_S:
        envelope.ramp_down(s, t_s)
    envelope.advance(p, s, t_s)
