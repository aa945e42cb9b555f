"""The bytes real trials write beside the estimate a trial is checked with up front.

    python -m controller.bench.disk_room [--duration-s 30] [--dir /tmp/disk-room]

Runs short ``fes sim`` trials (every shipped patient at 1 kHz, every stimulation preset
at 200 Hz, a ``--realtime`` one at 1 kHz and at 500 Hz, a ``--format parquet`` one) into
``--dir`` and prints, per trial, each file's bytes a sample, the mean width of a
``%.6f`` cell of ``samples.csv`` (over its float columns, ``time_s`` aside), and the
estimate ``controller.trial.diskroom`` makes of the same files (the tables without the
margin; the whole folder with it), so the figures of docs/files.md ("Room on the disk")
can be made again. A Parquet trial's size is the merged files' after the end: its parts,
which exist beside them until the merge ends, are not seen there.

    python -m controller.bench.disk_room --parts [--duration-s 20] [--every-s 0.01]

runs one ``fes sim --realtime --rate-hz 1000 --format parquet`` instead and reads the
bytes of its folder every ``--every-s`` while it runs: the largest size of each
``*.parquet.partial/`` folder of parts over the trial's seconds (each part carries the
schema and the config in its footer: ``PARQUET_PART_FOOTER_FACTOR`` of
``controller.trial.diskroom``), and the whole folder at its peak (parts and merged files
side by side until the merge ends) and after the end, in bytes a sample.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
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


def folder_bytes(folder: Path) -> dict[str, int]:
    """The bytes of the files under ``folder``, in all and per ``*.parquet.partial``
    folder. The trial writes while this reads: a file or a whole parts folder that goes
    while it is read counts as gone (``os.walk`` passes over a folder it can no longer
    list; ``Path.rglob`` raised, ending the benchmark, when the trial merged its parts
    and removed their folder mid-walk: a CI run of 7 Dec 2026)."""
    sizes = {"folder": 0}
    for root, _, files in os.walk(folder):
        parent = os.path.basename(root)
        for name in files:
            try:
                size = os.stat(os.path.join(root, name), follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            sizes["folder"] += size
            if parent.endswith(".parquet.partial"):
                sizes[parent] = sizes.get(parent, 0) + size
    return sizes


def watch_parts(out: Path, duration_s: float, every_s: float) -> list[str] | None:
    """Run a real-time 1 kHz Parquet ``fes sim`` into ``out``, reading its folder every
    ``every_s``; the lines of figures to print (None: the trial failed)."""
    rate_hz = 1000.0
    n = round(duration_s * rate_hz)
    command = [sys.executable, "-m", "controller.cli", "sim", "--realtime", "--rate-hz",
               f"{rate_hz:g}", "--format", "parquet", "--duration-s", f"{duration_s:g}",
               "--out", str(out), "--overwrite"]
    largest: dict[str, int] = {}
    with subprocess.Popen(command, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as proc:
        while proc.poll() is None:
            if out.is_dir():
                for name, size in folder_bytes(out).items():
                    largest[name] = max(largest.get(name, 0), size)
            time.sleep(every_s)
    if proc.returncode != 0:
        return None
    config_bytes = (out / "config.json").stat().st_size
    lines = [f"fes {' '.join(command[3:-3])}, read every {every_s:g} s; config.json "
             f"{config_bytes / 1e3:.1f} kB"]
    lines += [f"{name}/: at most {size / 1e3:.1f} kB, {size / duration_s / 1e3:.1f} kB a "
              f"second of trial" for name, size in sorted(largest.items()) if name != "folder"]
    lines.append(f"folder: {largest.get('folder', 0) / n:.1f} bytes a sample at its peak, "
                 f"{folder_bytes(out)['folder'] / n:.1f} merged")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.bench.disk_room",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=30.0,
                        help="each trial's length (default 30)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/disk-room"),
                        help="where the trials are written (default /tmp/disk-room)")
    parser.add_argument("--parts", action="store_true",
                        help="instead, watch one real-time Parquet trial's parts grow")
    parser.add_argument("--every-s", type=float, default=0.01,
                        help="with --parts: how often the folder is read (default 0.01)")
    args = parser.parse_args(argv)
    if not (args.duration_s > 0 and args.every_s > 0):
        parser.error("--duration-s and --every-s must be positive")
    if args.parts:
        lines = watch_parts(args.dir / "parquet-parts", args.duration_s, args.every_s)
        if lines is None:
            print("disk_room: the fes sim --realtime --format parquet trial failed "
                  f"(run it by hand into {args.dir / 'parquet-parts'} to see why)",
                  file=sys.stderr)
            return 1
        print("\n".join(lines))
        return 0
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
