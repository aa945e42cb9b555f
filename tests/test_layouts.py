"""Every packed parameter array of every kernel has every slot filled.

Kernels read their parameters from float64 arrays whose slots each module declares once
(a tuple of names unpacked from ``range``); the arrays are built by
``controller.kernels.pack`` from a table of name and value, started from NaN. Here every
layout is built for every shipped patient profile, stimulation preset, mode, detector
and heel input, and no slot may still be NaN: a slot added to a layout without a value
in its table, or a table entry that fills the wrong slot's neighbour, shows up as NaN.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from controller.config import load_config
from controller.detect import fused, gyro, heel
from controller.detect.config import DetectorConfig, build_detector
from controller.kernels import pack
from controller.resources import available
from controller.stim import envelope, prediction, schedule, timed, walking
from controller.stim.scheduler import StimScheduler
from sim import ankle, muscle, sensors, voluntary
from sim.limb import N_PARAMS as LIMB_PARAMS
from sim.limb import SimulatedLimb
from sim.patient import load_patient

PROFILES = available("patients")
PRESETS = [None, *available("stim")]
MODES = ("walking", "training", "test")
SENSORS = ("gyro", "heel", "fused")
HEEL_INPUTS = ("switch", "force")
PLACEMENTS = ("shank", "foot")


def _unfilled(array: np.ndarray) -> list[int]:
    return np.flatnonzero(np.isnan(np.asarray(array, dtype=float).ravel())).tolist()


def test_pack_refuses_a_forgotten_slot_and_a_value_without_one():
    assert pack(("a_s", "b_hz"), {"b_hz": 2.0, "a_s": 1.0}).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"no value for \['b_hz'\]"):
        pack(("a_s", "b_hz"), {"a_s": 1.0})
    with pytest.raises(ValueError, match=r"no slot for \['c'\]"):
        pack(("a_s",), {"a_s": 1.0, "c": 3.0})


@pytest.mark.parametrize("profile_name", PROFILES)
def test_every_slot_of_the_simulated_patient_is_filled(profile_name):
    profile = load_patient(profile_name)
    for rate_hz in (100.0, 500.0, 1000.0):
        step_s = 1.0 / rate_hz / 4
        built = {
            "sensors": (sensors.make_params(profile, 1.0 / rate_hz), sensors.N_PARAMS),
            "muscle": (muscle.make_params(profile, step_s), muscle.N_PARAMS),
            "ankle": (ankle.make_params(profile, step_s), ankle.N_PARAMS),
            "voluntary": (voluntary.make_params(profile, step_s), voluntary.N_PARAMS),
            "limb": (SimulatedLimb(profile, rate_hz, 1.0, seed=0).next_block()[2].params,
                     LIMB_PARAMS),
        }
        for name, (params, size) in built.items():
            assert params.shape == (size,), name
            assert _unfilled(params) == [], f"{profile_name} {name} at {rate_hz:g} Hz"


def test_every_slot_of_every_detector_is_filled():
    for sensor, heel_input, placement in itertools.product(SENSORS, HEEL_INPUTS, PLACEMENTS):
        config = DetectorConfig(sensor=sensor, heel_input=heel_input, placement=placement)
        _, _, params = build_detector(config, 500.0).kernel_arrays
        size = {"gyro": gyro.N_PARAMS, "heel": heel.N_PARAMS, "fused": fused.N_PARAMS}[sensor]
        assert params.shape == (size,), (sensor, heel_input, placement)
        assert _unfilled(params) == [], (sensor, heel_input, placement)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("mode", MODES)
def test_every_slot_of_every_stimulation_row_is_filled(preset, mode):
    stim = {"mode": mode, **({"preset": preset} if preset else {})}
    config = load_config(overrides={"stim": stim}).stim
    params = StimScheduler(config).kernel_arrays[0]
    assert _unfilled(params) == [], (preset, mode)
    row_size = walking.PARAMS_SIZE if mode == "walking" else timed.PARAMS_SIZE
    assert params.shape[1] >= max(row_size, schedule.P_PREDICTION + prediction.PARAMS_SIZE)
    for channel in params[1:]:
        assert channel[envelope.P_FREQUENCY_HZ] > 0.0
