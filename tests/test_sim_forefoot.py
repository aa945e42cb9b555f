"""The healthy forefoot-lowering speeds behind the foot-slap threshold (real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.forefoot import lowering_peaks_rad_s

#: The shared data folder beside the checkout (``../shared/data``), found from any depth
#: (a worktree sits deeper than the main checkout); absent on a machine without it.
_RELATIVE = Path("shared") / "data" / "voisard_ipol_healthy_foot_imu"
DATA = next(
    (p / _RELATIVE for p in Path(__file__).resolve().parents if (p / _RELATIVE).is_dir()),
    Path("/nonexistent") / _RELATIVE,
)


@pytest.mark.skipif(not DATA.is_dir(), reason="the shared Voisard et al. data is not here")
def test_nineteen_in_twenty_healthy_forefeet_come_down_slower_than_13_rad_s():
    peaks = lowering_peaks_rad_s(DATA)
    assert peaks.size > 600
    assert np.median(peaks) == pytest.approx(6.6, abs=0.1)
    threshold = 13.0  # rad/s
    assert 0.94 < (peaks < threshold).mean() < 0.96
