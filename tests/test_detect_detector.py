"""The common detector interface: the loop's per-sample API and the batch API run the
same kernel and agree sample by sample; every detector is causal; the trial config
builds the detector it names."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.detect_signals import simulated_walk
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import load_config
from controller.detect.config import DetectorConfig, build_detector
from controller.detect.detector import GaitDetector, detect_batch
from controller.detect.gyro import SHANK
from controller.events import DetectedEvent, Phase
from controller.ports import Sample

CONFIGS = {
    "gyro": DetectorConfig(),
    "heel switch": DetectorConfig(sensor="heel"),
    "heel force": DetectorConfig(sensor="heel", heel_input="force"),
    "fused": DetectorConfig(sensor="fused"),
}
ANY_CONFIG = {**CONFIGS, "gyro foot": DetectorConfig(placement="foot")}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_per_sample_process_equals_batch(name):
    config = CONFIGS[name]
    rate_hz = 200.0
    walk = simulated_walk("moderate", 20.0, 61, rate_hz)
    gyro = walk.gyro_rad_s.copy()
    gyro[int(4.0 * rate_hz): int(4.6 * rate_hz)] = np.nan  # dropouts
    force = walk.heel_force_n.copy()
    force[int(8.0 * rate_hz): int(8.6 * rate_hz)] = np.nan
    samples = [
        Sample(float(t), float(g), int(s), float(f))
        for t, g, s, f in zip(walk.t_s, gyro, walk.heel_switch, force, strict=True)
    ]
    heel = walk.heel_switch if config.heel_input == "switch" else force
    phases, events = detect_batch(config.setup(), walk.t_s, gyro, heel)
    detector = build_detector(config, rate_hz)
    assert detector.phase == Phase.UNKNOWN
    step_phases, step_events = [], []
    for sample in samples:
        phase, new = detector.process(sample)
        assert isinstance(phase, Phase) and detector.phase == phase
        step_phases.append(phase)
        step_events += new
    assert np.array_equal(np.array(step_phases, dtype=np.int8), phases)
    assert step_events == events
    assert len(events) > 20
    detector.reset()
    assert detector.phase == Phase.UNKNOWN


finite_or_missing = st.one_of(
    st.floats(-40.0, 40.0, allow_nan=False), st.just(float("nan"))
)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(list(ANY_CONFIG)),
    gyro=st.lists(finite_or_missing, min_size=1, max_size=300),
    heel=st.lists(st.one_of(st.sampled_from([0.0, 1.0, 5.0, 400.0]), st.just(float("nan"))),
                  min_size=300, max_size=300),
    period_ms=st.sampled_from([1.0, 2.0, 10.0]),
)
def test_any_input_gives_causal_events_and_valid_phases(kind, gyro, heel, period_ms):
    """Whatever the sensors say, no event is dated after the sample that reports it,
    every phase is a Phase, and per-sample equals batch."""
    n = len(gyro)
    t = np.arange(n) * period_ms / 1000.0
    g = np.array(gyro)
    h = np.array(heel[:n])
    setup = ANY_CONFIG[kind].setup()
    phases, events = detect_batch(setup, t, g, h)
    assert set(np.unique(phases)) <= {int(p) for p in Phase}
    assert all(e.t_est_s <= e.t_known_s + 1e-12 for e in events)
    detector = GaitDetector(setup, 1000.0 / period_ms)
    stepped: list[DetectedEvent] = []
    for k in range(n):
        phase, new = detector.step(float(t[k]), float(g[k]), float(h[k]))
        assert phase == phases[k]
        stepped += new
    assert stepped == events


def test_trial_config_chooses_the_detector(tmp_path):
    path = tmp_path / "trial.toml"
    path.write_text('[detector]\nsensor = "fused"\nplacement = "foot"\n'
                    '[detector.gyro.foot]\ntoe_off_rise_fraction = 0.5\n')
    config = load_config(path).detector
    assert config.sensor == "fused"
    assert config.gyro_config().toe_off_rise_fraction == 0.5
    assert config.gyro.shank == SHANK  # the shank's is untouched
    assert build_detector(config, 500.0).setup.name == "fused"


def test_too_slow_a_rate_is_refused():
    with pytest.raises(ValueError, match="unknown_after_missing_ms"):
        build_detector(DetectorConfig(sensor="heel"), 10.0)
