"""The simulated limb as the loop sees it: ports, determinism, and what stimulation does."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from controller.ports import SensorSource, StimCommand, Stimulator
from sim import limb as limb_module
from sim.limb import SimulatedLimb
from sim.patient import load_patient

RATE_HZ = 500.0


def walk(name: str, duration_s: float, seed: int, stimulate: bool = False,
         amplitude_ma: float = 40.0) -> SimulatedLimb:
    """Run a trial; when ``stimulate``, channel 0 is on from 80 ms before each true toe
    off until 100 ms after the next heel strike (40 Hz, 300 us)."""
    limb = SimulatedLimb(load_patient(name), RATE_HZ, duration_s, seed)
    events = limb.true_events()
    toe_off = [t for t, e in events if e == "toe_off"]
    heel = np.array([t for t, e in events if e == "heel_strike"] + [np.inf])
    windows = [(t - 0.08, heel[heel > t][0] + 0.1) for t in toe_off]
    while (sample := limb.read()) is not None:
        if stimulate:
            on = any(a <= sample.t_s < b for a, b in windows)
            limb.apply(sample.t_s, [StimCommand(0, on, amplitude_ma, 300.0, 40.0)])
    return limb


def swing_minima_mm(limb: SimulatedLimb) -> tuple[np.ndarray, np.ndarray]:
    """Per complete swing: minimum clearance over the whole swing and over its middle 70 %."""
    clearance = limb.truth()["toe_clearance_mm"]
    t = np.arange(clearance.size) * limb.sample_period_s
    events = limb.true_events()
    heel = np.array([t for t, e in events if e == "heel_strike"])
    whole, middle = [], []
    for start in (t for t, e in events if e == "toe_off"):
        later = heel[heel > start]
        if later.size == 0:
            continue
        end = later[0]
        margin = 0.15 * (end - start)
        whole.append(clearance[(t >= start) & (t <= end)].min())
        middle.append(clearance[(t >= start + margin) & (t <= end - margin)].min())
    return np.array(whole), np.array(middle)


@pytest.fixture(scope="module")
def severe():
    return walk("severe", 30.0, 7), walk("severe", 30.0, 7, stimulate=True)


def test_severe_foot_drop_drags_the_toes_in_most_swings(severe):
    off, _ = severe
    whole, _ = swing_minima_mm(off)
    assert whole.size >= 18
    assert (whole < 0.0).mean() > 0.5


def test_stimulation_lifts_the_foot_clear(severe):
    off, on = severe
    drags_off = (swing_minima_mm(off)[0] < 0.0).sum()
    drags_on = (swing_minima_mm(on)[0] < 0.0).sum()
    assert drags_on < drags_off / 4
    assert np.median(swing_minima_mm(on)[1]) > np.median(swing_minima_mm(off)[1]) + 20.0
    truth = on.truth()
    assert truth["pulses"].sum() > 0 and truth["ta_activation"].max() > 0.3
    assert off.truth()["ta_activation"].max() == 0.0


def test_healthy_never_drags():
    whole, middle = swing_minima_mm(walk("healthy", 30.0, 7))
    assert whole.min() >= 0.0
    assert np.median(middle) == pytest.approx(13.0, abs=3.0)  # Winter 1992


def test_clearance_is_zero_in_stance_and_ankle_dorsiflexes_under_stimulation(severe):
    """Stance: the forefoot may still be in the air in loading response (a height, never
    a drag); the sole is on the floor from foot flat (12 % of stance) to toe off."""
    off, on = severe
    heel = np.array([t for t, e in off.true_events() if e == "heel_strike"])
    toe_off = np.array([t for t, e in off.true_events() if e == "toe_off"])
    clearance = off.truth()["toe_clearance_mm"]
    t = np.arange(clearance.size) / RATE_HZ
    stance = np.zeros(t.size, bool)
    flat = np.zeros(t.size, bool)
    foot_flat = off.profile.stance_knots_fraction[1]
    for start in heel:
        ends = toe_off[toe_off > start]
        if ends.size:
            stance |= (t >= start) & (t < ends[0])
            flat |= (t >= start + foot_flat * (ends[0] - start) + 0.01) & (t < ends[0])
    assert np.all(clearance[stance] >= 0.0)
    assert np.all(clearance[flat] == 0.0)
    swing = ~stance & (t > toe_off[0])
    assert np.median(on.truth()["ankle_angle_deg"][swing]) > np.median(
        off.truth()["ankle_angle_deg"][swing]) + 5.0


def test_same_seed_gives_identical_samples_and_truth():
    a, b = walk("moderate", 8.0, 3, stimulate=True), walk("moderate", 8.0, 3, stimulate=True)
    for name, column in a.truth().items():
        assert np.array_equal(column, b.truth()[name]), name
    assert a.true_events() == b.true_events()
    c = walk("moderate", 8.0, 4, stimulate=True)
    assert not np.array_equal(a.truth()["toe_clearance_mm"], c.truth()["toe_clearance_mm"])


def test_samples_are_periodic_and_end_on_time():
    limb = SimulatedLimb(load_patient("healthy"), 200.0, 2.0, 1)
    samples = []
    while (s := limb.read()) is not None:
        samples.append(s)
    assert len(samples) == 400
    assert [s.t_s for s in samples[:3]] == [0.0, 0.005, 0.01]
    assert samples[-1].t_s == pytest.approx(1.995)
    assert limb.read() is None
    assert {s.heel_switch for s in samples} == {0, 1}
    assert all(np.isfinite(s.gyro_rad_s) and s.heel_force_n >= 0.0 for s in samples)
    assert len(limb.truth()["ankle_angle_deg"]) == 400


def test_same_sensor_samples_for_the_same_seed():
    def gyro(seed: int) -> list[float]:
        limb = SimulatedLimb(load_patient("mild"), 1000.0, 5.0, seed)
        return [s.gyro_rad_s for s in iter(limb.read, None)]

    assert gyro(9) == gyro(9)
    assert gyro(9) != gyro(10)


def test_limb_implements_both_ports():
    limb = SimulatedLimb(load_patient("healthy"), 500.0, 1.0, 0, channels=3)
    assert isinstance(limb, SensorSource) and isinstance(limb, Stimulator)
    assert limb.channels == 3 and limb.sample_period_s == pytest.approx(0.002)


def test_commands_are_held_per_channel_and_stop_all_turns_them_off():
    limb = SimulatedLimb(load_patient("severe"), 500.0, 2.0, 0)
    limb.apply(0.0, [StimCommand(0, True, 40.0, 300.0, 40.0), StimCommand(1, True, 20.0, 200.0,
                                                                          30.0)])
    limb.apply(0.0, [StimCommand.off(1)])
    assert limb.commands[0].on and not limb.commands[1].on
    for _ in range(100):
        limb.read()
    assert limb.truth()["pulses"].sum() == 8  # 0.2 s at 40 Hz
    limb.stop_all()
    for _ in range(100):
        limb.read()
    assert limb.truth()["pulses"][100:].sum() == 0
    assert not any(c.on for c in limb.commands)


def test_bad_commands_are_refused():
    limb = SimulatedLimb(load_patient("severe"), 500.0, 1.0, 0)
    with pytest.raises(ValueError, match="channel 2"):
        limb.apply(0.0, [StimCommand(2, True, 40.0, 300.0, 40.0)])
    with pytest.raises(ValueError, match="amplitude_ma"):
        limb.apply(0.0, [StimCommand(0, True, float("nan"), 300.0, 40.0)])
    assert not limb.commands[0].on


def test_close_ends_the_trial_and_stops_output():
    limb = SimulatedLimb(load_patient("healthy"), 500.0, 1.0, 0)
    limb.apply(0.0, [StimCommand(0, True, 40.0, 300.0, 40.0)])
    limb.read()
    limb.close()
    assert limb.read() is None
    assert not limb.commands[0].on


def test_too_low_sample_rate_is_refused():
    with pytest.raises(ValueError, match="sample_rate_hz"):
        SimulatedLimb(load_patient("severe"), 20.0, 1.0, 0)


def test_a_shorter_trial_is_a_prefix_of_a_longer_one():
    short, long = walk("severe", 5.0, 2, stimulate=True), walk("severe", 12.0, 2, stimulate=True)
    n = short.truth()["ankle_angle_deg"].size
    for name, column in short.truth().items():
        assert np.array_equal(column, long.truth()[name][:n]), name
    assert short.true_events() == [e for e in long.true_events() if e[0] < 5.0]


#: Every sensor error and course feature switched on, to exercise every random stream.
EVERYTHING = {
    "gyro_bias_rad_s": 0.05, "gyro_bias_drift_rad_s_per_sqrt_s": 0.002,
    "gyro_scale_error_fraction": 0.03, "gyro_mounting_tilt_deg": 8.0, "sample_jitter_ms": 1.0,
    "gyro_dropouts_per_min": 10.0, "heel_switch_bounce_ms": 5.0,
    "heel_switch_dropouts_per_min": 10.0,
    "heel_switch_release_delay_ms": 20.0, "heel_force_noise_n": 10.0,
    "bout_mean_strides": 6.0, "standing_mean_s": 2.0, "turn_interval_mean_strides": 5.0,
    "spastic_reflex_gain_nm_s_per_rad": 2.0,
}


def test_batch_run_gives_the_same_numbers_as_reading_sample_by_sample():
    from sim.openloop import Stimulation, stride_commands

    profile = load_patient("moderate").model_copy(update=EVERYTHING)
    duration_s, rate = 12.0, 500.0  # 6000 samples: crosses a noise block boundary
    stepped = SimulatedLimb(profile, rate, duration_s, 8)
    batch = SimulatedLimb(profile, rate, duration_s, 8)
    commands = stride_commands(stepped.schedule, rate, 6000, Stimulation(ramp_up_s=0.05))
    rows = []
    for k in range(6000):
        c = commands[k]
        stepped.apply(k / rate, [StimCommand(0, bool(c[0]), c[1], c[2], c[3])])
        s = stepped.read()
        rows.append((s.t_s, s.gyro_rad_s, s.heel_switch, s.heel_force_n))
    first = batch.run(commands[:2500])  # in two parts, to cross a call boundary too
    second = batch.run(commands[2500:])
    got = {name: np.concatenate((first[name], second[name])) for name in first}
    expected = np.array(rows)
    assert np.array_equal(got["time_s"], expected[:, 0])
    assert np.array_equal(got["gyro_rad_s"], expected[:, 1], equal_nan=True)
    assert np.isnan(got["gyro_rad_s"]).any()
    assert np.array_equal(got["heel_switch"], expected[:, 2], equal_nan=True)
    assert np.isnan(got["heel_switch"]).any()
    assert np.array_equal(got["heel_force_n"], expected[:, 3])
    for name, column in stepped.truth().items():
        assert np.array_equal(column, batch.truth()[name]), name
    assert batch.read() is None and batch.run(commands[:10])["time_s"].size == 0


def test_the_patient_is_the_same_patient_at_any_sample_rate():
    """Physics runs in steps of at most 1 ms: only the sampling changes with the rate."""
    from sim.openloop import Stimulation, stride_commands, swing_minima_mm

    minima = []
    for rate in (100.0, 250.0, 1000.0):
        limb = SimulatedLimb(load_patient("severe"), rate, 30.0, 3)
        n = round(30.0 * rate)
        limb.run(stride_commands(limb.schedule, rate, n, Stimulation(amplitude_ma=45.0)))
        minima.append(swing_minima_mm(limb.schedule, limb.truth()["toe_clearance_mm"], rate,
                                      0.15)[1])
    assert minima[0] == pytest.approx(minima[2], abs=3.0)  # pulses land on 10 ms samples
    assert minima[1] == pytest.approx(minima[2], abs=1.0)


@pytest.mark.parametrize("stop", ["never", "at once", "after the first block"])
def test_noise_drawn_ahead_gives_the_same_samples(stop):
    """``draw_noise_ahead`` draws the same noise, only earlier, however much of it was
    drawn when the drawing stopped: every sample and truth column is the same."""
    profile = load_patient("severe")  # every source of sensor noise in use
    duration_s, rate_hz = 20.0, 1000.0  # 5 blocks of noise
    commands = np.zeros((round(duration_s * rate_hz), 4))

    def walked(ahead: bool) -> tuple[dict, dict]:
        limb = SimulatedLimb(profile, rate_hz, duration_s, seed=4)
        if ahead:
            stop_drawing = limb.draw_noise_ahead()
            if stop == "at once":
                stop_drawing()
            elif stop == "after the first block":
                limb._wait_for_noise(0)
                stop_drawing()
        half = commands.shape[0] // 2  # in two runs: the second starts inside a block
        first, second = limb.run(commands[:half]), limb.run(commands[half:])
        samples = {k: np.concatenate([first[k], second[k]]) for k in first}
        return samples, limb.truth()

    (plain, plain_truth), (ahead, ahead_truth) = walked(False), walked(True)
    for name in plain:
        assert np.array_equal(plain[name], ahead[name]), name
    for name in plain_truth:
        assert np.array_equal(plain_truth[name], ahead_truth[name], equal_nan=True), name


def test_a_streaming_limb_keeps_a_ring_of_truth_and_reads_it_as_the_whole_one():
    """``SimulatedLimb.streaming`` (the board emulators' limb) keeps its truth in a ring
    of ``STREAMING_TRUTH_ROWS``: read as it goes with ``truth_since``, the same rows as
    a limb keeping them all; a sample the ring no longer holds is refused, not misread.
    Storage grown twofold copied every row at samples 2**n, 35 ms at 2**18: longer than
    a live host's 30 ms heartbeat (docs/cli.md, "Long work")."""
    profile = load_patient("moderate")
    ring = limb_module.STREAMING_TRUTH_ROWS
    n = 3 * ring + 77
    streaming = SimulatedLimb.streaming(profile, 500.0, n / 500.0 + 1.0, 3)
    whole = SimulatedLimb(profile, 500.0, n / 500.0 + 1.0, 3)
    streaming.apply(0.0, [StimCommand(0, True, 30.0, 300.0, 40.0)])
    whole.apply(0.0, [StimCommand(0, True, 30.0, 300.0, 40.0)])
    for _ in range(n):
        whole.read()
    truth = whole.truth()
    streaming.read()  # compiled or loaded, its first block of noise drawn
    differ = []
    tracemalloc.start()
    try:
        for k in range(1, n):
            streaming.read()
            if k % 32 == 31 or k == n - 1:
                first = k - k % 32
                for name, column in streaming.truth_since(first).items():
                    if not np.array_equal(column, truth[name][first : k + 1]):
                        differ.append((name, first))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert differ == []
    # No storage grown as the walk goes on (a fourth of a ring's rows is 74 kB).
    assert peak < ring * len(limb_module.TRUTH_COLUMNS) * 8 // 4, peak
    assert len(streaming.truth_since(n - ring)["pulses"]) == ring
    with pytest.raises(ValueError, match="is gone"):
        streaming.truth_since(n - ring - 1)
    short = SimulatedLimb.streaming(profile, 500.0, 2.0, 3)  # fewer samples than a ring
    assert len([short.read() for _ in range(1000)]) == 1000
    assert len(short.truth()["pulses"]) == 1000
