"""The heel switch / heel force detector: simulated walks, bounces, clonus, faults, and
the PhysioNet gaitpdb force insoles."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from helpers.detect_signals import (
    clonus_stand,
    estimated,
    nearest_errors,
    simulated_walk,
    splice,
    with_column,
)
from pydantic import ValidationError

from controller.cli import main
from controller.detect.detector import detect_batch, heel_setup
from controller.detect.heel import HEEL_FORCE, HEEL_SWITCH, HeelDetectorConfig
from controller.events import Event, Phase

DATA = Path(__file__).parent / "data" / "gaitpdb"


def detect(signals, heel_input="switch", config=None):
    config = config or (HEEL_SWITCH if heel_input == "switch" else HEEL_FORCE)
    return detect_batch(heel_setup(config, heel_input), signals.t_s, None,
                        signals.heel(heel_input))


@pytest.mark.parametrize("rate_hz", [100.0, 500.0])
@pytest.mark.parametrize("patient", ["healthy", "severe"])
def test_simulated_switch_dates_contact_and_release_to_a_sample(rate_hz, patient):
    walk = simulated_walk(patient, 30.0, 3, rate_hz)
    phases, events = detect(walk)
    period = 1.0 / rate_hz
    # Locked on by the first heel strike it sees (or after 200 ms of contact).
    t_lock = walk.t_s[np.flatnonzero(phases != Phase.UNKNOWN)[0]]
    assert t_lock < walk.true_times(Event.HEEL_STRIKE)[0] + 0.05
    for kind in (Event.HEEL_STRIKE, Event.HEEL_OFF):
        truth = walk.true_times(kind)
        truth = truth[truth >= t_lock - 0.05]
        errors = nearest_errors(estimated(events, kind), truth)
        # The switch changes at the first sample at or after the event.
        assert np.all((errors >= -1e-9) & (errors < period + 1e-9)), errors
        assert estimated(events, kind).size == truth.size
    # One toe off per step. Until a stride has been measured (before the second heel
    # strike) it is dated 0.2 of the stride after heel off: within 80 ms, the check
    # every toe off had while all were dated so (-29 to +31 ms here).
    toe_off = walk.true_times(Event.TOE_OFF)
    assert estimated(events, Event.TOE_OFF).size == np.sum(toe_off > t_lock)
    second_strike = estimated(events, Event.HEEL_STRIKE)[1]
    early = toe_off[(toe_off > t_lock) & (toe_off < second_strike)]
    assert early.size >= 1
    errors = nearest_errors(estimated(events, Event.TOE_OFF), early)
    assert np.all(np.abs(errors) < 0.080), errors
    # Later ones are dated 65 % of the mean stride after heel strike (the stance chosen
    # on the gaitpdb walkers), where 80 ms cannot hold on these walks: the healthy
    # walker's stance is 60 % of its 1.1 s stride (up to 81 ms late at 100 Hz), and the
    # severe walker's strides depart from their mean (up to 112 ms early). They get the
    # force sensor's allowance instead, the lead's decision (7 Dec 2026: the real walkers
    # outweigh the project's own model): every one within 100 ms on the steady walker,
    # nine in ten on the severe one (18 of 20 here), and none beyond 150 ms, still its own
    # stride's toe off, half a stride from the others (as in the spastic walk).
    errors = nearest_errors(estimated(events, Event.TOE_OFF), toe_off[toe_off > second_strike])
    assert np.mean(np.abs(errors) < 0.100) >= (1.0 if patient in STEADY else 0.9), errors
    assert np.all(np.abs(errors) < 0.150), errors
    # Heel strike is known after the debounce; the phase follows the events.
    for e in events:
        i = int(np.searchsorted(walk.t_s, e.t_known_s))
        assert e.latency_s <= HEEL_SWITCH.debounce_ms / 1000.0 + period + 1e-9 or (
            e.event == Event.TOE_OFF
        )
        expected = {Event.HEEL_STRIKE: Phase.LOADING, Event.HEEL_OFF: Phase.PRE_SWING,
                    Event.TOE_OFF: Phase.SWING}[e.event]
        assert phases[i] == expected
    assert Phase.UNKNOWN not in phases[walk.t_s >= t_lock]


def test_switch_bounce_gives_one_heel_strike():
    walk = simulated_walk("moderate", 12.0, 4, 1000.0)
    switch = walk.heel_switch.copy()
    for hs in walk.true_times(Event.HEEL_STRIKE):
        # Contact bounces: open again for 5 ms, 8 ms after the first touch.
        switch[(walk.t_s >= hs + 0.008) & (walk.t_s < hs + 0.013)] = 0.0
    _, events = detect(with_column(walk, "heel_switch", switch))
    truth = walk.true_times(Event.HEEL_STRIKE)
    assert estimated(events, Event.HEEL_STRIKE).size == truth.size
    assert np.all(np.abs(nearest_errors(estimated(events, Event.HEEL_STRIKE), truth)) < 0.002)


@pytest.mark.parametrize("heel_input", ["switch", "force"])
def test_clonus_while_standing_gives_no_step(heel_input):
    rate_hz = 200.0
    walk = simulated_walk("severe", 15.0, 5, rate_hz)
    stand = clonus_stand(rate_hz, 10.0, 6)
    signals = splice(walk, stand)
    phases, events = detect(signals, heel_input)
    start = walk.t_s[-1] + 1.0 / rate_hz
    during = signals.t_s >= start + 0.5  # after the last step's loading
    late = [e for e in events if e.t_known_s >= start + 0.5]
    # At most the first release can open a pre-swing; no toe off, no heel strike.
    assert all(e.event == Event.HEEL_OFF for e in late) and len(late) <= 1
    assert Phase.SWING not in phases[during]
    pre_swings = np.count_nonzero(np.diff((phases[during] == Phase.PRE_SWING).astype(int)) == 1)
    assert pre_swings <= 1


def test_force_hysteresis_ignores_noise_around_the_threshold():
    rate_hz = 500.0
    t = np.arange(0.0, 6.0, 1.0 / rate_hz)
    rng = np.random.default_rng(7)
    # Standing on the heel, then the heel load drifts around 15 N (between release and
    # contact thresholds) with 4 N noise for 3 s: no edge at all.
    force = np.where(t < 2.0, 400.0, 15.0 + 4.0 * rng.standard_normal(t.size))
    phases, events = detect_batch(heel_setup(HEEL_FORCE, "force"), t, None, force)
    assert events == []
    assert phases[-1] == Phase.STANCE


def test_heel_lifted_too_long_gives_unknown_then_locks_again():
    rate_hz = 100.0
    t = np.arange(0.0, 6.0, 1.0 / rate_hz)
    switch = np.where((t >= 1.0) & (t < 3.5), 0.0, 1.0)
    phases, events = detect_batch(heel_setup(HEEL_SWITCH, "switch"), t, None, switch)
    limit = 1.0 + HEEL_SWITCH.max_unloaded_ms / 1000.0
    assert phases[int(0.9 * rate_hz)] == Phase.STANCE
    assert phases[int(1.1 * rate_hz)] == Phase.PRE_SWING
    assert np.all(phases[(t > limit + 0.02) & (t < 3.5)] == Phase.UNKNOWN)
    relock = 3.5 + HEEL_SWITCH.lock_contact_ms / 1000.0
    assert np.all(phases[(t > 3.5) & (t < relock - 0.02)] == Phase.UNKNOWN)
    assert phases[-1] == Phase.STANCE
    # The lift was reported as heel off and (after min_unloaded) toe off, never a strike.
    assert [e.event for e in events] == [Event.HEEL_OFF, Event.TOE_OFF]


def test_missing_samples_hold_then_unknown():
    rate_hz = 100.0
    t = np.arange(0.0, 3.0, 1.0 / rate_hz)
    switch = np.ones(t.size)
    switch[(t >= 1.0) & (t < 1.05)] = np.nan  # 50 ms: held
    switch[(t >= 2.0) & (t < 2.5)] = np.nan  # 500 ms: unknown
    phases, _ = detect_batch(heel_setup(HEEL_SWITCH, "switch"), t, None, switch)
    assert np.all(phases[(t >= 0.5) & (t < 2.0)] == Phase.STANCE)
    assert np.all(phases[(t > 2.11) & (t < 2.5)] == Phase.UNKNOWN)
    assert phases[-1] == Phase.STANCE


def test_release_above_contact_is_refused_with_both_fields_named():
    with pytest.raises(ValidationError, match=r"release_force_n .* contact_force_n"):
        HeelDetectorConfig(contact_force_n=10.0, release_force_n=20.0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_gaitpdb_heel_force_sensor(tmp_path, capsys, side):
    """Real force insoles: heel strike from the heel sensor at the total-force contact;
    toe off dated at 64 % of the stride after heel strike, the stance chosen on the
    gaitpdb Ga study. This control's stance is shorter (62.6 % of the stride), so toe off
    comes 17-22 ms late on it (median; 5-7 ms when it was dated from heel off at a delay
    measured on this walker alone, which left most other walkers' toe offs 60-200 ms
    early)."""
    assert main([
        "detect", "--input", str(DATA / "GaCo01_01_heel.csv"),
        "--output", str(tmp_path / "events.csv"), "--sensor", "heel",
        "--heel-column", f"heel_{side}_n", "--heel-threshold-n", "20",
        "--truth", str(DATA / f"GaCo01_01_{side}_events.csv"),
    ]) == 0
    report = json.loads(capsys.readouterr().out)["events"]
    hs, to = report["heel_strike"], report["toe_off"]
    assert hs["recall"] >= 0.97 and hs["precision"] >= 0.93
    assert abs(hs["median_error_ms"]) <= 10.0 and hs["p95_abs_error_ms"] <= 20.0
    assert to["recall"] >= 0.95 and to["precision"] >= 0.90
    assert 10.0 <= to["median_error_ms"] <= 40.0


#: How far a walker's stride may vary for every toe off to be dated within 100 ms at a
#: fixed fraction of the mean stride: the steady simulated walkers (stride time CV 2-4 %).
STEADY = ("healthy", "mild", "moderate")


def assert_toe_off_at_stance(walk, phases, events, config, patient):
    """Toe offs after the first measured stride are dated ``toe_off_stance_fraction`` of
    the mean stride after heel strike: the median error within 10 ms of that fraction's
    departure from the walk's own stance, every error within 100 ms on the steady
    walkers, nine in ten on the others."""
    t_lock = walk.t_s[np.flatnonzero(phases != Phase.UNKNOWN)[0]]
    strikes = walk.true_times(Event.HEEL_STRIKE)
    toe_off = walk.true_times(Event.TOE_OFF)
    toe_off = toe_off[toe_off > t_lock + 1.5]  # after the first measured stride
    errors = nearest_errors(estimated(events, Event.TOE_OFF), toe_off)
    stance_s = toe_off - strikes[np.searchsorted(strikes, toe_off) - 1]
    dated_s = config.toe_off_stance_fraction * np.mean(np.diff(strikes))
    assert abs(np.median(errors) - np.median(dated_s - stance_s)) < 0.010, (
        np.median(errors), np.median(dated_s - stance_s))
    assert np.mean(np.abs(errors) < 0.100) >= (1.0 if patient in STEADY else 0.9), errors


@pytest.mark.parametrize("patient", ["healthy", "mild", "moderate", "severe"])
def test_simulated_heel_switch_dates_toe_off_at_the_chosen_stance(patient):
    """The heel switch configuration, chosen on gaitpdb heel forces read as a switch at
    20 N, on the same simulated walks as the force sensor below and with its allowance:
    toe off 65 % of the mean stride after heel strike, late on these walkers, whose
    stance (60-65 %) is shorter than gaitpdb's (62-69 %, quartiles). The allowance, not a
    tighter one, is the lead's decision (7 Dec 2026): real walkers outweigh the
    project's own model. The switch's heel strike is dated to a sample, not late."""
    walk = simulated_walk(patient, 60.0, 0, 500.0)
    phases, events = detect(walk)
    assert_toe_off_at_stance(walk, phases, events, HEEL_SWITCH, patient)


@pytest.mark.parametrize("patient", ["healthy", "mild", "moderate", "severe"])
def test_simulated_heel_force_dates_toe_off_at_the_chosen_stance(patient):
    """The heel force configuration, chosen on real insoles, on the simulated insole
    (seed 0, 60 s, 500 Hz as ``fes sim``): toe off is dated 64 % of the mean stride after
    heel strike. The simulated heel releases 15-18 % of the stride before toe off, as on
    the gaitpdb walkers (12-26 %, quartiles), so the floor of 7 % after heel off never
    moves it. These walkers' stance is 60-65 % of the stride, so the median toe off is
    late by the difference times the stride (healthy 44 ms, severe 14 ms early), plus the
    few ms by which the heel strike at 20 N is late: within 10 ms of that. Each toe off is
    off by its stride's departure from the mean: every one within 100 ms on the steady
    walkers, nine in ten on the severe walker (stride time CV 6 %)."""
    walk = simulated_walk(patient, 60.0, 0, 500.0)
    phases, events = detect(walk, "force")
    assert_toe_off_at_stance(walk, phases, events, HEEL_FORCE, patient)


@pytest.mark.parametrize("seed", [0, 3, 41])
@pytest.mark.parametrize("patient", ["healthy", "mild", "moderate", "severe"])
def test_switch_toe_off_before_a_measured_stride_is_dated_from_heel_off(patient, seed):
    """After the walk's first heel strike no stride (heel strike to heel strike) has been
    measured: the stance rule would scale 65 % by the assumed 1.2 s stride, and dated this
    toe off 158 ms early (severe, seed 3) to 136 ms late (healthy, seed 41). It is dated
    as after lock-on, 0.2 of the stride after heel off, where the simulated toes leave
    the ground 15-18 % of the stride after the heel releases: within 40 ms either way
    (-29 to +30 ms on these 12 walks). The fused detector reports this estimate while
    the gyroscope's mounting check is still running."""
    walk = simulated_walk(patient, 30.0, seed, 500.0)
    _, events = detect(walk)
    strikes = estimated(events, Event.HEEL_STRIKE)
    found = estimated(events, Event.TOE_OFF)
    second = found[(found > strikes[0]) & (found < strikes[1])]
    assert second.size == 1, second
    error = -nearest_errors(walk.true_times(Event.TOE_OFF), second)[0]  # estimate - truth
    assert abs(error) < 0.040, error


@pytest.mark.parametrize("seed", [0, 3, 41])
@pytest.mark.parametrize("patient", ["mild", "moderate", "severe"])
def test_switch_toe_off_after_lock_on_is_not_early(patient, seed):
    """These walks lock on in mid-stance: the first toe off follows a stance that began
    with no heel strike, so the stance rule has nothing to count from. It is dated 0.2
    of the stride after heel off (the old switch rule), where the simulated toes leave
    the ground (their heel releases 15-18 % of the stride before): between 10 ms early
    and 50 ms late (-9 to +32 ms here). With the short delay of 0.07 alone it came
    116-165 ms early, and a stimulator would have fired before the foot left the
    ground."""
    walk = simulated_walk(patient, 30.0, seed, 500.0)
    _, events = detect(walk)
    first_to = estimated(events, Event.TOE_OFF)[0]
    strikes = estimated(events, Event.HEEL_STRIKE)
    assert strikes.size == 0 or strikes[0] > first_to  # no heel strike before it
    error = nearest_errors(np.array([first_to]), walk.true_times(Event.TOE_OFF))[0]
    assert -0.010 < error < 0.050, error


def heel_walk(heel_input, unloaded_s, blip_after_s=None, strides=16):
    """100 Hz (gaitpdb's rate) heel column of a walker whose heel is loaded from the start
    but for ``unloaded_s`` before each heel strike, 1.05 s apart; with ``blip_after_s``,
    the heel also touches for 40 ms that long after the second heel off (a 2 N switch
    closing in mid-swing). Returns (t, column, heel strike times)."""
    rate_hz, stride_s = 100.0, 1.05
    t = np.arange(0.0, 1.0 + strides * stride_s, 1.0 / rate_hz)
    strikes = 1.0 + stride_s * np.arange(strides)
    loaded = np.ones(t.size, dtype=bool)
    for hs in strikes:
        loaded[(t >= hs - unloaded_s - 1e-9) & (t < hs - 1e-9)] = False
    if blip_after_s is not None:
        start = strikes[1] - unloaded_s + blip_after_s
        loaded[(t >= start - 1e-9) & (t < start + 0.04 - 1e-9)] = True
    column = loaded.astype(float) * (1.0 if heel_input == "switch" else 400.0)
    return t, column, strikes


def test_switch_landing_before_the_toe_off_is_due_is_a_step():
    """A heel switch closing at 2 N (about what a real foot switch closes at) opened less
    than 240 ms before landing on two gaitpdb feet, while the walker's first toe off is
    dated 0.2 of the assumed 1.2 s stride after heel off (240 ms): the landing came first
    and was taken for a lift too short to be a step, so the first measured stride spanned
    two and every other heel strike was lost for the rest of the walk (SiCo12 right 65 of
    131). Here the heel is off 210 ms (over the 200 ms a step needs) before each landing:
    every heel strike is found, at its first sample, each after its toe off, which is
    dated between heel off and landing and reported by the landing at the latest."""
    t, switch, strikes = heel_walk("switch", 0.21)
    _, events = detect_batch(heel_setup(HEEL_SWITCH, "switch"), t, None, switch)
    found = estimated(events, Event.HEEL_STRIKE)
    assert found.size == strikes.size, (found, strikes)
    assert np.all(np.abs(found - strikes) < 0.005), found - strikes
    kinds = [e.event for e in events if e.event != Event.HEEL_OFF]
    assert kinds == [Event.TOE_OFF, Event.HEEL_STRIKE] * strikes.size, kinds
    toe_offs = [e for e in events if e.event == Event.TOE_OFF]
    for toe_off, hs in zip(toe_offs, strikes, strict=True):
        assert hs - 0.21 < toe_off.t_est_s < hs, (toe_off.t_est_s, hs)
        assert toe_off.t_known_s < hs + HEEL_SWITCH.debounce_ms / 1000.0 + 0.011


@pytest.mark.parametrize("heel_input", ["switch", "force"])
def test_heel_touching_in_the_first_swing_costs_one_heel_strike(heel_input):
    """A 2 N switch read from a gaitpdb heel also closed for a moment in mid-swing: that
    lift is too short to be a step (150 ms), so the heel strike after it is lost, and the
    next stride measured spans two. As the first measured stride it set the mean stride,
    dated every later toe off after the next landing, and every other heel strike was
    lost for the rest of the walk (GaPt19_02 left). A stride that holds such a lift is
    not measured: the touch costs its own heel strike, every later one is found."""
    t, column, strikes = heel_walk(heel_input, 0.40, blip_after_s=0.15)
    config = HEEL_SWITCH if heel_input == "switch" else HEEL_FORCE
    _, events = detect_batch(heel_setup(config, heel_input), t, None, column)
    found = estimated(events, Event.HEEL_STRIKE)
    expected = np.delete(strikes, 1)
    assert found.size == expected.size, (found, expected)
    assert np.all(np.abs(found - expected) < 0.005), found - expected


def brief_contact_walk(strides=16, stop_lift_s=None):
    """100 Hz heel switch of a walker whose heel closes the switch for 160 ms a step (a
    switch closing at 50-100 N under a heel that barely loads it, as on gaitpdb's
    GaPt24_01 right), 1.05 s apart, after standing; the walk's first contact lasts
    120 ms, shorter than the 150 ms a heel off needs. With ``stop_lift_s``, the walker
    stops at the 10th heel strike and stands for 3 s, raising the heel for 250 ms that
    long after it (a weight shift); then walks on.
    Returns (t, switch, heel strike times)."""
    rate_hz, stride_s, contact_s = 100.0, 1.05, 0.16
    strikes = 1.5 + stride_s * np.arange(strides)
    if stop_lift_s is not None:
        strikes[11:] += 3.0
    t = np.arange(0.0, strikes[-1] + 1.0, 1.0 / rate_hz)
    closed = t < strikes[0] - 0.89 - 1e-9  # standing, then the first swing
    for k, hs in enumerate(strikes):
        length = 0.12 if k == 0 else contact_s
        if k == 10 and stop_lift_s is not None:
            length += 3.0
        closed |= (t >= hs - 1e-9) & (t < hs + length - 1e-9)
    if stop_lift_s is not None:
        lift = strikes[10] + stop_lift_s
        closed &= ~((t >= lift - 1e-9) & (t < lift + 0.25 - 1e-9))
    return t, closed.astype(float), strikes


def test_switch_stride_doubled_at_its_first_measurement_corrects_itself():
    """At 50 and 100 N, a gaitpdb heel closes the switch for 50-150 ms on some steps:
    too short for a heel off, so that step is lost and the walker's first measured
    stride spans two (GaPt24_01 right at 50 N: 2.14 s, its strides are 1.02 s). 65 % of
    that mean dated every later toe off after the next landing, the landing was taken
    for a lift that is no step, the stride holding it was not measured, and the doubled
    mean stood for the rest of the walk: every other heel strike lost (39 of 114 found
    there; six feet at 50/100 N). A lift of a swing's length taken for no step on two
    strides in a row shows the mean is wrong: the second is a step and the mean is
    measured again from it. Here the first contact's own next heel strike and one more
    are lost; every later one is found at its first sample."""
    t, switch, strikes = brief_contact_walk()
    _, events = detect_batch(heel_setup(HEEL_SWITCH, "switch"), t, None, switch)
    found = estimated(events, Event.HEEL_STRIKE)
    expected = np.delete(strikes, [1, 3])
    assert found.size == expected.size, (found, expected)
    assert np.all(np.abs(found - expected) < 0.005), found - expected
    toe_offs = estimated(events, Event.TOE_OFF)
    per_stride = [np.count_nonzero((toe_offs > a) & (toe_offs < b))
                  for a, b in itertools.pairwise(strikes[5:])]
    assert per_stride == [1] * (strikes.size - 6), per_stride  # one toe off a stride


def test_switch_heel_raised_in_a_stop_is_no_step():
    """The correction above needs a swing-long lift ending before the toe off is due on
    two strides in a row. A walker who stops raises the heel for 250 ms once, early in
    the stance (a weight shift, a turn on the spot): no step (a rule taking every such
    lift for a step added false steps on gaitpdb, GaCo02_02 right at 20.45 s, JuPt10_02
    left at 50 N at 75.28 s); every later heel strike is found and none is added."""
    t, switch, strikes = brief_contact_walk(stop_lift_s=0.2)
    _, events = detect_batch(heel_setup(HEEL_SWITCH, "switch"), t, None, switch)
    found = estimated(events, Event.HEEL_STRIKE)
    stop_start, stop_end = strikes[10], strikes[11]
    assert not np.any((found > stop_start + 0.01) & (found < stop_end - 0.01)), found
    assert np.all(np.abs(found[found > strikes[6]] - strikes[strikes > strikes[6]]) < 0.005)
