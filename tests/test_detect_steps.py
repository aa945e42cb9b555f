"""The steps on which people with foot drop trip: flat landings, first steps from
standing, the last step of a walk, turning steps; and timing that does not depend on who
walks. Real feet (Voisard et al. 2023, ``tests/data/voisard``: four walkers, each walk
standing, 10 m, U-turn, 10 m back, standing), the simulated shank, and real-shaped
synthetic shank strides (``test_detect_gyro.walk``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from helpers.detect_signals import simulated_walk
from helpers.shank_walks import HEALTHY, Gait, walk

from controller.detect.datasets import Recording, load_voisard
from controller.detect.detector import GaitDetector, detect_batch, gyro_setup
from controller.detect.gyro import FOOT, SHANK
from controller.detect.score import Scorer, bias_spread_ms
from controller.events import Event, Phase
from controller.stim.scheduler import StimScheduler
from controller.stim.settings import StimConfig

VOISARD = Path(__file__).parent / "data" / "voisard"
#: Two more Voisard walkers, for the steps the detector used to get wrong (late landings
#: of short swings, a first step whose swing sags).
VOISARD_HARD = Path(__file__).parent / "data" / "voisard_hard"
#: The placements' configurations once their mounting check has passed.
FOOT_SETUP = gyro_setup(FOOT.model_copy(update={"mount_check_strides": 0}))
SHANK_CHECKED = SHANK.model_copy(update={"mount_check_strides": 0})


@pytest.fixture(scope="module")
def feet() -> list[Recording]:
    return load_voisard(VOISARD)


def times(events, kind: Event) -> np.ndarray:
    return np.array([e.t_est_s for e in events if e.event == kind])


def flattened_landing(rec: Recording, stride: int) -> tuple[np.ndarray, float, float]:
    """The foot signal with the slap of one landing flattened (a foot put down flat, as
    in turning and stopping steps), its reference heel strike and the next toe off."""
    hs = np.array([t for t, e in rec.reference if e == Event.HEEL_STRIKE])
    to = np.array([t for t, e in rec.reference if e == Event.TOE_OFF])
    t_hs = hs[stride]
    t_to = to[to < t_hs][-1]
    gyro = rec.gyro_rad_s.copy()
    landing = (rec.t_s > t_to + 0.5 * (t_hs - t_to)) & (rec.t_s < t_hs + 0.2)
    gyro[landing] = np.where(gyro[landing] < 0.0, 0.2 * gyro[landing], gyro[landing])
    return gyro, float(t_hs), float(to[to > t_hs][0])


def test_a_flat_landing_is_dated_by_the_deadline_not_at_the_next_push_off(feet):
    rec = next(r for r in feet if r.name == "voisard 13-1 right")
    gyro, t_hs, t_next = flattened_landing(rec, 6)
    _, events = detect_batch(FOOT_SETUP, rec.t_s, gyro)
    found = [e for e in events if e.event == Event.HEEL_STRIKE and abs(e.t_est_s - t_hs) < 0.05]
    assert len(found) == 1
    assert found[0].t_known_s - t_hs <= 0.150  # announced at most 150 ms after contact
    assert np.min(np.abs(times(events, Event.TOE_OFF) - t_next)) < 0.03  # next stride kept
    # Without the deadline (the walker's usual time never runs out), the same landing is
    # dated at the next push-off, half a stride late: the failure the deadline fixes.
    waiting = FOOT.model_copy(update={"mount_check_strides": 0, "heel_strike_margin_ms": 2000.0,
                                      "heel_strike_wait_factor": 5.0,
                                      "heel_strike_wait_ms": 2000.0})
    _, late = detect_batch(gyro_setup(waiting), rec.t_s, gyro)
    assert np.min(np.abs(times(late, Event.HEEL_STRIKE) - t_hs)) > 0.05


def test_short_swings_are_announced_within_150_ms_of_landing():
    """Three real landings (walker 5: a turning step, a step out of the turn and a step
    before the stop) whose slap stays above the heel-strike level: the deadline counted
    from mid swing announced them 180-280 ms after contact; counted from the end of the
    forward rotation (the signal falling through zero) it announces them within 150 ms,
    dated within 30 ms."""
    rec = next(r for r in load_voisard(VOISARD_HARD) if r.name == "voisard 5-1 right")
    landings = (15.00, 16.24, 26.18)
    for config, announced_in_time in ((FOOT, True),
                                      (FOOT.model_copy(update={"heel_strike_margin_ms": 2000.0}),
                                       False)):
        setup = gyro_setup(config.model_copy(update={"mount_check_strides": 0}))
        _, events = detect_batch(setup, rec.t_s, rec.gyro_rad_s)
        for t_hs in landings:
            found = [e for e in events
                     if e.event == Event.HEEL_STRIKE and abs(e.t_est_s - t_hs) < 0.1]
            in_time = (len(found) == 1 and abs(found[0].t_est_s - t_hs) <= 0.03
                       and found[0].t_known_s - t_hs <= 0.150)
            assert in_time == announced_in_time, (t_hs, found)


def test_a_first_step_whose_swing_sags_keeps_its_toe_off():
    """Walker 1's right foot leaves the ground from standing without a push-off dip, its
    swing rises to 1.4 rad/s, sags to 0.3 and rises again: the time above the hold level
    adds up over both humps, so the toe off is dated at the start of the swing (4.59 s),
    not at the sag 240 ms later (which both missed the toe off and added a false one)."""
    rec = next(r for r in load_voisard(VOISARD_HARD) if r.name == "voisard 1-1 right")
    _, events = detect_batch(FOOT_SETUP, rec.t_s, rec.gyro_rad_s)
    first = times(events, Event.TOE_OFF)[0]
    assert abs(first - 4.59) <= 0.03
    assert np.min(np.abs(times(events, Event.HEEL_STRIKE) - 5.07)) <= 0.05


def test_a_swing_from_a_quiet_stance_is_dated_where_the_foot_starts_to_move():
    """Walker 16's left foot, standing in the U-turn, turns back by 0.05 rad/s (a
    wobble, no push-off) 170 ms before it swings (toe off 15.40 s). The toe off of a swing
    without a push-off used to be dated from that wobble, where the rise crossed 0.7 of
    it: at 15.23 s, a false toe off and a missed one. A dip that stays within the stance
    band is no push-off: the swing starts where the signal leaves the band."""
    rec = next(r for r in load_voisard(VOISARD_HARD) if r.name == "voisard 16-1 left")
    _, events = detect_batch(FOOT_SETUP, rec.t_s, rec.gyro_rad_s)
    toe_offs = times(events, Event.TOE_OFF)
    near = toe_offs[(toe_offs > 15.0) & (toe_offs < 15.7)]
    assert near.size == 1 and abs(near[0] - 15.40) <= 0.03, near


def test_after_a_flat_landing_stimulation_ends_before_the_next_push_off(feet):
    """The scheduler's train (default stop: heel strike, then 100 ms extension and 100 ms
    ramp) is off again before the foot pushes off the next time."""
    rec = next(r for r in feet if r.name == "voisard 13-1 right")
    gyro, t_hs, t_next = flattened_landing(rec, 6)
    detector = GaitDetector(FOOT_SETUP, 100.0)
    scheduler = StimScheduler(StimConfig())
    on = []
    for t, g in zip(rec.t_s, gyro, strict=True):
        phase, events = detector.step(float(t), float(g))
        on.append(any(c.on for c in scheduler.step(float(t), phase, events)))
    on_arr = np.array(on)
    assert on_arr[(rec.t_s > t_hs - 0.2) & (rec.t_s < t_hs)].any()  # the swing was stimulated
    between = (rec.t_s > t_hs + 0.45) & (rec.t_s < t_next - 0.2)
    assert between.any() and not on_arr[between].any()


def test_every_toe_off_ends_in_a_heel_strike_and_no_train_runs_into_stance():
    """A toe off starts (or continues) the peroneal train and the heel strike ends it, so
    a swing whose toe off was announced must end in a heel strike. Before, a swing whose
    peak then fell short of the walker's swing-peak threshold (a closing or turning step)
    went back to stance silently: the train ran on through the stance to the next
    stride's heel strike (1.6 s trains on five of the twelve feet of walkers 1, 4, 5, 7,
    13 and 17; on the 110 Voisard trials 142 of 3,915 toe offs had no heel strike after
    them). On all fourteen real feet here (walker 16 too) every toe off is followed by a
    heel strike, and no train lasts longer than a swing with its pre-swing, extension
    and ramp down."""
    feet = load_voisard(VOISARD) + load_voisard(VOISARD_HARD)
    assert len(feet) == 14
    for rec in feet:
        detector = GaitDetector(FOOT_SETUP, 100.0)
        scheduler = StimScheduler(StimConfig())
        on, sequence = [], []
        for t, g in zip(rec.t_s, rec.gyro_rad_s, strict=True):
            phase, events = detector.step(float(t), float(g))
            sequence += [e.event for e in events if e.event in (Event.TOE_OFF,
                                                                 Event.HEEL_STRIKE)]
            on.append(any(c.on for c in scheduler.step(float(t), phase, events)))
        pairs = list(itertools.pairwise(sequence))
        assert (Event.TOE_OFF, Event.TOE_OFF) not in pairs, rec.name
        edges = np.diff(np.array(on, dtype=int))
        starts = rec.t_s[1:][edges == 1]
        ends = np.append(rec.t_s[1:][edges == -1], rec.t_s[-1])  # or the recording ends
        longest = max(ends[ends > s][0] - s for s in starts)
        assert longest <= 1.2, (rec.name, longest)


def end_steps(rec: Recording) -> list[tuple[float, float]]:
    """The first and last step of each 10 m walk (the stretches scored apart)."""
    turn = rec.straight.excluded[0]
    return [s for s in rec.steady.excluded if s != turn]


def inside(t: float, stretches: list[tuple[float, float]]) -> bool:
    return any(a <= t <= b for a, b in stretches)


def score_in(recordings: list[Recording], stretches_of) -> dict:
    scorer = Scorer(0.1)
    for rec in recordings:
        _, events = detect_batch(FOOT_SETUP, rec.t_s, rec.gyro_rad_s)
        stretches = stretches_of(rec)
        scorer.add([(t, e) for t, e in rec.reference if inside(t, stretches)],
                   [e for e in events if inside(e.t_est_s, stretches)])
    return scorer.summary()


def test_first_and_last_steps_of_real_walks_are_found(feet):
    """The steps from standing and into standing: before, their swing peak (1-2 rad/s)
    was below the adaptive threshold and a first step has no push-off dip."""
    scores = score_in(feet, end_steps)
    for kind in ("heel_strike", "toe_off"):
        assert scores[kind]["reference"] == 32
        assert scores[kind]["recall"] >= 0.9 and scores[kind]["precision"] == 1.0


def test_turning_steps_keep_their_heel_strike(feet):
    """In the U-turn (small steps, a foot pivoting flat) most steps are found whole."""
    scores = score_in(feet, lambda rec: [rec.straight.excluded[0]])
    assert scores["heel_strike"]["recall"] >= 0.8 and scores["toe_off"]["recall"] >= 0.9


def test_a_first_step_from_standing_without_a_push_off_is_a_step():
    """A first step from quiet standing: no push-off dip at all, a small swing. It is
    held until it has lasted longer than any clonus beat, then reported (its toe off
    dated where the swing starts to rise, before its peak)."""
    rate_hz = 250.0
    w = walk(rate_hz, 6, 21, Gait(1.2, 2.5, toe_off=0.0), stand_before_s=2.0)
    _, events = detect_batch(gyro_setup(SHANK_CHECKED), w.t_s, w.gyro_rad_s)
    first_swing = [e for e in events if e.t_est_s < w.heel_strike_s[0] + 0.05]
    assert [e.event for e in first_swing] == [Event.TOE_OFF, Event.MID_SWING,
                                              Event.HEEL_STRIKE]
    assert w.toe_off_s[0] - 0.2 < first_swing[0].t_est_s < w.mid_swing_s[0] - 0.05
    assert abs(first_swing[2].t_est_s - w.heel_strike_s[0]) < 0.02


def test_a_first_step_from_standing_is_stimulated_once_it_counts():
    """The default trigger (pre-swing) also starts a train on a swing that had no
    pre-swing: the first step from standing gets stimulation for the rest of its swing,
    a jerk while standing gets none."""
    rate_hz = 250.0
    w = walk(rate_hz, 6, 21, Gait(1.2, 2.5, toe_off=0.0), stand_before_s=2.0)
    detector = GaitDetector(gyro_setup(SHANK_CHECKED), rate_hz)
    scheduler = StimScheduler(StimConfig())
    on = []
    for t, g in zip(w.t_s, w.gyro_rad_s, strict=True):
        phase, events = detector.step(float(t), float(g))
        on.append(any(c.on for c in scheduler.step(float(t), phase, events)))
    first_swing = (w.t_s > w.toe_off_s[0]) & (w.t_s < w.heel_strike_s[0])
    assert np.array(on)[first_swing].any()
    assert not np.array(on)[w.t_s < w.toe_off_s[0] - 0.2].any()


def test_heel_strike_timing_does_not_depend_on_the_walker(feet):
    """Per-walker bias spread (largest minus smallest median error) within 10 ms on the
    four walkers here (20 ms is the target on all 19, docs/detection.md)."""
    scores = {}
    for rec in feet:
        _, events = detect_batch(FOOT_SETUP, rec.t_s, rec.gyro_rad_s)
        scores.setdefault(rec.walker, Scorer(0.1)).add(rec.reference, events, rec.window)
    spread = bias_spread_ms(scores.values())
    assert spread["heel_strike"] <= 10.0 and spread["toe_off"] <= 10.0


@pytest.mark.parametrize("patient", ["moderate", "severe"])
def test_the_pre_swing_follows_the_walker_from_the_third_stride(patient):
    """The shank's pre-swing threshold is half the walker's own push-off dip once seen:
    the severe walker's dips (-1.4 rad/s) never reach the first stride's threshold
    (-1.5), yet from the third stride on every toe off comes after a pre-swing (what
    starts stimulation), 80-300 ms before it."""
    rate_hz = 250.0
    w = simulated_walk(patient, 20.0, 9, rate_hz)
    phases, _ = detect_batch(gyro_setup(SHANK_CHECKED), w.t_s, w.gyro_rad_s)
    entries = w.t_s[1:][(phases[1:] == Phase.PRE_SWING) & (phases[:-1] != Phase.PRE_SWING)]
    toe_offs = w.true_times(Event.TOE_OFF)
    for t_to in toe_offs[2:]:
        before = entries[(entries < t_to) & (entries > t_to - 0.6)]
        assert before.size == 1, (t_to, entries)
        assert 0.08 <= t_to - before[0] <= 0.3


def test_a_real_shaped_walk_adapts_within_three_strides():
    """Walkers differ threefold in swing peak: a healthy and a weak walker, each detected
    on every stride, heel strikes within 30 ms from the first stride."""
    for gait in (HEALTHY, Gait(1.4, 1.6, peak_width_s=0.11)):
        w = walk(250.0, 10, 31, gait)
        _, events = detect_batch(gyro_setup(SHANK_CHECKED), w.t_s, w.gyro_rad_s)
        hs = times(events, Event.HEEL_STRIKE)
        assert hs.size == w.heel_strike_s.size
        assert np.max(np.abs(hs - w.heel_strike_s)) < 0.03
