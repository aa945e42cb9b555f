"""The live status line of a real-time trial: where the walker is and how the loop keeps time.

A log sink (``controller.trial.writer``): every ``interval_s`` of trial time it prints
one line with the detected phase, the stimulation on the recorded channel and the timing
of the loop over that interval (median, 99th percentile and maximum lateness, sensor to
command latency) and since the start (misses). It runs in the log writer process, so
the printing never delays the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

import numpy as np

from controller.detect.events import PHASE_NAMES, Phase


class StatusLine:
    """Prints a status line to ``stream`` every ``interval_s`` of trial time."""

    def __init__(self, stream: TextIO, interval_s: float = 1.0) -> None:
        if not interval_s > 0.0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self._stream = stream
        self._interval_s = interval_s
        self._next_s = interval_s
        self._lateness: list[np.ndarray] = []
        self._latency: list[np.ndarray] = []
        self._samples = 0
        self._misses = 0

    def write(self, first: int, rows: Mapping[str, np.ndarray]) -> None:
        """Take a block of rows; print a line at each interval boundary it crosses."""
        time_s = rows["time_s"]
        start = 0
        while start < time_s.size:
            stop = int(np.searchsorted(time_s, self._next_s - 1e-9, side="left"))
            stop = max(start, min(stop, time_s.size))
            self._take(rows, start, stop)
            if stop == time_s.size:
                return
            self._take(rows, stop, stop + 1)
            self._print(rows, stop)
            self._next_s += self._interval_s
            start = stop + 1

    def _take(self, rows: Mapping[str, np.ndarray], start: int, stop: int) -> None:
        self._lateness.append(rows["lateness_us"][start:stop])
        self._latency.append(rows["latency_us"][start:stop])
        self._misses += int(rows["skipped_periods"][start:stop].sum())
        self._samples += stop - start

    def _print(self, rows: Mapping[str, np.ndarray], k: int) -> None:
        lateness = np.concatenate(self._lateness)
        latency = np.concatenate(self._latency)
        self._lateness.clear()
        self._latency.clear()
        on = rows["stim_on"][k] > 0.0
        stim = f"stim {rows['amplitude_ma'][k]:4.1f} mA" if on else "stim off    "
        owed = self._samples + self._misses
        self._stream.write(
            f"t {rows['time_s'][k]:7.1f} s | {PHASE_NAMES[Phase(int(rows['phase'][k]))]:9} | "
            f"{stim} | lateness us median {np.median(lateness):.0f} "
            f"p99 {np.percentile(lateness, 99):.0f} max {lateness.max():.0f} | "
            f"latency us p99 {np.percentile(latency, 99):.0f} | "
            f"misses {self._misses} ({100.0 * self._misses / owed:.3f} %)\n"
        )
        self._stream.flush()

    def close(self) -> None:
        """Nothing to release; the last partial interval is not printed."""
