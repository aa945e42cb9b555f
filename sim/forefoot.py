"""How fast a healthy forefoot comes down after heel strike, measured on real walks.

``python -m sim.forefoot DATA_DIR`` reads the Voisard et al. 2023 reference set (see
``sim.turns``: healthy adults, Xsens IMU on the dorsum of each foot, 100 Hz, labelled
footsteps from toe off to heel strike). After each labelled heel strike the foot turns
toe down about its heel until the sole is flat (the heel rocker, Perry 1992); the peak
sagittal angular velocity of the foot in the 200 ms after heel strike is that lowering's
speed, and the foot reaches the floor close to it. The toe-down sign is the opposite of
the foot's rotation in mid-swing. The printed percentiles are the healthy range behind
``foot_slap_velocity_rad_s`` in ``configs/patients/healthy.toml``: a forefoot contact
faster than nearly every healthy one (the 95th percentile) is a foot slap. At 100 Hz the
peak is sampled coarsely, so the figures are lower bounds of the true peaks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sim.turns import FEET, RATE_HZ, SAGITTAL_COLUMN, data_folder

#: The lowering is looked for within this long after the labelled heel strike.
WINDOW_S = 0.2


def lowering_peaks_rad_s(folder: Path) -> np.ndarray:
    """Peak toe-down angular velocity (rad/s) after every labelled heel strike."""
    window = round(WINDOW_S * RATE_HZ)
    peaks = []
    for meta_path in sorted(folder.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        for suffix, key in FEET:
            data = np.genfromtxt(folder / f"{meta_path.stem}_{suffix}.txt", skip_header=2)
            gyro = data[:, SAGITTAL_COLUMN]
            for toe_off, heel_strike in meta[key]:
                if not toe_off < heel_strike <= gyro.size - window:
                    continue
                third = (heel_strike - toe_off) // 3
                swing_sign = np.sign(gyro[toe_off + third: heel_strike - third].mean())
                peaks.append(float((-swing_sign * gyro[heel_strike:heel_strike + window]).max()))
    return np.array(peaks)


def main(argv: list[str] | None = None) -> int:
    folder = data_folder("python -m sim.forefoot", __doc__, argv)
    peaks = lowering_peaks_rad_s(folder)
    p25, p50, p75, p90, p95 = np.percentile(peaks, [25, 50, 75, 90, 95])
    print(f"healthy forefoot lowering after heel strike: {peaks.size} footsteps")
    print(f"peak toe-down angular velocity: median {p50:.1f} rad/s, quartiles {p25:.1f}-"
          f"{p75:.1f}, 90th percentile {p90:.1f}, 95th percentile {p95:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
