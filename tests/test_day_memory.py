"""A trial that runs all day: what it holds in memory per stride, and files that still
hold every event.

A windowed trial keeps a ring of rows (``tests/test_trial_window.py``); what still grew
with its length was per event and per pulse, held as Python objects: the patient's true
events as lists of tuples (made afresh three times), the detected events as
``DetectedEvent`` objects, two numbers per pulse for the summary's charge, and at the end
one sorted list of every event for ``events.csv``. Here they are numbers (arrays, one
per stride at most), so a trial of 4 times the length allocates a few hundred bytes
more per stride, where it allocated kilobytes. Measured with tracemalloc (bytes
allocated, not time or resident pages, so the machine's load does not move it).
"""

from __future__ import annotations

import csv
import tracemalloc
from pathlib import Path

import pytest

from controller import eventlog
from controller.config import load_config
from controller.trial import files, session, window
from controller.trial.simulated import run_simulated_trial

#: Bytes a trial may hold per true stride added when its loop ends, and allocate per
#: stride on top of that while its files and summary are completed: the stride table
#: and sensor features the simulated walk draws ahead (200 bytes), the true and
#: detected events (4 of each: 36 + 96 bytes), the summary's numbers per event and per
#: stride (some 250) held, 600-660 in all; the summary's matching of detected to true
#: events and the sorted rows of events.csv for a moment, 870-880. On main (813736c),
#: with the events as Python objects and two numbers kept per pulse: 1,760-1,800 held,
#: 2,100 on top.
LOOP_END_BYTES_PER_STRIDE = 800
COMPLETING_BYTES_PER_STRIDE = 1200


def _measured(tmp_path: Path, monkeypatch, duration_s: float) -> tuple[int, int, dict]:
    """Bytes held when the loop ended (but the simulated limb's: its noise is drawn
    ahead on a thread of its own, a block of 2.6 MB alive or not at that moment as the
    threads happen to run), the most allocated on top of what was held while the
    trial was completed (files, summary), and the summary, of a trial of
    ``duration_s``."""
    complete = session.complete_trial
    figures: list[int] = []

    def measured(*args, **kwargs):
        held = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, "*/sim/limb.py")])
        figures.append(sum(stat.size for stat in held.statistics("filename")))
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = complete(*args, **kwargs)
        figures.append(tracemalloc.get_traced_memory()[1] - start)
        return result

    monkeypatch.setattr(session, "complete_trial", measured)
    config = load_config(None, {"loop": {"duration_s": duration_s, "sample_rate_hz": 1000},
                                "sim": {"seed": 4}})
    tracemalloc.start()
    try:
        summary = run_simulated_trial(config, tmp_path / f"t{duration_s:g}")
    finally:
        tracemalloc.stop()
    loop_end, completing = figures
    return loop_end, completing, summary


@pytest.fixture
def small_window(monkeypatch):
    """Rows in a window of 8,192, and events held and written in pieces of 64 and 256
    rather than 4,096 and 8,192, so that trials of minutes are long in every respect
    (with 4,096-event blocks both trials here would hold one block: no growth seen)."""
    monkeypatch.setattr(window, "WINDOW_ROWS", 8192)
    monkeypatch.setattr(window, "SCORE_ROWS", 2048)
    monkeypatch.setattr(files, "EVENT_CHUNK", 256)
    monkeypatch.setattr(eventlog, "BLOCK_EVENTS", 64)


def test_a_long_trial_holds_a_few_hundred_bytes_per_stride(tmp_path, monkeypatch,
                                                            small_window):
    run_simulated_trial(load_config(None, {"loop": {"duration_s": 20}}),
                        tmp_path / "warm")  # compiled and loaded before anything is traced
    short_end, short_peak, short = _measured(tmp_path, monkeypatch, 150)
    long_end, long_peak, long = _measured(tmp_path, monkeypatch, 600)
    strides = long["strides"] - short["strides"]
    assert strides > 300
    per_stride = (long_end - short_end) / strides, (long_peak - short_peak) / strides
    assert per_stride[0] < LOOP_END_BYTES_PER_STRIDE, per_stride
    assert per_stride[1] < COMPLETING_BYTES_PER_STRIDE, per_stride


def test_a_long_trials_events_file_holds_every_event(tmp_path, monkeypatch):
    # The events are held as arrays and written from them: a windowed trial's
    # events.csv has every true event of the walk (the limb's, known ahead) and the same
    # rows, sorted, as the same trial kept whole.
    from sim.limb import SimulatedLimb
    from sim.patient import load_patient

    config = load_config(None, {"loop": {"duration_s": 120}, "sim": {"seed": 6}})
    run_simulated_trial(config, tmp_path / "kept")
    monkeypatch.setattr(window, "WINDOW_ROWS", 8192)
    monkeypatch.setattr(window, "SCORE_ROWS", 2048)
    summary = run_simulated_trial(config, tmp_path / "windowed")
    written = (tmp_path / "windowed" / "events.csv").read_bytes()
    assert written == (tmp_path / "kept" / "events.csv").read_bytes()
    with open(tmp_path / "windowed" / "events.csv", newline="") as file:
        rows = [(float(r["time_s"]), r["source"], r["event"]) for r in csv.DictReader(file)]
    assert rows == sorted(rows)
    limb = SimulatedLimb(load_patient("moderate"), 500.0, 120.0, 6)
    true = [(round(t, 6), e) for t, e in limb.true_events()]
    assert [(t, e) for t, source, e in rows if source == "true"] == true
    assert sum(source == "detected" for _, source, _ in rows) > 2 * summary["strides"]


def test_events_held_as_arrays_read_and_sort_as_the_objects_did(monkeypatch):
    # Rows of events.csv sort as Python sorted the (time, source, event) tuples (ties
    # at one time by source, then by name), and detected events read back as the
    # DetectedEvent objects they were, across blocks.
    import random

    import numpy as np

    from controller.eventlog import DetectedEvents, EventRows, TrueEvents
    from controller.events import EVENT_NAMES, DetectedEvent, Event

    monkeypatch.setattr(eventlog, "BLOCK_EVENTS", 5)
    pick = random.Random(3)
    names = list(EVENT_NAMES.values())
    true = [(pick.choice([0.5, 1.0, 1.25, pick.random()]), pick.choice(names))
            for _ in range(40)]
    detected = [DetectedEvent(pick.choice(list(EVENT_NAMES)), pick.random() + 0.2,
                              pick.choice([0.5, 1.0, pick.random()])) for _ in range(23)]
    held = DetectedEvents()
    held.extend(detected[:7])
    rows = np.array([[d.event, d.t_known_s, d.t_est_s] for d in detected[7:]], dtype=float)
    held.extend_rows(rows[:, 0], rows[:, 1], rows[:, 2])
    assert list(held) == detected and held[-1] == detected[-1] and len(held) == 23
    assert list(TrueEvents.of(true)) == sorted(true)
    expected = sorted([(t, "true", e) for t, e in true]
                      + [(d.t_est_s, "detected", EVENT_NAMES[d.event]) for d in detected])
    assert list(EventRows.of(true, held)) == expected
    assert list(EventRows.of(TrueEvents.of(true), detected)) == expected
    assert TrueEvents.of(true).times(Event.TOE_OFF).tolist() == sorted(
        t for t, e in true if e == "toe_off")


def test_a_live_trials_scoring_keeps_nothing_per_pulse_or_train():
    # fes run against a board without truth: the log writer scores the rows as they
    # pass. It kept two numbers per pulse (292 kB more at minute 20 than at minute 5 at
    # 1 kHz, before 7 Dec 2026), then the times of the trains' edges, 16 bytes a train
    # held as up to 256 small arrays before they were joined (26 kB: main e417aa1);
    # without true events to score them against, it now counts the trains: a few
    # hundred bytes at most, whatever the length.
    from controller.bench.live_scoring import traced_after

    first, last = traced_after([5.0, 20.0], 1000.0)
    assert last - first < 4_000, (first, last)
