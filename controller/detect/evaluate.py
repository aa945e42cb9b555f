"""Accuracy of the detectors on public walking recordings: the table in docs/detection.md.

    python -m controller.detect.evaluate --voisard DIR --gaitpdb DIR [--json FILE]

``--voisard`` is a folder of the Voisard et al. 2023 foot-IMU recordings, ``--gaitpdb``
a folder of PhysioNet gaitpdb force-insole walks (see ``controller.detect.datasets``).
Every recording runs through the batch detector with the shipped configuration of its
placement (``configs/default.toml``): nothing is tuned per recording or per dataset.
Scores are pooled over all recordings of a dataset, events matched within
``--tolerance-ms``. The foot recordings are scored three ways: the whole labelled
trial, without the U-turn, and steady walking only (also without the first and last
step of each straight walk). The shank configuration is scored on the foot recordings
too, to show what the placement-specific configuration is worth.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.config import load_config
from controller.detect.config import DetectorConfig
from controller.detect.datasets import Recording, load_gaitpdb, load_voisard
from controller.detect.detector import DetectorSetup, detect_batch
from controller.detect.score import Scorer

COLUMNS = (
    "dataset", "detector", "scored", "event", "reference", "recall", "precision",
    "median error ms", "median |error| ms", "p95 |error| ms", "median latency ms",
)


@dataclass(frozen=True)
class Row:
    """The pooled score of one detector on one dataset, scored one way."""

    dataset: str
    detector: str
    scored: str
    summary: dict[str, dict[str, Any]]


def score(
    recordings: Sequence[Recording], setup: DetectorSetup, window: str, tolerance_s: float
) -> dict[str, dict[str, Any]]:
    """Pooled scores of ``setup`` over ``recordings``, in the named scoring window."""
    scorer = Scorer(tolerance_s)
    for rec in recordings:
        _, events = detect_batch(setup, rec.t_s, rec.gyro_rad_s, rec.heel_force_n)
        scorer.add(rec.reference, events, getattr(rec, window))
    return scorer.summary()


def evaluate(
    voisard: Path | None, gaitpdb: Path | None, config: DetectorConfig, tolerance_s: float
) -> list[Row]:
    """Every row of the table for the datasets given."""
    rows = []
    if voisard is not None:
        recordings = load_voisard(voisard)
        name = f"Voisard 2023 foot IMU ({len(recordings)} feet)"
        foot = config.model_copy(update={"sensor": "gyro", "placement": "foot"}).setup()
        shank = config.model_copy(update={"sensor": "gyro", "placement": "shank"}).setup()
        for window, label in (
            ("window", "whole trial"),
            ("straight", "without U-turn"),
            ("steady", "steady walking"),
        ):
            rows.append(Row(name, "gyro, foot config", label,
                            score(recordings, foot, window, tolerance_s)))
        rows.append(Row(name, "gyro, shank config", "without U-turn",
                        score(recordings, shank, "straight", tolerance_s)))
    if gaitpdb is not None:
        recordings = load_gaitpdb(gaitpdb)
        name = f"PhysioNet gaitpdb insole ({len(recordings)} feet)"
        heel = config.model_copy(update={"sensor": "heel", "heel_input": "force"}).setup()
        rows.append(Row(name, "heel force sensor (L1/R1)", "whole walk",
                        score(recordings, heel, "window", tolerance_s)))
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def render_markdown(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, one line per event kind."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        for event, s in row.summary.items():
            cells = [
                row.dataset, row.detector, row.scored, event.replace("_", " "),
                str(s["reference"]),
                f"{100 * s['recall']:.1f} %" if s["recall"] is not None else "n/a",
                f"{100 * s['precision']:.1f} %" if s["precision"] is not None else "n/a",
                _cell(s["median_error_ms"]), _cell(s["median_abs_error_ms"]),
                _cell(s["p95_abs_error_ms"]), _cell(s["median_latency_ms"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the accuracy table; exit 2 when no dataset folder is usable."""
    parser = argparse.ArgumentParser(
        prog="python -m controller.detect.evaluate",
        description="Score the detectors on public walking recordings (one shipped "
        "configuration per placement) and print a Markdown table.",
    )
    parser.add_argument("--voisard", type=Path, metavar="DIR",
                        help="folder of Voisard et al. foot-IMU recordings (*.json, *_lf.txt)")
    parser.add_argument("--gaitpdb", type=Path, metavar="DIR",
                        help="folder of PhysioNet gaitpdb walks (*_NN.txt)")
    parser.add_argument("--tolerance-ms", type=float, default=100.0, metavar="MS",
                        help="largest timing error of a matched event (default 100)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write every figure as JSON to FILE")
    args = parser.parse_args(argv)
    folders = [f for f in (args.voisard, args.gaitpdb) if f is not None]
    if not folders:
        parser.error("give --voisard DIR and/or --gaitpdb DIR")
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        print(f"evaluate: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    if not args.tolerance_ms > 0.0:
        parser.error("--tolerance-ms must be positive")
    rows = evaluate(args.voisard, args.gaitpdb, load_config().detector, args.tolerance_ms / 1000)
    print(render_markdown(rows))
    if args.json is not None:
        payload = [row.__dict__ for row in rows]
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
