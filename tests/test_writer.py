"""Log sinks run in the writer process: a slow or stuck sink never delays the loop."""

from __future__ import annotations

import errno
import io
import json
import multiprocessing
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from controller.clock import VirtualClock
from controller.config import load_config
from controller.deadlines import DeadlineMonitor
from controller.detect.config import build_detector
from controller.loop import run_loop
from controller.ports import Sample
from controller.safety import Watchdog
from controller.stim.scheduler import StimScheduler
from controller.trial.recorder import TrialRecorder
from controller.trial.simulated import run_simulated_trial
from controller.trial.status import StatusLine
from controller.trial.writer import LogWriter, LogWriterError
from sim.limb import SimulatedLimb
from sim.patient import load_patient

FORK = multiprocessing.get_context("fork")


class SavingSink:
    """Keeps every block it gets and saves them to ``path`` when closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.firsts: list[int] = []
        self.blocks: list[dict[str, np.ndarray]] = []

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        self.firsts.append(first)
        self.blocks.append({name: np.array(values) for name, values in rows.items()})

    def close(self) -> None:
        columns = {
            name: np.concatenate([b[name] for b in self.blocks]) for name in self.blocks[0]
        }
        np.savez(self.path, firsts=np.array(self.firsts), **columns)


class StuckSink(SavingSink):
    """Blocks inside its first write until the test releases it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = FORK.Event()
        self.release = FORK.Event()
        self.returned = FORK.Event()

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        self.entered.set()
        assert self.release.wait(timeout=30)
        super().write(first, rows)
        self.returned.set()


class SleepySink(SavingSink):
    """Takes ``delay_s`` for every block (a slow disk, a slow network)."""

    def __init__(self, path: Path, delay_s: float) -> None:
        super().__init__(path)
        self.delay_s = delay_s

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        time.sleep(self.delay_s)
        super().write(first, rows)


class WaitForSink:
    """The simulated limb; reading sample ``at`` waits until the sink is stuck."""

    def __init__(self, limb: SimulatedLimb, at: int, sink: StuckSink) -> None:
        self._limb, self._at, self._sink, self._k = limb, at, sink, 0
        self.sample_period_s = limb.sample_period_s

    def read(self) -> Sample | None:
        if self._k == self._at:
            assert self._sink.entered.wait(timeout=30)
        self._k += 1
        return self._limb.read()

    def close(self) -> None:
        self._limb.close()


def test_the_loop_runs_to_the_end_while_the_sink_is_stuck_and_no_sample_is_lost(tmp_path):
    """Structural: half the trial runs while the sink is blocked, so the loop never waits."""
    config = load_config()
    n = 1000
    limb = SimulatedLimb(load_patient("moderate"), 500.0, 2.0, seed=5)
    sink = StuckSink(tmp_path / "rows.npz")
    recorder, deadlines = TrialRecorder(n), DeadlineMonitor(n, limb.sample_period_s)
    writer = LogWriter((recorder, deadlines), [sink], poll_s=0.005)
    writer.start()
    outcome = run_loop(
        WaitForSink(limb, at=500, sink=sink), build_detector(config.detector, 500.0),
        StimScheduler(config.stim), Watchdog(limb, config.safety), VirtualClock(), recorder, n,
        deadlines,
    )
    assert outcome.samples == n
    assert sink.entered.is_set() and not sink.returned.is_set()  # still stuck: loop done
    sink.release.set()
    writer.stop()
    saved = np.load(tmp_path / "rows.npz")
    assert saved["firsts"][0] == 0
    for name, column in recorder.columns().items():
        assert np.array_equal(saved[name], column, equal_nan=True), name
    assert np.array_equal(saved["lateness_us"], np.zeros(n))
    assert writer.written == n and writer.max_backlog >= 500


def test_a_slow_sink_in_a_real_time_trial_gets_every_sample_without_slowing_the_loop(
    tmp_path,
):
    config = load_config(overrides={"loop": {"duration_s": 0.6}})
    sink = SleepySink(tmp_path / "rows.npz", delay_s=0.3)
    summary = run_simulated_trial(config, tmp_path / "trial", realtime=True, sinks=[sink])
    saved = np.load(tmp_path / "rows.npz")
    assert np.array_equal(saved["time_s"], np.arange(300) * 0.002)
    # Had the loop waited for one of the sink's 0.3 s naps, one sample would be 300 ms
    # late and 150 periods missed. The margins are generous: the machine is shared.
    timing = summary["timing"]
    assert timing["lateness_us"]["max"] < 150_000 and timing["misses"] < 75
    per_sample = np.genfromtxt(tmp_path / "trial" / "timing.csv", delimiter=",", names=True)
    assert np.allclose(saved["lateness_us"], per_sample["lateness_us"], rtol=0.0, atol=1e-6)


class FullDiskSink:
    """A file on a full disk: every write fails with ENOSPC."""

    path = "/mnt/full/samples.csv"

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self) -> None:
        """Nothing to release."""


class FullDiskFileSink(FullDiskSink):
    """A full disk's file that says on the disk beside it when it is closed (the sink
    runs in the writer process)."""

    def __init__(self, closed: Path) -> None:
        self.closed = closed

    def close(self) -> None:
        self.closed.write_text("closed")


class BuggySink(FullDiskSink):
    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        raise RuntimeError("a bug in the sink")


def _run_with_sinks(sinks: list) -> LogWriter:
    config = load_config()
    limb = SimulatedLimb(load_patient("moderate"), 500.0, 1.0, seed=5)
    recorder, deadlines = TrialRecorder(500), DeadlineMonitor(500, limb.sample_period_s)
    writer = LogWriter((recorder, deadlines), sinks, poll_s=0.001)
    writer.start()
    time.sleep(0.01)
    outcome = run_loop(
        limb, build_detector(config.detector, 500.0), StimScheduler(config.stim),
        Watchdog(limb, config.safety), VirtualClock(), recorder, 500, deadlines,
    )
    assert outcome.samples == 500
    return writer


def test_a_full_disk_drops_its_sink_and_is_named_after_the_loop_which_runs_to_the_end(
    tmp_path,
):
    saving = SavingSink(tmp_path / "rows.npz")
    writer = _run_with_sinks([FullDiskSink(), saving])
    writer.stop()
    assert str(writer.failure) == (
        "cannot write /mnt/full/samples.csv: No space left on device"
    )
    assert len(np.load(tmp_path / "rows.npz")["time_s"]) == 500  # the other sink goes on


def test_a_dropped_sink_is_closed_before_the_writer_says_it_is_done(tmp_path):
    """Its file is released with the failure, not when the writer's process ends
    after the trial has gone on (a full disk's folder could not be unmounted)."""
    writer = _run_with_sinks([FullDiskFileSink(tmp_path / "closed")])
    writer.stop()
    assert writer.failure is not None
    assert (tmp_path / "closed").read_text() == "closed"


def test_a_failing_sink_is_reported_after_the_loop_which_runs_to_the_end(capfd):
    writer = _run_with_sinks([BuggySink()])
    with pytest.raises(LogWriterError, match="log writer failed"):
        writer.stop()
    assert "a bug in the sink" in capfd.readouterr().err


def test_status_line_reports_each_interval():
    stream = io.StringIO()
    status = StatusLine(stream, interval_s=1.0)
    n = 250  # 2.5 s at 100 Hz
    lateness = np.full(n, 10.0)
    lateness[120] = 900.0
    skipped = np.zeros(n, dtype=np.int64)
    skipped[150] = 2
    rows = {
        "time_s": np.arange(n) * 0.01, "phase": np.full(n, 3.0), "stim_on": np.ones(n),
        "amplitude_ma": np.full(n, 35.0), "lateness_us": lateness,
        "latency_us": np.full(n, 40.0), "skipped_periods": skipped,
    }
    status.write(0, {k: v[:130] for k, v in rows.items()})
    status.write(130, {k: v[130:] for k, v in rows.items()})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("t     1.0 s | swing")
    assert "stim 35.0 mA" in lines[0] and "max 10 " in lines[0] and "misses 0 " in lines[0]
    assert "max 900 " in lines[1] and "misses 2 (0.985 %)" in lines[1]


def test_fes_sim_realtime_reports_timing_and_a_live_status(tmp_path, capfd):
    from controller.cli import main

    out = tmp_path / "rt"
    assert main(["sim", "--realtime", "--duration-s", "1.1", "--out", str(out)]) == 0
    captured = capfd.readouterr()
    assert "real-time settings: timer slack" in captured.err
    assert "t     1.0 s | " in captured.err and "lateness us median" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    timing = summary["timing"]
    assert timing["clock"] == "wall" and timing["samples"] == 550
    assert timing["first_sample"]["lateness_us"] is not None
    assert "timing: 2 ms period, lateness median" in captured.out
    assert (out / "timing.csv").read_text().count("\n") == 1 + timing["samples"]
    if summary["watchdog"]["faults"] == 0:  # no stall beyond the bound on a busy machine
        assert main(["sim", "--duration-s", "1.1", "--out", str(tmp_path / "virtual")]) == 0
        for name in ("samples.csv", "events.csv"):
            assert (out / name).read_bytes() == (tmp_path / "virtual" / name).read_bytes()
