"""Pathological gait must not make swings that are not there: clonus while standing,
standing still, spasms in stance, the spastic profile's clonus; simulated patients, fixed seeds.

A false swing would start stimulation of a standing patient. The simulator's clonus
arises from a fast stretch of the free foot (in swing, ``spastic`` profile), not while
standing, so standing with clonus is spliced between two simulated walks of the
``severe`` profile (``detect_signals.clonus_stand``: a 6 Hz shank oscillation below
1 rad/s, the heel load swinging from a touch to most of the body weight, the heel
switch chattering).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.detect_signals import (
    Signals,
    clonus_stand,
    estimated,
    nearest_errors,
    quiet_stand,
    simulated_walk,
    splice,
    with_column,
)

from controller.detect.detector import (
    DetectorSetup,
    detect_batch,
    fused_setup,
    gyro_setup,
    heel_setup,
)
from controller.detect.fused import FusionConfig
from controller.detect.gyro import SHANK
from controller.detect.heel import HEEL_FORCE, HEEL_SWITCH
from controller.events import Event, Phase

RATE_HZ = 250.0
#: The gyroscope's events and phases count once its mounting check has seen three
#: strides each way round: 4-9 s of walking on the simulated patients used here.
CHECKED_S = 10.0
DETECTORS: dict[str, tuple[DetectorSetup, str]] = {
    "gyro": (gyro_setup(SHANK), "switch"),
    "heel switch": (heel_setup(HEEL_SWITCH, "switch"), "switch"),
    "heel force": (heel_setup(HEEL_FORCE, "force"), "force"),
    "fused": (fused_setup(SHANK, HEEL_SWITCH, "switch", FusionConfig()), "switch"),
}
SWING_EVENTS = (Event.TOE_OFF, Event.MID_SWING, Event.HEEL_STRIKE)


def run(name: str, signals: Signals):
    setup, heel_input = DETECTORS[name]
    return detect_batch(setup, signals.t_s, signals.gyro_rad_s, signals.heel(heel_input))


def recall(events, signals: Signals, kind: Event, start_s: float, end_s: float) -> float:
    truth = signals.true_times(kind)
    truth = truth[(truth >= start_s) & (truth <= end_s)]
    errors = nearest_errors(estimated(events, kind), truth)
    return float(np.mean(np.abs(errors) <= 0.1))


@pytest.fixture(scope="module")
def walk_clonus_walk() -> tuple[Signals, float, float]:
    """Severe walk, 10 s standing with clonus, severe walk; the clonus start and end."""
    first = simulated_walk("severe", 25.0, 21, RATE_HZ)
    stand = clonus_stand(RATE_HZ, 10.0, 22)
    second = simulated_walk("severe", 20.0, 23, RATE_HZ)
    start = first.t_s[-1] + 1.0 / RATE_HZ
    return splice(first, stand, second), start, start + 10.0


@pytest.mark.parametrize("name", list(DETECTORS))
def test_no_swing_during_clonus_and_walking_resumes(walk_clonus_walk, name):
    signals, start, end = walk_clonus_walk
    phases, events = run(name, signals)
    # From 1 s into the clonus (the last step has landed) to its end: no swing at all.
    quiet = (signals.t_s >= start + 1.0) & (signals.t_s < end)
    assert Phase.SWING not in phases[quiet]
    during = [e for e in events if start + 1.0 <= e.t_known_s < end]
    assert not [e for e in during if e.event in SWING_EVENTS], during
    # At most the first beat can open one pre-swing (as a heel rise would).
    opened = np.count_nonzero(np.diff((phases[quiet] == Phase.PRE_SWING).astype(int)) == 1)
    assert opened <= 1
    # Walking before and after is still found.
    for kind in (Event.HEEL_STRIKE, Event.TOE_OFF):
        if name.startswith("heel") and kind == Event.TOE_OFF:
            continue  # an estimate from the heel; its accuracy is tested elsewhere
        assert recall(events, signals, kind, CHECKED_S, start - 0.5) >= 0.95
        assert recall(events, signals, kind, end + 3.0, signals.t_s[-1] - 1.0) >= 0.95


def test_fused_waits_for_the_gyro_toe_off_when_the_heel_estimate_comes_early(
    walk_clonus_walk,
):
    """After the clonus the heel's toe-off estimate is known up to 42 ms before the toes
    leave the ground and up to 132 ms early; the gyroscope's toe off comes up to 150 ms
    after them. The fused detector must report the gyroscope's on every step, not the
    heel's early estimate (it did on 5 of 12 when the wait counted from the estimate)."""
    signals, _, end = walk_clonus_walk
    # The heel switch dates toe off from heel strike (the stance the gaitpdb Ga study
    # chooses): its estimate is often known before the toes leave the ground.
    fused = fused_setup(SHANK, HEEL_SWITCH, "switch", FusionConfig())
    _, events = detect_batch(fused, signals.t_s, signals.gyro_rad_s, signals.heel_switch)
    truth = signals.true_times(Event.TOE_OFF)
    truth = truth[(truth >= end + 3.0) & (truth <= signals.t_s[-1] - 1.0)]
    errors = nearest_errors(estimated(events, Event.TOE_OFF), truth)
    assert truth.size == 12
    assert np.all(np.abs(errors) <= 0.02), np.round(errors, 3)


@pytest.mark.parametrize("name", list(DETECTORS))
def test_standing_still_is_stance_without_events(name):
    signals = quiet_stand(RATE_HZ, 20.0, 31)
    phases, events = run(name, signals)
    assert events == []
    assert np.all(phases[signals.t_s >= 0.5] == Phase.STANCE)


def spasms_after_heel_strike(signals: Signals, delay_s: float) -> np.ndarray:
    """The shank gyro with a stance spasm ``delay_s`` after every other heel strike: a
    sharp dip and a jerk forward (a stretch reflex of the plantarflexors)."""
    gyro = signals.gyro_rad_s.copy()
    t = signals.t_s
    for hs in signals.true_times(Event.HEEL_STRIKE)[::2]:
        onset = hs + delay_s
        gyro += -1.5 * np.exp(-0.5 * ((t - onset) / 0.02) ** 2)
        gyro += 2.0 * np.exp(-0.5 * ((t - onset - 0.06) / 0.03) ** 2)
    return gyro


@pytest.mark.parametrize(
    ("name", "delay_s"),
    [
        ("gyro", 0.1),  # in loading response: the gyro's own stance rules hold it off
        ("fused", 0.1),
        ("fused", 0.35),  # in mid-stance: only the loaded heel switch can tell
    ],
)
def test_spasm_in_stance_makes_no_extra_swing(name, delay_s):
    walk = simulated_walk("severe", 30.0, 41, RATE_HZ)
    spastic = with_column(walk, "gyro_rad_s", spasms_after_heel_strike(walk, delay_s))
    _, events = run(name, spastic)
    # Every swing event found belongs to a true swing (within the 100 ms matching
    # tolerance: where the spasm hid the gyro's toe off, the heel's estimate stands in).
    for kind in SWING_EVENTS:
        truth = walk.true_times(kind)
        found = estimated(events, kind)
        assert found.size <= truth.size, (kind, found, truth)
        assert np.all(np.abs(nearest_errors(truth, found)) <= 0.1), (kind, found)


def test_fused_vetoes_a_spasm_while_the_heel_is_loaded():
    """Standing, a spasm jerks the shank like a small swing (over 100 ms above the hold
    level): the gyroscope alone cannot tell, the heel switch (closed throughout) can.
    The gyroscope is taken as checked (no mounting check: this walker never walked)."""
    stand = quiet_stand(RATE_HZ, 8.0, 51)
    t = stand.t_s
    gyro = stand.gyro_rad_s - 1.0 * np.exp(-0.5 * ((t - 4.0) / 0.03) ** 2)
    gyro += 2.5 * np.exp(-0.5 * ((t - 4.15) / 0.06) ** 2)
    gyro += -0.8 * np.exp(-0.5 * ((t - 4.3) / 0.03) ** 2)
    spasm = with_column(stand, "gyro_rad_s", gyro)
    checked = SHANK.model_copy(update={"mount_check_strides": 0})
    _, gyro_events = detect_batch(gyro_setup(checked), t, gyro)
    assert Event.TOE_OFF in [e.event for e in gyro_events]  # what the gyro alone sees
    fused = fused_setup(checked, HEEL_SWITCH, "switch", FusionConfig())
    phases, fused_events = detect_batch(fused, t, gyro, spasm.heel_switch)
    assert fused_events == []
    assert Phase.SWING not in phases


@pytest.fixture(scope="module")
def spastic_walk() -> Signals:
    """60 s of the ``spastic`` profile: its delayed stretch reflex makes the foot clonus
    (about 7 Hz) whenever it is stretched fast in swing."""
    return simulated_walk("spastic", 60.0, 5, RATE_HZ)


@pytest.mark.parametrize("name", list(DETECTORS))
def test_spastic_clonus_makes_no_false_swing(spastic_walk, name):
    """Every event found belongs to a true one, and once the detector trusts its
    sensors there is one per true one, of every kind it reports: clonus in swing neither
    splits a stride nor adds one."""
    _, events = run(name, spastic_walk)
    for kind in SWING_EVENTS:
        found = estimated(events, kind)
        if found.size == 0 and kind == Event.MID_SWING and name.startswith("heel"):
            continue  # a heel sensor cannot see mid swing
        truth = spastic_walk.true_times(kind)
        # The heel sensors date toe off at the stance chosen on real insoles (force 64 %,
        # switch 65 % of the stride), which this simulated walker's shorter, varying
        # stances leave up to 106 ms (force) and 112 ms (switch) behind: still its own
        # stride's toe off, half a stride from others. The switch gets the force's
        # allowance, not the 100 ms it had from heel off: real walkers outweigh the
        # project's own model (lead's decision, 7 Dec 2026).
        heel_toe_off = name.startswith("heel") and kind == Event.TOE_OFF
        within = 0.15 if heel_toe_off else 0.1
        assert np.all(np.abs(nearest_errors(truth, found)) <= within), (name, kind)
        assert found.size <= truth.size, (name, kind)
        late = truth[truth >= CHECKED_S]
        assert found[found >= CHECKED_S - 0.1].size == late.size, (name, kind)
        if name.startswith("heel") and kind == Event.TOE_OFF:
            continue  # estimated from heel off: its timing is scored elsewhere
        assert np.all(np.abs(nearest_errors(found, late)) <= 0.1), (name, kind)
