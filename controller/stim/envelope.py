"""The envelope of one stimulation train: ramp up, hold, extension, ramp down.

Every mode drives the same envelope; only what moves it from stage to stage differs
(gait events in walking mode, timers in training and test mode). The level is a fraction
0..1 of the channel's set pulse; a ramp scales either the amplitude or the pulse width
(``ChannelConfig.ramp_parameter``). Odstock's ODFS sets its output level with pulse
width, most other devices with current; both grade the charge per pulse, and a gradual
rise avoids the calf stretch reflex a sudden contraction can provoke (DESIGN.md).

The envelope is a set of kernel functions on one channel's parameter row and state row
(float64 arrays, the first ``PARAMS_SIZE`` and ``STATE_SIZE`` columns; the mode's own
columns follow). ``start``, ``extend`` and ``ramp_down`` move the stage at time ``t_s``;
``advance`` then moves the level along the stage's ramp or timer to ``t_s``, and
``write_command`` writes the pulse that level asks for as a command row
(``controller.ports.COMMAND_FIELDS``).
"""

from __future__ import annotations

import math

import numpy as np

from controller.kernels import kernel, pack
from controller.ports import (
    ROW_AMPLITUDE_MA,
    ROW_ANODIC_WIDTH_RATIO,
    ROW_CHANNEL,
    ROW_FREQUENCY_HZ,
    ROW_INTERPHASE_GAP_US,
    ROW_ON,
    ROW_PULSE_WIDTH_US,
)
from controller.stim.settings import ChannelConfig

#: A stage counts as complete within a nanosecond of its end, so that rounding in sample
#: times cannot leave a ramp at 1e-14 mA for one more sample.
TIME_EPSILON_S = 1e-9

# Stages: where a channel is in its envelope.
OFF = 0
RAMP_UP = 1
HOLD = 2
EXTENSION = 3
RAMP_DOWN = 4

#: What a ramp scales, as coded in the parameter row.
RAMP_PARAMETER_CODES = {"amplitude": 0, "pulse_width": 1}
RAMP_AMPLITUDE = RAMP_PARAMETER_CODES["amplitude"]

# Parameter row: the pulse at full level, what the ramps scale, the stage durations.
PARAM_NAMES = (
    "channel",
    "amplitude_ma",
    "pulse_width_us",
    "frequency_hz",
    "interphase_gap_us",
    "anodic_width_ratio",
    "ramp_parameter",
    "ramp_up_s",
    "ramp_down_s",
    "extension_s",
)
(
    P_CHANNEL,
    P_AMPLITUDE_MA,
    P_PULSE_WIDTH_US,
    P_FREQUENCY_HZ,
    P_INTERPHASE_GAP_US,
    P_ANODIC_WIDTH_RATIO,
    P_RAMP_PARAMETER,
    P_RAMP_UP_S,
    P_RAMP_DOWN_S,
    P_EXTENSION_S,
) = range(len(PARAM_NAMES))
PARAMS_SIZE = len(PARAM_NAMES)

# State row.
STATE_NAMES = (
    "stage",
    "level",
    "ended_s",  # when the last train reached zero
    "stage_start_s",
    "stage_start_level",
)
(
    S_STAGE,
    S_LEVEL,
    S_ENDED_S,
    S_STAGE_START_S,
    S_STAGE_START_LEVEL,
) = range(len(STATE_NAMES))
STATE_SIZE = len(STATE_NAMES)


def make_params(config: ChannelConfig) -> np.ndarray:
    """The envelope's columns of a channel's parameter row, from ``config``."""
    return pack(PARAM_NAMES, {
        "channel": config.channel,
        "amplitude_ma": config.amplitude_ma,
        "pulse_width_us": config.pulse_width_us,
        "frequency_hz": config.frequency_hz,
        "interphase_gap_us": config.interphase_gap_us,
        "anodic_width_ratio": config.anodic_width_ratio,
        "ramp_parameter": RAMP_PARAMETER_CODES[config.ramp_parameter],
        "ramp_up_s": config.ramp_up_ms / 1000.0,
        "ramp_down_s": config.ramp_down_ms / 1000.0,
        "extension_s": config.extension_ms / 1000.0,
    })


def init_state(s: np.ndarray) -> None:
    """An envelope that is off and has never run a train."""
    s[S_STAGE] = OFF
    s[S_LEVEL] = 0.0
    s[S_ENDED_S] = -math.inf
    s[S_STAGE_START_S] = 0.0
    s[S_STAGE_START_LEVEL] = 0.0


@kernel
def rising_or_holding(s: np.ndarray) -> bool:
    """Ramping up or at the set level: a stop event may start the extension."""
    return s[S_STAGE] == RAMP_UP or s[S_STAGE] == HOLD


@kernel
def stimulating(s: np.ndarray) -> bool:
    """Ramping up, holding or in the extension: a train that has not begun to end."""
    return s[S_STAGE] == RAMP_UP or s[S_STAGE] == HOLD or s[S_STAGE] == EXTENSION


@kernel
def _enter(s: np.ndarray, stage: int, t_s: float) -> None:
    s[S_STAGE] = stage
    s[S_STAGE_START_S] = t_s
    s[S_STAGE_START_LEVEL] = s[S_LEVEL]


@kernel
def start(s: np.ndarray, t_s: float) -> None:
    """Ramp up from the present level (zero, or part-way down a ramp)."""
    _enter(s, RAMP_UP, t_s)


@kernel
def extend(s: np.ndarray, t_s: float) -> None:
    """Hold the present level for the extension, then ramp down."""
    _enter(s, EXTENSION, t_s)


@kernel
def ramp_down(s: np.ndarray, t_s: float) -> None:
    """Ramp down to zero from the present level, now."""
    _enter(s, RAMP_DOWN, t_s)


@kernel
def _progress(s: np.ndarray, t_s: float, duration_s: float) -> float:
    """Fraction 0..1 of a stage of ``duration_s`` elapsed at ``t_s``."""
    elapsed_s = t_s - s[S_STAGE_START_S]
    if elapsed_s >= duration_s - TIME_EPSILON_S:
        return 1.0
    return elapsed_s / duration_s


@kernel
def advance(p: np.ndarray, s: np.ndarray, t_s: float) -> None:
    """Move the level along the current stage's ramp or timer to ``t_s``.

    An extension that is over at ``t_s`` becomes a ramp down that starts moving at once.
    """
    if s[S_STAGE] == EXTENSION and _progress(s, t_s, p[P_EXTENSION_S]) >= 1.0:
        _enter(s, RAMP_DOWN, t_s)
    start_level = s[S_STAGE_START_LEVEL]
    if s[S_STAGE] == RAMP_UP:
        s[S_LEVEL] = start_level + (1.0 - start_level) * _progress(s, t_s, p[P_RAMP_UP_S])
        if s[S_LEVEL] >= 1.0:
            _enter(s, HOLD, t_s)
    elif s[S_STAGE] == RAMP_DOWN:
        s[S_LEVEL] = start_level * (1.0 - _progress(s, t_s, p[P_RAMP_DOWN_S]))
        if s[S_LEVEL] <= 0.0:
            _enter(s, OFF, t_s)
            s[S_ENDED_S] = t_s


@kernel
def write_command(p: np.ndarray, s: np.ndarray, row: np.ndarray) -> None:
    """Write the command for the present level into ``row``: "off" at zero."""
    row[ROW_CHANNEL] = p[P_CHANNEL]
    level = s[S_LEVEL]
    if level <= 0.0:
        row[ROW_ON] = 0.0
        row[ROW_AMPLITUDE_MA] = 0.0
        row[ROW_PULSE_WIDTH_US] = 0.0
        row[ROW_FREQUENCY_HZ] = 0.0
        row[ROW_INTERPHASE_GAP_US] = 0.0
        row[ROW_ANODIC_WIDTH_RATIO] = 1.0
        return
    amplitude_ma = p[P_AMPLITUDE_MA]
    pulse_width_us = p[P_PULSE_WIDTH_US]
    if p[P_RAMP_PARAMETER] == RAMP_AMPLITUDE:
        amplitude_ma *= level
    else:
        pulse_width_us *= level
    row[ROW_ON] = 1.0
    row[ROW_AMPLITUDE_MA] = amplitude_ma
    row[ROW_PULSE_WIDTH_US] = pulse_width_us
    row[ROW_FREQUENCY_HZ] = p[P_FREQUENCY_HZ]
    row[ROW_INTERPHASE_GAP_US] = p[P_INTERPHASE_GAP_US]
    row[ROW_ANODIC_WIDTH_RATIO] = p[P_ANODIC_WIDTH_RATIO]
