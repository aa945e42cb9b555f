"""The openEMSstim firmware's time as the host can foresee it: the send budget.

The firmware handles one line at a time and is slow at it: it reads the line as its
bytes arrive (19200 baud, 0.52 ms a byte), prints it back and more (a print waits while
its 64-byte transmit buffer is full), acts, waits until every print has left
(``Serial.flush``), and for each channel it switches off waits another 50 ms. Bytes
that arrive meanwhile wait in a 63-byte receive ring; one more is lost, and a line that
lost a byte can crash the firmware with the pads closed (``firmware.py``).

``Budget`` replays that schedule from what the host wrote and when: for each line, when
the firmware reads it, when it takes effect, when the firmware is free again, and how
many written bytes it has not read yet. The driver sends a routine line only when the
firmware is free (so an urgent one never waits behind more than the line being
handled), never lets the unread bytes exceed the ring, and dates each channel's on-time
from when its line takes effect. ``latency_s`` is the link's own delay from a write to
the first byte on the wire (USB frames on a real board; nothing on a pty).

The replay is a forecast; the firmware's echo of each line is the evidence. An echo
later than forecast (a USB bridge holding bytes back, a firmware slower than its model;
on the host build, a firmware process the machine kept off the CPU) shifts the rest of
the schedule by as much (``late``), and the driver counts a line as unread until its
echo has come (``fits``' ``unechoed_bytes``), so neither the receive ring nor a stop's
wait behind one line rests on the forecast alone.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from hw.openems.firmware import BYTE_S, DEACTIVATE_S, RX_RING_BYTES, TX_BUFFER_BYTES, Line


@dataclass(frozen=True, slots=True)
class Timing:
    """When the firmware reads a line, when it takes effect (``act_s``; for a channel
    switched off: the wiper at 255), and when the firmware is free again."""

    write_s: float
    read_s: float
    act_s: float
    idle_s: float


class Budget:
    """The firmware's schedule as implied by the lines written so far."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.idle_s = -math.inf
        self._wire_free_s = -math.inf
        self._unread: deque[tuple[float, int]] = deque()  # (read_s, rx_bytes)

    def plan(self, line: Line, write_s: float) -> Timing:
        """The timing ``line`` would have if written at ``write_s`` (nothing changes)."""
        arrive = max(write_s + self.latency_s, self._wire_free_s) + line.rx_bytes * BYTE_S
        read = max(arrive, self.idle_s)
        act = read + max(0, line.before_action - TX_BUFFER_BYTES) * BYTE_S
        idle = max(read + line.printed * BYTE_S, act + line.deactivations * DEACTIVATE_S)
        if line.deferred_off:  # the on-time ends in the next check(), after the prints
            act = idle
            idle += DEACTIVATE_S
        return Timing(write_s, read, act, idle)

    def commit(self, line: Line, write_s: float) -> Timing:
        """Record that ``line`` was written at ``write_s``; its timing."""
        timing = self.plan(line, write_s)
        self._wire_free_s = max(write_s + self.latency_s, self._wire_free_s) + (
            line.rx_bytes * BYTE_S
        )
        self.idle_s = timing.idle_s
        self._unread.append((timing.read_s, line.rx_bytes))
        return timing

    def busy_at(self, when_s: float, seconds: float) -> None:
        """The firmware spends ``seconds`` from ``when_s`` (or from when it is next free)
        on work of its own: a channel whose on-time ended switching off."""
        self.idle_s = max(self.idle_s, when_s) + seconds

    def late(self, seconds: float) -> None:
        """The firmware read a line ``seconds`` later than forecast (its echo says so):
        it reads and finishes everything after it that much later too."""
        self.idle_s += seconds
        self._unread = deque((read_s + seconds, n) for read_s, n in self._unread)

    def unread_bytes(self, now_s: float) -> int:
        """Bytes written that the firmware has not read by ``now_s`` (an upper bound)."""
        while self._unread and self._unread[0][0] <= now_s:
            self._unread.popleft()
        return sum(n for _, n in self._unread)

    def fits(self, line: Line, now_s: float, unechoed_bytes: int = 0) -> bool:
        """Whether ``line`` written now leaves the receive ring without loss, when
        ``unechoed_bytes`` were written in lines whose echo has not come yet (the
        firmware may not have read them, whatever the forecast says)."""
        unread = max(self.unread_bytes(now_s), unechoed_bytes)
        return unread + line.rx_bytes <= RX_RING_BYTES
