"""A recorded walk for the live tests: Voisard et al. 2023 (IPOL), healthy subject 13,
left foot IMU (10 m, a U-turn, 10 m back; 20 swings), from the shared data folder
(``../shared/data``, found from this file's parents; tests skip without it)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from controller.config import load_config
from controller.detect.datasets import read_voisard_imu
from controller.detect.detector import detect_batch
from controller.events import Event

_RELATIVE = Path("shared") / "data" / "voisard_ipol_healthy_foot_imu" / "13-1_lf.txt"
WALK = next((p / _RELATIVE for p in Path(__file__).resolve().parents
             if (p / _RELATIVE).is_file()), Path("/nonexistent") / _RELATIVE)
#: The trial config a foot IMU needs, its mounting check off: the live tests are about
#: delivery, one train per swing from the first (the check holds the first strides back).
FOOT = '[detector]\nplacement = "foot"\n[detector.gyro.foot]\nmount_check_strides = 0\n'
#: A line of the ``[safety]`` table an openEMSstim walk needs: the example unit's lowest
#: output (12.9 mA x 300 us = 3.87 uC) is every train's first pulse, a step from off the
#: default 350 uC/s lets no command at 100 samples/s take (3.5 uC); fes run refuses the
#: trial without it (tests/test_onset_step.py, docs/hardware.md).
OPENEMS_RISE = "max_charge_rise_uc_per_s = 400.0\n"


#: Seconds of the walk kept after its last heel strike: the last train ends 200 ms
#: after the detector announces that heel strike (extension and ramp down, 100 ms each),
#: which the foot detector does within 0.25 s of it. The 2.9 s the subject then stood
#: still were replayed in real time by every walk until 7 Dec 2026.
AFTER_LAST_HEEL_STRIKE_S = 1.0


def shortened_walk(path: Path) -> Path:
    """The walk from 1.6 s before its first toe off to ``AFTER_LAST_HEEL_STRIKE_S``
    after its last heel strike (both as the foot configuration finds them offline), as a
    ``fes detect`` CSV: the samples the IMU sent, with the time of each."""
    t_s, gyro, _ = read_voisard_imu(WALK)
    unchecked = {"placement": "foot", "gyro": {"foot": {"mount_check_strides": 0}}}
    setup = load_config(None, {"detector": unchecked}).detector.setup()
    _, events = detect_batch(setup, t_s, gyro, None)
    first_toe_off = next(e.t_est_s for e in events if e.event == Event.TOE_OFF)
    last_heel_strike = max(e.t_est_s for e in events if e.event == Event.HEEL_STRIKE)
    keep = (t_s >= first_toe_off - 1.6) & (t_s <= last_heel_strike + AFTER_LAST_HEEL_STRIKE_S)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["time_s", "gyro_rad_s"])
        out.writerows(zip(np.round(t_s[keep] - t_s[keep][0], 6), gyro[keep], strict=True))
    return path
