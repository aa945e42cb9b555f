"""The phenomena the simulated patient must show, each on a fixed seed: what a gait
researcher would check before trusting a stimulation study run against it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.cli import main
from controller.resources import available
from sim.ankle import stretch_test
from sim.gait import HEEL_STRIKE, STANCE_S, TOE_OFF
from sim.limb import SimulatedLimb
from sim.openloop import Stimulation, stride_commands, swing_minima_mm
from sim.patient import load_patient
from sim.physiology import clonus

RATE_HZ = 500.0


def walk(name: str, duration_s: float, seed: int, stimulation: Stimulation | None = None,
         **changes: object) -> SimulatedLimb:
    """An open-loop walk; ``stimulation`` in every swing if given."""
    profile = load_patient(name).model_copy(update=changes)
    limb = SimulatedLimb(profile, RATE_HZ, duration_s, seed)
    n = round(duration_s * RATE_HZ)
    commands = (stride_commands(limb.schedule, RATE_HZ, n, stimulation) if stimulation
                else np.zeros((n, 4)))
    limb.run(commands)
    return limb


def minima(limb: SimulatedLimb, trim: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Toe-off times and minimum toe clearance (mm) of each complete swing."""
    return swing_minima_mm(limb.schedule, limb.truth()["toe_clearance_mm"], RATE_HZ, trim)


def test_severe_foot_drop_drags_the_toes_in_most_swings_without_stimulation():
    _, whole = minima(walk("severe", 60.0, 5))
    assert whole.size >= 40
    assert (whole < 0.0).mean() > 0.9


def test_adequate_stimulation_restores_clearance_and_weak_stimulation_does_not():
    _, off = minima(walk("severe", 60.0, 5), 0.15)
    _, weak = minima(walk("severe", 60.0, 5, Stimulation(amplitude_ma=25.0)))
    limb = walk("severe", 60.0, 5, Stimulation(amplitude_ma=45.0))
    _, whole = minima(limb)
    _, mid = minima(limb, 0.15)
    assert (weak < 0.0).mean() > 0.8  # 25 mA x 300 us barely recruits the muscle
    assert (whole < 0.0).sum() == 0
    assert np.median(mid) > 20.0 and np.median(off) < -10.0


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_the_healthy_profile_never_drags(seed):
    _, whole = minima(walk("healthy", 20.0, seed))
    assert whole.size >= 15 and whole.min() > 0.0


def test_clearance_falls_as_the_stimulated_muscle_tires_and_recovers_after_rest():
    """The fatigue-prone walker, stimulated in every swing, rests standing between bouts."""
    limb = walk("fatigue_prone", 400.0, 2, Stimulation(amplitude_ma=40.0))
    standing = limb.schedule.standing()
    rest_start, rest_end = standing[0]
    assert rest_end - rest_start > 40.0
    starts, mtc = minima(limb, 0.15)
    first_bout = mtc[starts < rest_start]
    second_bout = mtc[(starts > rest_end) & (starts < standing[1][0])]
    assert first_bout.size > 100
    fresh, tired = np.median(first_bout[:10]), np.median(first_bout[-10:])
    recovered = np.median(second_bout[:10])
    assert tired < fresh - 15.0
    assert recovered > tired + 8.0
    fitness = limb.truth()["ta_fitness"]
    assert fitness[round(rest_start * RATE_HZ)] < 0.4 < 0.6 < fitness[round(rest_end * RATE_HZ)]


def test_the_spastic_calf_answers_a_fast_stretch_with_clonus():
    """The clinical test: dorsiflex the foot by 15 deg at 5 rad/s, keep it pushed up."""
    frequency, count, largest = clonus(stretch_test(load_patient("spastic"), 5.0, 15.0, 3.0),
                                       1e-3)
    assert 4.0 <= frequency <= 8.0
    assert count >= 10 and largest < 20.0  # sustained clonus of clinical amplitude
    assert clonus(stretch_test(load_patient("moderate"), 5.0, 15.0, 3.0), 1e-3)[1] == 0
    slow = clonus(stretch_test(load_patient("spastic"), 0.3, 15.0, 3.0), 1e-3)
    assert slow[1] == 0  # below the velocity threshold: no reflex, no clonus


def test_heat_lowers_voluntary_strength_and_clearance():
    figures = {}
    for temperature_c in (37.0, 37.5, 38.0):
        limb = walk("heat_sensitive", 60.0, 3, core_temperature_c=temperature_c,
                    core_warming_c_per_min=0.0)
        _, whole = minima(limb)
        figures[temperature_c] = (limb.truth()["voluntary_max_nm"][0], (whole < 0.0).sum())
    strength = [s for s, _ in figures.values()]
    drags = [d for _, d in figures.values()]
    assert strength == pytest.approx([2.1, 0.75 * 2.1, 0.5 * 2.1])
    assert drags[0] < drags[1] < drags[2]


def test_walking_warms_the_heat_sensitive_walker_and_weakens_them():
    """37.5 C warming by 0.05 C/min: after 10 minutes 38.0 C, strength 0.5 / 0.75 of it."""
    strength = walk("heat_sensitive", 600.0, 3).truth()["voluntary_max_nm"]
    assert strength[-1] == pytest.approx(strength[0] * 0.5 / 0.75, rel=0.01)
    assert np.all(np.diff(strength) <= 0.0)


def test_central_fatigue_weakens_the_unstimulated_walker_and_rest_restores_it():
    limb = walk("fatigue_prone", 400.0, 2)
    strength = limb.truth()["voluntary_max_nm"]
    rest_start, rest_end = limb.schedule.standing()[0]
    tired = strength[round(rest_start * RATE_HZ)]
    assert tired < 0.75 * strength[0]
    assert strength[round(rest_end * RATE_HZ)] - tired > 0.4 * (strength[0] - tired)


def test_the_forefoot_slaps_without_dorsiflexion_and_not_with_stimulation():
    """By the slap rule (fast AND within loading response). Not a claim of braking: the
    stimulated foot still comes down fast after the window (docs/simulator.md, "Read the
    foot-slap counts with care"); the summary's forefoot_impact_rad_s shows it."""
    assert walk("healthy", 30.0, 3).truth()["foot_slap"].sum() == 0
    unbraked = walk("mild", 30.0, 3)
    landings = (unbraked.truth()["forefoot_impact_rad_s"] > 0.0).sum()
    assert unbraked.truth()["foot_slap"].sum() == landings >= 25
    braked = walk("mild", 30.0, 3, Stimulation(amplitude_ma=45.0))
    assert braked.truth()["foot_slap"].sum() == 0


def test_stimulation_cannot_lift_the_foot_far_past_its_range_of_motion():
    profile = load_patient("healthy")
    limb = walk("healthy", 30.0, 3, Stimulation(amplitude_ma=60.0))
    assert limb.truth()["ankle_angle_deg"].max() < profile.dorsiflexion_limit_deg + 10.0


@pytest.mark.parametrize("name", available("patients"))
def test_fes_sim_runs_every_shipped_profile(tmp_path, name):
    out = tmp_path / name
    assert main(["sim", "--patient", name, "--duration-s", "4", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    clearance = summary["clearance"]
    assert clearance["swings"] >= 2
    assert {"foot_slap_events", "ankle_at_heel_strike_deg"} <= set(clearance)


def test_the_summary_reports_the_landing_posture_and_the_slaps(tmp_path):
    """ankle_at_heel_strike_deg is the ankle at the last sample before each heel strike."""
    import csv

    from controller.trial.metrics import values_before

    t = np.arange(10) * 0.1  # samples at 0.0 .. 0.9 s
    before = values_before(t, np.arange(10), np.array([0.0, 0.35, 0.5, 0.85, 0.95]))
    assert list(before) == [3, 4, 8]  # none before 0.0; 0.95 is after the recording
    out = tmp_path / "mild"
    assert main(["sim", "--patient", "mild", "--no-stim", "--duration-s", "10", "--out",
                 str(out)]) == 0
    clearance = json.loads((out / "summary.json").read_text())["clearance"]
    with (out / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    with (out / "events.csv").open() as handle:
        strikes = [float(e["time_s"]) for e in csv.DictReader(handle)
                   if e["source"] == "true" and e["event"] == "heel_strike"]
    times = np.array([float(r["time_s"]) for r in rows])
    ankle = np.array([float(r["ankle_angle_deg"]) for r in rows])
    landing = values_before(times, ankle, np.array(strikes))
    assert clearance["ankle_at_heel_strike_deg"]["median"] == pytest.approx(
        np.median(landing), abs=1e-3)
    assert clearance["foot_slap_events"] == sum(float(r["foot_slap"]) for r in rows) >= 6


def test_the_summary_reports_how_fast_the_forefoot_lands(tmp_path):
    """The slap count hangs on a threshold; the landing speed itself is in the summary:
    a healthy forefoot is lowered gently, a mild foot drop's comes down fast."""
    from controller.config import load_config
    from controller.trial.simulated import run_simulated_trial

    def impact(patient):
        config = load_config(overrides={"sim": {"patient": patient}, "stim": {"enabled": False},
                                        "loop": {"duration_s": 20.0}})
        return run_simulated_trial(config, tmp_path / patient)["clearance"][
            "forefoot_impact_rad_s"]

    healthy, mild = impact("healthy"), impact("mild")
    assert healthy["landings"] >= 15 and mild["landings"] >= 15
    assert healthy["p95"] < 2.0
    assert mild["median"] > 10.0


def test_the_forefoot_is_in_the_air_in_loading_response_and_down_at_foot_flat():
    """Toe height after a heel-first landing: continuous with the swing's at heel strike,
    falling to 0 at foot flat and staying there; lower after a flatter landing."""
    healthy = walk("healthy", 20.0, 1)
    clearance = healthy.truth()["toe_clearance_mm"]
    profile = load_patient("healthy")
    for row in healthy.schedule.strides[2:-2]:
        k = round(row[HEEL_STRIKE] * RATE_HZ)
        if k + 100 >= clearance.size:
            break
        assert clearance[k - 1] > 60.0  # the heel lands with the foot 20 deg toe up
        assert abs(clearance[k] - clearance[k - 1]) < 5.0
        flat = row[HEEL_STRIKE] + profile.stance_knots_fraction[1] * row[STANCE_S]
        assert clearance[k + 5] > 0.0
        after_flat = clearance[round(flat * RATE_HZ) + 2:round(row[TOE_OFF] * RATE_HZ)]
        assert np.all(after_flat == 0.0)
    # The severe foot hangs 14 deg plantarflexed: it lands heel first, but nearly flat.
    severe = walk("severe", 20.0, 1)
    landing = severe.truth()["toe_clearance_mm"][
        [round(r[HEEL_STRIKE] * RATE_HZ) + 3 for r in severe.schedule.strides[2:-2]
         if r[HEEL_STRIKE] < 19.0]]
    assert np.all((landing > 0.0) & (landing < 30.0))
