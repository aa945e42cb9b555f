"""The stride-by-stride event schedule of a simulated walk, fixed up front from the seed.

Every stride starts at heel strike; heel off, toe off and mid-swing follow at fractions
of that stride's own duration, so the four true events of every stride are known
exactly. Stride durations are drawn independently around the profile's cadence with the
profile's coefficient of variation (healthy adults about 2 %, Hausdorff et al. 1995;
higher in multiple sclerosis, Socie et al. 2013). The long-range correlation of real
stride series (Hausdorff 1995) is not modelled.

The walking course, when the profile asks for one:

* Bouts and standing. The walk is split into bouts of about ``bout_mean_strides``
  strides with about ``standing_mean_s`` of quiet standing between them (both drawn
  uniformly within +-50 % of the mean). Standing happens inside the stance of the first
  stride of a bout: the stance template slows down smoothly (a raised-cosine speed
  profile over ``stop_transition_ms``, shortened where a short stance leaves no room
  for it before heel off), holds still at ``standing_stance_fraction`` of
  stance (foot flat, ankle near neutral, heel loaded), and speeds up again. Every signal
  that follows the stance template is evaluated at this warped stance time (see
  ``stance_clock``), so the shank stops rotating and the heel stays loaded while the
  person stands, without a jump at either end.
* Speed. Each bout walks at its own speed, drawn around ``walking_speed_m_s`` with
  ``bout_speed_sd_m_s``; the stopping and the starting stride of a bout walk at
  ``bout_edge_speed_fraction`` of it (gait initiation reaches steady speed within about
  two steps, Breniere and Do 1986). A stride's speed factor (its speed over the profile's)
  scales the shank angular velocity of its features, which rises about in proportion to
  walking speed (Aminian et al. 2002), and divides its duration by the square root of the
  factor, because cadence and step length share a change of speed about equally (Grieve
  and Gear 1966).
* Turns. About every ``turn_interval_mean_strides`` strides the walker turns by
  ``turn_angle_deg`` over ``turn_strides`` strides, left or right at random. Turning
  strides have their own speed fraction (it scales the shank features) and stride time
  factor, and the leg on the inside of the turn takes smaller steps than the outer one
  (in the shared Voisard et al. 2023 data, the sagittal swing peak of a foot in a
  180 deg turn is 0.60 of straight walking, quartiles 0.36-0.85, its stride 6 % longer;
  see ``python -m sim.turns``). The body's yaw rate during the turn, a
  raised-cosine bump whose integral is the turn angle, is kept per stride so that the
  sensor model can project it onto a tilted gyroscope.

The whole schedule is drawn before the first sample, so the true events of a trial do
not depend on how (or whether) it is stepped, and the metrics can compare detected
events against exact times. Each stride also carries a vertical limb offset at
mid-swing (hip compensation plus stride-to-stride scatter of toe clearance). Strides,
bouts and turns come from three streams of the seed, each drawn item by item in a fixed
order, so a shorter trial is a prefix of a longer one with the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controller.eventlog import TrueEvents
from controller.events import Event
from controller.kernels import kernel
from sim.patient import PatientProfile

# Columns of the stride table.
HEEL_STRIKE = 0  # s, start of the stride
HEEL_OFF = 1  # s
TOE_OFF = 2  # s
MID_SWING = 3  # s, middle of swing
NEXT_HEEL_STRIKE = 4  # s, end of the stride (start of the next one)
LIMB_OFFSET_M = 5  # m, vertical limb offset at mid-swing (hip compensation + scatter)
SPEED = 6  # speed factor of the stride (1 = the profile's walking speed)
STANCE_S = 7  # s, stance duration without any standing pause
STRIDE_S = 8  # s, stride duration without any standing pause
PAUSE_START = 9  # s, where the stance starts to slow down for standing
PAUSE_RAMP_S = 10  # s, duration of the slow-down and of the speed-up (0: no pause)
PAUSE_HOLD_S = 11  # s, quiet standing between them
TURN_START = 12  # s, start of the turn this stride belongs to
TURN_END = 13  # s, end of that turn
TURN_PEAK_YAW = 14  # rad/s, signed peak yaw rate of that turn (0: no turn)
N_COLUMNS = 15

#: Where in its stride the trial starts: 20 % into the stride is early stance, so the
#: first events a detector must find (heel off, toe off) lie inside the recording.
START_PHASE = 0.2

#: Stride durations and clearance scatter are normal draws clipped at this many standard
#: deviations, so that a rare draw cannot produce a non-physiological stride.
CLIP_SD = 3.0
#: The clearance scatter is clipped tighter: at 2.5 SD a healthy minimum toe clearance
#: of 13 mm with a 4 mm scatter never reaches the ground, as in healthy walking.
CLEARANCE_CLIP_SD = 2.5
#: Bout speeds are clipped at this many standard deviations.
SPEED_CLIP_SD = 2.0
#: Bout lengths, standing times and turn intervals are drawn uniformly within this
#: fraction of their mean on either side.
SPREAD_FRACTION = 0.5
#: Share of the stance between the standing posture and heel off that the slow-down and
#: speed-up of a stop may use (``stop_transition_ms`` is shortened to fit).
ROOM_FRACTION = 0.9
#: The shortest bout, in strides: one starting and one stopping stride.
MIN_BOUT_STRIDES = 2

_COLUMN_EVENTS: tuple[tuple[int, Event], ...] = (
    (HEEL_STRIKE, Event.HEEL_STRIKE),
    (HEEL_OFF, Event.HEEL_OFF),
    (TOE_OFF, Event.TOE_OFF),
    (MID_SWING, Event.MID_SWING),
)

# Children of a gait seed for the course (the strides are drawn from the seed itself).
_BOUT_STREAM = 1
_TURN_STREAM = 2


@dataclass(frozen=True)
class GaitSchedule:
    """The stride table of a trial: one row per stride, columns as named above.

    Row 0 ends before t = 0 (it only provides the tails of the signals of the stride
    in which the trial starts), and the last row ends after the trial does.
    """

    strides: np.ndarray
    duration_s: float

    def events(self) -> TrueEvents:
        """Every true event in [0, duration), as (time_s, name), sorted by time (and by
        event at one time): two arrays, not a list of tuples (``controller.eventlog``)."""
        times: list[np.ndarray] = []
        codes: list[np.ndarray] = []
        for column, event in _COLUMN_EVENTS:
            column_s = self.strides[:, column]
            inside = column_s[(column_s >= 0.0) & (column_s < self.duration_s)]
            times.append(inside)
            codes.append(np.full(inside.size, int(event), dtype=np.int8))
        all_times, all_codes = np.concatenate(times), np.concatenate(codes)
        order = np.lexsort((all_codes, all_times))
        return TrueEvents(all_times[order], all_codes[order])

    def phase(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stride index (row of ``strides``) and phase in [0, 1) of the stride, per time.

        The phase is the fraction of the stride's whole duration, standing included.
        """
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

    def standing(self) -> list[tuple[float, float]]:
        """The quiet-standing intervals (start_s, end_s) of the walk, in time order."""
        rows = self.strides[self.strides[:, PAUSE_RAMP_S] > 0.0]
        start = rows[:, PAUSE_START] + rows[:, PAUSE_RAMP_S]
        return [(float(a), float(a + h)) for a, h in zip(start, rows[:, PAUSE_HOLD_S],
                                                          strict=True)]


def _child(seed: np.random.SeedSequence, index: int) -> np.random.Generator:
    """Generator of the ``index``-th child of ``seed``, built without mutating ``seed``."""
    key = (*seed.spawn_key, index)
    return np.random.default_rng(np.random.SeedSequence(seed.entropy, spawn_key=key))


def _bouts(profile: PatientProfile, n: int, rng: np.random.Generator) -> tuple[
    np.ndarray, np.ndarray
]:
    """Per stride: speed factor and standing hold (s, 0 if none)."""
    speed = np.ones(n)
    hold = np.zeros(n)
    edge = np.zeros(n, dtype=bool)
    if profile.bout_mean_strides == 0.0:
        return speed, hold
    start = 0
    while start < n:
        length_draw, hold_draw, speed_draw = rng.random(), rng.random(), rng.standard_normal()
        spread = 1.0 + SPREAD_FRACTION * (2.0 * length_draw - 1.0)
        length = max(MIN_BOUT_STRIDES, round(profile.bout_mean_strides * spread))
        bout_speed = profile.walking_speed_m_s + profile.bout_speed_sd_m_s * float(
            np.clip(speed_draw, -SPEED_CLIP_SD, SPEED_CLIP_SD)
        )
        stop = min(start + length, n)
        speed[start:stop] = bout_speed / profile.walking_speed_m_s
        if start > 0:  # the first bout is under way when the trial starts
            hold[start] = profile.standing_mean_s * (
                1.0 + SPREAD_FRACTION * (2.0 * hold_draw - 1.0)
            )
            edge[start] = True
        edge[stop - 1] = True
        start = stop
    speed[edge] *= profile.bout_edge_speed_fraction
    return speed, hold


def _turns(profile: PatientProfile, n: int, rng: np.random.Generator) -> tuple[
    np.ndarray, np.ndarray
]:
    """Per stride: turn number (-1 if none) and signed speed factor of the turn (+ inner)."""
    turn_of = np.full(n, -1)
    side = np.zeros(n)
    if profile.turn_interval_mean_strides == 0.0:
        return turn_of, side
    start, number = 0, 0
    while start < n:
        gap_draw, side_draw = rng.random(), rng.random()
        spread = 1.0 + SPREAD_FRACTION * (2.0 * gap_draw - 1.0)
        start += max(1, round(profile.turn_interval_mean_strides * spread))
        stop = min(start + profile.turn_strides, n)
        turn_of[start:stop] = number
        side[start:stop] = 1.0 if side_draw < 0.5 else -1.0  # + : our leg inside
        start, number = stop, number + 1
    return turn_of, side


def _stride_count(profile: PatientProfile, duration_s: float) -> int:
    """Strides enough to cover the lead-in, the trial and one stride after it.

    Counted as if every stride were as short as the clipping and the fastest bout allow;
    standing and turns only lengthen the walk.
    """
    mean_stride_s = 120.0 / profile.cadence_steps_per_min  # two steps per stride
    fastest = 1.0 + SPEED_CLIP_SD * profile.bout_speed_sd_m_s / profile.walking_speed_m_s
    shortest_s = mean_stride_s * (1.0 - CLIP_SD * profile.stride_time_cv) / math.sqrt(fastest)
    longest_s = mean_stride_s * (1.0 + CLIP_SD * profile.stride_time_cv)
    return int(np.ceil((duration_s + 2.2 * longest_s) / shortest_s)) + 1


def build_schedule(
    profile: PatientProfile, duration_s: float, seed: np.random.SeedSequence | int
) -> GaitSchedule:
    """Draw the strides of a ``duration_s`` walk of ``profile`` from ``seed``."""
    if not isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence(seed)
    n = _stride_count(profile, duration_s)
    # Two draws per stride, stride by stride: a longer trial of the same seed walks the
    # same strides first, so a short trial is a prefix of a long one.
    draws = np.random.default_rng(seed).standard_normal((n, 2))
    variation = np.clip(draws[:, 0], -CLIP_SD, CLIP_SD)
    scatter = np.clip(draws[:, 1], -CLEARANCE_CLIP_SD, CLEARANCE_CLIP_SD)
    speed, hold = _bouts(profile, n, _child(seed, _BOUT_STREAM))
    turn_of, side = _turns(profile, n, _child(seed, _TURN_STREAM))

    stride_s = 120.0 / profile.cadence_steps_per_min * (1.0 + profile.stride_time_cv * variation)
    stride_s /= np.sqrt(speed)
    # A turn slows the feet (their swing peak) more than it lengthens the strides: its
    # own measured factors, not the square-root rule of straight walking.
    in_turn = turn_of >= 0
    half_difference = 0.5 * profile.turn_inner_outer_difference_fraction
    speed[in_turn] *= profile.turn_speed_fraction - side[in_turn] * half_difference
    stride_s[in_turn] *= profile.turn_stride_time_factor
    stance = (1.0 - profile.swing_fraction) * stride_s
    # The slow-down and the speed-up together use up their own length of stance time,
    # which must fit between the standing posture and heel off.
    room_s = ROOM_FRACTION * (
        profile.heel_off_stance_fraction - profile.standing_stance_fraction
    ) * stance
    ramp_s = np.where(hold > 0.0, np.minimum(1e-3 * profile.stop_transition_ms, room_s), 0.0)
    extra_s = ramp_s + hold  # real time the standing pause adds to its stance
    durations = stride_s + extra_s

    first_start = -(durations[0] + START_PHASE * durations[1])
    # One array of heel strikes, so a stride ends exactly where the next one starts.
    bounds = first_start + np.concatenate(([0.0], np.cumsum(durations)))
    starts = bounds[:-1]
    table = np.zeros((n, N_COLUMNS))
    table[:, HEEL_STRIKE] = starts
    table[:, HEEL_OFF] = starts + profile.heel_off_stance_fraction * stance + extra_s
    table[:, TOE_OFF] = starts + stance + extra_s
    table[:, MID_SWING] = starts + stance + extra_s + 0.5 * profile.swing_fraction * stride_s
    table[:, NEXT_HEEL_STRIKE] = bounds[1:]
    table[:, LIMB_OFFSET_M] = 1e-3 * (
        profile.hip_compensation_mm + profile.toe_clearance_sd_mm * scatter
    )
    table[:, SPEED] = speed
    table[:, STANCE_S] = stance
    table[:, STRIDE_S] = stride_s
    table[:, PAUSE_START] = starts + profile.standing_stance_fraction * stance
    table[:, PAUSE_RAMP_S] = ramp_s
    table[:, PAUSE_HOLD_S] = hold
    for number in np.unique(turn_of[in_turn]):
        rows = np.flatnonzero(turn_of == number)
        begin, end = starts[rows[0]], bounds[rows[-1] + 1]
        peak = 2.0 * math.radians(profile.turn_angle_deg) / (end - begin)
        table[rows, TURN_START] = begin
        table[rows, TURN_END] = end
        table[rows, TURN_PEAK_YAW] = side[rows[0]] * peak
    # Drop the rows wholly after the trial, keeping one full stride of margin.
    keep = np.searchsorted(starts, duration_s, side="right") + 1
    return GaitSchedule(table[: min(keep, n)].copy(), duration_s)


@kernel
def locate_stride(strides: np.ndarray, cursor: int, t_s: float) -> int:
    """Row of the stride containing ``t_s``, searching forward from row ``cursor``.

    Time only moves forward in a trial, so the search is a step or two per sample.
    The kernels pass the stride table with a row index, never a row: a row view costs
    two atomic reference-count updates per call, more than the physics of a sample.
    """
    last = strides.shape[0] - 1
    while cursor < last and t_s >= strides[cursor, NEXT_HEEL_STRIKE]:
        cursor += 1
    return cursor


@kernel
def stance_clock(strides: np.ndarray, j: int, t_s: float) -> tuple[float, float]:
    """Stance phase (0 heel strike .. 1 toe off) of stride ``j`` at ``t_s``, and its rate.

    Without a standing pause the phase grows linearly and the rate is 1. With one, the
    stance time slows down with a raised cosine over the ramp, stands still for the
    hold and speeds up again; the rate (0..1) is d(stance time)/dt, the factor by which
    every stance velocity shrinks.
    """
    elapsed = t_s - strides[j, HEEL_STRIKE]
    ramp = strides[j, PAUSE_RAMP_S]
    rate = 1.0
    if ramp > 0.0:
        since = t_s - strides[j, PAUSE_START]
        hold = strides[j, PAUSE_HOLD_S]
        if since > 0.0:
            if since < ramp:  # slowing down
                u = since / ramp
                lost = ramp * (0.5 * u - math.sin(math.pi * u) / (2.0 * math.pi))
                rate = 0.5 * (1.0 + math.cos(math.pi * u))
            elif since < ramp + hold:  # standing
                lost = 0.5 * ramp + (since - ramp)
                rate = 0.0
            elif since < 2.0 * ramp + hold:  # speeding up
                u = (since - ramp - hold) / ramp
                lost = 0.5 * ramp + hold + ramp * (0.5 * u + math.sin(math.pi * u) / (
                    2.0 * math.pi))
                rate = 0.5 * (1.0 - math.cos(math.pi * u))
            else:
                lost = ramp + hold
            elapsed -= lost
    return elapsed / strides[j, STANCE_S], rate


@kernel
def yaw_rate(strides: np.ndarray, j: int, t_s: float) -> float:
    """Yaw rate of the body (rad/s, signed) at ``t_s`` in the turn of stride ``j``."""
    peak = strides[j, TURN_PEAK_YAW]
    if peak == 0.0 or not strides[j, TURN_START] <= t_s < strides[j, TURN_END]:
        return 0.0
    start = strides[j, TURN_START]
    s = math.sin(math.pi * (t_s - start) / (strides[j, TURN_END] - start))
    return peak * s * s
