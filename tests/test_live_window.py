"""A long live trial (``fes run``, ``fes sim --realtime``) keeps a window of rows, as a
ring, scored by the log writer as it writes them (``controller.trial.window``): the
same files and the same summary as a trial that keeps every row, memory that does not
grow with the trial, and a paced loop that never waits for the writer (a writer a
whole ring behind has lost rows: a failure of the output, docs/cli.md "Long work").

The window is made small here (a few thousand rows) so that trials of seconds are long.
A replayed walk played faster than real time is a deterministic live trial.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.live import (
    QuietStimulator,
    assert_same_trials,
    shared_memory_kib,
    signal_once_written,
)
from helpers.shared_machine import RUNS, SHARED_MACHINE_LIMITS

from controller.config import load_config
from controller.outputs import OutputError
from controller.sharedmem import forget_reusable
from controller.trial import live, window
from controller.trial.backends import BackendSpec, SplitBackend
from controller.trial.recording import load_recording
from controller.trial.simulated import run_simulated_trial
from hw.replay import ReplaySource

#: Figures of the wall clock, which differ between any two runs.
WALL_CLOCK = ("real_time_factor", "warm_up_ms", "timing", "replay_start_monotonic_s",
              "settings")
#: How much faster than real time the walk is replayed.
SPEED = 20.0


def _without_wall_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_wall_clock(v) for k, v in value.items() if k not in WALL_CLOCK}
    return value


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Path:
    """A simulated walk of 160 s at 500 Hz (80,000 samples), as a recording."""
    folder = tmp_path_factory.mktemp("walk")
    run_simulated_trial(load_config(None, {"loop": {"duration_s": 160}, "sim": {"seed": 5}}),
                        folder / "sim")
    return folder / "sim" / "samples.csv"


@pytest.fixture
def fast_replay(monkeypatch, walk):
    """``fes run --sensors replay:walk`` against ``QuietStimulator``, played ``SPEED``
    times faster than real time."""

    def open_backend(spec: BackendSpec) -> SplitBackend:
        recording = load_recording(walk)
        source = ReplaySource(recording.t_s, recording.period_s, recording.gyro_rad_s,
                              recording.heel_switch, recording.heel_force_n,
                              clock=lambda: time.monotonic() * SPEED,
                              sleep=lambda s: time.sleep(s / SPEED))
        return SplitBackend(source, QuietStimulator())

    monkeypatch.setattr(live, "open_backend", open_backend)


def _replay(tmp_path: Path, name: str, duration_s: float, data_format: str = "csv") -> dict:
    """The replayed trial's summary; a run a loaded machine stalled past the watchdog's
    wall-clock timeouts (at their maximum, ``SHARED_MACHINE_LIMITS``) is run again."""
    config = load_config(None, {"loop": {"duration_s": duration_s},
                                "safety": SHARED_MACHINE_LIMITS})
    spec = BackendSpec("openemsstim", "test", Path("walk.csv"))
    for _ in range(RUNS):
        shutil.rmtree(tmp_path / name, ignore_errors=True)
        result = live.run_live_trial(config, spec, tmp_path / name, data_format=data_format)
        if result.stopped_by != "watchdog_fault":
            break
    assert result.stopped_by == "duration", result.message
    return result.summary


@pytest.mark.parametrize("data_format", ["csv", "parquet"])
def test_a_windowed_live_trial_writes_the_same_files_and_summary(tmp_path, monkeypatch,
                                                                 fast_replay, data_format):
    if data_format == "parquet":
        pytest.importorskip("pyarrow")
    kept = _replay(tmp_path, "kept", 60, data_format)
    monkeypatch.setattr(window, "WINDOW_ROWS", 8192)
    scored = []
    result = window.StreamedScores.result
    monkeypatch.setattr(window.StreamedScores, "result",
                        lambda self: scored.append(1) or result(self))
    windowed = _replay(tmp_path, "windowed", 60, data_format)
    assert scored == [1]  # 30,000 samples in a ring of 8,192 rows
    assert _without_wall_clock(windowed) == _without_wall_clock(kept)
    assert windowed["timing"]["samples"] == kept["timing"]["samples"] == 30000
    names = (["samples.csv", "events.csv", "config.json"] if data_format == "csv"
             else ["samples.parquet", "events.parquet", "config.json"])
    assert_same_trials(tmp_path / "kept", tmp_path / "windowed", names, kept,
                       _without_wall_clock)


def _peak_rows_kib(tmp_path: Path, name: str, duration_s: float) -> int:
    """The most shared memory mapped while a replayed trial of ``duration_s`` ran."""
    forget_reusable()  # no memory file of an earlier trial, mapped whole
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], shared_memory_kib())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        _replay(tmp_path, name, duration_s)
    finally:
        done.set()
        watcher.join()
    return peak[0]


def test_a_long_live_trials_memory_does_not_grow_with_its_length(tmp_path, monkeypatch,
                                                                 fast_replay):
    monkeypatch.setattr(window, "WINDOW_ROWS", 4096)
    short, long = (_peak_rows_kib(tmp_path, f"t{d}", d) for d in (40, 160))
    assert long - short < 1024, (short, long)
    assert long < 4 * 1024  # 4,096 rows of 9 recorded and 3 timing numbers: 0.4 MB


def test_a_live_trials_kept_rows_grow_with_it(tmp_path, fast_replay):
    # The measure above tells: kept whole, 120 s more at 500 Hz are 60,000 rows of 12
    # numbers (5.5 MB) more.
    short, long = (_peak_rows_kib(tmp_path, f"t{d}", d) for d in (40, 160))
    assert long - short > 60000 * 12 * 8 / 1024 * 0.9, (short, long)


class StallingSink:
    """A log sink whose first write (of rows from ``after`` on) stalls the writer
    process for ``stall_s``."""

    def __init__(self, stall_s: float, after: int = 0) -> None:
        self.stall_s = stall_s
        self.after = after
        self.stalled = False

    def write(self, first: int, rows: Any) -> None:
        if not self.stalled and first >= self.after:
            self.stalled = True
            time.sleep(self.stall_s)

    def close(self) -> None:
        pass


def test_a_slow_writer_never_makes_a_paced_loop_wait(tmp_path, monkeypatch):
    # The writer stalls for 1 s, within its ring of 1,024 rows (2 s at 500 Hz): the loop
    # goes on keeping time, the writer catches up, nothing is lost.
    config = load_config(None, {"loop": {"duration_s": 6}})
    virtual = run_simulated_trial(config, tmp_path / "virtual")
    monkeypatch.setattr(window, "WINDOW_ROWS", 1024)
    summary = run_simulated_trial(config, tmp_path / "slow", realtime=True,
                                  sinks=[StallingSink(1.0)])
    # The loop never waited 1 s for the writer (a loaded machine makes samples late by
    # milliseconds, and the watchdog faults beyond loop.max_overrun_ms).
    assert summary["timing"]["lateness_us"]["max"] < 500_000
    if summary["watchdog"]["faults"] == 0:
        assert (tmp_path / "slow" / "samples.csv").read_bytes() == \
            (tmp_path / "virtual" / "samples.csv").read_bytes()
        assert summary["stim"] == virtual["stim"]


def test_a_writer_a_ring_behind_a_paced_loop_is_an_output_failure(tmp_path, monkeypatch):
    # The writer stalls for 3 s, past its ring of 512 rows (1 s at 500 Hz): the loop
    # runs its 5 s regardless; the rows before the first one overwritten are on disk,
    # as recorded, and the trial ends as a trial whose output failed: no summary.json.
    config = load_config(None, {"loop": {"duration_s": 5}})
    run_simulated_trial(config, tmp_path / "virtual")
    monkeypatch.setattr(window, "WINDOW_ROWS", 512)
    started = time.monotonic()
    with pytest.raises(OutputError, match=r"fell .* behind the loop, more than its ring of 512"):
        run_simulated_trial(config, tmp_path / "stalled", realtime=True,
                            sinks=[StallingSink(3.0)])
    assert time.monotonic() - started < 5 + 3  # the loop's 5 s, and the end of the stall
    folder = tmp_path / "stalled"
    assert not (folder / "summary.json").exists()
    kept = (folder / "samples.csv").read_bytes()
    rows = kept.count(b"\n") - 1
    assert 0 < rows < 2500 and kept.endswith(b"\n")
    # Each row is its sample's (a stall of the loaded machine past loop.max_overrun_ms
    # would make the watchdog switch the stimulation off: other values, the same times).
    whole = (tmp_path / "virtual" / "samples.csv").read_text().splitlines()[1:rows + 1]
    assert [line.split(",")[0] for line in kept.decode().splitlines()[1:]] == \
        [line.split(",")[0] for line in whole]
    timing = (folder / "timing.csv").read_bytes().count(b"\n") - 1
    assert timing == rows
    assert (folder / "events.csv").exists()  # sorted, whole: every event of the trial


def test_spilled_counts_give_numpys_figures(tmp_path):
    from controller.deadlines import counted_us, percentiles_us, to_ns
    from controller.quantiles import SpilledCounts

    rng = np.random.default_rng(4)
    for n in (1, 2, 7, 4096, 4097, 100_003):
        seconds = np.rint(rng.gamma(2.0, 3e-5, n) * 1e9) / 1e9  # kept to the ns
        counts = SpilledCounts(tmp_path)
        for part in np.array_split(seconds, 5):
            counts.add(to_ns(part))
        assert counted_us(counts) == percentiles_us(seconds), n


@pytest.mark.parametrize("paced", ["realtime", "replay"])
def test_a_windowed_paced_trials_timing_figures_are_those_of_its_timing_file(
        tmp_path, monkeypatch, fast_replay, paced):
    # The log writer counts a windowed trial's lateness and latency per bucket and spills
    # the values to a file it reads back at the end (controller.quantiles.SpilledCounts):
    # summary.json's figures and the line printed are numpy's of every row of
    # timing.csv, as they were when the writer kept an exact count of every value; the
    # spill files leave nothing in the folder.
    from controller.deadlines import percentiles_us
    from controller.trial.summary import render_timing

    rows = 1024 if paced == "realtime" else 8192  # the replay is 20 times faster
    monkeypatch.setattr(window, "WINDOW_ROWS", rows)
    if paced == "realtime":
        config = load_config(None, {"loop": {"duration_s": 6},
                                    "safety": SHARED_MACHINE_LIMITS})
        summary = run_simulated_trial(config, tmp_path / "t", realtime=True)
    else:
        summary = _replay(tmp_path, "t", 60)
    timing = np.genfromtxt(tmp_path / "t" / "timing.csv", delimiter=",", skip_header=1)
    assert timing.shape[0] == summary["timing"]["samples"] > 2 * rows
    expected = dict(summary["timing"])
    for k, name in enumerate(("lateness_us", "latency_us")):
        column = timing[:, k]  # empty cells: lateness not measured (a replay's clock)
        # The seconds the loop kept, to the bit: whole ns (six decimals of us in the
        # file) over 1e9, as DeadlineMonitor rounds them.
        seconds = np.rint(column[~np.isnan(column)] * 1e3) / 1e9
        figures = percentiles_us(seconds)
        expected[name] = {key: None if v is None else round(v, 3) for key, v in figures.items()}
    if paced == "replay":
        assert np.isnan(timing[:, 0]).all() and summary["timing"]["lateness_us"]["median"] is None
    assert summary["timing"] == expected
    assert render_timing(summary["timing"]) == render_timing(expected)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == sorted(
        ["config.json", "events.csv", "samples.csv", "summary.json", "timing.csv"])


#: A paced simulated trial of 60 s at 500 Hz in rings of 1,024 rows, in a process of its
#: own (to be killed): its folder is argv[1].
KILLABLE = """
import sys
from pathlib import Path
from controller.config import load_config
from controller.trial import window
from controller.trial.simulated import run_simulated_trial
window.WINDOW_ROWS = 1024
run_simulated_trial(load_config(None, {"loop": {"duration_s": 60}}), Path(sys.argv[1]),
                    realtime=True)
"""


@pytest.mark.parametrize("kill", ["SIGKILL", "SIGINT"])
def test_a_windowed_paced_trial_killed_leaves_its_rows_on_disk(tmp_path, kill):
    # SIGKILL: the writer process makes its final pass over every row published (the
    # loop is dead: none is overwritten any more); SIGINT: the files are completed, the
    # summary scored by the writer from every row. Either way the rows on disk are the
    # virtual trial's first ones, more than the ring holds.
    import signal
    import subprocess
    import sys

    folder = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(folder)],
                            stderr=subprocess.PIPE, text=True)
    samples = folder / "samples.csv"
    # Some 3,000 rows: three times round the ring.
    err = signal_once_written(proc, samples, 600_000, getattr(signal, kill), 60)
    config = load_config(None, {"loop": {"duration_s": 60}})
    run_simulated_trial(config, tmp_path / "virtual")
    kept = samples.read_bytes()
    rows = kept.count(b"\n") - 1
    assert rows > 3 * 1024 and kept.endswith(b"\n")
    # Every row is its sample's (a row the ring had come round to would show a later
    # sample's time) ...
    lines = kept.decode().splitlines()[1:]
    virtual = (tmp_path / "virtual" / "samples.csv").read_bytes()
    times = virtual.decode().splitlines()[1:rows + 1]
    assert [line.split(",")[0] for line in lines] == [line.split(",")[0] for line in times]
    # ... and the virtual trial's, unless a stall of the loaded machine made the watchdog
    # switch the outputs off (the patient then walks without stimulation).
    faults = None
    if kill == "SIGINT":
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["stopped_by"] == "interrupted", err
        assert summary["duration_s"] == rows / 500
        assert summary["timing"]["samples"] == rows
        faults = summary["watchdog"]["faults"]
    if faults == 0:
        assert virtual.startswith(kept)


def test_a_stream_of_events_a_ring_behind_a_paced_loop_is_an_output_failure(tmp_path,
                                                                             monkeypatch):
    # The detected events of a long paced trial go to the stream of events.csv through
    # a ring too (made 3 events here), which the loop never waits on either: the writer
    # stalled 3 s from 4 s on (the detector's first event is at 4.2 s), within its ring
    # of rows (2,048, 4 s at 500 Hz) but past its ring of events, has lost events: the
    # trial's output failed, as for rows.
    from controller.trial import simulated

    config = load_config(None, {"loop": {"duration_s": 9}})
    run_simulated_trial(config, tmp_path / "virtual")
    monkeypatch.setattr(window, "WINDOW_ROWS", 2048)
    monkeypatch.setattr(simulated, "event_ring_rows", lambda rows: 3)
    started = time.monotonic()
    with pytest.raises(OutputError, match=r"events.csv.*fell .* detected events behind the "
                                          r"loop, more than its ring of 3"):
        run_simulated_trial(config, tmp_path / "stalled", realtime=True,
                            sinks=[StallingSink(3.0, after=2000)])
    assert time.monotonic() - started < 9 + 3
    folder = tmp_path / "stalled"
    assert not (folder / "summary.json").exists()
    kept = (folder / "samples.csv").read_text().splitlines()
    whole = (tmp_path / "virtual" / "samples.csv").read_text().splitlines()[:len(kept)]
    assert len(kept) > 1 and [line.split(",")[0] for line in kept] == \
        [line.split(",")[0] for line in whole]
    assert (folder / "events.csv").exists()  # sorted, whole: every event of the trial
