"""Open-loop stimulation for the batch runner: timed from the true gait events.

``SimulatedLimb.run`` takes one channel-0 command per sample. ``stride_commands``
builds such a sequence the way an ideal drop-foot stimulator would time it, from the
limb's exact events instead of a detector: on ``lead_s`` before each true toe off, a
linear amplitude ramp over ``ramp_up_s``, held through swing and ``extension_s`` past the
next heel strike, then a linear ramp down over ``ramp_down_s``. It serves studies of the
patient alone (what stimulation can do at best, fatigue over long walks, the validation
table of ``sim.validate``) and the benchmark, where the controller is not the subject.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.gait import NEXT_HEEL_STRIKE, TOE_OFF, GaitSchedule


@dataclass(frozen=True)
class Stimulation:
    """Pulse parameters and per-stride timing of open-loop peroneal stimulation."""

    amplitude_ma: float = 40.0
    pulse_width_us: float = 300.0
    frequency_hz: float = 40.0
    lead_s: float = 0.08
    ramp_up_s: float = 0.0
    extension_s: float = 0.1
    ramp_down_s: float = 0.0


def stride_commands(
    schedule: GaitSchedule,
    sample_rate_hz: float,
    n_samples: int,
    stimulation: Stimulation,
    active: tuple[float, float] = (0.0, np.inf),
) -> np.ndarray:
    """Channel-0 commands, one row per sample, for every stride starting in ``active``.

    A stride is stimulated if its toe off lies in ``active`` = (start_s, end_s).
    """
    level = np.zeros(n_samples)
    rows = schedule.strides
    start_s, end_s = active
    for toe_off, heel_strike in zip(rows[:, TOE_OFF], rows[:, NEXT_HEEL_STRIKE], strict=True):
        if not start_s <= toe_off < end_s:
            continue
        on = toe_off - stimulation.lead_s
        off = heel_strike + stimulation.extension_s
        first = max(0, math.ceil(on * sample_rate_hz))
        stop = min(n_samples, math.ceil((off + stimulation.ramp_down_s) * sample_rate_hz))
        if first >= stop:
            continue
        t = np.arange(first, stop) / sample_rate_hz
        up = (t - on) / stimulation.ramp_up_s if stimulation.ramp_up_s > 0.0 else 1.0
        down = (off + stimulation.ramp_down_s - t) / stimulation.ramp_down_s if (
            stimulation.ramp_down_s > 0.0) else 1.0
        level[first:stop] = np.clip(np.minimum(up, down), 0.0, 1.0)
    commands = np.zeros((n_samples, 4))
    on_samples = level > 0.0
    commands[on_samples, 0] = 1.0
    commands[on_samples, 1] = stimulation.amplitude_ma * level[on_samples]
    commands[on_samples, 2] = stimulation.pulse_width_us
    commands[on_samples, 3] = stimulation.frequency_hz
    return commands


def swing_minima_mm(
    schedule: GaitSchedule, clearance_mm: np.ndarray, sample_rate_hz: float,
    trim_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Toe-off times and minimum toe clearance of every complete swing in the samples.

    ``trim_fraction`` leaves out that fraction of each swing at both ends (the MTC of
    gait analysis is taken over mid-swing).
    """
    t = np.arange(clearance_mm.size) / sample_rate_hz
    starts, minima = [], []
    rows = schedule.strides
    for toe_off, heel_strike in zip(rows[:, TOE_OFF], rows[:, NEXT_HEEL_STRIKE], strict=True):
        if toe_off < 0.0 or heel_strike > t[-1]:
            continue
        margin = trim_fraction * (heel_strike - toe_off)
        inside = (t >= toe_off + margin) & (t <= heel_strike - margin)
        starts.append(toe_off)
        minima.append(clearance_mm[inside].min())
    return np.array(starts), np.array(minima)

