"""Synthetic walks in PhysioNet gaitpdb format, written by the tests (never real data).

A row is ``t, L1..L8, R1..R8, total_L, total_R`` at 100 Hz, forces in N, L1/R1 the heel
sensor and L8/R8 the toe. Each foot lands on the heel at heel strike (or, with a weak
heel, puts only ``heel_peak_n`` on it), rolls onto the forefoot, releases the heel
``release_lead`` of the stride before toe off, and leaves the ground at toe off,
``stance`` of the stride after heel strike. The right foot is half a stride behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE_HZ = 100.0
#: PhysioNet's demographics table: the columns the evaluation reads.
DEMOGRAPHICS_HEADER = "ID\tStudy\tGroup\tSubjnum\tGender\tAge\tHoehnYahr\n"


@dataclass(frozen=True)
class Gait:
    """How one walker's feet load the insole."""

    stride_s: float = 1.1
    stance: float = 0.65  # toe off, fraction of the stride after heel strike
    release_lead: float = 0.2  # heel release before toe off, fraction of the stride
    heel_peak_n: float = 300.0
    forefoot_peak_n: float = 400.0


def _ramp(t: np.ndarray, on: float, off: float, peak: float, edge_s: float) -> np.ndarray:
    """A plateau of ``peak`` from ``on`` to ``off`` with linear edges of ``edge_s``."""
    rise = np.clip((t - on) / edge_s, 0.0, 1.0)
    fall = np.clip((off - t) / edge_s, 0.0, 1.0)
    return peak * np.minimum(rise, fall)


def foot_forces(t: np.ndarray, gait: Gait, first_strike_s: float) -> tuple[
    np.ndarray, np.ndarray
]:
    """Heel (L1) and toe (L8) force of one foot over ``t``."""
    heel = np.zeros_like(t)
    toe = np.zeros_like(t)
    strike = first_strike_s
    while strike < t[-1] - gait.stride_s:
        toe_off = strike + gait.stance * gait.stride_s
        release = toe_off - gait.release_lead * gait.stride_s
        heel += _ramp(t, strike, release, gait.heel_peak_n, 0.04)
        toe += _ramp(t, strike + 0.15 * gait.stride_s, toe_off, gait.forefoot_peak_n, 0.05)
        strike += gait.stride_s
    return heel, toe


def write_walk(path: Path, gait: Gait, duration_s: float = 40.0) -> Path:
    """A gaitpdb file of ``gait`` on both feet (standing still for the first second)."""
    t = np.arange(0.0, duration_s, 1.0 / RATE_HZ)
    columns = np.zeros((t.size, 19))
    columns[:, 0] = t
    for foot, start in ((0, 1.0), (1, 1.0 + gait.stride_s / 2)):
        heel, toe = foot_forces(t, gait, start)
        columns[:, 1 + 8 * foot] = heel
        columns[:, 8 + 8 * foot] = toe
        columns[:, 17 + foot] = heel + toe
    np.savetxt(path, columns, fmt="%.2f", delimiter="\t")
    return path


def write_demographics(folder: Path, stages: dict[str, float]) -> None:
    """``demographics.txt`` giving each PD subject (``GaPt03``...) its Hoehn & Yahr
    stage; controls are listed with none, as PhysioNet lists them."""
    lines = [DEMOGRAPHICS_HEADER]
    for subject, stage in stages.items():
        group = 1 if subject[2:4] == "Pt" else 2
        lines.append(f"{subject}\t{subject[:2]}\t{group}\t{int(subject[4:])}\t1\t66\t"
                     f"{stage if stage else 'NaN'}\n")
    (folder / "demographics.txt").write_text("".join(lines))
