"""The foot-floor angle at initial contact on real walks, and how much it varies.

``python -m controller.bench.landing DATA_DIR`` reads the Voisard et al. 2023 walks in
``DATA_DIR`` (IPOL reference gait data set, foot IMUs, labelled events; a copy is in
``../shared/data/voisard_ipol_healthy_foot_imu``) and prints the foot-floor angle at
each steady initial contact (straight walking, without the first and last step of each
way): the foot's toe-down rotation from the labelled heel strike until it is flat
(``landing_angle_deg``), its per-foot mean and its stride-to-stride standard
deviation, for the ``foot_landing_angle_deg`` and ``foot_landing_angle_sd_deg`` rows of
``python -m sim.validate``.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import numpy as np

from controller.detect.datasets import load_voisard
from controller.events import Event
from sim.recordings import recordings_folder
from sim.turns import VOISARD

#: The foot is flat once it turns slower than this ...
FLAT_RAD_S = 0.3
#: ... for this long.
FLAT_S = 0.03
#: A landing that is not flat within this long is not measured.
MAX_LOWERING_S = 0.3
#: A foot with fewer steady landings than this has no spread to report.
MIN_LANDINGS = 5


def landing_angle_deg(t_s: np.ndarray, toe_down_rad_s: np.ndarray, heel_strike_s: float) -> float:
    """Foot-floor angle at initial contact (deg, toes up): the foot's toe-down rotation
    from ``heel_strike_s`` until it turns slower than ``FLAT_RAD_S`` for ``FLAT_S``; NaN
    if it is not flat within ``MAX_LOWERING_S``."""
    period_s = float(np.median(np.diff(t_s)))
    hold = max(1, round(FLAT_S / period_s))
    start = int(np.searchsorted(t_s, heel_strike_s))
    for end in range(start, min(t_s.size - hold, start + round(MAX_LOWERING_S / period_s))):
        if np.all(np.abs(toe_down_rad_s[end:end + hold]) < FLAT_RAD_S):
            lowering = toe_down_rad_s[start:end + 1]
            return float(np.degrees(np.sum(0.5 * (lowering[1:] + lowering[:-1])) * period_s))
    return math.nan


def landing_angles_deg(folder: Path) -> list[np.ndarray]:
    """Per foot of every walk: the foot-floor angle at each steady initial contact."""
    feet = []
    for recording in load_voisard(folder):
        assert recording.gyro_rad_s is not None
        t, gyro = recording.t_s, recording.gyro_rad_s
        events = recording.reference
        angles = []
        for (toe_off, a), (heel_strike, b) in itertools.pairwise(events):
            if a != Event.TOE_OFF or b != Event.HEEL_STRIKE:
                continue
            if not recording.steady.contains(np.array([heel_strike]))[0]:
                continue
            swing = gyro[(t > toe_off) & (t < heel_strike)]
            toe_down = -np.sign(swing.mean()) * gyro
            angles.append(landing_angle_deg(t, toe_down, heel_strike))
        feet.append(np.array([a for a in angles if not math.isnan(a)]))
    return feet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.bench.landing",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="the Voisard et al. 2023 walks")
    folder = recordings_folder(parser, parser.parse_args(argv).data_dir, "*.json", VOISARD)
    feet = [a for a in landing_angles_deg(folder) if a.size >= MIN_LANDINGS]
    means = np.array([a.mean() for a in feet])
    spreads = np.array([a.std(ddof=1) for a in feet])
    print(f"foot-floor angle at initial contact: {sum(a.size for a in feet)} steady landings "
          f"of {len(feet)} feet; per foot mean {np.median(means):.1f} deg (quartiles "
          f"{np.percentile(means, 25):.1f}-{np.percentile(means, 75):.1f}); stride-to-stride "
          f"SD {np.median(spreads):.2f} deg (quartiles {np.percentile(spreads, 25):.2f}-"
          f"{np.percentile(spreads, 75):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
