"""A long simulated trial keeps a window of rows (a ring), not the whole trial
(``controller.trial.window``): the same files and the same summary as a trial that keeps
every row, and memory that does not grow with the trial's length.

The window is made small here (8,192 rows, 16 s at 500 Hz) so that trials of a minute
or two are "long".
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import numpy as np
import pytest
from helpers.live import assert_same_trials, shared_memory_kib

from controller.config import load_config
from controller.pulses import train_pulse_times
from controller.sharedmem import forget_reusable
from controller.trial import window
from controller.trial.recorder import TrialRecorder, ring_rows
from controller.trial.simulated import run_simulated_trial
from controller.trial.summary import render_text

#: Figures of the wall clock, which differ between any two runs.
WALL_CLOCK = ("real_time_factor", "warm_up_ms")


@pytest.fixture
def small_window(monkeypatch):
    monkeypatch.setattr(window, "WINDOW_ROWS", 8192)
    monkeypatch.setattr(window, "SCORE_ROWS", 2048)


def _without_wall_clock(value):
    if isinstance(value, dict):
        return {k: _without_wall_clock(v) for k, v in value.items() if k not in WALL_CLOCK}
    return value


def _trial(tmp_path: Path, name: str, overrides: dict, samples_done=None) -> dict:
    summary = run_simulated_trial(load_config(None, overrides), tmp_path / name,
                                  samples_done=samples_done)
    return summary


@pytest.mark.parametrize("overrides", [
    {"loop": {"duration_s": 70}},
    {"loop": {"duration_s": 45, "sample_rate_hz": 1000}, "sim": {"seed": 3,
                                                                 "patient": "severe"}},
    {"loop": {"duration_s": 50}, "sim": {"seed": 7, "patient": "spastic"},
     "stim": {"preset": "peroneal_calf"}},
    {"loop": {"duration_s": 40}, "sim": {"patient": "healthy"}, "stim": {"enabled": False}},
], ids=["default", "1kHz-severe", "two-channels", "no-stim"])
def test_a_windowed_trial_writes_the_same_files_and_summary(tmp_path, monkeypatch,
                                                            overrides):
    kept = _trial(tmp_path, "kept", overrides)
    monkeypatch.setattr(window, "WINDOW_ROWS", 8192)
    monkeypatch.setattr(window, "SCORE_ROWS", 2048)
    finished = []
    finish = window.RowWindow.finish
    monkeypatch.setattr(window.RowWindow, "finish",
                        lambda self, count: finished.append(count) or finish(self, count))
    windowed = _trial(tmp_path, "windowed", overrides)
    assert finished == [round(windowed["duration_s"] / kept["timing"]["period_ms"] * 1000)]
    assert _without_wall_clock(windowed) == _without_wall_clock(kept)
    assert_same_trials(tmp_path / "kept", tmp_path / "windowed",
                       ["samples.csv", "events.csv", "config.json"], kept, _without_wall_clock)


def test_a_windowed_trial_ending_on_a_pulse_leaves_it_out_as_a_kept_one_does(tmp_path,
                                                                            monkeypatch):
    """A trial's last row delivers no pulse (its outputs go off there:
    ``controller.trial.scores``). A windowed trial is scored block by block as its rows
    pass, so each block's last row is held back until the next block comes: cut on a
    pulse (training trains, 40 Hz, the row at 35.812 s), it counts what the kept trial
    and the simulated limb count. Without the hold, it counted that pulse."""
    overrides = {"loop": {"duration_s": 35.814},
                 "stim": {"mode": "training", "training": {"on_ms": 1000, "off_ms": 2000}}}
    kept = _trial(tmp_path, "kept", overrides)
    with (tmp_path / "kept" / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    column = {name: np.array([float(r[name]) for r in rows])
              for name in ("time_s", "stim_on", "frequency_hz", "pulses")}
    _, index = train_pulse_times(column["time_s"], column["stim_on"],
                                 column["frequency_hz"], 0.002)
    assert index[-1] == len(rows) - 1  # the premise: a pulse due in the last row
    monkeypatch.setattr(window, "WINDOW_ROWS", 8192)
    monkeypatch.setattr(window, "SCORE_ROWS", 2048)
    windowed = _trial(tmp_path, "windowed", overrides)
    pulses = windowed["stim"]["channels"]["peroneal"]["pulses"]
    assert pulses == kept["stim"]["channels"]["peroneal"]["pulses"] == int(
        column["pulses"].sum()) == index.size - 1
    assert _without_wall_clock(windowed) == _without_wall_clock(kept)


def _peak_rows_kib(tmp_path: Path, name: str, duration_s: float) -> int:
    forget_reusable()  # no memory file of an earlier trial, mapped whole
    peak = [0]

    def sample(done: int, total: int) -> None:
        peak[0] = max(peak[0], shared_memory_kib())

    _trial(tmp_path, name, {"loop": {"duration_s": duration_s}}, sample)
    return peak[0]


def test_a_long_trials_memory_does_not_grow_with_its_length(tmp_path, small_window):
    # Kept whole, the rows of 4 times as long a trial take 4 times the memory: 144 bytes
    # a sample, 21 MB more for 150 s more at 500 Hz. In a window, the same.
    short, long = (_peak_rows_kib(tmp_path, f"t{d}", d) for d in (50, 200))
    assert long - short < 1024, (short, long)
    assert long < 4 * 1024  # the window's 8,192 rows of 18 columns: 1.2 MB


def test_kept_rows_grow_with_the_trial(tmp_path):
    # The measure above tells: without a window (a trial of fewer than two windows of
    # the default size) the rows take memory in proportion to the trial.
    short, long = (_peak_rows_kib(tmp_path, f"t{d}", d) for d in (50, 200))
    assert long - short > 150 * 500 * 144 / 1024 * 0.9, (short, long)


def test_ring_rows_are_views_unless_they_wrap():
    table = np.arange(20.0).reshape(2, 10)
    assert np.shares_memory(ring_rows(table, 12, 15, axis=1), table)
    np.testing.assert_array_equal(ring_rows(table, 18, 22, axis=1),
                                  [[8, 9, 0, 1], [18, 19, 10, 11]])
    rows = np.arange(10.0)[:, None] * [1, 10]
    np.testing.assert_array_equal(ring_rows(rows, 9, 11)[:, 1], [90, 0])


def test_a_recorder_ring_that_came_round_has_no_whole_columns():
    recorder = TrialRecorder(8)
    recorder.publish(12)
    assert recorder.rows(10, 12)["time_s"].size == 2
    with pytest.raises(ValueError, match="ring"):
        recorder.columns()


def test_a_sweeps_windowed_trial_writes_its_rows_as_the_ring_comes_round(tmp_path,
                                                                        small_window):
    # A sweep's trial writes its files in its own process (no writer process): a
    # windowed one writes the rows a block would overwrite, then the rest at the end.
    config = load_config(None, {"loop": {"duration_s": 60}, "sim": {"seed": 4}})
    streamed = run_simulated_trial(config, tmp_path / "streamed")
    inline = run_simulated_trial(config, tmp_path / "inline", stream=False)
    assert _without_wall_clock(inline) == _without_wall_clock(streamed)
    for name in ("samples.csv", "events.csv"):
        assert (tmp_path / "inline" / name).read_bytes() == \
            (tmp_path / "streamed" / name).read_bytes(), name
    rows = (tmp_path / "inline" / "samples.csv").read_bytes().count(b"\n") - 1
    assert rows == 30000 > 3 * window.WINDOW_ROWS


def test_a_windowed_trial_writes_the_same_parquet_files(tmp_path, monkeypatch):
    # The writer hands a Parquet part copies of the ring's rows (a part keeps them until
    # its second is written), and the parts are merged a row group at a time.
    pytest.importorskip("pyarrow")
    config = load_config(None, {"loop": {"duration_s": 45}, "sim": {"seed": 2}})
    kept = run_simulated_trial(config, tmp_path / "kept", data_format="parquet")
    monkeypatch.setattr(window, "WINDOW_ROWS", 8192)
    monkeypatch.setattr(window, "SCORE_ROWS", 2048)
    windowed = run_simulated_trial(config, tmp_path / "windowed", data_format="parquet")
    assert_same_trials(tmp_path / "kept", tmp_path / "windowed",
                       ["samples.parquet", "events.parquet", "config.json"], kept,
                       _without_wall_clock)
    assert windowed["duration_s"] == 45


def _streamed_events(monkeypatch) -> list[bytes]:
    """``events.csv`` of each trial as the stream left it, before the trial's end
    rewrote it whole (``TrialFiles.complete``)."""
    from controller.trial.streams import TrialFiles

    streamed: list[bytes] = []
    complete = TrialFiles.complete

    def kept_first(self, columns, events, summary):
        streamed.append(self.folder.file("events.csv").read_bytes())
        return complete(self, columns, events, summary)

    monkeypatch.setattr(TrialFiles, "complete", kept_first)
    return streamed


def test_a_windowed_trials_detected_events_go_through_a_ring(tmp_path, monkeypatch,
                                                             small_window):
    # The recorder's table of detected events for the stream is a ring as well: the
    # loop waits for the stream to read the events it would overwrite, so the stream
    # writes every event (here a ring of 160 events, the room for a block's made 64,
    # comes round some 3 times in 200 s) and the table's size does not follow the trial.
    from controller.trial import simulated

    recorders: list[TrialRecorder] = []
    finish = window.RowWindow.finish
    monkeypatch.setattr(window.RowWindow, "finish",
                        lambda self, count: recorders.append(self.recorder) or
                        finish(self, count))
    monkeypatch.setattr(window, "BLOCK_EVENTS", 64)
    monkeypatch.setattr(simulated, "event_ring_rows", lambda rows: 160)
    streamed = _streamed_events(monkeypatch)
    _trial(tmp_path, "t200", {"loop": {"duration_s": 200}})
    detected = (tmp_path / "t200" / "events.csv").read_bytes().count(b",detected,")
    assert detected > 3 * 160
    assert streamed[0] == (tmp_path / "t200" / "events.csv").read_bytes()
    monkeypatch.undo()
    monkeypatch.setattr(window, "WINDOW_ROWS", 8192)
    monkeypatch.setattr(window.RowWindow, "finish",
                        lambda self, count: recorders.append(self.recorder) or
                        finish(self, count))
    for duration_s in (50, 400):
        _trial(tmp_path, f"t{duration_s}", {"loop": {"duration_s": duration_s}})
    assert [r.events.nbytes for r in recorders[1:]] == [window.event_ring_rows(8192) * 24] * 2


def _written_in_pieces(folder: Path, name: str, write) -> tuple[bytes, int]:
    """The bytes of trial file ``name`` that ``write`` (a function of a descriptor) makes,
    through ``TrialFolder.replace``, and the most memory it allocated meanwhile."""
    import tracemalloc

    from controller.trial.folder import TrialFolder

    trial = TrialFolder.claim(folder, False)
    tracemalloc.start()
    try:
        trial.replace(name, write)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (folder / name).read_bytes(), peak


def test_samples_rewritten_at_the_end_are_rendered_a_piece_at_a_time(tmp_path):
    # A live trial kept whole against the board emulator rewrites samples.csv at its
    # end with the emulator's truth beside the rows (``TrialFiles.complete``): the same
    # bytes as rendering every row at once did, without the trial's text and a table of
    # its numbers in memory at once (some 400 bytes a sample).

    from controller.trial.csvtext import CsvRenderer
    from controller.trial.files import column_kind, header, phase_names
    from controller.trial.streams import write_samples

    rng = np.random.default_rng(3)
    rows = 60_000
    columns = {name: rng.normal(0.0, 50.0, rows) for name in
               ("time_s", "gyro_rad_s", "heel_force_n", "amplitude_ma", "ankle_angle_deg",
                "toe_clearance_mm", "ta_activation", "extra_a", "extra_b", "extra_c")}
    columns |= {"heel_switch": rng.integers(0, 2, rows).astype(float),
                "phase": rng.integers(0, 4, rows).astype(float),
                "pulses": np.where(rng.random(rows) < 0.01, np.nan, 1.0)}
    names = list(columns)
    renderer = CsvRenderer(np.array([column_kind(n) for n in names]), phase_names())
    whole = header(names) + renderer.rows(np.array([columns[n] for n in names])).tobytes()
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        write_samples(columns, null)  # the renderer compiled, or loaded
    finally:
        os.close(null)
    written, peak = _written_in_pieces(tmp_path / "t", "samples.csv",
                                       functools.partial(write_samples, columns))
    assert written == whole
    assert peak < 2 * 2**20, peak  # pieces of 2,048 rows; the whole text is 8 MB



#: A trial's process and its log writer, in a fresh interpreter: the parent makes the
#: stream of ``events.csv`` with ``argv[1]`` true events, the forked child writes rows
#: reaching every one of them and prints how much of its memory became its own (KiB).
_FORKED_STREAM = """
import os, sys
from pathlib import Path
import numpy as np
from controller.trial.files import EventStream

class NoDetectedEvents:
    def read_events_from(self, start): pass
    def take_events(self, start): return np.zeros((0, 3))
    def stop_reading_events(self): pass

def private_kib():
    fields = dict(line.split(":", 1)
                  for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
    return sum(int(fields[n].split()[0]) for n in ("Private_Clean", "Private_Dirty"))

names = ("toe_off", "heel_strike", "heel_off", "mid_swing")
count = int(sys.argv[1])
true_events = [(0.25 * k, names[k % 4]) for k in range(count)]
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
stream = EventStream(fd, NoDetectedEvents(), true_events, period_s=0.001)
pid = os.fork()
if pid == 0:
    before = private_kib()
    for first in range(0, count * 250 + 1000, 1_000_000):  # 1,000 s of rows at 1 kHz
        stream.write(first, {"time_s": np.zeros(1)})
    print(private_kib() - before, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_the_writers_stream_of_true_events_does_not_copy_the_trials_memory(tmp_path):
    # The stream of events.csv runs in the log writer, a fork of the trial's process,
    # and writes the true events (known before the trial) as the rows reach them: kept
    # as a list of tuples, reading them wrote their reference counts, and each page
    # they were on became the writer's own copy (300,000 events: 29.8 MB; a day's
    # trial at 1 kHz has 288,000). Kept as arrays, reading them copies nothing.
    import subprocess
    import sys

    events = tmp_path / "events.csv"
    grown = int(subprocess.run([sys.executable, "-c", _FORKED_STREAM, "300000", str(events)],
                               capture_output=True, text=True, check=True).stdout)
    assert events.read_bytes().count(b",true,") > 299_990  # the last held back (not closed)
    assert grown < 6 * 1024, grown  # KiB: 1.7 MB here


def test_events_written_whole_at_the_end_are_rendered_a_piece_at_a_time(tmp_path):
    # events.csv is written whole and sorted at the end of every trial: the same bytes
    # as the lines of every event joined at once, without them all in memory (a day's
    # 500,000 events at 1 kHz were some 70 MB of text at once).

    from controller.trial.files import EVENTS_HEADER, event_line, write_events

    rng = np.random.default_rng(4)
    names = ("toe_off", "heel_strike", "mid_swing")
    events = [(float(t), ("true", "detected")[k % 2], names[k % 3])
              for k, t in enumerate(rng.uniform(0.0, 86400.0, 200_000))]
    whole = EVENTS_HEADER + "".join(event_line(*e) for e in sorted(events)).encode()
    written, peak = _written_in_pieces(tmp_path / "t", "events.csv",
                                       functools.partial(write_events, events))
    assert written == whole
    assert peak < 4 * 2**20, peak  # the sorted list (1.6 MB) and a piece; whole: 28 MB


def test_lost_samples_are_counted_alike_in_a_windowed_trial(tmp_path, monkeypatch):
    """``summary.json`` ``lost_samples``: the samples whose sensor reading is NaN (empty
    in samples.csv), counted from the whole columns or from the rows as they pass, the
    same; the terminal says them. A patient whose gyroscope drops out 30 times a minute
    for 4 ms on average (shorter than the watchdog's 30 ms sensor timeout)."""
    profile = tmp_path / "dropouts.toml"
    profile.write_text('base = "moderate"\ndescription = "drops its gyro"\n'
                       "gyro_dropouts_per_min = 30.0\ngyro_dropout_ms = 4.0\n")
    overrides = {"loop": {"duration_s": 40}, "sim": {"patient": str(profile)}}
    kept = _trial(tmp_path, "kept", overrides)
    monkeypatch.setattr(window, "WINDOW_ROWS", 8192)
    monkeypatch.setattr(window, "SCORE_ROWS", 2048)
    windowed = _trial(tmp_path, "windowed", overrides)
    with (tmp_path / "kept" / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    empty = sum(r["gyro_rad_s"] == "" for r in rows)
    assert kept["stopped_by"] == "duration" and empty > 20
    assert kept["lost_samples"] == {"gyro_rad_s": empty, "heel_switch": 0}
    assert windowed["lost_samples"] == kept["lost_samples"]
    assert (f"lost samples (no reading, empty in samples.csv): gyroscope {empty}, heel "
            "switch 0") in render_text(kept)
