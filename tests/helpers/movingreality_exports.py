"""Synthetic Moving Reality exports (the study's Xsens layout) for the tests of
``evaluate --movingreality`` and ``--foot-reference``: written here, never the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

RATE_HZ = 100.0
COLUMNS = ("PacketCounter", "SampleTimeFine", "Acc_X", "Acc_Y", "Acc_Z", "Gyr_X", "Gyr_Y",
           "Gyr_Z", "Roll", "Pitch", "Yaw")
SPEC = {"leftfoot": "0001.txt", "rightfoot": "0002.txt", "leftshank": "0003.txt",
        "rightshank": "0004.txt", "lumbar": "0005.txt"}


def write_export(path: Path, first_packet: int, gyro: np.ndarray,
                 acc: np.ndarray | None = None) -> None:
    """An MT Manager export: ``//`` lines, a tab-separated header, rows whose
    ``SampleTimeFine`` is left empty, the 16-bit packet counter wrapping at 65536; the
    accelerometer (3, n) reads (0.1, 0.2, 9.8) m/s^2 unless given."""
    lines = ["// General information: ", "//  MT Manager version: 2019.2.0 ",
             "// Coordinate system: ENU", "\t".join(COLUMNS)]
    if acc is None:
        acc = np.tile([[0.1], [0.2], [9.8]], gyro.shape[1])
    for k, ((x, y, z), (ax, ay, az)) in enumerate(zip(gyro.T, acc.T, strict=True)):
        counter = (first_packet + k) % 65536
        lines.append(f"{counter}\t\t{ax:.6f}\t{ay:.6f}\t{az:.6f}\t{x:.6f}\t{y:.6f}\t{z:.6f}"
                     "\t1.0\t2.0\t3.0")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_trial(folder: Path, participant: str, export: str, sensors: dict[str, np.ndarray],
                first_packet: int = 65000, spec_name: str = "sensorspec.json",
                accs: dict[str, np.ndarray] | None = None) -> None:
    """One export folder; the foot files start two packets after the shanks; ``accs``:
    each sensor's accelerometer (3, n), else a constant one."""
    where = folder / participant / "Xsens" / export
    where.mkdir(parents=True)
    (where / spec_name).write_text(json.dumps(SPEC), encoding="utf-8")
    for placement, gyro in sensors.items():
        late = 2 if placement.endswith("foot") else 0
        acc = None if accs is None else accs[placement][:, late:]
        write_export(where / f"MT_012000E0_000-000_00B4{SPEC[placement]}",
                     first_packet + late, gyro[:, late:], acc)
