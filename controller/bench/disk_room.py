"""The bytes real trials write beside the estimate a trial is checked with up front.

    python -m controller.bench.disk_room [--duration-s 30] [--dir /tmp/disk-room]

Runs short ``fes sim`` trials (every shipped patient at 1 kHz, every stimulation preset
at 200 Hz, a ``--realtime`` one at 1 kHz and at 500 Hz, a ``--format parquet`` one) into
``--dir`` and prints, per trial, each file's bytes a sample, the mean width of a
``%.6f`` cell of ``samples.csv`` (over its float columns, ``time_s`` aside), and the
estimate ``controller.trial.diskroom`` makes of the same files (the tables without the
margin; the whole folder with it), so the figures of docs/files.md ("Room on the disk")
can be made again. A Parquet trial's size is the merged files' after the end: its parts,
which exist beside them until the merge ends, are not seen here.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from controller.resources import available


def float_cell_mean(samples: Path) -> float:
    """The mean width of the ``%.6f`` cells of a ``samples.csv`` (``time_s`` aside)."""
    from controller.trial.csvtext import FLOAT6
    from controller.trial.files import column_kind

    with samples.open() as f:
        rows = csv.reader(f)
        header = next(rows)
        floats = [i for i, name in enumerate(header)
                  if column_kind(name) == FLOAT6 and name != "time_s"]
        total = cells = 0
        for row in rows:
            total += sum(len(row[i]) for i in floats)
            cells += len(floats)
    return total / cells if cells else 0.0


def measure(folder: Path, realtime: bool, data_format: str) -> dict[str, float | str]:
    """A finished trial's files in ``folder`` against their estimate."""
    from controller.trial import diskroom
    from controller.trial.streams import TIMING_COLUMNS

    config = json.loads((folder / "config.json").read_text())
    loop = config["loop"]
    n = round(loop["duration_s"] * loop["sample_rate_hz"])
    planned = diskroom.simulated_files(config, realtime, data_format)
    row: dict[str, float | str] = {"trial": folder.name}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            row[path.name] = path.stat().st_size / n
    if data_format == "csv":
        with (folder / "samples.csv").open() as f:
            columns = f.readline().strip().split(",")
        row["samples estimate"] = diskroom.table_bytes(columns, n, loop["sample_rate_hz"]) / n
        row["float cell"] = float_cell_mean(folder / "samples.csv")
        if realtime:
            row["timing estimate"] = diskroom.table_bytes(
                TIMING_COLUMNS, n, loop["sample_rate_hz"]) / n
    written = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    row["folder"] = written / n
    row["folder estimate"] = planned.bytes / n
    return row


def trials(duration_s: float) -> list[tuple[str, list[str], bool, str]]:
    """(name, ``fes sim`` options, realtime, format) of every trial measured."""
    seconds = ["--duration-s", f"{duration_s:g}"]
    made = [(f"patient-{p}", ["--patient", p, "--rate-hz", "1000", *seconds], False, "csv")
            for p in available("patients")]
    made += [(f"stim-{s}", ["--stim", s, "--rate-hz", "200", *seconds], False, "csv")
             for s in available("stim")]
    made += [(f"realtime-{r}", ["--realtime", "--rate-hz", r, *seconds], True, "csv")
             for r in ("1000", "500")]
    made += [("parquet-1000", ["--rate-hz", "1000", "--format", "parquet", *seconds],
              False, "parquet")]
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.bench.disk_room",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=30.0,
                        help="each trial's length (default 30)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/disk-room"),
                        help="where the trials are written (default /tmp/disk-room)")
    args = parser.parse_args(argv)
    for name, options, realtime, data_format in trials(args.duration_s):
        out = args.dir / name
        subprocess.run([sys.executable, "-m", "controller.cli", "sim", *options, "--out",
                        str(out), "--overwrite"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        row = measure(out, realtime, data_format)
        print(", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{v}:"
                        for k, v in row.items()) + " (bytes a sample)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
