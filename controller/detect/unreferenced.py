"""What a walk without reference events can still tell about a gyroscope detector.

The Moving Reality recordings (``controller.detect.movingreality``: people after a
stroke on a treadmill) have no reference events, so no recall, precision or timing
error can be measured on them. What can be counted without one, per leg of a trial,
for the detector worn on the shank or on the foot:

* **strides implied**: the leg's stride period measured on the *foot* sensor, with no
  detector: the first strong peak of the autocorrelation of the norm of its three gyro
  axes (neither axis nor sign needed; the foot turns hard once a stride, in its swing)
  between ``MIN_STRIDE_S`` and ``MAX_STRIDE_S``, in windows of ``PERIOD_WINDOW_S``
  (a treadmill changes speed); a window in which the foot moves less than
  ``MIN_MOVING_FRACTION`` of the time is standing and implies no stride, and so does
  the time before the foot first moves and after it last moves (faster than
  ``MOVING_RAD_S``). The strides implied are each walking window's length over its
  period, summed. For the foot detector this is the same sensor the detector reads
  (its norm, not its sagittal axis): a count from one signal, not two;
* **swings found**: the detector's swings (a toe off followed by a heel strike), the
  detector run as ``fes detect`` runs it (the mounting check over the whole file, a
  flipped sign inverted with a warning);
* **swings with the foot still**: found swings during which the leg's foot never turns
  faster than ``SWING_FOOT_RAD_S`` (1 rad/s; real swings reach 3-8 rad/s): false swings;
* **stride time**: the median interval between the detector's successive toe offs,
  against the median implied period;
* **left minus right**: a treadmill walk keeps both legs at one cadence, so the two
  legs' swing counts of one trial should differ by at most one.

None of this says whether an event is dated right, or whether a swing found is the
swing the foot made: that needs the reference these recordings lack.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller.detect.axis import MOVING_RAD_S
from controller.detect.config import DetectorConfig
from controller.detect.datasets import Recording
from controller.detect.detector import DetectedEvent, detect_batch
from controller.detect.gyrocolumn import checked_sign
from controller.detect.marpino import SWING_FOOT_RAD_S
from controller.detect.movingreality import Leg
from controller.detect.period import median_period_s
from controller.detect.stride import MAX_STRIDE_S
from controller.events import Event

#: Length of the windows in which the stride period is measured (s): several strides of
#: the slowest walker, short enough to follow the treadmill's speed.
PERIOD_WINDOW_S = 20.0
#: The shortest stride period searched (s): 100 steps/min over 130, DESIGN.md's fastest
#: cadence, with margin.
MIN_STRIDE_S = 0.6
#: A window in which the foot moves (norm above ``MOVING_RAD_S``) less than this
#: fraction of the time is standing.
MIN_MOVING_FRACTION = 0.1
#: The period is the first autocorrelation peak at least this share of the highest
#: (the peak at two strides is about as high as the one at one).
PEAK_SHARE = 0.8
#: How far the swings found may be from the strides implied for a leg to count as
#: "within" (a reporting bin, not a target).
WITHIN = 0.05


def stride_period_s(norm: np.ndarray, rate_hz: float) -> float | None:
    """The stride period of one window of a foot's angular speed (None: no peak)."""
    x = norm - norm.mean()
    lo, hi = round(MIN_STRIDE_S * rate_hz), min(round(MAX_STRIDE_S * rate_hz), x.size - 2)
    if hi <= lo or not np.any(x):
        return None
    ac = np.correlate(x, x, "full")[x.size - 1:]
    inner = ac[lo:hi + 1]
    peaks = [lo + k for k in range(1, inner.size - 1)
             if inner[k] > inner[k - 1] and inner[k] >= inner[k + 1] and inner[k] > 0]
    if not peaks:
        return None
    highest = max(ac[k] for k in peaks)
    return next(k for k in peaks if ac[k] >= PEAK_SHARE * highest) / rate_hz


def implied_strides(t_s: np.ndarray, foot_norm: np.ndarray) -> tuple[float, list[float]]:
    """Strides implied by a foot's angular speed, and the period of each walking window.
    The walk runs from the foot's first movement to its last (standing before and after
    implies no stride)."""
    rate_hz = 1.0 / median_period_s(t_s)
    moving = np.flatnonzero(foot_norm > MOVING_RAD_S)
    if moving.size == 0:
        return 0.0, []
    walk = foot_norm[moving[0]:moving[-1] + 1]
    size = round(PERIOD_WINDOW_S * rate_hz)
    strides = 0.0
    periods: list[float] = []
    for start in range(0, walk.size, size):
        window = walk[start:start + size]
        if np.mean(window > MOVING_RAD_S) < MIN_MOVING_FRACTION:
            continue
        last_short = window.size < 2 * MAX_STRIDE_S * rate_hz
        period = periods[-1] if last_short and periods else stride_period_s(window, rate_hz)
        if period is not None:
            strides += window.size / rate_hz / period
            periods.append(period)
    return strides, periods


def swings(events: Sequence[DetectedEvent]) -> list[tuple[float, float]]:
    """(toe off, next heel strike) estimated times of each complete swing."""
    found, toe_off = [], None
    for event in sorted(events, key=lambda e: e.t_est_s):
        if event.event == Event.TOE_OFF:
            toe_off = event.t_est_s
        elif event.event == Event.HEEL_STRIKE and toe_off is not None:
            found.append((toe_off, event.t_est_s))
            toe_off = None
    return found


@dataclass(frozen=True)
class LegFigures:
    """The reference-free figures of one leg of one trial."""

    walker: str
    trial: str
    side: str
    implied: float
    implied_period_s: float | None  # median over the walking windows
    swings: int
    still_swings: int
    stride_s: float | None  # median interval between successive toe offs
    inverted: bool  # the mounting check found the sign flipped: the gyro was inverted
    peak_rad_s: float  # 99th percentile of the sagittal gyro as detected (swing peaks)


def detector_events(rec: Recording, config: DetectorConfig) -> tuple[list[DetectedEvent], bool,
                                                                    np.ndarray]:
    """The detector of ``config`` (its placement's gyro table) run on ``rec`` as ``fes
    detect`` runs it: its events, whether the mounting check inverted the gyro, and the
    gyro as detected."""
    assert rec.gyro_rad_s is not None
    column = str(rec.sagittal_axis)
    checked, gyro, note = checked_sign(config, rec.t_s, rec.gyro_rad_s, column, False)
    _, events = detect_batch(checked.setup(), rec.t_s, gyro)
    return list(events), note is not None and note.kind == "warning", gyro


def leg_figures(leg: Leg, config: DetectorConfig, rec: Recording,
                foot_norm: np.ndarray) -> LegFigures:
    """The detector of ``config`` run on ``rec`` (the sensor it is worn on, of ``leg``)
    as ``fes detect`` runs it; ``foot_norm`` is the foot's angular speed at ``rec``'s
    times."""
    events, inverted, gyro = detector_events(rec, config)
    found = swings(events)
    still = sum(
        float(np.max(foot_norm[(rec.t_s >= a) & (rec.t_s <= b)], initial=0.0))
        < SWING_FOOT_RAD_S
        for a, b in found
    )
    toe_offs = np.array([e.t_est_s for e in events if e.event == Event.TOE_OFF])
    intervals = np.diff(np.sort(toe_offs))
    implied, periods = implied_strides(rec.t_s, foot_norm)
    return LegFigures(
        rec.walker, leg.trial, leg.side, implied,
        float(np.median(periods)) if periods else None, len(found), still,
        float(np.median(intervals)) if intervals.size else None,
        inverted, float(np.percentile(gyro, 99)),
    )


@dataclass(frozen=True)
class StrideRow:
    """The reference-free figures of one configuration on one dataset, pooled."""

    dataset: str
    configuration: str
    legs: list[LegFigures]

    def ratios(self) -> np.ndarray:
        """Swings found over strides implied, per leg that implies any stride."""
        return np.array([leg.swings / leg.implied for leg in self.legs if leg.implied > 0])

    def side_differences(self) -> list[int]:
        """|left - right| swings of each trial with both legs."""
        trials: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for leg in self.legs:
            trials[leg.walker, leg.trial][leg.side] = leg.swings
        return [abs(s["left"] - s["right"]) for s in trials.values() if len(s) == 2]


def _median(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{np.median(known):.2f}" if known else "n/a"


def render_strides(rows: Sequence[StrideRow]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| dataset | configuration | legs | strides implied (foot IMU) | swings found | found "
        "/ implied | legs within 5 % | per leg found / implied (min, median, max) | stride "
        "s: detected / implied (median) | swings with the foot still | trials with left "
        "and right > 1 swing apart (max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        implied = sum(leg.implied for leg in row.legs)
        found = sum(leg.swings for leg in row.legs)
        ratios = row.ratios()
        within = int(np.sum(np.abs(ratios - 1.0) <= WITHIN))
        spread = (f"{ratios.min():.2f}, {np.median(ratios):.2f}, {ratios.max():.2f}"
                  if ratios.size else "n/a")
        sides = row.side_differences()
        apart = sum(d > 1 for d in sides)
        lines.append(
            f"| {row.dataset} | {row.configuration} | {len(row.legs)} | {implied:.0f} | "
            f"{found} | {100 * found / implied if implied else 0:.1f} % | {within} of "
            f"{ratios.size} | {spread} | {_median([g.stride_s for g in row.legs])} / "
            f"{_median([g.implied_period_s for g in row.legs])} | "
            f"{sum(g.still_swings for g in row.legs)} | {apart} of {len(sides)} "
            f"({max(sides, default=0)}) |"
        )
    return "\n".join(lines)
