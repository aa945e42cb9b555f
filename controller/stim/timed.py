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

from controller.kernels import kernel, pack
from controller.stim import envelope
from controller.stim.envelope import TIME_EPSILON_S
from controller.stim.settings import ChannelConfig

# Parameter row: the envelope's columns, then these.
PARAM_NAMES = (
    "hold_s",  # from a train's start to its ramp down
    "cycle_s",  # from a train's start to the next one's (inf: a single train)
)
(P_HOLD_S, P_CYCLE_S) = range(envelope.PARAMS_SIZE, envelope.PARAMS_SIZE + len(PARAM_NAMES))
PARAMS_SIZE = envelope.PARAMS_SIZE + len(PARAM_NAMES)

# State row: the envelope's columns, then these.
STATE_NAMES = (
    "next_start_s",
    "release_s",  # when the present train ramps down
)
(S_NEXT_START_S, S_RELEASE_S) = range(envelope.STATE_SIZE, envelope.STATE_SIZE + len(STATE_NAMES))
STATE_SIZE = envelope.STATE_SIZE + len(STATE_NAMES)

def make_params(config: ChannelConfig, on_ms: float, off_ms: float | None) -> np.ndarray:
    """A timed channel's parameter row: trains of ``on_ms`` at full level, then
    ``off_ms`` of rest before the next (``off_ms=None``: a single train)."""
    hold_s = (config.ramp_up_ms + on_ms) / 1000.0
    own = pack(PARAM_NAMES, {
        "hold_s": hold_s,
        "cycle_s": math.inf if off_ms is None
        else hold_s + (config.ramp_down_ms + off_ms) / 1000.0,
    })
    return np.concatenate([envelope.make_params(config), own])


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
