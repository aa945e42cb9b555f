"""Clonus is not walking: bursts of 5-8 Hz ankle clonus give no swing and start no
stimulation, on the shank and on the foot, while the steps around them are found.

A beat of clonus and a step differ in time, not in shape: a clonus half-cycle lasts
100 ms at most (5 Hz), a push-off or a swing 130 ms and more; clonus repeats every
125-250 ms, a stance lasts longer. The bursts (``detect_signals.clonus_burst``) are
shaped like recorded clonus: a limit cycle reaching its amplitude within two beats,
dying out over three, a second harmonic, a few per cent of period jitter. Amplitudes:
up to 1.2 rad/s on the shank (DESIGN.md: below 1 rad/s; Bateson's "half an inch at the
knee" at 6-8 beats per second is 1.1-1.4 rad/s of a 45 cm shank) and 1.5 rad/s on the
foot. The walks: the simulated patient's shank (``simulated_walk``) and a real foot
recording (Voisard et al. 2023, ``tests/data/voisard``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.detect_signals import Signals, clonus_burst, simulated_walk, splice

from controller.detect.config import DetectorConfig
from controller.detect.datasets import load_voisard
from controller.detect.detector import GaitDetector, detect_batch
from controller.events import Event, Phase
from controller.stim.scheduler import StimScheduler
from controller.stim.settings import StimConfig

VOISARD = Path(__file__).parent / "data" / "voisard"
SWING_EVENTS = (Event.TOE_OFF, Event.MID_SWING, Event.HEEL_STRIKE)
BURST_S = 6.0  # the standing stretch spliced between two walks; the burst starts 1 s in


def stimulated(config: DetectorConfig, signals: Signals, rate_hz: float) -> np.ndarray:
    """Whether the default walking-mode scheduler asks for stimulation at each sample."""
    detector = GaitDetector(config.setup(), rate_hz)
    scheduler = StimScheduler(StimConfig())
    on = np.zeros(signals.t_s.size, dtype=bool)
    for i, (t, g) in enumerate(zip(signals.t_s, signals.gyro_rad_s, strict=True)):
        phase, events = detector.step(float(t), float(g))
        on[i] = any(c.on for c in scheduler.step(float(t), phase, events))
    return on


def check_burst(config: DetectorConfig, walk: Signals, burst: Signals, rate_hz: float) -> None:
    """Walk, stand with the burst, walk again: nothing swings or stimulates in the
    burst, and the walk after it is found again."""
    signals = splice(walk, burst, walk)
    start = walk.t_s[-1] + 1.0 / rate_hz
    inside = (signals.t_s >= start + 0.5) & (signals.t_s < start + BURST_S)
    phases, events = detect_batch(config.setup(), signals.t_s, signals.gyro_rad_s)
    assert not np.any(phases[inside] == Phase.SWING)
    assert not np.any(phases[inside] == Phase.PRE_SWING)
    during = [e for e in events if start + 0.5 <= e.t_known_s < start + BURST_S]
    assert not [e for e in during if e.event in SWING_EVENTS], during
    after = [e for e in events if e.t_known_s > start + BURST_S and e.event == Event.HEEL_STRIKE]
    walked = [e for e in events if e.t_known_s < start and e.event == Event.HEEL_STRIKE]
    assert len(after) >= len(walked) - 1 > 3
    on = stimulated(config, signals, rate_hz)
    assert on[: np.flatnonzero(inside)[0]].any()  # the walk before was stimulated
    assert not on[inside].any()


@pytest.mark.parametrize("frequency_hz", [5.0, 6.0, 7.0, 8.0])
@pytest.mark.parametrize("amplitude_rad_s", [0.6, 1.2])
def test_shank_clonus_between_walks_swings_and_stimulates_nothing(frequency_hz, amplitude_rad_s):
    rate_hz = 250.0
    walk = simulated_walk("severe", 15.0, 21, rate_hz)
    burst = clonus_burst(rate_hz, BURST_S, 22, frequency_hz, amplitude_rad_s)
    check_burst(DetectorConfig(), walk, burst, rate_hz)


@pytest.mark.parametrize("frequency_hz", [5.0, 6.5, 8.0])
@pytest.mark.parametrize("amplitude_rad_s", [0.8, 1.5])
def test_foot_clonus_between_real_walks_swings_and_stimulates_nothing(
    frequency_hz, amplitude_rad_s
):
    rate_hz = 100.0
    rec = next(r for r in load_voisard(VOISARD) if r.name == "voisard 13-1 right")
    n = rec.t_s.size
    walk = Signals(np.arange(n) / rate_hz, rec.gyro_rad_s, np.ones(n), np.ones(n), [])
    burst = clonus_burst(rate_hz, BURST_S, 23, frequency_hz, amplitude_rad_s)
    check_burst(DetectorConfig(placement="foot"), walk, burst, rate_hz)


@pytest.mark.parametrize("placement", ["shank", "foot"])
@pytest.mark.parametrize("frequency_hz", [5.0, 8.0])
def test_clonus_before_any_step_is_no_step(placement, frequency_hz):
    """A fresh detector (its mounting check off, so only the clonus rules stand between
    a beat and a swing) on standing with a burst: no event, no swing, no pre-swing."""
    rate_hz = 200.0
    config = DetectorConfig(placement=placement)
    gyro = getattr(config.gyro, placement).model_copy(update={"mount_check_strides": 0})
    config = config.model_copy(update={"gyro": config.gyro.model_copy(update={placement: gyro})})
    burst = clonus_burst(rate_hz, 5.0, 24, frequency_hz, 1.2)
    phases, events = detect_batch(config.setup(), burst.t_s, burst.gyro_rad_s)
    assert events == []
    assert set(np.unique(phases[burst.t_s >= 0.5])) == {int(Phase.STANCE)}
