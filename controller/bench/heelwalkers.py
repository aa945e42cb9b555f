"""What the heel force sensor sees, and what a stimulator it triggers would do, on every
walker of PhysioNet gaitpdb, per group.

``python -m controller.bench.heelwalkers DATA_DIR`` reads the gaitpdb walks in
``DATA_DIR`` (``controller.detect.datasets.load_gaitpdb``: heel sensor L1/R1, reference
heel strike and toe off from each foot's total force) and prints, per group of walkers
(each study's controls and PD walkers, then all controls and all PD walkers):

* the insole: toe off in % of the stride (the stance), the heel's release below the heel
  force detector's release level before toe off in % of the stride (quartiles,
  ``controller.bench.heelforce.stride_figures``), the strides whose heel reaches the
  contact force late or never (a flat or forefoot landing), and the feet whose heel
  barely loads (99th percentile under ``WEAK_HEEL_FACTOR`` times the contact force: a
  flat or forefoot landing, or a sensor off the heel), and the feet a trial's check
  (``controller.detect.weakheel``, the first 20 s of the walk) finds barely loading;
* the shipped heel force detector, as it would trigger peroneal stimulation (default
  trigger pre-swing = its heel off, stop at heel strike): strides whose heel off it never
  reports before toe off (no train in that swing), strides whose landing it does not
  report within 100 ms (the train runs on into stance, until the next heel strike it
  sees or the train's timeout), how long before toe off a train would start (median,
  10th-90th percentile), and the time the detector is ``unknown`` (no stimulation).

These are the figures behind the diagnosis in docs/detection.md ("The heel sensor on
every gaitpdb walker").
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from controller.bench.heelforce import gaitpdb_folder, stride_figures
from controller.detect.datasets import Recording, load_gaitpdb
from controller.detect.detector import DetectorSetup, detect_batch
from controller.detect.gaitpdb_eval import subject
from controller.detect.heel import HeelDetectorConfig
from controller.detect.heelcolumn import barely_loads
from controller.detect.scoredrows import shipped_config
from controller.detect.weakheel import WEAK as WEAK_EARLY
from controller.detect.weakheel import WINDOW_S, fed, for_config
from controller.events import Event, Phase

#: The group of the feet whose heel barely loads, whatever their study.
WEAK = "heel barely loaded (all studies)"
#: A landing reported within this of the reference ends the train on time.
ON_TIME_S = 0.1


@dataclass
class Tally:
    """The figures of one group of feet, added up foot by foot."""

    feet: int = 0
    weak_feet: int = 0
    weak_early: int = 0  # found by a trial's check on the walk's first seconds
    strides: int = 0
    heel_late: int = 0  # the heel reaches contact over ON_TIME_S after the foot lands
    heel_never: int = 0  # ... or not at all in the stance
    no_heel_off: int = 0
    landing_missed: int = 0
    unknown_s: float = 0.0
    walk_s: float = 0.0
    stance_pct: list[float] = field(default_factory=list)
    lead_pct: list[float] = field(default_factory=list)
    onset_before_toe_off_s: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        """Add the figures of ``other`` (another foot or group) to these."""
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


def _events(setup: DetectorSetup, rec: Recording) -> tuple[np.ndarray, dict[Event, np.ndarray]]:
    """The heel force detector ``setup`` on ``rec``: phases, and when each event kind was
    reported (the sample a stimulator would act on)."""
    phases, events = detect_batch(setup, rec.t_s, None, rec.heel_force_n)
    known = {kind: np.array([e.t_known_s for e in events if e.event == kind])
             for kind in (Event.HEEL_OFF, Event.HEEL_STRIKE)}
    return phases, known


def foot_tally(rec: Recording, heel: HeelDetectorConfig, setup: DetectorSetup) -> Tally:
    """One foot's insole figures (at ``heel``'s fixed contact and release forces) and
    those of the detector ``setup`` (the shipped heel force detector, made once)."""
    assert rec.heel_force_n is not None
    contact_n, release_n = heel.contact_force_n, heel.release_force_n
    tally = Tally()
    strikes = np.array([t for t, e in rec.reference if e == Event.HEEL_STRIKE])
    toe_offs = np.array([t for t, e in rec.reference if e == Event.TOE_OFF])
    rows = stride_figures(rec.t_s, rec.heel_force_n, strikes, toe_offs, release_n)
    tally.stance_pct += rows[:, 4].tolist()
    tally.lead_pct += rows[:, 5].tolist()
    tally.feet += 1
    tally.weak_feet += barely_loads(float(np.percentile(rec.heel_force_n, 99.0)), contact_n)
    rate_hz = 1.0 / float(np.median(np.diff(rec.t_s)))
    tally.weak_early += fed(for_config(heel, rate_hz), rec.heel_force_n).verdict == WEAK_EARLY
    phases, known = _events(setup, rec)
    tally.unknown_s += float(np.mean(phases == Phase.UNKNOWN)) * float(np.ptp(rec.t_s))
    tally.walk_s += float(np.ptp(rec.t_s))
    for start, end in itertools.pairwise(strikes):
        toe_off = toe_offs[(toe_offs > start) & (toe_offs < end)]
        if toe_off.size != 1:
            continue
        tally.strides += 1
        stance = (rec.t_s >= start) & (rec.t_s < toe_off[0])
        loaded = rec.t_s[stance][rec.heel_force_n[stance] >= contact_n]
        tally.heel_never += loaded.size == 0
        tally.heel_late += bool(loaded.size and loaded[0] - start > ON_TIME_S)
        heel_offs = known[Event.HEEL_OFF]
        onsets = heel_offs[(heel_offs > start) & (heel_offs <= toe_off[0] + ON_TIME_S)]
        if onsets.size == 0:
            tally.no_heel_off += 1
        else:
            tally.onset_before_toe_off_s.append(float(toe_off[0] - onsets[-1]))
        landed = known[Event.HEEL_STRIKE]
        if not np.any(np.abs(landed - end) <= ON_TIME_S):
            tally.landing_missed += 1
    return tally


def describe(name: str, tally: Tally) -> str:
    """One line of a group's figures."""
    stance = np.percentile(tally.stance_pct, [25, 50, 75])
    lead = np.percentile(tally.lead_pct, [25, 50, 75])
    onset = 1000.0 * np.percentile(tally.onset_before_toe_off_s, [10, 50, 90])
    n = max(tally.strides, 1)
    return (
        f"{name}: {tally.feet} feet, {tally.strides} strides; toe off at {stance[1]:.1f} % "
        f"of the stride ({stance[0]:.1f}-{stance[2]:.1f}); heel released "
        f"{lead[1]:.1f} % of the stride before toe off ({lead[0]:.1f}-{lead[2]:.1f}); "
        f"heel reaches contact over {1000 * ON_TIME_S:.0f} ms after the foot lands in "
        f"{100 * tally.heel_late / n:.1f} % of strides, never in "
        f"{100 * tally.heel_never / n:.1f} %; heel barely loaded on {tally.weak_feet} feet "
        f"({tally.weak_early} in a trial's first {WINDOW_S:g} s) "
        f"| detector: no heel off before toe "
        f"off in {100 * tally.no_heel_off / n:.1f} % of strides, landing not reported "
        f"within {1000 * ON_TIME_S:.0f} ms in {100 * tally.landing_missed / n:.1f} %; "
        f"train onset {onset[1]:.0f} ms before toe off ({onset[0]:.0f}-{onset[2]:.0f}); "
        f"unknown {100 * tally.unknown_s / max(tally.walk_s, 1e-9):.1f} % of the time"
    )


def group_of(rec: Recording) -> str:
    """The study and group of a recording (``Ga PD``, ``Ju controls``...)."""
    name = subject(rec)
    return f"{name[:2]} {'PD' if name[2:4] == 'Pt' else 'controls'}"


def main(argv: Sequence[str] | None = None) -> None:
    """Print the figures of every group of walkers in the folder given."""
    folder = gaitpdb_folder("python -m controller.bench.heelwalkers", __doc__, argv)
    config = shipped_config().model_copy(update={"sensor": "heel", "heel_input": "force"})
    setup = config.setup()
    tallies: dict[str, Tally] = {}
    for rec in load_gaitpdb(folder):
        foot = foot_tally(rec, config.heel.force, setup)
        group = group_of(rec)
        for name in (group, f"all {group.split()[1]}", *[WEAK] * foot.weak_feet):
            tallies.setdefault(name, Tally()).add(foot)
    for name in sorted(tallies, key=lambda n: (n == WEAK, n.startswith("all"), n)):
        print(describe(name, tallies[name]))


if __name__ == "__main__":
    main()
