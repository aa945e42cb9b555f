"""A trial's gait events held as numbers, not as Python objects.

A day-long trial at 1 kHz has some 288,000 true events (the simulated patient's, known
before the trial) and as many detected ones. Held as a list of ``(time_s, name)`` tuples
and of ``DetectedEvent`` objects they took about 90 and 110 bytes each (a tuple, a
float, an object and its three fields), and every call of the schedule's ``events``
made a fresh list; as arrays they take 9 and 24 bytes. Both classes here read as the
sequences they replace (a true event is still ``(time_s, name)``, a detected one a
``DetectedEvent``, made when it is read), so every consumer keeps its meaning; the
summary and the files read their columns directly (``event_times``,
``DetectedEvents.columns``).

``DetectedEvents`` grows by blocks of ``BLOCK_EVENTS`` rows, never by copying what it
holds (a doubling array copies all of it, twice the memory for the moment of the copy).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np

from controller.events import EVENT_BY_NAME, EVENT_NAMES, DetectedEvent, Event

#: Rows of one block of ``DetectedEvents`` (96 KiB: a trial of minutes fills one).
BLOCK_EVENTS = 4096
_NAME_OF_CODE = {int(event): name for event, name in EVENT_NAMES.items()}


class TrueEvents(Sequence[tuple[float, str]]):
    """Events as ``(time_s, name)``, sorted by time, held as a float64 array of times and
    an int8 array of ``Event`` codes (both read-only views may be shared)."""

    def __init__(self, times_s: np.ndarray, codes: np.ndarray) -> None:
        if times_s.shape != codes.shape or times_s.ndim != 1:
            raise ValueError("true events: times and codes must be 1-D arrays of one length")
        self.times_s = times_s
        self.codes = codes

    @classmethod
    def of(cls, events: Iterable[tuple[float, str]]) -> TrueEvents:
        """The events of ``(time_s, name)`` pairs, sorted by time (then by name)."""
        if isinstance(events, TrueEvents):
            return events
        pairs = sorted(events)
        times = np.array([t for t, _ in pairs], dtype=np.float64)
        codes = np.array([int(EVENT_BY_NAME[name]) for _, name in pairs], dtype=np.int8)
        return cls(times, codes)

    def __len__(self) -> int:
        return int(self.times_s.size)

    @overload
    def __getitem__(self, index: int) -> tuple[float, str]: ...

    @overload
    def __getitem__(self, index: slice) -> TrueEvents: ...

    def __getitem__(self, index: int | slice) -> tuple[float, str] | TrueEvents:
        if isinstance(index, slice):
            return TrueEvents(self.times_s[index], self.codes[index])
        return float(self.times_s[index]), _NAME_OF_CODE[int(self.codes[index])]

    def __iter__(self) -> Iterator[tuple[float, str]]:
        names = _NAME_OF_CODE
        for start in range(0, len(self), BLOCK_EVENTS):
            stop = start + BLOCK_EVENTS
            times = self.times_s[start:stop].tolist()
            codes = self.codes[start:stop].tolist()
            yield from ((t, names[c]) for t, c in zip(times, codes, strict=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TrueEvents):
            return bool(np.array_equal(self.times_s, other.times_s)
                        and np.array_equal(self.codes, other.codes))
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TrueEvents({len(self)} events)"

    def before(self, end_s: float) -> TrueEvents:
        """The events before ``end_s`` (views of these arrays)."""
        stop = int(np.searchsorted(self.times_s, end_s, side="left"))
        return self[:stop]

    def times(self, event: Event) -> np.ndarray:
        """The times of ``event``'s events, in order (a new array)."""
        return self.times_s[self.codes == int(event)]


def event_times(events: Sequence[tuple[float, str]], event: Event) -> np.ndarray:
    """The times of ``event`` among ``(time_s, name)`` events, in their order."""
    if isinstance(events, TrueEvents):
        return events.times(event)
    name = EVENT_NAMES[event]
    return np.array([t for t, e in events if e == name], dtype=np.float64)


class DetectedEvents(Sequence[DetectedEvent]):
    """Detected events in the order they were added, as rows of (event code, known
    time, estimated time) in blocks of ``BLOCK_EVENTS``; reading one makes its
    ``DetectedEvent``."""

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self._count = 0
        self._rows = BLOCK_EVENTS  # rows of each block

    def __len__(self) -> int:
        return self._count

    def _room(self) -> np.ndarray:
        """The block the next row goes into (a new one when the last is full)."""
        if self._count == len(self._blocks) * self._rows:
            self._blocks.append(np.empty((self._rows, 3)))
        return self._blocks[-1]

    def append(self, event: DetectedEvent) -> None:
        block = self._room()
        block[self._count % self._rows] = (int(event.event), event.t_known_s, event.t_est_s)
        self._count += 1

    def extend(self, events: Iterable[DetectedEvent]) -> None:
        for event in events:
            self.append(event)

    def extend_rows(self, codes: np.ndarray, known_s: np.ndarray, est_s: np.ndarray) -> None:
        """Append events given as columns (a compiled loop's block of them)."""
        done, n = 0, int(codes.size)
        while done < n:
            block = self._room()
            at = self._count % self._rows
            take = min(n - done, self._rows - at)
            block[at : at + take, 0] = codes[done : done + take]
            block[at : at + take, 1] = known_s[done : done + take]
            block[at : at + take, 2] = est_s[done : done + take]
            self._count += take
            done += take

    @overload
    def __getitem__(self, index: int) -> DetectedEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[DetectedEvent]: ...

    def __getitem__(self, index: int | slice) -> DetectedEvent | list[DetectedEvent]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("detected event index out of range")
        code, known, est = self._blocks[index // self._rows][index % self._rows].tolist()
        return DetectedEvent(Event(int(code)), known, est)

    def __iter__(self) -> Iterator[DetectedEvent]:
        for start in range(0, self._count, self._rows):
            rows = self._blocks[start // self._rows][: min(self._rows, self._count - start)]
            for code, known, est in rows.tolist():
                yield DetectedEvent(Event(int(code)), known, est)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other,
                                                                          strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DetectedEvents({self._count} events)"

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Event codes (int64), known and estimated times of every event, in order."""
        def column(i: int) -> np.ndarray:  # one column at a time: no copy of every row
            parts = [block[:, i] for block in self._blocks]
            if parts:
                parts[-1] = parts[-1][: self._count - (len(parts) - 1) * self._rows]
            return np.concatenate(parts) if parts else np.zeros(0)

        return column(0).astype(np.int64), column(1), column(2)


def detected_columns(detected: Sequence[DetectedEvent]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes, known and estimated times of ``detected`` (``DetectedEvents.columns``)."""
    if isinstance(detected, DetectedEvents):
        return detected.columns()
    codes = np.array([int(d.event) for d in detected], dtype=np.int64)
    known = np.array([d.t_known_s for d in detected], dtype=np.float64)
    est = np.array([d.t_est_s for d in detected], dtype=np.float64)
    return codes, known, est


#: The sources of ``events.csv`` rows, in their sorting order (as strings sort).
SOURCES = ("detected", "true")
#: Event names in their sorting order (as strings sort).
SORTED_NAMES = tuple(sorted(EVENT_NAMES.values()))
_RANK_OF_CODE = np.zeros(max(int(e) for e in Event) + 1, dtype=np.int8)
for _rank, _name in enumerate(SORTED_NAMES):
    _RANK_OF_CODE[int(EVENT_BY_NAME[_name])] = _rank


class EventRows(Sequence[tuple[float, str, str]]):
    """The rows of ``events.csv``, ``(time_s, source, event)`` sorted as Python sorts
    those tuples (time, then source, then event name), held as three arrays: the time,
    the index in ``SOURCES`` and the index in ``SORTED_NAMES`` of each row. Sorting a
    day's 576,000 events as tuples took some 60 MB at the end of the trial; these
    arrays take 10 bytes an event and their order 8 more."""

    def __init__(self, times_s: np.ndarray, sources: np.ndarray, names: np.ndarray) -> None:
        order = np.lexsort((names, sources, times_s))
        self.times_s = times_s[order]
        self.sources = sources[order]
        self.names = names[order]

    @classmethod
    def of(cls, true_events: Sequence[tuple[float, str]],
           detected: Sequence[DetectedEvent]) -> EventRows:
        """The true and the detected events (at their estimated times)."""
        true = TrueEvents.of(true_events)
        codes, _, est_s = detected_columns(detected)
        times = np.concatenate((true.times_s, est_s))
        sources = np.concatenate((np.full(len(true), SOURCES.index("true"), dtype=np.int8),
                                  np.full(est_s.size, SOURCES.index("detected"),
                                          dtype=np.int8)))
        names = _RANK_OF_CODE[np.concatenate((true.codes.astype(np.int64), codes))]
        return cls(times, sources, names)

    def __len__(self) -> int:
        return int(self.times_s.size)

    @overload
    def __getitem__(self, index: int) -> tuple[float, str, str]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[float, str, str]]: ...

    def __getitem__(self, index: int | slice
                    ) -> tuple[float, str, str] | list[tuple[float, str, str]]:
        if isinstance(index, slice):
            times = self.times_s[index].tolist()
            sources = self.sources[index].tolist()
            names = self.names[index].tolist()
            return [(t, SOURCES[s], SORTED_NAMES[n])
                    for t, s, n in zip(times, sources, names, strict=True)]
        return (float(self.times_s[index]), SOURCES[int(self.sources[index])],
                SORTED_NAMES[int(self.names[index])])

    def __iter__(self) -> Iterator[tuple[float, str, str]]:
        for start in range(0, len(self), BLOCK_EVENTS):
            yield from self[start : start + BLOCK_EVENTS]
