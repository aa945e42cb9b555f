"""The gyroscope axis check: is the axis read as sagittal the one the leg turns about?

A gyroscope read on the wrong axis (a board whose declared sagittal axis is wrong, a
sensor turned a quarter round, the wrong column of a file) gives a signal that the state
machine still finds "strides" in, and the sign check (``controller.detect.gyro``) cannot
tell: its swing fractions look like walking (docs/detection.md). Where the other two axes
are read too, they tell: walking, the foot and the shank turn mostly about the
mediolateral axis, the sagittal rotation (swing peaks of about 300 deg/s, 5 rad/s, on
the shank, Aminian et al. 2002; 7-15 rad/s on the foot, the 99th percentile of |Gyr_Y|
on the Voisard et al. 2023 trial-1 feet), far more than about the other two. So the
check compares the three axes' mean absolute angular velocity over the samples in
which the sensor moves (the norm of the three above ``MOVING_RAD_S``; standing still
and the sensor's noise are left out):

- once ``MOVING_S`` seconds of movement are in, the declared axis is **sagittal** when
  its mean is at least ``MARGIN`` times each other axis's, and the **wrong axis** when
  another axis's mean is at least ``MARGIN`` times its own; in between it keeps
  checking with every moving sample until one holds.

Chosen on trial 1 of the Voisard et al. 2023 feet (38 feet; the declared axis's mean
over the larger other's, after 2 s of movement: 1.16 at least, median 2.3) and reported
on recordings it was not chosen on by ``python -m controller.detect.evaluate``
(docs/detection.md). The sign of each axis does not matter here (absolute values):
the sign check runs on the sagittal axis once found.

``AxisCheck`` runs sample by sample (a live trial on the project's board, whose SAMPLE
frame carries all three axes); ``check_axes`` runs the same rule over a whole recording
at once (``fes detect``, the evaluation). Plain Python and numpy, not a numba kernel:
it is a few additions per sample for a few seconds of a session, and outside the
detector's kernel, whose cost it leaves alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controller.detect.period import median_period_s

#: A sample is movement when the norm of the three axes is above this (rad/s): swings
#: turn at 3-8 rad/s, quiet standing and the sensor's noise stay below 0.3.
MOVING_RAD_S = 1.0
#: Seconds of movement the check waits for before its first verdict (about two strides:
#: the foot moves faster than MOVING_RAD_S for about half of each stride).
MOVING_S = 2.0
#: How much more one axis must turn than another for a verdict (mean |omega| ratio).
MARGIN = 1.1
#: Verdicts of the axis check.
CHECKING, SAGITTAL, WRONG_AXIS = 0, 1, 2
VERDICT_NAMES = {CHECKING: "checking", SAGITTAL: "sagittal", WRONG_AXIS: "wrong axis"}


def ratio(means: np.ndarray, declared: int) -> np.ndarray:
    """The declared axis's mean |omega| over the larger of the other two; ``means`` is
    (3,) or (3, n) (one column per moment), the result () or (n,)."""
    others = np.delete(means, declared, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(means[declared] / others.max(axis=0))


def verdict_of(declared_ratio: float) -> int:
    """``SAGITTAL``, ``WRONG_AXIS`` or ``CHECKING`` for a ratio (``ratio``)."""
    if declared_ratio >= MARGIN:
        return SAGITTAL
    if declared_ratio <= 1.0 / MARGIN:
        return WRONG_AXIS
    return CHECKING


@dataclass(frozen=True)
class AxisVerdict:
    """What the axis check found: the verdict, the axis names, each axis's mean |omega|
    during movement (rad/s) and how much movement it is based on."""

    verdict: int
    names: tuple[str, str, str]
    declared: int
    mean_abs_rad_s: tuple[float, float, float]
    moving_s: float
    decided_s: float | None

    @property
    def turns_most(self) -> int:
        """The axis with the largest mean |omega| (the sagittal one, walking)."""
        return int(np.argmax(self.mean_abs_rad_s))

    @property
    def sagittal_found(self) -> str | None:
        """The axis that passes as sagittal in the declared one's place, if one does."""
        best = self.turns_most
        means = np.array(self.mean_abs_rad_s)
        if best != self.declared and verdict_of(float(ratio(means, best))) == SAGITTAL:
            return self.names[best]
        return None

    def why(self) -> str:
        """Why the declared axis is not the sagittal one (for a ``WRONG_AXIS`` verdict)."""
        means, most = self.mean_abs_rad_s, self.turns_most
        return (f"gyroscope axis {self.names[self.declared]} is not the sagittal one: while "
                f"moving, {self.names[most]} turns "
                f"{means[most] / max(means[self.declared], 1e-9):.1f} times as much (mean "
                f"|omega| {means[self.declared]:.2f} vs {means[most]:.2f} rad/s)")

    def message(self) -> str:
        """What the verdict means for a trial (status lines, summaries)."""
        declared = self.names[self.declared]
        if self.verdict == CHECKING:
            return (f"checking the gyroscope's axis ({declared} read as sagittal): nothing "
                    f"gait-triggered is stimulated until it has seen {MOVING_S:g} s of "
                    "movement")
        if self.verdict == SAGITTAL:
            return f"gyroscope axis checked ({declared} turns most)"
        return (f"{self.why()}: no stimulation; declare {self.names[self.turns_most]} the "
                "sagittal axis (or mount the sensor so that it is)")

    def block(self) -> dict[str, object]:
        """The verdict for a trial's summary."""
        return {
            "verdict": VERDICT_NAMES[self.verdict],
            "declared": self.names[self.declared],
            "turns_most": self.names[self.turns_most],
            "mean_abs_rad_s": dict(zip(self.names, self.mean_abs_rad_s, strict=True)),
            "moving_s": self.moving_s,
            "decided_s": self.decided_s,
            "message": self.message(),
        }


def check_axes(
    t_s: np.ndarray, rates_rad_s: np.ndarray, declared: int,
    names: tuple[str, str, str] = ("x", "y", "z"),
) -> AxisVerdict:
    """The axis check over a whole recording: ``rates_rad_s`` is (3, n), ``declared``
    the index of the axis read as sagittal. The verdict is the one ``AxisCheck`` reaches
    sample by sample (the first moment a verdict holds); the means are at that moment,
    or over the whole recording if none holds."""
    period_s = median_period_s(t_s)
    rates = np.abs(np.asarray(rates_rad_s, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        moving = np.flatnonzero((rates**2).sum(axis=0) > MOVING_RAD_S**2)  # NaN: not moving
    needed = _needed_samples(period_s)
    if moving.size == 0:
        return AxisVerdict(CHECKING, names, declared, (0.0, 0.0, 0.0), 0.0, None)
    means = np.cumsum(rates[:, moving], axis=1) / np.arange(1, moving.size + 1)
    verdicts = np.zeros(moving.size, dtype=np.int64)
    if moving.size >= needed:
        r = ratio(means[:, needed - 1:], declared)
        verdicts[needed - 1:] = np.where(
            r >= MARGIN, SAGITTAL, np.where(r <= 1.0 / MARGIN, WRONG_AXIS, CHECKING)
        )
    decided = np.flatnonzero(verdicts != CHECKING)
    k = int(decided[0]) if decided.size else moving.size - 1
    mean_at_k = means[:, k]
    return AxisVerdict(
        int(verdicts[k]), names, declared,
        (float(mean_at_k[0]), float(mean_at_k[1]), float(mean_at_k[2])),
        (k + 1) * period_s, float(t_s[moving[k]]) if decided.size else None,
    )


def _needed_samples(period_s: float) -> int:
    """Moving samples the first verdict waits for."""
    return max(1, round(MOVING_S / period_s)) if period_s > 0.0 else 1


class AxisCheck:
    """The axis check sample by sample (``add``); decides once, then stops counting."""

    def __init__(
        self, declared: int, sample_period_s: float, names: tuple[str, str, str] = ("x", "y", "z")
    ) -> None:
        if declared not in (0, 1, 2):
            raise ValueError(f"declared axis must be 0, 1 or 2, got {declared}")
        self.declared = declared
        self.names = names
        self._period_s = sample_period_s
        self._needed = _needed_samples(sample_period_s)
        self._sums = [0.0, 0.0, 0.0]
        self._count = 0
        self._decided_s: float | None = None
        self.verdict = CHECKING

    def add(self, t_s: float, rates_rad_s: Sequence[float]) -> int:
        """Take one sample of the three axes (NaN: lost, ignored); return the verdict."""
        if self.verdict != CHECKING:
            return self.verdict
        x, y, z = (abs(v) for v in rates_rad_s)
        if not x * x + y * y + z * z > MOVING_RAD_S * MOVING_RAD_S:  # NaN is not moving
            return CHECKING
        sums = self._sums
        sums[0] += x
        sums[1] += y
        sums[2] += z
        self._count += 1
        if self._count >= self._needed:
            self.verdict = verdict_of(float(ratio(np.array(sums), self.declared)))
            if self.verdict != CHECKING:
                self._decided_s = t_s
        return self.verdict

    @property
    def turns_most(self) -> int:
        """The axis that has turned most while moving so far; -1 before any movement."""
        sums = self._sums
        return sums.index(max(sums)) if self._count else -1

    def result(self) -> AxisVerdict:
        """The verdict so far, with the means it rests on."""
        count = max(self._count, 1)
        means = tuple(s / count for s in self._sums)
        return AxisVerdict(self.verdict, self.names, self.declared,
                           (means[0], means[1], means[2]), self._count * self._period_s,
                           self._decided_s)
