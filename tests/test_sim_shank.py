"""The heel-strike measurements of ``sim.shank`` and ``controller.bench.shank`` on signals
with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from controller.bench.shank import heel_impact_s
from controller.detect.gyro import SHANK
from sim.shank import (
    RISE_RAD_S,
    SMOOTHING_S,
    first_minimum_s,
    simulated_strides,
    stride_figures,
)

RATE_HZ = 100.0


def test_the_rule_is_the_shank_detectors():
    # The figure is the detector's heel-strike error on a real shank only if the rule is
    # the detector's.
    assert SHANK.smoothing_ms / 1000.0 == SMOOTHING_S
    assert SHANK.heel_strike_rise_rad_s == RISE_RAD_S


def foot_landing(impact_s: float) -> tuple[np.ndarray, np.ndarray]:
    """A foot that swings (peak at 0.3 s), slows and turns slowly toe down in terminal
    swing with the shank, then is jolted toe down by the floor at ``impact_s`` and is flat
    100 ms later."""
    t = np.arange(0.0, 1.0, 1.0 / RATE_HZ)
    foot = 4.0 * np.exp(-0.5 * ((t - 0.3) / 0.08) ** 2) - 0.8 * (t > 0.45) * (t < impact_s)
    foot = foot - 3.5 * ((t >= impact_s) & (t < impact_s + 0.1))
    return t, foot


@pytest.mark.parametrize("impact_s", [0.505, 0.555, 0.605])
def test_the_heel_impact_is_the_foots_toe_down_jolt(impact_s):
    t, foot = foot_landing(impact_s)
    # The pressure sensors see contact 65 ms later; the slow toe-down turn of terminal
    # swing before it is not the impact.
    found = heel_impact_s(t, foot, 0.1, impact_s + 0.065)
    assert found == pytest.approx(impact_s, abs=0.5 / RATE_HZ + 1e-9)


def test_no_jolt_no_impact():
    t = np.arange(0.0, 1.0, 1.0 / RATE_HZ)
    smooth = 4.0 * np.sin(2.0 * np.pi * t)  # at most 0.25 rad/s per sample
    assert heel_impact_s(t, smooth, 0.0, 0.7) is None


def test_the_first_confirmed_minimum_not_the_deepest():
    # Two dips after the swing: the first, confirmed by a rise, is the detector's heel
    # strike even though the second is deeper.
    t = np.arange(0.0, 1.0, 1.0 / RATE_HZ)
    shank = -2.0 * np.exp(-0.5 * ((t - 0.4) / 0.02) ** 2) - 2.5 * np.exp(
        -0.5 * ((t - 0.55) / 0.02) ** 2)
    assert first_minimum_s(t, shank, 0, 0.9) == pytest.approx(0.4)


def test_stride_figures_of_a_shank_with_known_landing():
    # Swing peak at 0.6 s; from 0.7 s a straight fall through zero at contact (0.8 s) to
    # -2 rad/s at 0.845 s, back to -1 rad/s by 0.9 s and flat; stance at -1 rad/s.
    t = np.arange(0.0, 1.4, 1.0 / RATE_HZ)
    shank = np.interp(t, [0.0, 0.45, 0.46, 0.6, 0.7, 0.8, 0.845, 0.9, 1.4],
                      [-1.0, -1.0, 0.0, 5.0, 2.0, 0.0, -2.0, -1.0, -1.0])
    zero_ms, minimum_ms, _, stance, peak = stride_figures(t, shank, 0.0, 0.45, 0.8)
    assert abs(zero_ms) <= 1e3 / RATE_HZ
    assert minimum_ms == pytest.approx(45.0, abs=1e3 / RATE_HZ)
    assert stance == pytest.approx(-1.0)
    assert peak == pytest.approx(5.0)
    # The depth is read after the stride's own contact: the 50 ms average of the dip.
    depth = stride_figures(t, shank, 0.8, 1.0, 1.3)[2]
    assert -2.0 < depth < -1.5


def test_the_simulated_shank_dates_heel_strike_as_real_shanks_do():
    # Real shanks (Marpino walkers, contact from the heel's impact): the shank detector's
    # heel-strike minimum comes 25 to 62 ms after contact (quartiles). The zero crossing
    # (-22 to +15 ms on real shanks) is a known limit here (sim.references).
    figures = simulated_strides("healthy").figures
    assert 25.0 < np.median(figures[:, 2]) < 62.0
    assert np.median(figures[:, 1]) < -22.0
