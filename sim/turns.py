"""How turning changes a foot's sagittal gyro signal, measured on real walks.

``python -m sim.turns DATA_DIR`` reads the Voisard et al. 2023 reference set (IPOL,
healthy adults, Xsens IMU on the dorsum of each foot, 100 Hz; walk 10 m, turn 180 deg,
walk back; a copy of trial 1 of its 19 subjects is in ``../shared/data/``). For every
labelled footstep it takes the peak |sagittal angular velocity| in swing and the swing
and stride durations, and compares the footsteps inside the annotated U-turn with the
median of the same foot's straight footsteps. It prints the figures behind the turn
parameters of ``configs/patients/healthy.toml`` (turn speed fraction, inner/outer
difference, stride time factor). The sensor is on the foot, not the shank: the ratios,
not the absolute values, are carried over to the shank template.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sim.recordings import recordings_folder

SAGITTAL_COLUMN = 5  # Gyr_Y: the foot's medio-lateral axis in this set
YAW_COLUMN = 6  # Gyr_Z
RATE_HZ = 100.0
FEET = (("lf", "LeftFootEvents"), ("rf", "RightFootEvents"))
VOISARD = "the Voisard et al. 2023 trials (<s>-1.json, <s>-1_lf.txt, ...)"


def turn_ratios(folder: Path) -> dict[str, np.ndarray]:
    """Per footstep in a U-turn: swing peak, swing and stride duration over straight."""
    peak, swing, stride, yaw, turn_s = [], [], [], [], []
    for meta_path in sorted(folder.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        turn_start, turn_end = meta["UTurnBoundaries"]
        for suffix, key in FEET:
            data = np.genfromtxt(folder / f"{meta_path.stem}_{suffix}.txt", skip_header=2)
            gyro = data[:, SAGITTAL_COLUMN]
            steps = np.array([(a, b) for a, b in meta[key] if a < b <= gyro.size])
            peaks = np.array([np.abs(gyro[a:b]).max() for a, b in steps])
            swings = (steps[:, 1] - steps[:, 0]) / RATE_HZ
            strides = np.diff(steps[:, 1], prepend=np.nan) / RATE_HZ
            turning = (steps[:, 0] < turn_end) & (steps[:, 1] > turn_start)
            straight = ~turning
            if not turning.any() or straight.sum() < 4:
                continue
            peak += list(peaks[turning] / np.median(peaks[straight]))
            swing += list(swings[turning] / np.median(swings[straight]))
            stride += list(strides[turning] / np.nanmedian(strides[straight]))
            yaw.append(np.abs(data[turn_start:turn_end, YAW_COLUMN]).mean())
        turn_s.append((turn_end - turn_start) / RATE_HZ)
    return {"swing_peak": np.array(peak), "swing_s": np.array(swing),
            "stride_s": np.array(stride)[~np.isnan(stride)], "yaw_rad_s": np.array(yaw),
            "turn_s": np.array(turn_s)}


def data_folder(prog: str, description: str | None, argv: list[str] | None) -> Path:
    """The Voisard et al. folder named on the command line of ``prog`` (exit 2 with a
    message if it is not a folder of its trials)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("data_dir", type=Path,
                        help="folder of the Voisard et al. set (<s>-1.json, <s>-1_lf.txt, ...)")
    return recordings_folder(parser, parser.parse_args(argv).data_dir, "*.json", VOISARD)


def main(argv: list[str] | None = None) -> int:
    folder = data_folder("python -m sim.turns", __doc__, argv)
    ratios = turn_ratios(folder)
    peak = ratios["swing_peak"]
    p10, p25, p50, p75, p90 = np.percentile(peak, [10, 25, 50, 75, 90])
    print(f"footsteps in a 180 deg turn: {peak.size} (subjects: {ratios['turn_s'].size})")
    print(f"swing peak over straight walking: median {p50:.2f}, quartiles {p25:.2f}-{p75:.2f},"
          f" 10th-90th percentile {p10:.2f}-{p90:.2f}")
    print(f"swing duration over straight: median {np.median(ratios['swing_s']):.2f}; "
          f"stride duration: median {np.median(ratios['stride_s']):.2f}")
    print(f"turn duration: median {np.median(ratios['turn_s']):.2f} s, that is "
          f"{np.pi / np.median(ratios['turn_s']):.2f} rad/s of yaw on average")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
