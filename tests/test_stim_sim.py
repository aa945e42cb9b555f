"""Stimulation patterns in closed-loop `fes sim` trials on fixed seeds: lead
compensation, per-channel figures, exact charge, training and test mode.

The gyroscope's mounting check is off in these trials: it holds gait-triggered
stimulation back for the first three strides of a session (tests/test_detect_mounting.py),
and these tests score stimulation stride by stride."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from controller.cli import main
from controller.pulses import train_pulse_times

#: The config layer of every trial here: the mounting check off (see the docstring).
UNCHECKED = "[detector.gyro.shank]\nmount_check_strides = 0\n"


def sim(tmp_path: Path, name: str, toml: str = "", *args: str) -> dict:
    out = tmp_path / name
    argv = ["sim", "--out", str(out), "--seed", "0", *args]
    path = tmp_path / f"{name}.toml"
    path.write_text(UNCHECKED + toml)
    argv += ["--config", str(path)]
    assert main(argv) == 0
    return json.loads((out / "summary.json").read_text())


def predicted(lead_ms: float, fallback: str = "toe_off") -> str:
    """A train starting ``lead_ms`` before the predicted toe off, else at ``fallback``
    (here the toe off: the pre-swing fallback, at heel rise some 125 ms before toe off,
    would start the trains of a shorter lead itself)."""
    return (
        f'[stim.peroneal]\ntrigger = "predicted_toe_off"\nlead_ms = {lead_ms}\n'
        f'fallback_trigger = "{fallback}"\n'
    )


@pytest.fixture(scope="module")
def leads(tmp_path_factory) -> dict[float | str | None, dict]:
    """The moderate walker, seed 0, 60 s: toe-off trigger (None) and three leads (the
    first three trains, before two strides are known, start at the toe off)."""
    tmp = tmp_path_factory.mktemp("leads")
    toe_off = '[stim.peroneal]\ntrigger = "toe_off"\n'
    runs = {None: sim(tmp, "toe_off", toe_off, "--duration-s", "60")}
    for lead in (0.0, 100.0, 200.0):
        runs[lead] = sim(tmp, f"lead{lead:g}", predicted(lead), "--duration-s", "60")
    runs["clinical"] = sim(tmp, "clinical", predicted(200.0, "pre_swing"), "--duration-s", "60")
    return runs


def onset_median(summary: dict) -> float:
    return summary["stim"]["onset_error_ms"]["median"]


@pytest.mark.parametrize("lead_ms", [100.0, 200.0])
def test_lead_compensation_moves_the_onset_to_the_configured_lead(leads, lead_ms):
    """The median onset error relative to true toe off lands near -lead (the prediction's
    own bias is the stride-time scatter plus the detector's toe-off bias, a few ms), and
    much nearer than the toe-off trigger's."""
    target = -lead_ms
    error = onset_median(leads[lead_ms])
    assert abs(error - target) < 20.0
    assert abs(onset_median(leads[None]) - target) > abs(error - target) + 30.0
    assert leads[lead_ms]["stim"]["missed_onsets"] == 0


def test_a_longer_lead_starts_earlier_and_activates_the_muscle_by_toe_off(leads):
    medians = [onset_median(leads[lead]) for lead in (0.0, 100.0, 200.0)]
    assert medians[0] > medians[1] > medians[2]
    activation = [leads[lead]["stim"]["ta_activation_at_toe_off"]["median"]
                  for lead in (None, 100.0, 200.0)]
    assert activation[0] < 0.01 < activation[1] < activation[2]


def test_predicted_trains_are_confirmed_while_walking(leads):
    """A 200 ms lead with the pre-swing fallback for the first strides: every train
    confirmed, no toe drag."""
    block = leads["clinical"]["stim"]["channels"]["peroneal"]
    assert block["unconfirmed_predictions"] == 0
    assert block["timeouts"] == 0
    assert leads["clinical"]["clearance"]["toe_drag_events"] == 0


@pytest.fixture(scope="module")
def two_channels(tmp_path_factory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("two")
    return sim(tmp, "calf", "", "--stim", "peroneal_calf", "--duration-s", "20"), tmp / "calf"


def test_each_channel_has_its_own_block(two_channels):
    summary, _ = two_channels
    stim = summary["stim"]
    assert set(stim["channels"]) == {"peroneal", "calf"}
    peroneal, calf = stim["channels"]["peroneal"], stim["channels"]["calf"]
    for key in ("onset_error_ms", "on_time_fraction", "charge_uc_per_stride", "trains"):
        assert stim[key] == peroneal[key]  # the top-level figures stay the peroneal ones
    assert (peroneal["channel"], calf["channel"]) == (0, 1)
    assert (calf["onset_reference"], calf["offset_reference"]) == ("toe_off", "toe_off")
    # The calf pushes off from ~250 ms before toe off and is quiet soon after it.
    assert -280.0 < calf["onset_error_ms"]["median"] < -220.0
    assert 0.0 < calf["offset_error_ms"]["median"] < 60.0
    assert calf["charge_uc_per_phase_max"] == pytest.approx(40.0 * 300.0 / 1000.0)
    assert peroneal["offset_reference"] == "heel_strike"
    # Ends after heel strike by about its detection latency + extension + ramp down.
    assert 200.0 < peroneal["offset_error_ms"]["median"] < 300.0


def test_each_channel_has_its_own_columns(two_channels):
    _, out = two_channels
    with (out / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {"calf_stim_on", "calf_amplitude_ma", "calf_pulse_width_us",
            "calf_frequency_hz"} <= set(rows[0])
    assert {row["calf_stim_on"] for row in rows} == {"0", "1"}
    both = sum(row["calf_stim_on"] == "1" and row["stim_on"] == "1" for row in rows)
    assert 0 < both < sum(row["calf_stim_on"] == "1" for row in rows)


def test_reported_pulses_and_charge_are_those_the_limb_received(two_channels):
    """Pulse by pulse: the pulses the summary counts from the recorded commands are the
    pulses the simulated limb counted, and the charge is amplitude x width of each, in
    the session, per stride on average and in the stride (heel strike to heel strike)
    that got the most.

    The limb applies a command from its next physics step, so its ``pulses`` column shows
    the pulses of row k's command in row k + 1.
    """
    summary, out = two_channels
    with (out / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    column = {name: np.array([float(r[name]) for r in rows]) for name in rows[0]
              if name != "phase"}
    times, index = train_pulse_times(
        column["time_s"], column["stim_on"], column["frequency_hz"], 0.002
    )
    per_row = np.bincount(index, minlength=len(rows))
    np.testing.assert_array_equal(per_row[:-1], column["pulses"][1:])
    # The last row's command never holds: the outputs go off there (test below).
    times, index = times[index < len(rows) - 1], index[index < len(rows) - 1]
    charge_uc = column["amplitude_ma"][index] * column["pulse_width_us"][index] / 1000.0
    block = summary["stim"]["channels"]["peroneal"]
    assert block["pulses"] == index.size == int(column["pulses"].sum()) > 0
    assert block["charge_uc_total"] == pytest.approx(charge_uc.sum(), abs=0.001)
    assert block["charge_uc_per_stride"] == pytest.approx(
        charge_uc.sum() / summary["strides"], abs=0.001
    )
    with (out / "events.csv").open() as handle:
        heel_strikes = [float(r["time_s"]) for r in csv.DictReader(handle)
                        if r["source"] == "true" and r["event"] == "heel_strike"]
    strides = [charge_uc[(times >= a) & (times < b)].sum()
               for a, b in itertools.pairwise(heel_strikes)]
    assert block["charge_uc_stride_max"] == pytest.approx(max(strides), abs=0.001)


def test_a_trial_ending_on_a_pulse_counts_only_the_pulses_the_limb_received(tmp_path):
    """The last row's command is recorded but never held: the trial's outputs go off at
    its last sample (the simulated limb applies a command from its next step, a board
    gets STOP_ALL). A training train cut at 1.52 s (rows every 10 ms, pulses every 25 ms
    from 1.01 s) has a pulse due in its last row (1.51 s); until 8 Dec 2026 the summary counted it,
    one pulse (and its charge) more than the limb received."""
    toml = "[stim]\nmode = 'training'\n[stim.training]\non_ms = 1000\noff_ms = 2000\n"
    summary = sim(tmp_path, "cut", toml, "--duration-s", "1.52", "--rate-hz", "100")
    with (tmp_path / "cut" / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    column = {name: np.array([float(r[name]) for r in rows]) for name in
              ("time_s", "stim_on", "frequency_hz", "pulses")}
    _, index = train_pulse_times(column["time_s"], column["stim_on"],
                                 column["frequency_hz"], 0.01)
    assert index[-1] == len(rows) - 1  # the premise: a pulse due in the last row
    received = int(column["pulses"].sum())  # row k + 1 shows row k's pulses
    assert summary["stim"]["channels"]["peroneal"]["pulses"] == received == index.size - 1


def test_training_mode_cycles_regardless_of_the_walker(tmp_path):
    toml = "[stim]\nmode = 'training'\n[stim.training]\non_ms = 1000\noff_ms = 2000\n"
    stim = sim(tmp_path, "training", toml, "--duration-s", "20")["stim"]
    block = stim["channels"]["peroneal"]
    # Ramp up, on, ramp down, off: trains start at 1 s and every 3.16 s after, the
    # seventh 40 ms before the end of the trial.
    assert block["trains"] == 7
    assert block["trigger"] == "training"
    assert block["onset_error_ms"] == {"median": None, "p95": None}
    # A train's first sample is its zero-level start: it delivers for ramps + on - 2 ms.
    on_s = 0.06 + 1.0 + 0.1 - 0.002
    last_s = 20.0 - (1.0 + 6 * 3.16) - 0.002
    assert block["on_time_fraction"] == pytest.approx((6 * on_s + last_s) / 20.0, abs=0.001)


def test_test_mode_gives_one_burst(tmp_path):
    toml = "[stim]\nmode = 'test'\n[stim.test]\non_ms = 500\nstart_ms = 2000\n"
    block = sim(tmp_path, "test", toml, "--duration-s", "10")["stim"]["channels"]["peroneal"]
    assert block["trains"] == 1
    assert block["pulses"] == pytest.approx(40 * (0.06 + 0.5 + 0.1), abs=1)


def test_a_test_burst_on_another_channel_leaves_the_peroneal_figures_unscored(tmp_path):
    toml = ("[stim]\nmode = 'test'\n[stim.test]\nchannel_name = 'calf'\n"
            "[stim.channels.calf]\nchannel = 1\n")
    stim = sim(tmp_path, "calf_test", toml, "--duration-s", "4")["stim"]
    assert list(stim["channels"]) == ["calf"] and stim["channels"]["calf"]["trains"] == 1
    assert stim["trains"] == 0 and stim["missed_onsets"] is None


def test_stimulation_through_loading_response_prevents_foot_slap(tmp_path):
    """The moderate walker, seed 0, 20 s: the default train (held to heel strike plus
    the extension) lets the forefoot down under control; without stimulation nearly every
    landing slaps, and a train that ends at mid swing leaves the landing unbraked."""
    def slaps(name: str, toml: str, *args: str) -> tuple[int, int]:
        clearance = sim(tmp_path, name, toml, "--duration-s", "20", *args)["clearance"]
        return int(clearance["foot_slap_events"]), int(clearance["swings"])

    braked, swings = slaps("default", "")
    unbraked, _ = slaps("off", "", "--no-stim")
    early, _ = slaps("mid_swing", '[stim.peroneal]\nstop = "mid_swing"\nextension_ms = 0.0\n')
    assert swings >= 14
    assert braked <= 0.2 * swings
    assert unbraked >= 0.8 * swings
    assert early >= 0.8 * swings


def test_a_fused_detector_on_a_healthy_walker_stays_within_the_duty_cycle(tmp_path):
    """The fused detector's pre-swing is the gyroscope's push-off, not the heel rise.
    Opened at heel off (terminal stance, 265 ms before the simulated healthy walker's toe
    off), the peroneal train ran from heel rise to heel strike plus extension and ramp
    down, 80 % of the time, and the watchdog latched its duty-cycle fault after 10.9 s
    of `fes sim --patient healthy`; the trains then stopped for the rest of the walk."""
    summary = sim(tmp_path, "fused", '[detector]\nsensor = "fused"\n',
                  "--patient", "healthy", "--duration-s", "25")
    assert summary["watchdog"]["faults"] == 0, summary["watchdog"]["interventions"]
    stim = summary["stim"]
    assert stim["trains"] >= 20  # every stride of the 25 s walk after the first
    assert stim["on_time_fraction"] < 0.75
    # Onset at the push-off: before the toe off by the muscle's activation time and
    # more, as on the gyroscope alone, not a quarter of a stride before it.
    assert -180.0 < onset_median(summary) < -80.0


def test_a_channel_on_an_output_with_no_simulated_muscle_is_noted(tmp_path, capsys):
    """The simulated limb has only tibialis anterior (output 0): a calf channel's
    settings changed only its charge, silently. fes sim says so and summary.json says
    the channel drove no simulated muscle; every walk figure is the same at any calf
    amplitude."""
    calf = "[stim]\npreset = \"peroneal_calf\"\n"
    weak = sim(tmp_path, "weak", calf + "[stim.channels.calf]\namplitude_ma = 20\n",
               "--duration-s", "12")
    err = capsys.readouterr().err
    assert ("note: stim.channels.calf (output 1) drives no simulated muscle: the simulated "
            "limb has only tibialis anterior on output 0") in err
    strong = sim(tmp_path, "strong", calf, "--duration-s", "12")
    channels = strong["stim"]["channels"]
    assert channels["calf"]["simulated_muscle"] == "none"
    assert channels["peroneal"]["simulated_muscle"] == "tibialis anterior"
    assert channels["calf"]["trains"] > 0
    assert weak["clearance"] == strong["clearance"]
    assert (weak["stim"]["channels"]["calf"]["charge_uc_total"]
            < channels["calf"]["charge_uc_total"])
    capsys.readouterr()
    sim(tmp_path, "alone", "", "--duration-s", "2")
    assert "drives no simulated muscle" not in capsys.readouterr().err


def test_another_channel_on_the_simulated_muscle_s_output_is_refused(tmp_path, capsys):
    toml = tmp_path / "calf0.toml"
    toml.write_text('stim.preset = "peroneal_calf"\n[stim.peroneal]\nchannel = 2\n'
                    "[stim.channels.calf]\nchannel = 0\n")
    assert main(["sim", "--config", str(toml), "--out", str(tmp_path / "t")]) == 2
    assert ("stim.channels.calf.channel: output 0 drives the simulated tibialis anterior, "
            "which only the peroneal channel stimulates") in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
