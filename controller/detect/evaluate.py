"""Accuracy of the detectors on public walking recordings: the table of docs/detection.md.

    python -m controller.detect.evaluate [--voisard DIR] [--marpino DIR] [--gaitpdb DIR
        [--switch-closing-n N ...]]
        [--movingreality DIR [--placement shank|foot]] [--foot-reference gaitmap]
        [--tolerance-ms MS] [--json FILE]

``--voisard``: the Voisard et al. 2023 foot-IMU recordings (19 walkers, both feet);
``--marpino``: the ``Dataset/Young`` folder of the Walking-dataset of GitHub user Marpino
(shank and foot IMUs with toe and heel pressure; read only from the folder given, see
``controller.detect.marpino``); ``--gaitpdb``: PhysioNet gaitpdb force-insole walks
(the heel force detector, and a heel switch made from its force at each
``--switch-closing-n``, per group of walkers, ``controller.detect.gaitpdb_eval``);
``--movingreality``: the ``data`` folder of the Moving Reality study (Ensink et al. 2024:
people after a stroke on a treadmill, shank and foot IMUs, no reference events reachable;
scored without one, see ``controller.detect.unreferenced``; ``--placement foot`` scores
the foot detector instead of the shank's); ``--foot-reference
gaitmap``: an event reference from each leg's foot IMU by gaitmap, calibrated on Voisard
and applied to Moving Reality (``controller.detect.footref_eval``).

Honest figures, the way a researcher would check them:

* **Leave one walker out.** Where a placement's configuration is chosen on recordings
  (the foot on Voisard, the shank on Marpino), each walker is scored with the candidate
  configuration (``FOOT_GRID`` / ``SHANK_GRID`` around the shipped one) that scores best
  on the *other* walkers, in the window its target names (the foot's whole trials, the
  shank's steps other than the first and last); the pooled scores of the held-out
  walkers are the "leave one walker out" rows. The candidate chosen on all walkers is
  printed: it is the one ``configs/default.toml`` ships. Best is the smallest cost, per
  scored event kind (heel strike, toe off): misses and false detections as fractions
  ``(1 - recall) + (1 - precision)`` plus the median absolute error in units of the
  matching tolerance.
* **Unseen recordings.** The shipped foot configuration (chosen on Voisard) is also
  scored on the Marpino foot IMUs, which played no part in choosing it.
* Whole trials (starts, stops, the U-turn), and the windows without the U-turn and
  without each walk's first and last step, as the targets of issue 16 name them.
* **Without a reference** (Moving Reality): the mounting check and what
  ``controller.detect.unreferenced`` counts (swings found against the strides the foot
  implies, false swings with the foot still), never a recall or a timing error.
* Per event kind: recall, precision, bias (median signed error), median and 95th
  percentile absolute error, the latency with which events are announced (median, 95th
  percentile), the latest announcement after the reference event, and the per-walker
  bias spread (largest minus smallest per-walker median error).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controller.detect.axis import MOVING_RAD_S, SAGITTAL, VERDICT_NAMES, check_axes
from controller.detect.datasets import (
    Recording,
    load_voisard,
    voisard_gyro_axes,
)
from controller.detect.detector import DetectedEvent, detect_batch, gyro_mounting, gyro_setup
from controller.detect.gaitpdb_eval import MAX_CLOSING_N, SWITCH_CLOSING_N, gaitpdb_rows
from controller.detect.gyro import GyroDetectorConfig
from controller.detect.movingreality import (
    GYRO_AXES,
    PLACEMENTS,
    SAGITTAL_AXIS,
    folder_problem,
    foot_sagittal_axis,
    load_movingreality,
    worn_sensor,
)
from controller.detect.score import pooled
from controller.detect.scoredrows import (
    Row,
    cost,
    shipped_config,
    summarise,
    walker_scores,
)
from controller.detect.unreferenced import StrideRow, leg_figures, render_strides
from controller.events import EVENT_TOLERANCE_MS

#: Settings searched around the shipped foot configuration (leave one walker out).
FOOT_GRID: dict[str, tuple[float, ...]] = {
    "toe_off_rise_fraction": (0.5, 0.6, 0.7),
    "heel_strike_level_fraction": (0.25, 0.35, 0.45),
    "swing_peak_fraction": (0.2, 0.3),
}
#: Settings searched around the shipped shank configuration.
SHANK_GRID: dict[str, tuple[float, ...]] = {
    "toe_off_rise_fraction": (0.5, 0.7, 0.8, 0.9),
    "pre_swing_fraction": (0.5, 0.6),
    "swing_peak_fraction": (0.2, 0.3, 0.4),
}

COLUMNS = (
    "dataset", "configuration", "scored", "event", "reference", "recall", "precision",
    "bias ms", "median \\|error\\| ms", "p95 \\|error\\| ms", "latency ms (median / p95)",
    "latest announcement ms", "walker bias spread ms",
)
_CELLS = (
    "reference", "recall", "precision", "median_error_ms", "median_abs_error_ms",
    "p95_abs_error_ms", "latency", "max_announced_after_ms", "bias_spread_ms",
)
#: The other gyro axes of the Voisard foot IMUs: on them "mounted" is a wrong verdict
#: of the sign check, which the axis check must catch (docs/detection.md).
WRONG_AXES = {"Gyr_X": "roll axis", "Gyr_Z": "yaw axis"}
#: The same for the Marpino IMUs (as read, before the README's rotation).
MARPINO_WRONG_AXES = {"Gyro_read_x": "other axis", "Gyro_read_y": "other axis"}
#: The scoring windows of a ``Recording`` and how the table names them.
WINDOWS = {
    "window": "whole trial",
    "straight": "without U-turn",
    "steady": "without first/last steps",
}


def checked(config: GyroDetectorConfig) -> GyroDetectorConfig:
    """``config`` once its mounting check has passed: scored from the first stride, as
    ``fes detect`` runs it after checking a whole file (the check is scored apart)."""
    return config.model_copy(update={"mount_check_strides": 0})


def candidates(base: GyroDetectorConfig, grid: Mapping[str, Sequence[float]]) -> list[
    GyroDetectorConfig
]:
    """Every combination of the ``grid`` values applied to ``base`` (checked)."""
    names = list(grid)
    return [
        checked(base).model_copy(update=dict(zip(names, values, strict=True)))
        for values in itertools.product(*(grid[n] for n in names))
    ]


def run(
    recordings: Sequence[Recording], config: GyroDetectorConfig
) -> list[list[DetectedEvent]]:
    """The batch detector's events on each recording."""
    setup = gyro_setup(config)
    return [detect_batch(setup, rec.t_s, rec.gyro_rad_s)[1] for rec in recordings]


@dataclass(frozen=True)
class Selection:
    """Leave-one-walker-out scores and which candidate each held-out walker got."""

    summaries: dict[str, dict[str, dict[str, Any]]]  # per scored window
    chosen: Counter[int]  # candidate index -> walkers it was chosen for
    chosen_on_all: int  # the candidate chosen on every walker together


def leave_one_walker_out(
    recordings: Sequence[Recording],
    configs: Sequence[GyroDetectorConfig],
    select_on: str,
    windows: Sequence[str],
    tolerance_s: float,
) -> Selection:
    """Score each walker, in each of ``windows``, with the candidate that is best on
    the other walkers in the window ``select_on``."""
    detected = [run(recordings, config) for config in configs]
    per_config = [walker_scores(recordings, d, select_on, tolerance_s) for d in detected]
    walkers = list(per_config[0])
    choice: dict[str, int] = {}
    for walker in walkers:
        costs = [
            cost(pooled(s for name, s in scores.items() if name != walker))
            for scores in per_config
        ]
        choice[walker] = min(range(len(configs)), key=costs.__getitem__)
    summaries = {}
    for window in windows:
        scored = [walker_scores(recordings, d, window, tolerance_s) for d in detected]
        summaries[window] = summarise([scored[choice[w]][w] for w in walkers])
    on_all = min(range(len(configs)), key=lambda i: cost(pooled(per_config[i].values())))
    return Selection(summaries, Counter(choice.values()), on_all)


def describe(config: GyroDetectorConfig, grid: Mapping[str, Sequence[float]]) -> str:
    """The grid settings of a candidate, ``name = value`` separated by commas."""
    return ", ".join(f"{name} = {getattr(config, name):g}" for name in grid)


def shipped_rows(
    dataset: str, label: str, recordings: Sequence[Recording], config: GyroDetectorConfig,
    windows: Sequence[str], tolerance_s: float,
) -> list[Row]:
    """The shipped configuration on every walker of a dataset."""
    detected = run(recordings, checked(config))
    return [
        Row(dataset, label, WINDOWS[w],
            summarise(list(walker_scores(recordings, detected, w, tolerance_s).values())))
        for w in windows
    ]


def lowo_rows(
    dataset: str, recordings: Sequence[Recording], shipped: GyroDetectorConfig,
    grid: Mapping[str, Sequence[float]], select_on: str, windows: Sequence[str],
    tolerance_s: float, notes: list[str],
) -> list[Row]:
    """Leave-one-walker-out rows, the configuration chosen in the window ``select_on``
    (none with fewer than two walkers: there is nobody to choose on)."""
    if len({rec.walker for rec in recordings}) < 2:
        notes.append(f"{dataset}: one walker, no leave-one-walker-out rows")
        return []
    configs = candidates(shipped, grid)
    selection = leave_one_walker_out(recordings, configs, select_on, windows, tolerance_s)
    picks = "; ".join(
        f"{describe(configs[i], grid)} ({n} walkers)" for i, n in selection.chosen.most_common()
    )
    notes.append(
        f"{dataset}: chosen on the {WINDOWS[select_on]} of all walkers: "
        f"{describe(configs[selection.chosen_on_all], grid)}; held-out walkers got: {picks}"
    )
    return [
        Row(dataset, "leave one walker out", WINDOWS[w], selection.summaries[w]) for w in windows
    ]


@dataclass(frozen=True)
class MountingRow:
    """The mounting check on every recording of a dataset, as recorded and flipped."""

    dataset: str
    configuration: str
    recordings: int
    as_recorded: Counter[str]  # verdict name -> recordings
    flipped: Counter[str]
    decided_after_s: list[float]  # from the walk's start (``walk_start``), where decided
    #: The axis check (``controller.detect.axis``) with the row's axis read as sagittal,
    #: where the recordings have all three axes: verdict name -> recordings.
    axis: Counter[str]
    axis_after_s: list[float]  # its verdict, from the first reference event
    #: Recordings on which gait-triggered stimulation would start: the sign found right
    #: and the axis sagittal (or the sign only, without the other axes).
    stimulated: int
    #: The recordings on which it would not start, and why (for the ``--json`` file).
    not_stimulated: dict[str, str]


def walk_start(rec: Recording) -> float:
    """When the walk starts: the first reference event; without a reference, the first
    sample at which the sensor turns faster than ``MOVING_RAD_S`` (about all its axes)."""
    if rec.reference:
        return min(t for t, _ in rec.reference)
    if rec.gyro_axes:
        axes = np.vstack(list(rec.gyro_axes.values()))
    else:
        assert rec.gyro_rad_s is not None
        axes = rec.gyro_rad_s[np.newaxis]
    moving = np.flatnonzero(np.linalg.norm(axes, axis=0) > MOVING_RAD_S)
    return float(rec.t_s[moving[0]] if moving.size else rec.t_s[0])


def mounting_row(
    dataset: str, label: str, recordings: Sequence[Recording], config: GyroDetectorConfig,
    axis: str | None = None,
) -> MountingRow:
    """Run the mounting check of ``config`` on every recording, and on it flipped, with
    its gyro read from ``axis`` (None: the sagittal one); and the axis check, with that
    axis declared sagittal."""
    as_recorded, flipped, after = Counter[str](), Counter[str](), []
    axis_verdicts, axis_after, stimulated = Counter[str](), [], 0
    not_stimulated: dict[str, str] = {}
    for rec in recordings:
        axes = rec.gyro_axes or {}
        gyro = rec.gyro_rad_s if axis is None else axes[axis]
        assert gyro is not None
        first = walk_start(rec)
        block = gyro_mounting(config, rec.t_s, gyro)
        as_recorded[str(block["verdict"])] += 1
        flipped[str(gyro_mounting(config, rec.t_s, -gyro)["verdict"])] += 1
        if block["decided_s"] is not None:
            after.append(float(block["decided_s"]) - first)  # type: ignore[arg-type]
        right_axis, axis_verdict = True, "not read"
        if len(axes) == 3:
            names = tuple(axes)
            declared = names.index(axis if axis is not None else str(rec.sagittal_axis))
            found = check_axes(rec.t_s, np.vstack(list(axes.values())), declared,
                               (names[0], names[1], names[2]))
            axis_verdicts[VERDICT_NAMES[found.verdict]] += 1
            right_axis = found.verdict == SAGITTAL
            axis_verdict = VERDICT_NAMES[found.verdict]
            if found.decided_s is not None:
                axis_after.append(found.decided_s - first)
        if block["verdict"] == "mounted" and right_axis:
            stimulated += 1
        else:
            not_stimulated[rec.name] = f"sign {block['verdict']}, axis {axis_verdict}"
    return MountingRow(dataset, label, len(recordings), as_recorded, flipped, after,
                       axis_verdicts, axis_after, stimulated, not_stimulated)


def evaluate(
    voisard: Path | None, marpino: Path | None, gaitpdb: Path | None, tolerance_s: float,
    switch_closing_n: Sequence[float] = SWITCH_CLOSING_N,
) -> tuple[list[Row], list[MountingRow], list[str]]:
    """Every row of the table for the datasets given, and notes on the selections
    (``switch_closing_n``: the closing forces of the heel switches made from the gaitpdb
    heel force)."""
    config = shipped_config()
    foot, shank = config.gyro.foot, config.gyro.shank
    rows: list[Row] = []
    mounting: list[MountingRow] = []
    notes: list[str] = []
    if voisard is not None:
        recordings = load_voisard(voisard)
        name = f"Voisard 2023 foot IMU ({len({r.walker for r in recordings})} walkers)"
        foot_windows = ("window", "straight", "steady")
        rows += lowo_rows(
            name, recordings, foot, FOOT_GRID, "window", foot_windows, tolerance_s, notes
        )
        rows += shipped_rows(name, "shipped foot (chosen on all)", recordings, foot,
                             ("window",), tolerance_s)
        mounting.append(mounting_row(name, "shipped foot", recordings, foot))
        for axis, what in WRONG_AXES.items():
            if axis not in voisard_gyro_axes(voisard):
                continue  # a copy with the sagittal column only
            mounting.append(mounting_row(name, f"shipped foot, {what} ({axis}): wrong axis",
                                         recordings, foot, axis))
    if marpino is not None:
        from controller.detect.marpino import load_marpino  # needs the `eval` extra

        loaded = load_marpino(marpino)
        name = f"Marpino shank IMU ({len({r.walker for r in loaded.shank})} walkers)"
        windows = ("window", "steady")
        rows += lowo_rows(
            name, loaded.shank, shank, SHANK_GRID, "steady", windows, tolerance_s, notes
        )
        rows += shipped_rows(name, "shipped shank (chosen on all)", loaded.shank, shank,
                             windows, tolerance_s)
        mounting.append(mounting_row(name, "shipped shank", loaded.shank, shank))
        mounting += _marpino_wrong_axes(name, "shipped shank", loaded.shank, shank)
        name = f"Marpino foot IMU ({len({r.walker for r in loaded.foot})} walkers, unseen)"
        rows += shipped_rows(name, "shipped foot (chosen on Voisard)", loaded.foot, foot,
                             windows, tolerance_s)
        mounting.append(mounting_row(name, "shipped foot", loaded.foot, foot))
        mounting += _marpino_wrong_axes(name, "shipped foot", loaded.foot, foot)
        notes += [f"Marpino: left out {why}" for why in loaded.left_out]
    if gaitpdb is not None:
        rows += gaitpdb_rows(gaitpdb, config, tolerance_s, notes, switch_closing_n)
    return rows, mounting, notes


def movingreality_tables(
    folder: Path, placement: str = "shank",
) -> tuple[list[MountingRow], list[StrideRow], list[str]]:
    """The Moving Reality walkers after a stroke, without a reference: the mounting
    check of the shipped configuration of ``placement`` (on its sagittal axis and on the
    two other axes), and the swings it finds against the strides the foot implies. The
    shank's sagittal axis is the authors' (``Gyr_Y``); the foot's is decided from the
    data (``foot_sagittal_axis``), and a note says how."""
    config = shipped_config().model_copy(update={"placement": placement})
    loaded = load_movingreality(folder)
    notes = [f"Moving Reality: left out {why}" for why in loaded.left_out]
    axis: str | None = SAGITTAL_AXIS
    if placement == "foot":
        axis, named = foot_sagittal_axis(loaded.legs)
        notes.append("Moving Reality: the foot's sagittal axis, the one the axis check "
                     "finds turning most on most feet that move: " + ", ".join(
                         f"{name} on {n} f{'ee' if n != 1 else 'oo'}t"
                         for name, n in named.most_common())
                     + f"; read as sagittal: {axis}")
    worn = [(leg, sensor) for leg in loaded.legs
            if (sensor := worn_sensor(leg, placement, axis)) is not None]
    notes += [f"Moving Reality: left out {leg.shank.name.removesuffix(' shank')} foot: "
              "its file has no accelerometer or gyro columns"
              for leg in loaded.legs if placement == "foot" and leg.foot is None]
    if axis is None or not worn:
        return [], [], notes
    recordings = [rec for _, (rec, _) in worn]
    name = (f"Moving Reality stroke, treadmill, {placement} IMU "
            f"({len({r.walker for r in recordings})} walkers, no reference)")
    label = f"shipped {placement}"
    gyro = config.gyro_config()
    mounting = [mounting_row(name, label, recordings, gyro)]
    mounting += [mounting_row(name, f"{label}, other axis ({other}): wrong axis", recordings,
                              gyro, other)
                 for other in GYRO_AXES if other != axis]
    label += " (chosen on Voisard)" if placement == "foot" else ""
    strides = [StrideRow(name, label, [leg_figures(leg, config, rec, norm)
                                       for leg, (rec, norm) in worn])]
    return mounting, strides, notes


def _marpino_wrong_axes(
    dataset: str, label: str, recordings: Sequence[Recording], config: GyroDetectorConfig
) -> list[MountingRow]:
    return [
        mounting_row(dataset, f"{label}, {what} ({axis}): wrong axis", recordings, config, axis)
        for axis, what in MARPINO_WRONG_AXES.items()
        if recordings and all(axis in (rec.gyro_axes or {}) for rec in recordings)
    ]


def _cell(figures: Mapping[str, Any], key: str) -> str:
    if key == "latency":
        return f"{_cell(figures, 'median_latency_ms')} / {_cell(figures, 'p95_latency_ms')}"
    value = figures[key]
    if value is None:
        return "n/a"
    if key in ("recall", "precision"):
        return f"{100 * value:.1f} %"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def render_markdown(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, one line per event kind."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        for event, figures in row.summary.items():
            cells = [row.dataset, row.configuration, row.scored, event.replace("_", " ")]
            cells += [_cell(figures, key) for key in _CELLS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_mounting(rows: Sequence[MountingRow]) -> str:
    """The mounting check rows as a Markdown table."""
    head = ("| dataset | configuration | recordings | sign as recorded: mounted / flipped / "
            "undecided | sign flipped: mounted / flipped / undecided | sign verdict after the "
            "first event, s (median, max) | axis: sagittal / wrong axis / undecided | axis "
            "verdict after the first event, s (median, max) | stimulated (sign and axis "
            "pass) |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        counts = [" / ".join(str(c[v]) for v in ("mounted", "flipped", "checking"))
                  for c in (row.as_recorded, row.flipped)]
        axis = (" / ".join(str(row.axis[v]) for v in ("sagittal", "wrong axis", "checking"))
                if row.axis else "n/a (one axis)")
        lines.append(f"| {row.dataset} | {row.configuration} | {row.recordings} | "
                     f"{counts[0]} | {counts[1]} | {_timing(row.decided_after_s)} | {axis} | "
                     f"{_timing(row.axis_after_s)} | {row.stimulated} |")
    return "\n".join(lines)


def _timing(after: Sequence[float]) -> str:
    return f"{np.median(after):.1f}, {max(after):.1f}" if after else "n/a"


def foot_reference_problem(voisard: Path | None, movingreality: Path | None) -> str | None:
    """Why ``--foot-reference gaitmap`` cannot run (None: it can)."""
    if voisard is None and movingreality is None:
        return "give --voisard DIR (its calibration) or --movingreality DIR (its use)"
    from controller.detect.footref import gaitmap_problem

    return gaitmap_problem()


def main(argv: Sequence[str] | None = None) -> int:
    """Print the accuracy table; exit 2 when no dataset folder is usable."""
    parser = argparse.ArgumentParser(
        prog="python -m controller.detect.evaluate",
        description="Score the gait detectors on public walking recordings: leave one "
        "walker out where a configuration is chosen on them, whole trials, per event; "
        "print a Markdown table and how the configurations were chosen.",
    )
    parser.add_argument("--voisard", type=Path, metavar="DIR",
                        help="folder of Voisard et al. foot-IMU recordings (*.json, *_lf.txt)")
    parser.add_argument("--marpino", type=Path, metavar="DIR",
                        help="the Dataset/Young folder of the Marpino Walking-dataset (*.xlsx; "
                        "needs the `eval` extra: pip install -e '.[eval]')")
    parser.add_argument("--gaitpdb", type=Path, metavar="DIR",
                        help="folder of PhysioNet gaitpdb walks (*_NN.txt)")
    parser.add_argument("--switch-closing-n", type=float, action="append", metavar="N",
                        help="with --gaitpdb: score a heel switch made from the heel "
                        "force, closed at or above N newtons; repeat for more switches "
                        f"(default {', '.join(f'{n:g}' for n in SWITCH_CLOSING_N)})")
    parser.add_argument("--movingreality", type=Path, metavar="DIR",
                        help="the data folder of SintMaartenskliniek/MovingReality (walkers "
                        "after a stroke; no reference: scored without one)")
    parser.add_argument("--placement", choices=PLACEMENTS, metavar="{shank,foot}",
                        help="with --movingreality: the shipped detector of this placement "
                        "is scored (default shank; foot: its sagittal axis decided from the "
                        "data by the axis check)")
    parser.add_argument("--foot-reference", choices=("gaitmap",),
                        help="also score against an event reference from each leg's foot "
                        "IMU by gaitmap (Barth DTW + Rampp): with --voisard, the reference "
                        "against the labels; with --movingreality, the --placement "
                        "detector against it (needs the `gaitref` extra: gaitmap, MIT, and "
                        "gaitmap_mad, AGPL-3.0)")
    parser.add_argument("--tolerance-ms", type=float, default=EVENT_TOLERANCE_MS,
                        metavar="MS", help="largest timing error of a matched event "
                        f"(default {EVENT_TOLERANCE_MS:g})")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write every figure as JSON to FILE")
    args = parser.parse_args(argv)
    folders = [f for f in (args.voisard, args.marpino, args.gaitpdb) if f is not None]
    if not folders and args.movingreality is None:
        parser.error("give at least one of --voisard DIR, --marpino DIR, --gaitpdb DIR, "
                     "--movingreality DIR")
    if args.placement is not None and args.movingreality is None:
        parser.error("--placement applies to --movingreality only (the other datasets "
                     "score the placements they were recorded with)")
    closing_n = args.switch_closing_n or SWITCH_CLOSING_N
    if args.switch_closing_n is not None and args.gaitpdb is None:
        parser.error("--switch-closing-n applies to --gaitpdb only")
    bad = [n for n in closing_n if not 0.0 < n <= MAX_CLOSING_N]
    if bad:
        parser.error(f"--switch-closing-n must be above 0 and at most {MAX_CLOSING_N:g} N "
                     f"(as detector.heel.force.contact_force_n), not {bad[0]:g}")
    placement = args.placement or "shank"
    problem = None if args.movingreality is None else folder_problem(args.movingreality)
    if problem is not None:
        print(f"evaluate: --movingreality {problem}", file=sys.stderr)
        return 2
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        print(f"evaluate: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    if not args.tolerance_ms > 0.0:
        parser.error("--tolerance-ms must be positive")
    if args.foot_reference is not None:
        problem = foot_reference_problem(args.voisard, args.movingreality)
        if problem is not None:
            print(f"evaluate: --foot-reference gaitmap: {problem}", file=sys.stderr)
            return 2
    if args.marpino is not None:
        try:
            import openpyxl  # noqa: F401
        except ImportError:
            print("evaluate: --marpino reads .xlsx files with openpyxl: "
                  "pip install -e '.[eval]'", file=sys.stderr)
            return 2
    rows, mounting, notes = evaluate(
        args.voisard, args.marpino, args.gaitpdb, args.tolerance_ms / 1000, closing_n
    )
    strides: list[StrideRow] = []
    if args.movingreality is not None:
        more, strides, left_out = movingreality_tables(args.movingreality, placement)
        mounting += more
        notes += left_out
    if args.foot_reference is not None:
        from controller.detect import footref_eval  # imports gaitmap (AGPL-3.0 part)

        tolerance_s = args.tolerance_ms / 1000
        if args.voisard is not None:
            more_rows, more_notes = footref_eval.calibration_rows(args.voisard, tolerance_s)
            rows += more_rows
            notes += more_notes
        if args.movingreality is not None:
            more_rows, more_notes = footref_eval.stroke_rows(args.movingreality, tolerance_s,
                                                             placement)
            rows += more_rows
            notes += more_notes
    tables = [render_markdown(rows) if rows else "",
              render_mounting(mounting) if mounting else "",
              render_strides(strides) if strides else ""]
    print("\n\n".join(table for table in tables if table))
    print()
    for note in notes:
        print(f"- {note}")
    if args.json is not None:
        payload = {
            "rows": [row.__dict__ for row in rows],
            "mounting": [row.__dict__ for row in mounting],
            "strides": [{"dataset": row.dataset, "configuration": row.configuration,
                         "legs": [leg.__dict__ for leg in row.legs]} for row in strides],
            "notes": notes,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
