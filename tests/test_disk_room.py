"""A trial that cannot fit on the disk of its output folder is refused before it starts
(``controller.trial.diskroom``): exit 2, one line naming the estimate, the free space,
the folder and what to change, nothing written, no board asked anything; one that fits
only narrowly is said and runs. The estimate is held against the bytes real short
trials wrote, so a column or a file added later is counted or these tests fail.

The small disks are tmpfs mounts (root only; skipped elsewhere), sized from the
estimate itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers.live import with_emulator
from helpers.mounts import tmpfs
from helpers.shared_machine import host_config, rerun_after_heartbeat_faults

from controller.cli import main
from controller.trial import diskroom
from controller.trial.streams import TIMING_COLUMNS
from hw.board import WIRE_TRUTH_COLUMNS
from sim.limb import TRUTH_COLUMNS


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def config_of(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def assert_estimated(actual: int, estimate: int) -> None:
    """The estimate (with its margin) holds what was written, and is not so far above
    it that a column the writer no longer writes would go unnoticed."""
    assert actual <= estimate * (1 + diskroom.MARGIN), (actual, estimate)
    assert estimate <= 1.10 * actual, (actual, estimate)


def test_time_cells_are_counted_exactly():
    rate, n = 1000.0, 12_345  # across 10 s: one more integer digit
    assert diskroom.time_text_bytes(n, rate) == sum(len("%.6f" % (i / rate)) for i in range(n))


@pytest.mark.parametrize("options", [
    ("--rate-hz", "1000", "--duration-s", "20"),
    ("--rate-hz", "200", "--duration-s", "20", "--stim", "peroneal_calf"),  # more columns
    ("--rate-hz", "1000", "--duration-s", "3", "--realtime"),  # timing.csv
], ids=["1kHz", "calf", "realtime"])
def test_the_estimate_holds_what_a_real_sim_trial_wrote(capsys, tmp_path, options):
    out = tmp_path / "t"
    code, _ = run(capsys, "sim", *options, "--out", str(out))
    assert code == 0
    config = config_of(out)
    loop = config["loop"]
    n = round(loop["duration_s"] * loop["sample_rate_hz"])
    realtime = "--realtime" in options
    planned = diskroom.simulated_files(config, realtime, "csv")
    header = (out / "samples.csv").read_text().split("\n", 1)[0].split(",")
    columns = diskroom.sample_columns(
        [name for name, ch in config["stim"]["channels"].items() if ch["enabled"]],
        TRUTH_COLUMNS)
    assert columns == header  # the estimate's columns are the file's
    assert_estimated((out / "samples.csv").stat().st_size,
                     diskroom.table_bytes(columns, n, loop["sample_rate_hz"]))
    if realtime:
        assert_estimated((out / "timing.csv").stat().st_size,
                         diskroom.table_bytes(TIMING_COLUMNS, n, loop["sample_rate_hz"]))
    assert folder_bytes(out) <= planned.bytes


def test_the_estimate_holds_what_a_live_trial_against_the_emulator_wrote(capsys, tmp_path):
    """A short ``fes run`` against the board emulator writes ``samples.csv`` again at
    its end with the emulator's truth: the estimate counts both copies."""
    def attempt(k: int) -> tuple[int, str, Path]:
        out = tmp_path / f"live{k}"  # one trial per folder: a rerun gets its own
        (code, err), _ = with_emulator(lambda port: run(
            capsys, "run", "--port", port, "--out", str(out), "--duration-s", "3",
            "--no-status", "--config", host_config(tmp_path)))
        return code, err, out

    # A live trial on a shared machine: a heartbeat fault the machine caused (once in a
    # fresh-clone CI run beside two helpers, 21.0 ms > 20 ms) is run again, with proof.
    code, err, out = rerun_after_heartbeat_faults(attempt)
    assert code == 0, err
    config = config_of(out)
    loop = config["loop"]
    n = round(loop["duration_s"] * loop["sample_rate_hz"])
    planned = diskroom.live_files(config, True, "csv")
    header = (out / "samples.csv").read_text().split("\n", 1)[0].split(",")
    assert header == diskroom.sample_columns([], WIRE_TRUTH_COLUMNS)
    assert_estimated((out / "samples.csv").stat().st_size,
                     diskroom.table_bytes(header, n, loop["sample_rate_hz"]))
    assert folder_bytes(out) <= planned.bytes


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs(tmp_path / "disk", "size=4m") as path:
        yield path


def assert_refused(err: str, out: Path, disk: Path) -> None:
    assert err.startswith(f"fes: cannot write {out}: ") and err.count("\n") == 1, err
    assert "files need about" in err and "MB free" in err and str(disk) in err
    assert "--out on a disk with room" in err and "nothing was written" in err
    assert list(disk.iterdir()) == []


def test_a_sim_that_cannot_fit_is_refused_before_it_writes_anything(capsys, small_disk):
    out = small_disk / "t"
    code, err = run(capsys, "sim", "--duration-s", "600", "--rate-hz", "1000", "--out",
                    str(out))
    assert code == 2
    assert_refused(err, out, small_disk)
    assert "--duration-s of at most" in err
    # 4 MiB at some 160 bytes a sample with its margin: some 26 s at 1 kHz
    seconds = int(err.split("--duration-s of at most ")[1].split()[0])
    assert 20 <= seconds <= 30


def test_a_run_that_cannot_fit_never_opens_the_board_port(capsys, small_disk, monkeypatch):
    import serial

    opened: list[str] = []
    real_open = serial.serial_for_url
    monkeypatch.setattr(serial, "serial_for_url",
                        lambda url, *a, **k: opened.append(url) or real_open(url, *a, **k))
    out = small_disk / "live"
    (code, err), log = with_emulator(lambda port: run(
        capsys, "run", "--port", port, "--out", str(out), "--duration-s", "3600"))
    assert code == 2
    assert_refused(err, out, small_disk)
    assert "compiling" not in err  # said before the loop's kernels were even compiled
    assert opened == []  # the port was never opened
    events = [json.loads(line) for line in log.splitlines()]
    assert [e["event"] for e in events] == ["ready", "counters", "round_trips"]
    assert events[1]["rx_frames"] == 0  # the board heard nothing


def test_a_sweep_whose_trials_cannot_fit_runs_none(capsys, small_disk):
    out = small_disk / "s"
    code, err = run(capsys, "sweep", "--grid", "stim.peroneal.amplitude_ma=25,30",
                    "--seeds", "2", "--duration-s", "120", "--out", str(out))
    assert code == 2
    assert err.startswith(f"fes: cannot write {out}: the trials' files need about"), err
    assert "4 trials to run" in err and "--summaries-only" in err
    assert list(small_disk.iterdir()) == []


def test_a_trial_that_fits_narrowly_says_so_and_runs(capsys, tmp_path):
    from controller.config import load_config

    config = load_config(None, {"loop": {"duration_s": 20.0}}).model_dump()
    planned = diskroom.simulated_files(config, False, "csv")
    size = math.ceil(planned.bytes / 0.95 / 4096) * 4096  # 95 % of the disk's pages
    with tmpfs(tmp_path / "disk", f"size={size}") as disk:
        out = disk / "t"
        code, err = run(capsys, "sim", "--duration-s", "20", "--out", str(out))
        assert code == 0, err
        assert "it fits, narrowly" in err and str(disk) in err
        assert (out / "summary.json").exists()


def test_overwrite_counts_the_earlier_trials_files_as_free(capsys, small_disk):
    """A second 20 s trial at 1 kHz into the same folder of a 4 MiB disk: the first
    trial's 2.9 MB leave 1.3 MB free, but ``--overwrite`` removes them first."""
    out = small_disk / "t"
    options = ("sim", "--duration-s", "20", "--rate-hz", "1000", "--out", str(out))
    assert run(capsys, *options)[0] == 0
    code, err = run(capsys, *options, "--overwrite")
    assert code == 0, err
    assert (out / "summary.json").exists()
