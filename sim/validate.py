"""The simulated patient against published measurements, one row per quantity.

``python -m sim.validate`` simulates the shipped profiles on several seeds, measures each
quantity the way the cited study measured it, and prints a table (and writes it as CSV):
quantity, condition, the published value and the range taken as agreement, the source,
the simulated median over seeds with its spread (lowest to highest seed), and whether
the median lies in the range. The references are in ``sim.references``; the
measurements here.

Every walk is open loop: stimulation, where a row has it, is timed from the limb's true
events (``sim.openloop``) as the default configuration times it (onset 125 ms before toe
off, where the shank detector's pre-swing starts the default train on the moderate
walker in closed loop, docs/stimulation.md; 35 mA, 300 us, 40 Hz; 60 ms ramp up; held
100 ms past heel strike, then a 100 ms ramp down). The table therefore describes the
patient, not a detector: no row depends on how well a detector finds the events.

A reference may be marked as known to disagree (``expected_in_range = False``) with the
reason and what it means for a user; ``tests/test_sim_validate.py`` fails when any row's
agreement differs from what its reference expects, in either direction.
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim import voluntary
from sim.ankle import stretch_test
from sim.gait import NEXT_HEEL_STRIKE, TOE_OFF
from sim.limb import SimulatedLimb
from sim.muscle import IsometricMuscle, endurance_s
from sim.openloop import Stimulation, stride_commands
from sim.patient import load_patient
from sim.physiology import clonus, force_frequency, twitch_ms
from sim.references import REFERENCES, Reference
from sim.shank import stride_figures

RATE_HZ = 500.0
#: The default stimulation, open loop: onset where the pre-swing trigger starts it in
#: closed loop (the moderate walker's median, 125 ms before toe off: docs/stimulation.md).
DEFAULT_STIMULATION = Stimulation(amplitude_ma=35.0, pulse_width_us=300.0, frequency_hz=40.0,
                                  lead_s=0.125, ramp_up_s=0.06, extension_s=0.1,
                                  ramp_down_s=0.1)
#: Swings are measured between these fractions of swing for the minimum toe clearance:
#: the local minimum of mid-swing that gait analysis reports (Winter 1992).
MTC_WINDOW = (0.2, 0.8)
#: A 50 ms moving average before the shank minima are read, as on the real recordings.
SHANK_SMOOTHING_S = 0.05


@dataclass(frozen=True)
class Walk:
    """One simulated walk: its stride table, sensor columns and truth columns."""

    profile: str
    strides: np.ndarray
    gyro_rad_s: np.ndarray
    truth: dict[str, np.ndarray]

    @property
    def time_s(self) -> np.ndarray:
        return np.arange(self.gyro_rad_s.size) / RATE_HZ

    def strides_inside(self) -> np.ndarray:
        """Rows of the strides that start and end inside the walk."""
        t_end = self.gyro_rad_s.size / RATE_HZ
        rows = self.strides
        return rows[(rows[:, 0] >= 0.0) & (rows[:, NEXT_HEEL_STRIKE] < t_end)]

    def index(self, t_s: float) -> int:
        return min(math.ceil(t_s * RATE_HZ), self.gyro_rad_s.size - 1)


@functools.lru_cache(maxsize=64)
def walk(profile: str, stimulated: bool, seed: int, duration_s: float) -> Walk:
    """A walk of ``profile``, stimulated in every swing (``DEFAULT_STIMULATION``) or not."""
    limb = SimulatedLimb(load_patient(profile), RATE_HZ, duration_s, seed)
    n = round(duration_s * RATE_HZ)
    commands = (stride_commands(limb.schedule, RATE_HZ, n, DEFAULT_STIMULATION) if stimulated
                else np.zeros((n, 4)))
    samples = limb.run(commands)
    return Walk(profile, limb.schedule.strides, samples["gyro_rad_s"], limb.truth())


# --- Per-walk measurements (each returns one number per walk) ---------------------------

def stride_time_s(w: Walk) -> float:
    rows = w.strides_inside()
    return float(np.median(rows[:, NEXT_HEEL_STRIKE] - rows[:, 0]))


def stance_fraction(w: Walk) -> float:
    rows = w.strides_inside()
    return float(np.median((rows[:, TOE_OFF] - rows[:, 0]) / (rows[:, NEXT_HEEL_STRIKE]
                                                                - rows[:, 0])))


def _per_stride(w: Walk, part: Callable[[Walk, np.ndarray], float]) -> float:
    return float(np.median([part(w, row) for row in w.strides_inside()]))


def _stance(w: Walk, row: np.ndarray) -> slice:
    return slice(w.index(row[0]), w.index(row[TOE_OFF]))


def _swing(w: Walk, row: np.ndarray, start: float = 0.0, end: float = 1.0) -> slice:
    to, hs = row[TOE_OFF], row[NEXT_HEEL_STRIKE]
    return slice(w.index(to + start * (hs - to)), w.index(to + end * (hs - to)))


def ankle_at_toe_off_deg(w: Walk) -> float:
    return _per_stride(w, lambda w, r: w.truth["ankle_angle_deg"][w.index(r[TOE_OFF]) - 1])


def ankle_at_heel_strike_deg(w: Walk) -> float:
    return _per_stride(
        w, lambda w, r: w.truth["ankle_angle_deg"][w.index(r[NEXT_HEEL_STRIKE]) - 1])


def stance_peak_dorsiflexion_deg(w: Walk) -> float:
    return _per_stride(w, lambda w, r: w.truth["ankle_angle_deg"][_stance(w, r)].max())


def swing_peak_dorsiflexion_deg(w: Walk) -> float:
    return _per_stride(w, lambda w, r: w.truth["ankle_angle_deg"][_swing(w, r)].max())


def minimum_toe_clearance_mm(w: Walk) -> float:
    return _per_stride(
        w, lambda w, r: w.truth["toe_clearance_mm"][_swing(w, r, *MTC_WINDOW)].min())


def foot_slap_fraction(w: Walk) -> float:
    slaps = [w.truth["foot_slap"][_stance(w, r)].max() > 0 for r in w.strides_inside()]
    return float(np.mean(slaps))


def _smoothed_gyro(w: Walk) -> np.ndarray:
    width = round(SHANK_SMOOTHING_S * RATE_HZ)
    return np.convolve(w.gyro_rad_s, np.ones(width) / width, mode="same")


def shank_stance_median_rad_s(w: Walk) -> float:
    return _per_stride(w, lambda w, r: np.median(w.gyro_rad_s[_stance(w, r)]))


def shank_heel_strike_minimum_rad_s(w: Walk) -> float:
    gyro = _smoothed_gyro(w)
    return _per_stride(w, lambda w, r: gyro[w.index(r[0] - 0.05):w.index(r[0] + 0.15)].min())


def shank_toe_off_minimum_rad_s(w: Walk) -> float:
    gyro = _smoothed_gyro(w)
    return _per_stride(
        w, lambda w, r: gyro[w.index(r[TOE_OFF] - 0.15):w.index(r[TOE_OFF] + 0.1)].min())


def shank_swing_peak_rad_s(w: Walk) -> float:
    return _per_stride(w, lambda w, r: w.gyro_rad_s[_swing(w, r)].max())


def _landing(w: Walk, row: np.ndarray) -> tuple[float, ...]:
    """``sim.shank.stride_figures`` of the stride that ``row`` ends with its heel strike."""
    return stride_figures(w.time_s, w.gyro_rad_s, row[0], row[TOE_OFF], row[NEXT_HEEL_STRIKE])


def shank_zero_crossing_ms(w: Walk) -> float:
    """When the shank, after its swing peak, turns through zero, against heel strike."""
    return _per_stride(w, lambda w, r: _landing(w, r)[0])


def shank_heel_strike_delay_ms(w: Walk) -> float:
    """When the shank detector's rule finds the heel-strike minimum, after heel strike."""
    return _per_stride(w, lambda w, r: _landing(w, r)[1])


def ta_activation_at_toe_off(w: Walk) -> float:
    return _per_stride(w, lambda w, r: w.truth["ta_activation"][w.index(r[TOE_OFF])])


def stimulation_lead_stride_percent(w: Walk) -> float:
    """Onset of the open-loop train before toe off, in % of the stride."""
    return 100.0 * DEFAULT_STIMULATION.lead_s / stride_time_s(w)


def foot_angular_velocity_rad_s(w: Walk) -> np.ndarray:
    """The foot's sagittal angular velocity (swing positive, toes up): the shank's plus
    the ankle's rate of dorsiflexion (the foot turns with the shank and about the ankle)."""
    ankle_rate = np.gradient(np.radians(w.truth["ankle_angle_deg"]), 1.0 / RATE_HZ)
    return w.gyro_rad_s + ankle_rate


def foot_flat_median_rad_s(w: Walk) -> float:
    """Median foot angular velocity from 30 to 60 % of stance, where the foot is flat."""
    foot = foot_angular_velocity_rad_s(w)

    def flat(w: Walk, r: np.ndarray) -> float:
        stance = r[TOE_OFF] - r[0]
        return float(np.median(foot[w.index(r[0] + 0.3 * stance):w.index(r[0] + 0.6 * stance)]))

    return _per_stride(w, flat)


def forefoot_lowering_rad_s(w: Walk) -> float:
    """Peak toe-down angular velocity of the foot in the 200 ms after heel strike, as
    ``sim.forefoot`` measures it on real foot IMUs."""
    foot = foot_angular_velocity_rad_s(w)
    return _per_stride(w, lambda w, r: -foot[w.index(r[0]):w.index(r[0] + 0.2)].min())


def _landing_angles_deg(w: Walk) -> np.ndarray:
    """Foot-floor angle at each heel strike (deg, toes up): the model's own, from the toe's
    height as the heel lands (heel-to-toe distance times the sine of the angle).

    The real figure integrates the foot IMU's toe-down rotation until the foot is flat
    (``controller.bench.landing``); here the foot's rotation is the shank template
    plus the ankle's, and the kinematic stance does not hold the sum at zero once the foot
    is flat, so the integral would measure the templates, not the landing.
    """
    p = load_patient(w.profile)
    heel_to_toe_mm = 1e3 * (p.heel_behind_ankle_m + p.toe_lever_m)
    toe_mm = np.array([w.truth["toe_clearance_mm"][w.index(r[0])] for r in w.strides_inside()])
    return np.degrees(np.arcsin(np.clip(toe_mm / heel_to_toe_mm, -1.0, 1.0)))


def foot_landing_angle_deg(w: Walk) -> float:
    return float(np.nanmedian(_landing_angles_deg(w)))


def foot_landing_angle_sd_deg(w: Walk) -> float:
    """Stride-to-stride standard deviation of the foot-floor angle at initial contact."""
    angles = _landing_angles_deg(w)
    return float(np.nanstd(angles, ddof=1))


# --- Measurements without a walk ---------------------------------------------------------

def twitch_peak_ms() -> float:
    return twitch_ms(load_patient("healthy"))[1]


def half_force_frequency_hz() -> float:
    """Frequency at which a saturating train gives half the 100 Hz force (interpolated)."""
    frequencies = np.arange(2.0, 30.0, 1.0)
    fractions = np.array(force_frequency(load_patient("healthy"), tuple(frequencies)))
    return float(np.interp(0.5, fractions, frequencies))


def endurance_20_percent_mvc_s() -> float:
    """How long stimulation at 25 Hz holds 20 % of the voluntary maximum (healthy)."""
    profile = load_patient("healthy")
    target = 0.2 * profile.healthy_dorsiflexion_torque_nm / profile.fes_max_torque_nm
    return endurance_s(profile, target, 25.0, 3600.0)


def motor_threshold_ma() -> float:
    """Lowest amplitude at 300 us whose 1 s, 40 Hz train gives any force (bisection)."""
    profile = load_patient("healthy")
    low, high = 0.0, 100.0
    for _ in range(30):
        middle = 0.5 * (low + high)
        force = IsometricMuscle(profile).train(40.0, 1.0, middle * 0.3)
        low, high = (low, middle) if force.max() > 0.0 else (middle, high)
    return high


def clonus_frequency_hz() -> float:
    step = 1e-3
    return clonus(stretch_test(load_patient("spastic"), 5.0, 15.0, 3.0, step), step)[0]


def clonus_beats_slow_stretch() -> float:
    step = 1e-3
    return float(clonus(stretch_test(load_patient("spastic"), 1.0, 15.0, 3.0, step), step)[1])


def clonus_beats_fast_stretch() -> float:
    step = 1e-3
    return float(clonus(stretch_test(load_patient("spastic"), 5.0, 15.0, 3.0, step), step)[1])


def heat_rise_for_weakening_c() -> float:
    """Core temperature rise above the start of Uhthoff weakening at which voluntary
    strength has fallen by 10 % (heat_sensitive)."""
    profile = load_patient("heat_sensitive")
    rested = profile.ta_strength_fraction * profile.healthy_dorsiflexion_torque_nm

    def strength(temperature_c: float) -> float:
        warm = profile.model_copy(update={"core_temperature_c": temperature_c,
                                          "core_warming_c_per_min": 0.0})
        params = voluntary.make_params(warm, 1e-3)
        return float(voluntary.voluntary_max_nm(voluntary.new_voluntary_state(), params, 0.0))

    rises = np.arange(0.0, 2.0, 0.01)
    weaker = [r for r in rises if strength(profile.uhthoff_threshold_c + r) <= 0.9 * rested]
    return float(weaker[0]) if weaker else math.inf


#: Measurements without a walk (deterministic), by name.
OTHER_MEASURES: dict[str, Callable[[], float]] = {
    "twitch_peak_ms": twitch_peak_ms,
    "half_force_frequency_hz": half_force_frequency_hz,
    "endurance_20_percent_mvc_s": endurance_20_percent_mvc_s,
    "motor_threshold_ma": motor_threshold_ma,
    "clonus_frequency_hz": clonus_frequency_hz,
    "clonus_beats_slow_stretch": clonus_beats_slow_stretch,
    "clonus_beats_fast_stretch": clonus_beats_fast_stretch,
    "heat_rise_for_weakening_c": heat_rise_for_weakening_c,
}
#: Measurements of one walk, by name.
WALK_MEASURES: dict[str, Callable[[Walk], float]] = {
    f.__name__: f for f in (
        stride_time_s, stance_fraction, ankle_at_toe_off_deg, ankle_at_heel_strike_deg,
        stance_peak_dorsiflexion_deg, swing_peak_dorsiflexion_deg, minimum_toe_clearance_mm,
        foot_slap_fraction, shank_stance_median_rad_s,
        shank_heel_strike_minimum_rad_s, shank_toe_off_minimum_rad_s,
        shank_swing_peak_rad_s, foot_flat_median_rad_s, forefoot_lowering_rad_s,
        shank_zero_crossing_ms, shank_heel_strike_delay_ms, ta_activation_at_toe_off,
        stimulation_lead_stride_percent, foot_landing_angle_deg, foot_landing_angle_sd_deg,
    )
}


@dataclass(frozen=True)
class Row:
    """One quantity: its reference, the simulated value per seed and the verdict."""

    reference: Reference
    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return float(np.median(self.values))

    @property
    def in_range(self) -> bool:
        return self.reference.low <= self.median <= self.reference.high


def simulate(reference: Reference, seeds: Sequence[int], duration_s: float) -> tuple[float, ...]:
    """The simulated value of ``reference``'s quantity on each seed."""
    measure = reference.measure
    if measure in OTHER_MEASURES:
        value = OTHER_MEASURES[measure]()  # no randomness: one value for every seed
        return tuple(value for _ in seeds)
    function = WALK_MEASURES[measure]
    if reference.change:  # stimulated minus unstimulated, seed by seed
        return tuple(function(walk(reference.profile, True, s, duration_s))
                     - function(walk(reference.profile, False, s, duration_s)) for s in seeds)
    return tuple(function(walk(reference.profile, reference.stimulated, s, duration_s))
                 for s in seeds)


def validate(seeds: Sequence[int] = range(5), duration_s: float = 60.0,
             references: Sequence[Reference] = REFERENCES) -> list[Row]:
    """Every reference's row, simulated on ``seeds`` walks of ``duration_s``."""
    return [Row(r, simulate(r, seeds, duration_s)) for r in references]


COLUMNS = ("quantity", "unit", "condition", "published", "range_low", "range_high", "source",
           "simulated_median", "simulated_min", "simulated_max", "in_range", "known_limit")


def _number(value: float) -> str:
    """Three significant figures, nothing below 0.01 (the rows' resolution)."""
    if abs(value) < 0.005:
        return "0"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def table_rows(rows: Sequence[Row]) -> list[dict[str, str]]:
    """The rows as strings, one dict per row with ``COLUMNS`` as keys."""
    out = []
    for row in rows:
        r = row.reference
        out.append({
            "quantity": r.quantity, "unit": r.unit, "condition": r.condition,
            "published": r.published, "range_low": _number(r.low),
            "range_high": _number(r.high), "source": r.source,
            "simulated_median": _number(row.median),
            "simulated_min": _number(min(row.values)), "simulated_max": _number(max(row.values)),
            "in_range": "yes" if row.in_range else "no",
            "known_limit": r.limit,
        })
    return out


def write_csv(rows: Sequence[Row], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table_rows(rows))


def markdown(rows: Sequence[Row]) -> str:
    """The table in Markdown (what docs/simulator.md shows)."""
    lines = ["| quantity | condition | published (range) | source | simulated median "
             "(seeds min-max) | in range |", "|---|---|---|---|---|---|"]
    for row in table_rows(rows):
        spread = (f"{row['simulated_median']} ({row['simulated_min']} to {row['simulated_max']})"
                  if row["simulated_min"] != row["simulated_max"] else row["simulated_median"])
        lines.append(
            f"| {row['quantity']} ({row['unit']}) | {row['condition']} | {row['published']} "
            f"({row['range_low']} to {row['range_high']}) | {row['source']} | {spread} | "
            f"{row['in_range']}{' (known limit)' if row['known_limit'] else ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.validate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="walks per row (default 5)")
    parser.add_argument("--duration-s", type=float, default=60.0,
                        help="simulated time of each walk (default 60)")
    parser.add_argument("--csv", type=Path, default=Path("sim-validation.csv"),
                        help="where to write the table as CSV (default sim-validation.csv)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table as Markdown instead of plain text")
    args = parser.parse_args(argv)
    if args.seeds < 1 or not args.duration_s >= 10.0:
        parser.error("--seeds must be at least 1 and --duration-s at least 10")
    rows = validate(range(args.seeds), args.duration_s)
    write_csv(rows, args.csv)
    if args.markdown:
        print(markdown(rows))
    else:
        for row in table_rows(rows):
            print(f"{row['quantity']} [{row['unit']}], {row['condition']}: published "
                  f"{row['published']} ({row['range_low']} to {row['range_high']}; "
                  f"{row['source']}); simulated {row['simulated_median']} "
                  f"({row['simulated_min']} to {row['simulated_max']}); "
                  f"in range: {row['in_range']}")
    outside = [row for row in rows if not row.in_range]
    print(f"{len(rows) - len(outside)} of {len(rows)} rows in range; written to {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
