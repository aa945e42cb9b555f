"""When a heel force sensor releases, measured on real insoles and on the simulator.

``python -m controller.bench.heelforce DATA_DIR`` reads the PhysioNet gaitpdb walks in
``DATA_DIR`` (Ultraflex force insoles, 100 Hz; heel sensor L1/R1, heel strike and toe off from each
foot's total force, as ``python -m controller.detect.evaluate`` scores them; a copy of
one control's walk is in ``../shared/data/``). For every stride it finds where the heel
sensor, after its stance peak, first reads below the heel force detector's release level
(``release_force_n`` of ``[detector.heel.force]``, 10 N) and where it first reads zero,
and prints their medians: in % of the stride, as a fraction of stance, and the time from
release to toe off in % of the stride (the push-off the detector adds to heel off,
``toe_off_delay_stride_fraction``), one line per foot of each walk, then one line per
group (all controls' strides pooled, all Parkinson's disease walkers'). It prints the same
figures for simulated walks of the shipped profiles (60 s, seed 0, no stimulation). The
group lines on the 165 gaitpdb walkers are the figures behind ``heel_force_tail_n`` and
``heel_force_release_stance_fraction`` of ``configs/patients/healthy.toml``.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from controller.detect.datasets import GAITPDB_WALKS, load_gaitpdb
from controller.detect.heel import HEEL_FORCE
from controller.events import Event
from sim.gait import HEEL_STRIKE, TOE_OFF
from sim.limb import SimulatedLimb
from sim.patient import load_patient
from sim.recordings import recordings_folder

PROFILES = ("healthy", "mild", "moderate", "severe")
SIM_RATE_HZ = 500.0
SIM_DURATION_S = 60.0
#: Figures per stride: release and zero in % of the stride, the same as fractions of
#: stance, toe off in % of the stride, release to toe off in % of the stride.
COLUMNS = ("release_pct", "zero_pct", "release_stance", "zero_stance", "toe_off_pct",
           "release_to_toe_off_pct")


def stride_figures(t_s: np.ndarray, heel_n: np.ndarray, strikes: np.ndarray,
                   toe_offs: np.ndarray, release_n: float) -> np.ndarray:
    """One row of ``COLUMNS`` per stride (heel strike, its toe off, next heel strike)."""
    rows = []
    for start, end in itertools.pairwise(strikes):
        toe_off = toe_offs[(toe_offs > start) & (toe_offs < end)]
        if toe_off.size != 1:
            continue
        inside = np.flatnonzero((t_s >= start) & (t_s < toe_off[0]))
        if inside.size == 0:
            continue
        stance = heel_n[inside]
        after_peak = inside[int(np.argmax(stance)):]
        released = after_peak[heel_n[after_peak] < release_n]
        zero = after_peak[heel_n[after_peak] <= 0.0]
        if released.size == 0 or zero.size == 0:
            continue
        stride_s, stance_s = end - start, toe_off[0] - start
        t_release, t_zero = t_s[released[0]] - start, t_s[zero[0]] - start
        rows.append((100.0 * t_release / stride_s, 100.0 * t_zero / stride_s,
                     t_release / stance_s, t_zero / stance_s, 100.0 * stance_s / stride_s,
                     100.0 * (stance_s - t_release) / stride_s))
    return np.array(rows).reshape(-1, len(COLUMNS))


def real_figures(folder: Path, release_n: float) -> dict[str, np.ndarray]:
    """Per foot of every gaitpdb walk in ``folder``: the rows of ``stride_figures``."""
    figures = {}
    for recording in load_gaitpdb(folder):
        assert recording.heel_force_n is not None
        strikes = np.array([t for t, e in recording.reference if e == Event.HEEL_STRIKE])
        toe_offs = np.array([t for t, e in recording.reference if e == Event.TOE_OFF])
        figures[recording.name] = stride_figures(
            recording.t_s, recording.heel_force_n, strikes, toe_offs, release_n
        )
    return figures


def group_figures(figures: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The strides of ``real_figures`` pooled per group: controls (``Co`` in the walk's
    name) and walkers with Parkinson's disease (``Pt``); a group without feet is left out."""
    groups: dict[str, list[np.ndarray]] = {"controls": [], "Parkinson's disease": []}
    for name, rows in figures.items():
        groups["Parkinson's disease" if name.split()[1][2:4] == "Pt" else "controls"].append(rows)
    return {f"gaitpdb {group}, {len(feet)} feet": np.concatenate(feet)
            for group, feet in groups.items() if feet}


def simulated_figures(name: str, release_n: float, seed: int = 0) -> np.ndarray:
    """The rows of ``stride_figures`` for an unstimulated simulated walk of ``name``."""
    limb = SimulatedLimb(load_patient(name), SIM_RATE_HZ, SIM_DURATION_S, seed)
    samples = limb.run(np.zeros((round(SIM_RATE_HZ * SIM_DURATION_S), 4)))
    strides = limb.schedule.strides
    return stride_figures(samples["time_s"], samples["heel_force_n"],
                          strides[:, HEEL_STRIKE], strides[:, TOE_OFF], release_n)


def describe(name: str, rows: np.ndarray, release_n: float) -> str:
    """One line of medians (and the quartiles of release to toe off)."""
    median = dict(zip(COLUMNS, np.median(rows, axis=0), strict=True))
    q1, q3 = np.percentile(rows[:, -1], [25, 75])
    return (
        f"{name}: {len(rows)} strides; heel below {release_n:g} N at "
        f"{median['release_pct']:.1f} % of the stride ({median['release_stance']:.3f} of "
        f"stance), zero at {median['zero_pct']:.1f} % ({median['zero_stance']:.3f}); toe off "
        f"at {median['toe_off_pct']:.1f} %; release to toe off "
        f"{median['release_to_toe_off_pct']:.1f} % of the stride (quartiles {q1:.1f}-{q3:.1f})"
    )


def gaitpdb_folder(prog: str, description: str | None,
                   argv: Sequence[str] | None) -> Path:
    """The folder of gaitpdb walks a bench's command line names (exit 2, naming what it
    should hold, when it holds none)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data_dir", type=Path, help="folder with gaitpdb *_NN.txt walks")
    return recordings_folder(parser, parser.parse_args(argv).data_dir, GAITPDB_WALKS,
                             f"PhysioNet gaitpdb walks ({GAITPDB_WALKS}, e.g. GaCo01_01.txt)")


def main(argv: list[str] | None = None) -> None:
    """Print the real and the simulated figures."""
    folder = gaitpdb_folder("python -m controller.bench.heelforce", __doc__, argv)
    release_n = HEEL_FORCE.release_force_n
    figures = real_figures(folder, release_n)
    for name, rows in (figures | group_figures(figures)).items():
        print(describe(name, rows, release_n))
    for profile in PROFILES:
        print(describe(f"simulated {profile}", simulated_figures(profile, release_n),
                       release_n))


if __name__ == "__main__":
    main()
