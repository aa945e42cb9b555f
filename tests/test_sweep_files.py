"""A sweep's local workers write each trial's files straight into the sweep folder: the
files never pass through the sweep's process as bytes. A sweep killed mid-trial (SIGKILL
of its process, or Ctrl-C) leaves no half-committed trial, and running it again gives the
files of a sweep that was never interrupted."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.live import session_alive

from controller.cli import main
from controller.config import load_config
from controller.sweep.executors import run_processes
from controller.sweep.store import PARTIAL_PREFIX, SweepStore
from controller.sweep.table import WALL_CLOCK_FIGURES
from controller.sweep.worker import FileOptions, TrialFailure, TrialOutput, run_guarded
from controller.trial.figures import flatten

FOUR = ["config.json", "events.csv", "samples.csv", "summary.json"]
GRID = ["--grid", "stim.peroneal.amplitude_ma=20,35", "--seeds", "2", "--duration-s", "600"]
TRIALS = 4


def trial_files(folder: Path) -> dict[str, object]:
    """A trial folder's files, ``summary.json`` as its figures without the wall-clock ones."""
    files: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        if path.name == "summary.json":
            figures = flatten(json.loads(path.read_text()))
            files[path.name] = {k: v for k, v in figures.items() if k not in WALL_CLOCK_FIGURES}
        else:
            files[path.name] = path.read_bytes()
    return files


def committed(out: Path) -> list[Path]:
    trials = out / "trials"
    if not trials.is_dir():
        return []
    return sorted(p for p in trials.iterdir() if not p.name.startswith(PARTIAL_PREFIX))


def partials(out: Path) -> list[Path]:
    trials = out / "trials"
    return sorted(trials.glob(f"{PARTIAL_PREFIX}*")) if trials.is_dir() else []


def test_a_local_worker_returns_the_folder_of_its_trial_not_its_bytes(tmp_path):
    config = load_config(None, {"loop": {"duration_s": 20}}).model_dump()
    staging = tmp_path / "trials"
    staging.mkdir()
    [(index, result)] = list(run_processes([(config, FileOptions(staging=str(staging)))], 1))
    assert index == 0 and isinstance(result, TrialOutput)
    assert result.files == {} and result.staged is not None
    folder = Path(result.staged)
    assert folder.parent == staging and folder.name.startswith(PARTIAL_PREFIX)
    assert sorted(p.name for p in folder.iterdir()) == FOUR
    samples = (folder / "samples.csv").stat().st_size
    assert samples > 1_000_000
    # What crossed the process boundary: the summary and a path (2 kB), not 1.4 MB of files.
    assert len(pickle.dumps(result)) < min(16_000, samples / 100)
    # The same files as a trial run in a scratch folder and returned as bytes (Dask's way).
    _, as_bytes = run_guarded(0, config, FileOptions())
    assert isinstance(as_bytes, TrialOutput) and as_bytes.staged is None
    assert sorted(as_bytes.files) == FOUR
    for name in ("config.json", "events.csv", "samples.csv"):
        assert as_bytes.files[name] == (folder / name).read_bytes()


def test_summaries_only_leaves_two_files_in_the_staged_folder(tmp_path):
    config = load_config(None, {"loop": {"duration_s": 4}}).model_dump()
    _, result = run_guarded(0, config, FileOptions(summaries_only=True, staging=str(tmp_path)))
    assert isinstance(result, TrialOutput) and result.staged is not None
    assert sorted(p.name for p in Path(result.staged).iterdir()) == [
        "config.json", "summary.json"]


def test_a_trial_that_fails_leaves_no_staged_folder(tmp_path, monkeypatch):
    from controller.trial import simulated

    def fails(config, folder, **kwargs):
        (folder / "samples.csv").write_text("t_s\n0.0\n")
        raise RuntimeError("the limb fell over")

    monkeypatch.setattr(simulated, "run_simulated_trial", fails)
    config = load_config(None, {"loop": {"duration_s": 4}}).model_dump()
    _, result = run_guarded(0, config, FileOptions(staging=str(tmp_path)))
    assert isinstance(result, TrialFailure) and "the limb fell over" in result.error
    assert list(tmp_path.iterdir()) == []


def test_a_local_sweep_never_writes_a_trial_from_bytes(tmp_path, monkeypatch):
    def from_bytes(self, key, files):
        raise AssertionError("a local trial's files came to the sweep as bytes")

    monkeypatch.setattr(SweepStore, "commit", from_bytes)
    for workers in ("1", "2"):
        out = tmp_path / workers
        assert main(["sweep", "--grid", "stim.peroneal.amplitude_ma=20,35", "--duration-s",
                     "4", "--workers", workers, "--out", str(out)]) == 0
        assert [sorted(p.name for p in t.iterdir()) for t in committed(out)] == [FOUR] * 2
        assert partials(out) == []


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "sweep"
    assert main(["sweep", *GRID, "--workers", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(("how", "workers"), [
    ("SIGKILL", "1"), ("SIGKILL", "2"), ("Ctrl-C", "1"), ("Ctrl-C", "2"),
])
def test_a_sweep_killed_mid_trial_resumes_to_the_files_of_an_uninterrupted_one(
    tmp_path, uninterrupted, how, workers
):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "controller.cli", "sweep", *GRID, "--workers", workers,
               "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    # Mid-trial: one trial committed, another one's files being written.
    while not (committed(out) and any((p / "config.json").exists() for p in partials(out))):
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "no trial under way in time"
        time.sleep(0.005)
    if how == "SIGKILL":
        proc.kill()  # the parent alone, as `kill -9 PID` does
        assert proc.wait() == -signal.SIGKILL
    else:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends its foreground group
        assert proc.wait(timeout=60) == 130
        assert partials(out) == []  # the interrupted trials' folders are removed
    while session_alive(proc.pid):  # orphaned workers notice and exit
        assert time.monotonic() < deadline, f"orphans: {session_alive(proc.pid)}"
        time.sleep(0.05)
    whole = {t.name: trial_files(t) for t in committed(uninterrupted)}
    kept = committed(out)
    assert 1 <= len(kept) < TRIALS
    for trial in kept:  # every trial in place is whole, as the uninterrupted sweep's
        assert trial_files(trial) == whole[trial.name]

    assert main(["sweep", *GRID, "--workers", workers, "--out", str(out)]) == 0
    assert partials(out) == []
    assert {t.name: trial_files(t) for t in committed(out)} == whole
    assert len(whole) == TRIALS
    assert (out / "ranking.csv").read_bytes() == (uninterrupted / "ranking.csv").read_bytes()


class _KillsAWorker:
    """An ``UnderWay`` whose first tick (no result yet) kills the first worker process
    (SIGKILL), as the kernel's out-of-memory killer would."""

    shares = None

    def __init__(self) -> None:
        self.killed: list[int] = []

    def tick(self) -> None:
        import multiprocessing

        if not self.killed:
            victim = multiprocessing.active_children()[0]
            os.kill(victim.pid, signal.SIGKILL)
            self.killed.append(victim.pid)


def test_a_worker_that_dies_in_a_trial_fails_that_trial_and_another_takes_its_place(
    tmp_path
):
    """``multiprocessing.Pool`` waited for ever for the result of a task whose worker
    died; the sweep's own workers report that trial as a failure and run the rest."""
    long = load_config(None, {"loop": {"duration_s": 3000}}).model_dump()
    short = load_config(None, {"loop": {"duration_s": 4}}).model_dump()
    options = FileOptions(summaries_only=True, staging=str(tmp_path))
    killer = _KillsAWorker()
    results = dict(run_processes([(long, options), (short, options)], 1,
                                 under_way=killer))  # type: ignore[arg-type]
    assert len(killer.killed) == 1
    assert isinstance(results[0], TrialFailure)
    assert f"ended (exit code {-signal.SIGKILL})" in results[0].error
    assert isinstance(results[1], TrialOutput) and results[1].staged is not None
    import multiprocessing

    assert multiprocessing.active_children() == []
