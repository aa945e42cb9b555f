"""The heel force detector on PhysioNet gaitpdb walks, per group of walkers.

gaitpdb (Yogev et al. 2005, Hausdorff et al. 2007, Frenkel-Toledo et al. 2005;
PhysioNet, Goldberger et al. 2000) holds force-insole walks of people with Parkinson's
disease (``Pt``) and of controls (``Co``) from three studies (``Ga``, ``Ju``, ``Si``).
The heel sensor (L1/R1) is the detector's input; the reference is contact from the
same insole's total force (``controller.detect.datasets``): not independent of the
heel sensor, but what the dataset offers.

One setting is chosen here, on the walkers of ``CALIBRATION_STUDY`` only: the stance
fraction at which toe off is dated (``toe_off_stance_fraction``, ``STANCE_GRID``). The
rows give the shipped configuration on the calibration study and, apart, on the
walkers of the other studies (never used to choose it), per group: controls, PD, and
PD by Hoehn & Yahr stage where ``demographics.txt`` (PhysioNet's, tab-separated) or
``demographics.csv`` lies beside the walks.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

from controller.detect.config import DetectorConfig
from controller.detect.datasets import Recording, load_gaitpdb
from controller.detect.detector import detect_batch
from controller.detect.score import Scorer, pooled
from controller.detect.scoredrows import Row, cost, summarise, walker_scores
from controller.events import DetectedEvent

#: The study the toe-off stance fraction is chosen on; the others are scored unseen.
CALIBRATION_STUDY = "Ga"
#: Stance fractions searched (0: the old rule, a delay after heel off).
STANCE_GRID = (0.0, 0.60, 0.62, 0.64, 0.65, 0.66, 0.67, 0.68, 0.70)
LABEL = "heel force sensor (L1/R1), shipped"


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


def _with_stance(config: DetectorConfig, fraction: float) -> DetectorConfig:
    heel = config.heel.model_copy(update={"force": config.heel.force.model_copy(
        update={"toe_off_stance_fraction": fraction})})
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
    folder: Path, config: DetectorConfig, tolerance_s: float, notes: list[str]
) -> list[Row]:
    """Rows of the shipped heel force detector on every walk in ``folder``: the
    calibration study, then the other studies per group; a note says which stance
    fraction the calibration study chooses."""
    config = config.model_copy(update={"sensor": "heel", "heel_input": "force"})
    recordings = load_gaitpdb(folder)
    stages = hoehn_yahr(folder)
    detected = _events(recordings, config)
    scores = walker_scores(recordings, detected, "window", tolerance_s)
    by_subject = {subject(rec): scores[rec.walker] for rec in recordings}
    calibration = [rec for rec in recordings if _in_calibration(subject(rec))]
    rows = []
    if calibration:
        chosen = choose_stance_fraction(calibration, config, tolerance_s)
        shipped = config.heel.force.toe_off_stance_fraction
        notes.append(f"gaitpdb: toe-off stance fraction chosen on the {CALIBRATION_STUDY} "
                     f"study: {chosen:g} (shipped {shipped:g})")
        rows.append(_row(f"{CALIBRATION_STUDY} study (calibration)", by_subject,
                         _in_calibration, len(calibration)))
    unseen = [rec for rec in recordings if not _in_calibration(subject(rec))]
    for group, member in _groups(stages):
        names = {subject(rec) for rec in unseen if member(subject(rec))}
        feet = sum(1 for rec in unseen if subject(rec) in names)
        rows.append(_row(f"other studies (unseen), {group}", by_subject,
                         names.__contains__, feet))
    return [row for row in rows if row.summary]


def _in_calibration(name: str) -> bool:
    return name.startswith(CALIBRATION_STUDY)


def _row(scored: str, by_subject: dict[str, Scorer], member: Member, feet: int) -> Row:
    """The pooled figures of the walkers ``member`` admits (empty summary: none)."""
    walkers = [scorer for name, scorer in by_subject.items() if member(name)]
    dataset = (f"PhysioNet gaitpdb insole ({len(walkers)} walker{'s' * (len(walkers) != 1)}, "
               f"{feet} f{'ee' if feet != 1 else 'oo'}t)")
    return Row(dataset, LABEL, scored, summarise(walkers) if walkers else {})
