"""In-memory record of a trial, one row per sample, in preallocated columns.

The loop appends without allocating per sample beyond the detected-event list; the
columns are written to ``samples.csv`` once the loop has ended (also when it ended by
Ctrl-C or an error, so nothing recorded is lost). The columns live in shared memory and
a shared counter is raised after the row it counts is complete, so the log writer
process (``controller.trial.writer``) can stream rows to log sinks while the loop runs,
without a lock.

All columns are rows of one table (``table``: column index by name in ``index``), so a
compiled loop (``controller.trial.compiled_loop``) records into the same memory as ``record``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from controller.detect.events import DetectedEvent, Phase
from controller.ports import Sample, StimCommand
from controller.sharedmem import shared_zeros

SENSOR_COLUMNS = ("time_s", "gyro_rad_s", "heel_switch", "heel_force_n")
STIM_COLUMNS = ("stim_on", "amplitude_ma", "pulse_width_us", "frequency_hz")
#: The first rows of ``TrialRecorder.table``, filled for every sample in this order; the
#: command columns of each recorded channel follow.
SAMPLE_ROWS = (*SENSOR_COLUMNS, "phase")


def stim_column_prefix(name: str) -> str:
    """Prefix of a channel's command columns: none for peroneal, ``<name>_`` otherwise."""
    return "" if name == "peroneal" else f"{name}_"


class TrialRecorder:
    """Columns of sensors, detected phase and the delivered command of each recorded
    channel: the peroneal one (``channel``) under the plain names of ``STIM_COLUMNS``,
    each of ``extra_channels`` (name -> output) under ``<name>_`` + those names."""

    def __init__(
        self, capacity: int, channel: int = 0, extra_channels: Mapping[str, int] | None = None
    ) -> None:
        self.channel = channel
        self.capacity = capacity
        self.count = 0
        self._recorded = {channel: ""} | {
            output: stim_column_prefix(name) for name, output in (extra_channels or {}).items()
        }
        names = list(SAMPLE_ROWS)
        for prefix in self._recorded.values():
            names += [prefix + column for column in STIM_COLUMNS]
        self.table = shared_zeros(len(names) * capacity).reshape(len(names), capacity)
        self.index = {name: i for i, name in enumerate(names)}
        self._columns = {name: self.table[i] for i, name in enumerate(names)}
        self._published = shared_zeros(1, np.int64)
        self.detected: list[DetectedEvent] = []

    def record(
        self,
        sample: Sample,
        phase: Phase,
        delivered: Sequence[StimCommand],
        detected: Sequence[DetectedEvent],
    ) -> None:
        """Store one sample's row."""
        k = self.count
        cols = self._columns
        cols["time_s"][k] = sample.t_s
        cols["gyro_rad_s"][k] = sample.gyro_rad_s
        cols["heel_switch"][k] = sample.heel_switch
        cols["heel_force_n"][k] = sample.heel_force_n
        cols["phase"][k] = phase
        for command in delivered:
            prefix = self._recorded.get(command.channel)
            if prefix is not None and command.delivers:
                cols[prefix + "stim_on"][k] = 1.0
                cols[prefix + "amplitude_ma"][k] = command.amplitude_ma
                cols[prefix + "pulse_width_us"][k] = command.pulse_width_us
                cols[prefix + "frequency_hz"][k] = command.frequency_hz
        self.detected.extend(detected)
        self.publish(k + 1)

    def stim_column(self, channel: int) -> int:
        """Index in ``table`` of ``channel``'s ``stim_on`` column (the other command
        columns follow in ``STIM_COLUMNS`` order), or -1 if it is not recorded."""
        prefix = self._recorded.get(channel)
        return -1 if prefix is None else self.index[prefix + STIM_COLUMNS[0]]

    def publish(self, count: int) -> None:
        """Rows up to ``count`` are complete (by ``record``, or written into ``table`` by
        a compiled loop): the log writer may read them."""
        self.count = count
        self._published[0] = count

    def published(self) -> int:
        """Rows recorded so far, as the log writer process sees it."""
        return int(self._published[0])

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Columns of samples ``start`` to ``stop`` (views; a recorded row never changes)."""
        return {name: col[start:stop] for name, col in self._columns.items()}

    def columns(self) -> dict[str, np.ndarray]:
        """The recorded columns, trimmed to the samples actually recorded."""
        return self.rows(0, self.count)
