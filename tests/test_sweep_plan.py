"""Sweep plans: every combination, seeded random draws, bad keys and values named up front."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.sweep.plan import (
    SweepSpec,
    build_plan,
    latin_hypercube,
    parse_grid,
    parse_random,
    parse_value,
)
from controller.validation import ConfigError


def test_values_are_read_as_toml_scalars_or_words():
    assert parse_grid("stim.peroneal.amplitude_ma=30,32.5,true,toe_off").values == (
        30, 32.5, True, "toe_off",
    )
    assert parse_value('"a b"') == "a b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stim.peroneal.amplitude_ma", "expected KEY=V1,V2"),
        ("stim..amplitude_ma=1,2", "not a dotted config key"),
        ("loop.duration_s=1,,2", "empty value"),
        ("loop.duration_s=5,6,5", "repeated value 5"),
    ],
)
def test_malformed_grid_is_named(text, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_grid(text)


def test_random_bounds():
    assert parse_random("detector.peak_average_strides=2:8").integer
    axis = parse_random("stim.peroneal.extension_ms=0.0:300")
    assert not axis.integer and (axis.low, axis.high) == (0.0, 300.0)
    for bad in ("loop.duration_s=5:1", "loop.duration_s=a:b", "loop.duration_s=5"):
        with pytest.raises(ConfigError, match="--random"):
            parse_random(bad)


@given(st.integers(1, 5), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_latin_hypercube_puts_one_point_in_every_stratum(dims, samples, seed):
    points = latin_hypercube(dims, samples, seed)
    assert points.shape == (samples, dims)
    for column in points.T:
        assert sorted(np.floor(column * samples).astype(int)) == list(range(samples))


def test_integer_draws_stay_whole_and_inside_the_range():
    axis = parse_random("detector.peak_average_strides=2:5")
    values = axis.draw(latin_hypercube(1, 8, 0)[:, 0])
    assert all(isinstance(v, int) and 2 <= v <= 5 for v in values)
    assert set(values) == {2, 3, 4, 5}


def test_plan_crosses_grid_random_patients_and_seeds():
    spec = SweepSpec(
        grid=(parse_grid("stim.peroneal.amplitude_ma=30,40"),),
        random=(parse_random("stim.peroneal.extension_ms=0.0:200.0"),),
        samples=3,
        patients=("mild", "severe"),
        seeds=2,
        fixed={"loop.duration_s": 5.0},
    )
    plan = build_plan(spec)
    assert len(plan.trials) == 2 * 3 * 2 * 2
    assert plan.parameters == (
        "stim.peroneal.amplitude_ma", "stim.peroneal.extension_ms", "sim.patient", "sim.seed",
    )
    first = plan.trials[0]
    assert first.params["stim.peroneal.amplitude_ma"] == 30.0
    assert first.config["loop"]["duration_s"] == 5.0
    assert [t.params["sim.seed"] for t in plan.trials[:4]] == [0, 1, 0, 1]
    assert [t.params["sim.patient"] for t in plan.trials[:4]] == ["mild"] * 2 + ["severe"] * 2
    assert len({t.key for t in plan.trials}) == len(plan.trials)
    assert [t.key for t in build_plan(spec).trials] == [t.key for t in plan.trials]


def test_sample_seed_changes_the_draws_only():
    def draws(seed: int) -> list[float]:
        spec = SweepSpec(random=(parse_random("stim.peroneal.extension_ms=0.0:200.0"),),
                         samples=4, sample_seed=seed)
        return [t.params["stim.peroneal.extension_ms"] for t in build_plan(spec).trials]

    assert draws(0) == draws(0)
    assert draws(0) != draws(1)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (SweepSpec(grid=(parse_grid("stim.peroneal.amplitude=30,40"),)),
         "stim.peroneal.amplitude: unknown field"),
        (SweepSpec(grid=(parse_grid("stim.peroneal.amplitude_ma=30,80"),)),
         "80 exceeds safety.max_amplitude_ma"),
        (SweepSpec(grid=(parse_grid("loop.duration_s=5,-1"),)), "loop.duration_s"),
        (SweepSpec(patients=("moderate", "nobody")), "patient 'nobody'"),
        (SweepSpec(grid=(parse_grid("stim.peroneal.amplitude_ma=30,30.0"),)), "same config"),
        (SweepSpec(grid=(parse_grid("sim.seed=1,2"),), seeds=3), "--seeds or --grid"),
        (SweepSpec(random=(parse_random("loop.duration_s=1:2"),)), "needs --samples"),
        # the simulated patient has no foot gyroscope: the foot's detector would read
        # the shank's signal and score it as a foot's detection
        (SweepSpec(grid=(parse_grid("detector.placement=shank,foot"),)),
         "detector.placement: 'foot', but the simulated patient wears its gyroscope on the "
         "shank"),
    ],
)
def test_bad_sweeps_are_named_before_running(spec, expected):
    with pytest.raises(ConfigError) as err:
        build_plan(spec)
    assert any(expected in p for p in err.value.problems)


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        ("detector.gyro.foot.toe_off_rise_fraction=0.5,0.7,0.9", "detector.placement = shank"),
        ("detector.heel.switch.debounce_ms=5,10", "detector.sensor = gyro"),
        ("detector.fused.merge_window_ms=100,200", "detector.sensor = gyro"),
        ("stim.peroneal.lead_ms=0,100,200", "stim.peroneal.trigger = pre_swing"),
        ("stim.prediction.history_strides=3,5",
         "no channel's trigger or stop is predicted_toe_off"),
        ("stim.training.on_ms=1000,2000", "stim.mode = walking"),
    ],
)
def test_a_key_no_trial_reads_is_refused(grid, expected):
    """A sweep of a setting the trials never read (the foot's thresholds while the
    gyroscope is on the shank, the lead of a predicted toe off while trains start at
    pre-swing) ran every value, got the same trial each time and ranked them 1, 2, 3
    as if the first value were best."""
    with pytest.raises(ConfigError) as err:
        build_plan(SweepSpec(grid=(parse_grid(grid),)))
    key = grid.partition("=")[0]
    assert any(p.startswith(f"{key}: no trial reads it ({expected})")
               for p in err.value.problems), err.value.problems


@pytest.mark.parametrize(
    ("grids", "fixed"),
    [
        (("detector.heel.force.contact_force_n=10,20", "detector.heel_input=switch,force"),
         {"detector.sensor": "fused"}),
        (("detector.heel.force.contact_force_n=10,20",),
         {"detector.sensor": "heel", "detector.heel_input": "force"}),
        # a train that stops at the predicted toe off reads the prediction too
        (("stim.prediction.history_strides=3,5",),
         {"stim.peroneal.stop": "predicted_toe_off"}),
        (("stim.peroneal.lead_ms=0,100", "stim.prediction.history_strides=3,5"),
         {"stim.peroneal.trigger": "predicted_toe_off"}),
        (("detector.heel.force.contact_force_n=10,20",),
         {"detector.sensor": "fused", "detector.heel_input": "force"}),
    ],
)
def test_a_key_some_trial_reads_is_swept(grids, fixed):
    plan = build_plan(SweepSpec(grid=tuple(parse_grid(g) for g in grids), fixed=fixed))
    assert len({t.key for t in plan.trials}) == len(plan.trials)


def test_what_the_base_config_sets_and_no_trial_reads_is_named(tmp_path):
    """fes sweep --config tune.toml, a file tuning the foot's detector and a lead_ms: no
    trial read either and nothing said so (fes sim and check-config now say it too)."""
    path = tmp_path / "tune.toml"
    path.write_text("[detector.gyro.foot]\ntoe_off_rise_fraction = 0.6\n"
                    "[stim.peroneal]\nlead_ms = 50\n")
    plan = build_plan(SweepSpec(base_config=path,
                                grid=(parse_grid("stim.peroneal.amplitude_ma=30,35"),)))
    assert plan.unread == (
        "detector.gyro.foot.toe_off_rise_fraction = 0.6 (detector.placement = shank)",
        "stim.peroneal.lead_ms = 50 (stim.peroneal.trigger = pre_swing)")
    # a trial that reads it (the trigger swept) takes it off the list
    plan = build_plan(SweepSpec(base_config=path, grid=(
        parse_grid("stim.peroneal.trigger=pre_swing,predicted_toe_off"),)))
    assert plan.unread == (
        "detector.gyro.foot.toe_off_rise_fraction = 0.6 (detector.placement = shank)",)


def test_a_channel_the_base_config_lacks_is_named(tmp_path):
    """--grid stim.channels.calf.amplitude_ma=20,30 without a calf channel in the base
    config said only 'stim.channels.calf.channel: output 0 is already used by
    stim.peroneal': the sweep had made a new channel of default settings."""
    with pytest.raises(ConfigError) as err:
        build_plan(SweepSpec(grid=(parse_grid("stim.channels.calf.amplitude_ma=20,30"),)))
    assert err.value.problems == [
        "stim.channels.calf.amplitude_ma: the base config has no channel 'calf' (its "
        "channels under stim.channels: none); a sweep varies a channel's settings, it does "
        "not add one: define the channel in --config ([stim.channels.calf], or stim.preset "
        "= \"peroneal_calf\" for a calf channel)"]
    path = tmp_path / "calf.toml"
    path.write_text('[stim]\npreset = "peroneal_calf"\n')
    plan = build_plan(SweepSpec(base_config=path, grid=(
        parse_grid("stim.channels.calf.amplitude_ma=20,30"),)))
    assert [t.params["stim.channels.calf.amplitude_ma"] for t in plan.trials] == [20, 30]


def test_a_key_some_trials_do_not_read_is_named(tmp_path):
    """--grid detector.sensor=gyro,heel --grid detector.gyro.shank.pre_swing_fraction=0.3,0.5:
    the heel trials do not read the gyroscope's table, so their two values gave the same
    trial twice, ranked as two settings; nothing said so."""
    plan = build_plan(SweepSpec(grid=(
        parse_grid("detector.sensor=gyro,heel"),
        parse_grid("detector.gyro.shank.pre_swing_fraction=0.3,0.5"))))
    assert plan.partly_read == (
        "detector.gyro.shank.pre_swing_fraction is not read by 2 of 4 trials (those with "
        "detector.sensor = heel): there its values give the same trial, run and ranked as "
        "separate settings",)
    plan = build_plan(SweepSpec(grid=(
        parse_grid("detector.gyro.shank.pre_swing_fraction=0.3,0.5"),)))
    assert plan.partly_read == ()


def test_a_swept_channel_with_no_simulated_muscle_is_noted(tmp_path, capsys):
    """Sweeping the calf amplitude ranked its settings by plan order (every walk figure
    tied: the simulated limb has no calf muscle) without a word."""
    from controller.cli import main

    config = tmp_path / "calf.toml"
    config.write_text('stim.preset = "peroneal_calf"\n')
    assert main(["sweep", "--config", str(config), "--grid",
                 "stim.channels.calf.amplitude_ma=20,40", "--duration-s", "2", "--dry-run",
                 "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert ("fes sweep: note: stim.channels.calf (output 1) drives no simulated muscle" in err
            and "swept here: stim.channels.calf.amplitude_ma: every walk figure ties" in err)
