"""The gaitmap foot reference in the evaluation (``evaluate --foot-reference gaitmap``).

* **Calibration** (``--voisard DIR``): the reference (``controller.detect.footref``) on
  the Voisard et al. 2023 foot IMUs, scored against the dataset's own labels: how good a
  reference it is (recall, precision, bias, median and 95th percentile |error|).
* **Walkers after a stroke** (``--movingreality DIR``): each leg's foot through the
  reference, and the shipped detector of the placement asked for (``--placement``: the
  shank of the same leg, or the foot itself, its sagittal axis decided from the data as
  ``evaluate`` decides it; run as ``fes detect`` runs it, nothing chosen) scored against
  it with the project's scoring, in the stretch the reference covers (its first event to
  its last, each widened by the tolerance). Rows: all legs, all but pp03's right leg
  (the weak leg docs/detection.md describes), and that leg alone. On the foot, detector
  and reference read **one sensor**: two independent algorithms on one signal (and the
  reference's frame takes its sign from the project's mounting check), so agreement
  there says less than on the shank.

The reference is offline: its events carry no latency (its "latency" cells read 0), and
a stride the reference itself missed makes a true detection look false.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from controller.detect.datasets import load_voisard, read_voisard_foot
from controller.detect.footref import FootReference, gaitmap_events
from controller.detect.movingreality import foot_sagittal_axis, load_movingreality, worn_sensor
from controller.detect.score import Scorer, ScoringWindow
from controller.detect.scoredrows import Row, shipped_config, summarise, walker_scores
from controller.detect.unreferenced import detector_events, implied_strides
from controller.events import DetectedEvent, Event

#: How the rows name the reference.
REFERENCE = "gaitmap foot reference (Barth DTW + Rampp)"
#: The weak leg reported apart: (walker, side).
WEAK_LEG = ("movingreality pp03", "right")
#: The Voisard windows the calibration is scored in, and their names.
CALIBRATION_WINDOWS = {"window": "whole trial", "steady": "without first/last steps"}


def as_detected(reference: FootReference) -> list[DetectedEvent]:
    """The reference's events as detections (offline: known when they happen)."""
    return [DetectedEvent(kind, t, t) for t, kind in reference.events]


def calibration_rows(folder: Path, tolerance_s: float) -> tuple[list[Row], list[str]]:
    """The reference against the Voisard labels of the trials in ``folder``."""
    config = shipped_config()
    recordings = load_voisard(folder)
    scored, detected, frames, left_out = [], [], Counter[str](), []
    for rec in recordings:
        assert rec.source is not None
        found = gaitmap_events(read_voisard_foot(rec.source, rec.name.split()[-1]), config)
        if isinstance(found, str):
            left_out.append(f"{rec.name}: {found}")
            continue
        scored.append(rec)
        detected.append(as_detected(found))
        frames[found.frame.describe()] += 1
    walkers = len({r.walker for r in recordings})
    name = f"Voisard 2023 foot IMU ({walkers} walkers, {len(recordings)} feet)"
    rows = [
        Row(name, f"{REFERENCE} vs Voisard labels", label,
            summarise(list(walker_scores(scored, detected, window, tolerance_s).values())))
        for window, label in CALIBRATION_WINDOWS.items()
    ]
    notes = [f"{name}: foot sensor frames found: "
             + ", ".join(f"{frame} ({n} f{'ee' if n != 1 else 'oo'}t)"
                        for frame, n in frames.most_common())]
    notes += [f"{name}: no reference for {why}" for why in left_out]
    return rows, notes


def stroke_rows(folder: Path, tolerance_s: float,
                placement: str = "shank") -> tuple[list[Row], list[str]]:
    """The shipped detector of ``placement`` against the gaitmap reference of the same
    leg's foot, on the Moving Reality walkers after a stroke."""
    config = shipped_config().model_copy(update={"placement": placement})
    loaded = load_movingreality(folder)
    axis = foot_sagittal_axis(loaded.legs)[0] if placement == "foot" else None
    groups: dict[str, dict[str, Scorer]] = defaultdict(dict)
    frames, left_out = Counter[str](), []
    # per group: reference heel strikes, strides the feet imply, legs
    coverage: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for leg in loaded.legs:
        worn = worn_sensor(leg, placement, axis)
        found = (gaitmap_events(leg.foot, config) if leg.foot is not None and worn
                 else "the foot file has no accelerometer or gyro columns")
        if isinstance(found, str) or not found.events or worn is None:
            why = found if isinstance(found, str) else "gaitmap found no event"
            named = leg.shank.name if worn is None else worn[0].name
            left_out.append(f"{named}: no reference ({why})")
            continue
        frames[found.frame.describe()] += 1
        times = [t for t, _ in found.events]
        window = ScoringWindow(min(times) - tolerance_s, max(times) + tolerance_s)
        events, _, _ = detector_events(worn[0], config)
        weak = (leg.shank.walker, leg.side) == WEAK_LEG
        implied = implied_strides(leg.shank.t_s, leg.foot_norm_rad_s)[0]
        for group in ("all legs", "pp03 right leg" if weak else "all but pp03 right leg"):
            scorer = groups[group].setdefault(leg.shank.walker, Scorer(tolerance_s))
            scorer.add(sorted(found.events), events, window)
            coverage[group][0] += sum(kind == Event.HEEL_STRIKE for _, kind in found.events)
            coverage[group][1] += implied
            coverage[group][2] += 1
    walkers = len({leg.shank.walker for leg in loaded.legs})
    name = f"Moving Reality stroke, treadmill, {placement} IMU ({walkers} walkers)"
    label = (f"shipped shank vs {REFERENCE} of the same leg's foot" if placement == "shank"
             else f"shipped foot (chosen on Voisard) vs {REFERENCE} of the same foot "
             "(one sensor, two algorithms)")
    rows = [Row(name, label, group, summarise(list(groups[group].values())))
            for group in ("all legs", "all but pp03 right leg", "pp03 right leg")
            if groups[group]]
    notes = [f"{name}: foot sensor frames found: "
             + ", ".join(f"{frame} ({n} leg{'s' * (n != 1)})"
                        for frame, n in frames.most_common())]
    notes += [f"{name}, {group}: {legs:.0f} legs with a reference, {found:.0f} reference "
              f"heel strikes against {implied:.0f} strides their feet imply "
              f"({100 * found / implied:.1f} %)"
              for group, (found, implied, legs) in coverage.items() if implied > 0]
    return rows, notes + [f"Moving Reality: {why}" for why in left_out]
