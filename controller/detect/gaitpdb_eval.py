"""The heel detectors (force sensor and switch) on PhysioNet gaitpdb walks, per group
of walkers.

gaitpdb (Yogev et al. 2005, Hausdorff et al. 2007, Frenkel-Toledo et al. 2005;
PhysioNet, Goldberger et al. 2000) holds force-insole walks of people with Parkinson's
disease (``Pt``) and of controls (``Co``) from three studies (``Ga``, ``Ju``, ``Si``).
The heel sensor (L1/R1) is the detector's input; the reference is contact from the
same insole's total force (``controller.detect.datasets``): not independent of the
heel sensor, but what the dataset offers.

No heel switch was recorded. A foot switch is a pressure-sensitive contact that closes
at a force, so the heel force read at or above a closing force (``as_switch``) stands in
for a switch under the same spot: the detector with ``heel_input = "switch"`` reads it
as 0/1, the reference is unchanged. What it leaves out: a switch's own area and foam
(it may close at a different force than the insole sensor reads there) and its bounce.

One setting is chosen here, per kind of heel sensor, on the walkers of
``CALIBRATION_STUDY`` only: the stance fraction at which toe off is dated
(``toe_off_stance_fraction``, ``STANCE_GRID``). The rows give the shipped configuration
on the calibration study and, apart, on the walkers of the other studies (never used to
choose it), per group: controls, PD, and PD by Hoehn & Yahr stage where
``demographics.txt`` (PhysioNet's, tab-separated) or ``demographics.csv`` lies beside
the walks.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from controller.detect.config import DetectorConfig
from controller.detect.datasets import Recording, load_gaitpdb
from controller.detect.detector import detect_batch
from controller.detect.heel import HeelInput
from controller.detect.score import Scorer, pooled
from controller.detect.scoredrows import Row, cost, summarise, walker_scores
from controller.events import DetectedEvent

#: The study the toe-off stance fraction is chosen on; the others are scored unseen.
CALIBRATION_STUDY = "Ga"
#: Stance fractions searched (0: the old rule, a delay after heel off).
STANCE_GRID = (0.0, 0.60, 0.62, 0.64, 0.65, 0.66, 0.67, 0.68, 0.70)
#: Closing forces of the heel switch made from the heel force (N): 20 N, the force
#: detector's contact force and the reference's, unless the caller asks for others.
SWITCH_CLOSING_N = (20.0,)
#: The largest closing force accepted, as for the force detector's contact_force_n.
MAX_CLOSING_N = 2000.0
FORCE_LABEL = "heel force sensor (L1/R1), shipped"


def subject(rec: Recording) -> str:
    """The subject code of a gaitpdb recording (``GaPt03``), from its file name."""
    return rec.walker.removeprefix("gaitpdb ")


def hoehn_yahr(folder: Path) -> dict[str, str]:
    """Subject code -> Hoehn & Yahr stage (``2``, ``2.5``, ``3``) of the PD walkers,
    from the demographics table beside the walks (empty without one)."""
    for name, delimiter in (("demographics.txt", "\t"), ("demographics.csv", ",")):
        path = folder / name
        if path.is_file():
            with path.open(encoding="utf-8-sig", newline="") as handle:
                rows = list(csv.DictReader(handle, delimiter=delimiter))
            return {row["ID"]: f"{float(row['HoehnYahr']):g}" for row in rows
                    if row.get("ID") and _stage(row.get("HoehnYahr"))}
    return {}


def _stage(value: str | None) -> bool:
    try:
        return value is not None and float(value) > 0.0
    except ValueError:
        return False


def _events(recordings: Sequence[Recording], config: DetectorConfig) -> list[
    list[DetectedEvent]
]:
    setup = config.setup()
    return [detect_batch(setup, rec.t_s, None, rec.heel_force_n)[1] for rec in recordings]


def switch_label(closing_n: float) -> str:
    """The configuration column of the switch rows at ``closing_n`` newtons."""
    return f"heel switch (L1/R1 at or above {closing_n:g} N), shipped"


def as_switch(recordings: Sequence[Recording], closing_n: float) -> list[Recording]:
    """``recordings`` with the heel force turned into a switch closed (1) at or above
    ``closing_n`` newtons and open (0) below; missing samples stay missing."""
    switched = []
    for rec in recordings:
        assert rec.heel_force_n is not None
        closed = np.where(np.isnan(rec.heel_force_n), np.nan,
                          (rec.heel_force_n >= closing_n).astype(float))
        switched.append(dataclasses.replace(rec, heel_force_n=closed))
    return switched


def _with_stance(config: DetectorConfig, fraction: float) -> DetectorConfig:
    """``config`` with the toe-off stance fraction of its heel sensor set to ``fraction``."""
    chosen = config.heel_config().model_copy(update={"toe_off_stance_fraction": fraction})
    heel = config.heel.model_copy(update={config.heel_input: chosen})
    return config.model_copy(update={"heel": heel})


def choose_stance_fraction(
    recordings: Sequence[Recording], config: DetectorConfig, tolerance_s: float
) -> float:
    """The ``STANCE_GRID`` value that scores best (``cost``) on ``recordings``."""
    def score(fraction: float) -> float:
        detected = _events(recordings, _with_stance(config, fraction))
        return cost(pooled(walker_scores(recordings, detected, "window", tolerance_s)
                           .values()))

    return min(STANCE_GRID, key=score)


Member = Callable[[str], bool]


def _is_group(code: str) -> Member:
    return lambda name: name[2:4] == code


def _at_stage(stages: dict[str, str], stage: str) -> Member:
    return lambda name: stages.get(name) == stage


def _groups(stages: dict[str, str]) -> list[tuple[str, Member]]:
    """Controls, PD, and PD per Hoehn & Yahr stage: a name and who belongs."""
    groups = [("controls", _is_group("Co")), ("PD", _is_group("Pt"))]
    groups += [(f"PD, Hoehn & Yahr {stage}", _at_stage(stages, stage))
               for stage in sorted(set(stages.values()), key=float)]
    return groups


def gaitpdb_rows(
    folder: Path, config: DetectorConfig, tolerance_s: float, notes: list[str],
    switch_closing_n: Sequence[float] = SWITCH_CLOSING_N,
) -> list[Row]:
    """Rows of the shipped heel detectors on every walk in ``folder``: the force sensor,
    then a switch made from it at each of ``switch_closing_n`` newtons; each the
    calibration study, then the other studies per group. A note per sensor says which
    stance fraction the calibration study chooses."""
    recordings = load_gaitpdb(folder)
    stages = hoehn_yahr(folder)
    rows = _sensor_rows(recordings, _heel(config, "force"), FORCE_LABEL, stages,
                        tolerance_s, notes)
    for closing_n in switch_closing_n:
        rows += _sensor_rows(as_switch(recordings, closing_n), _heel(config, "switch"),
                             switch_label(closing_n), stages, tolerance_s, notes)
    return rows


def _heel(config: DetectorConfig, heel_input: HeelInput) -> DetectorConfig:
    return config.model_copy(update={"sensor": "heel", "heel_input": heel_input})


def _sensor_rows(
    recordings: Sequence[Recording], config: DetectorConfig, label: str,
    stages: dict[str, str], tolerance_s: float, notes: list[str],
) -> list[Row]:
    """The per-group rows of one heel sensor (``label``) read by ``config``."""
    detected = _events(recordings, config)
    scores = walker_scores(recordings, detected, "window", tolerance_s)
    by_subject = {subject(rec): scores[rec.walker] for rec in recordings}
    calibration = [rec for rec in recordings if _in_calibration(subject(rec))]
    rows = []
    if calibration:
        chosen = choose_stance_fraction(calibration, config, tolerance_s)
        shipped = config.heel_config().toe_off_stance_fraction
        notes.append(f"gaitpdb, {label.removesuffix(', shipped')}: toe-off stance fraction "
                     f"chosen on the {CALIBRATION_STUDY} study: {chosen:g} "
                     f"(shipped {shipped:g})")
        rows.append(_row(label, f"{CALIBRATION_STUDY} study (calibration)", by_subject,
                         _in_calibration, len(calibration)))
    unseen = [rec for rec in recordings if not _in_calibration(subject(rec))]
    for group, member in _groups(stages):
        names = {subject(rec) for rec in unseen if member(subject(rec))}
        feet = sum(1 for rec in unseen if subject(rec) in names)
        rows.append(_row(label, f"other studies (unseen), {group}", by_subject,
                         names.__contains__, feet))
    return [row for row in rows if row.summary]


def _in_calibration(name: str) -> bool:
    return name.startswith(CALIBRATION_STUDY)


def _row(
    label: str, scored: str, by_subject: dict[str, Scorer], member: Member, feet: int
) -> Row:
    """The pooled figures of the walkers ``member`` admits (empty summary: none)."""
    walkers = [scorer for name, scorer in by_subject.items() if member(name)]
    dataset = (f"PhysioNet gaitpdb insole ({len(walkers)} walker{'s' * (len(walkers) != 1)}, "
               f"{feet} f{'ee' if feet != 1 else 'oo'}t)")
    return Row(dataset, label, scored, summarise(walkers) if walkers else {})
