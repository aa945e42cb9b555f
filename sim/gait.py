"""The stride-by-stride event schedule of a simulated walk, fixed up front from the seed.

Every stride starts at heel strike; heel off, toe off and mid-swing follow at fractions
of that stride's own duration. Stride durations are drawn independently around the
profile's cadence with the profile's coefficient of variation (healthy adults about
2 %, Hausdorff et al. 1995; higher in multiple sclerosis, Socie et al. 2013). The
long-range correlation of real stride series (Hausdorff 1995) is not modelled.

The whole schedule is drawn before the first sample, so the true events of a trial do
not depend on how (or whether) it is stepped, and the metrics can compare detected
events against exact times. Each stride also carries a vertical limb offset at
mid-swing (hip compensation plus stride-to-stride scatter of toe clearance), drawn here
so that all randomness of the gait comes from one generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from controller.detect.events import EVENT_NAMES, Event
from sim.patient import PatientProfile

# Columns of the stride table.
HEEL_STRIKE = 0  # s, start of the stride
HEEL_OFF = 1  # s
TOE_OFF = 2  # s
MID_SWING = 3  # s, middle of swing
NEXT_HEEL_STRIKE = 4  # s, end of the stride (start of the next one)
LIMB_OFFSET_M = 5  # m, vertical limb offset at mid-swing (hip compensation + scatter)
N_COLUMNS = 6

#: Where in its stride the trial starts: 20 % into the stride is early stance, so the
#: first events a detector must find (heel off, toe off) lie inside the recording.
START_PHASE = 0.2

#: Stride durations and clearance scatter are normal draws clipped at this many standard
#: deviations, so that a rare draw cannot produce a non-physiological stride.
CLIP_SD = 3.0
#: The clearance scatter is clipped tighter: at 2.5 SD a healthy minimum toe clearance
#: of 13 mm with a 4 mm scatter never reaches the ground, as in healthy walking.
CLEARANCE_CLIP_SD = 2.5

_COLUMN_EVENTS: tuple[tuple[int, Event], ...] = (
    (HEEL_STRIKE, Event.HEEL_STRIKE),
    (HEEL_OFF, Event.HEEL_OFF),
    (TOE_OFF, Event.TOE_OFF),
    (MID_SWING, Event.MID_SWING),
)
_NAMES: dict[Event, str] = {event: name for event, name in EVENT_NAMES.items()}


@dataclass(frozen=True)
class GaitSchedule:
    """The stride table of a trial: one row per stride, columns as named above.

    Row 0 ends before t = 0 (it only provides the tails of the signals of the stride
    in which the trial starts), and the last row ends after the trial does.
    """

    strides: np.ndarray
    duration_s: float

    def events(self) -> list[tuple[float, str]]:
        """Every true event in [0, duration), as (time_s, name), sorted by time."""
        found: list[tuple[float, Event]] = []
        for column, event in _COLUMN_EVENTS:
            times = self.strides[:, column]
            inside = times[(times >= 0.0) & (times < self.duration_s)]
            found += [(float(t), event) for t in inside]
        found.sort()
        return [(t, _NAMES[event]) for t, event in found]

    def phase(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stride index (row of ``strides``) and phase in [0, 1) of the stride, per time."""
        times = np.asarray(t_s, dtype=float)
        starts = self.strides[:, HEEL_STRIKE]
        index = np.searchsorted(starts, times, side="right") - 1
        if np.any(index < 0) or np.any(times >= self.strides[-1, NEXT_HEEL_STRIKE]):
            raise ValueError("time outside the simulated walk")
        rows = self.strides[index]
        phase = (times - rows[:, HEEL_STRIKE]) / (
            rows[:, NEXT_HEEL_STRIKE] - rows[:, HEEL_STRIKE]
        )
        return index, phase


def build_schedule(
    profile: PatientProfile, duration_s: float, rng: np.random.Generator
) -> GaitSchedule:
    """Draw the strides of a ``duration_s`` walk of ``profile`` from ``rng``."""
    mean_stride_s = 120.0 / profile.cadence_steps_per_min  # two steps per stride
    # Enough strides to cover the lead-in (up to 1.2 strides before t = 0), the trial and
    # one stride after it, even if every stride were as short as the clipping allows.
    shortest_s = mean_stride_s * (1.0 - CLIP_SD * profile.stride_time_cv)
    longest_s = mean_stride_s * (1.0 + CLIP_SD * profile.stride_time_cv)
    n = int(np.ceil((duration_s + 2.2 * longest_s) / shortest_s)) + 1
    # Two draws per stride, stride by stride: a longer trial of the same seed walks the
    # same strides first, so a short trial is a prefix of a long one.
    draws = rng.standard_normal((n, 2))
    variation = np.clip(draws[:, 0], -CLIP_SD, CLIP_SD)
    durations = mean_stride_s * (1.0 + profile.stride_time_cv * variation)
    scatter = np.clip(draws[:, 1], -CLEARANCE_CLIP_SD, CLEARANCE_CLIP_SD)
    offsets_m = 1e-3 * (profile.hip_compensation_mm + profile.toe_clearance_sd_mm * scatter)

    first_start = -(durations[0] + START_PHASE * durations[1])
    # One array of heel strikes, so a stride ends exactly where the next one starts.
    bounds = first_start + np.concatenate(([0.0], np.cumsum(durations)))
    starts = bounds[:-1]
    stance = (1.0 - profile.swing_fraction) * durations
    table = np.empty((n, N_COLUMNS))
    table[:, HEEL_STRIKE] = starts
    table[:, HEEL_OFF] = starts + profile.heel_off_stance_fraction * stance
    table[:, TOE_OFF] = starts + stance
    table[:, MID_SWING] = starts + stance + 0.5 * profile.swing_fraction * durations
    table[:, NEXT_HEEL_STRIKE] = bounds[1:]
    table[:, LIMB_OFFSET_M] = offsets_m
    # Drop the rows wholly after the trial, keeping one full stride of margin.
    keep = np.searchsorted(starts, duration_s, side="right") + 1
    return GaitSchedule(table[: min(keep, n)].copy(), duration_s)


@numba.njit(cache=True)
def locate_stride(strides: np.ndarray, cursor: int, t_s: float) -> int:
    """Row of the stride containing ``t_s``, searching forward from row ``cursor``.

    Time only moves forward in a trial, so the search is a step or two per sample.
    """
    last = strides.shape[0] - 1
    while cursor < last and t_s >= strides[cursor, NEXT_HEEL_STRIKE]:
        cursor += 1
    return cursor
