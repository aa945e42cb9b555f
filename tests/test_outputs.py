"""Outputs that cannot be written: every command that writes ends with exit 2 and one
line naming the path, never a traceback, and, where it can be checked up front, before
anything starts (for ``fes run``: before the board is asked for HELLO).

The read-only folder and the full disk are small tmpfs mounts made for the test (root
only; skipped elsewhere); ``/proc/x`` (cannot be created) and ``/dev/full`` (not a
folder, and a file that takes no byte) need nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.live import signal_once_written, with_emulator
from helpers.mounts import tmpfs

from controller.cli import main
from controller.config import load_config


def exit_and_message(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def holders(folder: Path) -> list[str]:
    """The open files in ``folder`` of any process (``/proc/*/fd``)."""
    found = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):  # a process or descriptor gone meanwhile
            if os.readlink(fd).startswith(f"{folder}/"):
                found.append(f"{fd} -> {os.readlink(fd)}")
    return found


@pytest.fixture
def read_only(tmp_path) -> Iterator[Path]:
    with tmpfs(tmp_path / "ro", "ro,size=1m") as path:
        yield path


@pytest.fixture
def full_disk(tmp_path, monkeypatch) -> Iterator[Path]:
    """A 64 KiB file system: a trial's config fits, a few seconds of samples do not.
    The check before a trial (``controller.trial.diskroom``) is told it has a terabyte
    free, as when another writer fills the disk after the check: the trial starts, and
    the disk fills while it runs."""
    from controller.trial import diskroom

    monkeypatch.setattr(diskroom, "free_bytes", lambda folder: (10**12, folder))
    with tmpfs(tmp_path / "full", "size=64k") as path:
        yield path


@pytest.mark.parametrize("out", ["/proc/x", "/dev/full"])
@pytest.mark.parametrize("realtime", [False, True], ids=["virtual", "realtime"])
def test_sim_refuses_an_output_it_cannot_write_before_it_starts(capsys, out, realtime):
    args = ["sim", "--duration-s", "1", "--out", out, *(["--realtime"] if realtime else [])]
    code, err = exit_and_message(capsys, *args)
    assert code == 2
    assert err.startswith(f"fes: cannot write {out}: ") and err.count("\n") == 1
    assert "real-time settings" not in err  # the loop never started


def test_sim_into_a_read_only_folder_exits_2(capsys, read_only):
    code, err = exit_and_message(capsys, "sim", "--duration-s", "1", "--out",
                                 str(read_only / "t"))
    assert code == 2
    assert err == f"fes: cannot write {read_only / 't'}: Read-only file system\n"


def test_a_disk_that_fills_during_the_trial_is_named_after_it(capsys, full_disk):
    """The trial runs to its end (a broken log must not take the outputs out of the
    watchdog's control), keeps what fitted, and the first file that could not be
    written is named."""
    out = full_disk / "t"
    code, err = exit_and_message(capsys, "sim", "--duration-s", "20", "--out", str(out))
    assert code == 2
    # The only error (a first run after an install says before it that it compiled).
    assert err.endswith(f"fes: cannot write {out / 'samples.csv'}: No space left on device\n")
    assert err.count("fes: ") == 1
    assert holders(out) == []  # the log writer released even the file that failed
    assert json.loads((out / "config.json").read_text())["loop"]["duration_s"] == 20.0
    assert (out / "samples.csv").read_text().startswith("time_s,")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_disk_that_fills_during_a_sweep_stops_it_naming_the_file(capsys, full_disk, workers):
    """A full disk made every trial a failure (exit 4, "run the same command again to
    retry them", tracebacks in failures.txt) while the sweep went on running the rest
    into it. It is an output that cannot be written: exit 2 naming the file, the sweep
    stopped at once, its finished trials kept, no failures.txt."""
    out = full_disk / "s"
    code, err = exit_and_message(capsys, "sweep", "--grid", "stim.peroneal.amplitude_ma=25,30",
                                 "--seeds", "2", "--duration-s", "20", "--workers", workers,
                                 "--out", str(out))
    assert code == 2, err
    assert f"fes: cannot write {out / 'trials'}/.partial-" in err
    assert "No space left on device; the sweep stopped there with 0 of 4 trials finished" in err
    assert not (out / "failures.txt").exists()
    assert [p.name for p in (out / "trials").iterdir()] == []  # no partial trial left


@pytest.mark.parametrize("command", ["sim", "run", "sweep", "report", "detect"])
def test_an_empty_output_path_is_refused(capsys, tmp_path, command):
    option = "--output" if command == "detect" else "--out"
    args = {"run": ["--port", "loop://"], "report": [str(tmp_path)],
            "detect": ["--input", str(tmp_path / "x.csv")]}.get(command, [])
    with pytest.raises(SystemExit) as exited:
        main([command, *args, option, ""])
    assert exited.value.code == 2
    assert "an empty path" in capsys.readouterr().err


def test_a_run_interrupted_while_compiling_leaves_no_folder(capsys, tmp_path, monkeypatch):
    """The folder is claimed before the first run compiles; Ctrl-C while it compiles
    ends fes run with exit 130 and removes the folder it made (no trial took place),
    and the board was never asked anything."""
    from controller.trial import live

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(live, "warm_up", interrupted)
    out = tmp_path / "trial"
    (code, _), log = with_emulator(lambda port: exit_and_message(
        capsys, "run", "--port", port, "--out", str(out), "--duration-s", "1"))
    assert code == 130 and not out.exists()
    assert "hello" not in [json.loads(line)["event"] for line in log.splitlines()]


def test_run_checks_its_output_folder_before_hello(capsys, tmp_path):
    """An unwritable folder stops fes run before it says anything to the board: the
    board's log has no HELLO, and the outputs were never on. It is said before a first
    run compiles the loop's kernels (the error alone on stderr, with numba's cache
    empty as after an install; it came after the compile notice, seconds later)."""
    (code, err), log = with_emulator(lambda port: exit_and_message(
        capsys, "run", "--port", port, "--out", "/proc/x", "--duration-s", "1"))
    assert code == 2 and err == "fes: cannot write /proc/x: No such file or directory\n"
    events = [json.loads(line)["event"] for line in log.splitlines()]
    assert "hello" not in events and "stream_start" not in events


@pytest.mark.parametrize("out", ["/proc/x", "/dev/full"])
def test_sweep_report_and_detect_name_the_output_they_cannot_write(capsys, tmp_path, out):
    trial = tmp_path / "trial"
    assert main(["sim", "--duration-s", "2", "--out", str(trial)]) == 0
    capsys.readouterr()
    code, err = exit_and_message(capsys, "sweep", "--seeds", "1", "--duration-s", "1",
                                 "--out", out)
    assert code == 2 and f"fes: cannot write {out}: " in err
    code, err = exit_and_message(capsys, "report", str(trial), "--out", out)
    assert code == 2 and err.startswith(f"fes: cannot write {out}: ")
    target = f"{out}/events.csv" if out == "/proc/x" else out
    code, err = exit_and_message(capsys, "detect", "--input", str(trial / "samples.csv"),
                                 "--output", target)
    assert code == 2 and err.startswith(f"fes: cannot write {target}: ")


@pytest.mark.parametrize("log", ["/proc/x/board.jsonl", "/dev/full"])
def test_board_emulator_refuses_a_log_it_cannot_write_before_serving(capsys, log):
    code, err = exit_and_message(capsys, "board-emulator", "--log", log)
    assert code == 2 and err.startswith(f"fes: cannot write {log}: ")
    assert "/dev/pts" not in capsys.readouterr().out  # it never served a pty


def test_config_is_whole_and_summary_last(tmp_path):
    """A finished trial's folder has no temporary file left, and its summary is the
    last file written (its presence marks a finished trial)."""
    out = tmp_path / "t"
    assert main(["sim", "--duration-s", "2", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "events.csv", "samples.csv", "summary.json"]
    # File times come from the kernel's coarse clock (a tick of a few ms): files written
    # within one tick share a time, so "last" is "no file later than the summary".
    summary_ns = (out / "summary.json").stat().st_mtime_ns
    assert all(p.stat().st_mtime_ns <= summary_ns for p in out.iterdir())
    assert load_config(overrides=json.loads((out / "config.json").read_text())) is not None


def test_a_day_long_live_trial_runs_in_a_window_under_a_memory_limit(tmp_path):
    """``fes sim --realtime --duration-s 86400`` under a 3 GB address-space limit starts
    and records (it keeps a window of rows, ``controller.trial.window``: 144 bytes a
    sample of a day kept whole, 12 GB with its scoring, were refused here before); Ctrl-C
    ends it with its files complete."""
    import resource
    import signal
    import sys

    from controller import sizes
    from controller.trial import diskroom

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 10**9, 3 * 10**9))

    out = tmp_path / "day"
    config = load_config(overrides={"loop": {"duration_s": 86400.0}}).model_dump()
    planned = diskroom.simulated_files(config, True, "csv")
    room = diskroom.free_bytes(out)
    if room is not None and room[0] < planned.bytes:  # refused up front, rightly
        pytest.skip(f"the disk of {tmp_path} cannot hold a day's files "
                    f"({sizes.size_text(planned.bytes)})")
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "sim", "--realtime", "--duration-s", "86400",
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=limit,
    )
    err = signal_once_written(proc, out / "samples.csv", 100_000, signal.SIGINT)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by"] == "interrupted" and summary["duration_s"] > 0


def test_a_trial_says_up_front_what_it_needs_when_its_window_does_not_fit(
        tmp_path, monkeypatch, capsys):
    """A trial whose window of rows would not fit in what the process may use: exit 2
    naming loop.duration_s, before anything is written."""
    from controller.trial import memory

    room = memory.RESERVE_BYTES + 20 * 2**20  # the window (some 35 MB) does not fit
    monkeypatch.setattr(memory, "room_bytes", lambda: (room, "a test's limit"))
    from controller.trial import diskroom  # a disk that holds the day: memory is asked

    monkeypatch.setattr(diskroom, "free_bytes", lambda folder: (10**12, folder))
    out = tmp_path / "day"
    assert main(["sim", "--realtime", "--duration-s", "86400", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "loop.duration_s" in err and "keeps a window of 131072 samples" in err
    assert "a test's limit" in err
    assert not out.exists() or not any(out.iterdir())
