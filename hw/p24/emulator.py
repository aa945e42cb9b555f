"""A P24 emulated on a pseudo-terminal: ``fes board-emulator --device p24``.

The device model (``hw.p24.device``) behind a pty, speaking ScienceMode 4
(``hw.p24.sciencemode``): the host opens the pty's path as it would the P24's virtual
COM port. The device's clock is ``time.monotonic()`` (system-wide on Linux), so every
pulse in the log can be compared with times taken in another process, such as the
commands of ``fes run``.

The log (``--log FILE``) gets one JSON object per line, each with ``event`` and
``monotonic_s``: every pulse (``"pulse"``, at the time the device fires it, with its
layer, channel, ``current_ma`` and ``width_us`` of the leading phase, the whole point
list and the mid-level period), the trains of the mid level (``train_start``,
``train_end`` with the reason), the keep-alive timeouts, the levels initialized and
stopped, bad and unknown packets, and on exit the counters. ``paused``: the serving
thread waited ``waited_ms`` for a CPU between ``since_s`` and ``monotonic_s`` (the
kernel's count, ``hw.runqueue``; from ``LOG_WAIT_S`` on), so a packet that came
meanwhile was read, and its pulse fired and logged, that much late: a loaded machine
kept the emulator off the CPU (a real P24 never is), not a late host. ``held``: a
``select`` of the serving loop came back ``held_ms`` after its timeout beyond that wait
for a CPU, which only the kernel does: a pty's bytes reach its other end when the
kernel's tty worker (``flush_to_ldisc``, an ordinary kernel thread) has run, and a
``select`` waits for it (docs/hardware.md, "Bytes late on a loaded machine"). Bytes
read after it were late by at least that much through no fault of the host (a lower
bound: a hold shorter than the select's timeout is not seen).
"""

from __future__ import annotations

import json
import select
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from hw.p24.device import KEEP_ALIVE_S, Identity, P24Device
from hw.p24.sciencemode import BadPacket, PacketReader, encode
from hw.pty import DevicePty
from hw.runqueue import LOG_WAIT_S, RunQueueWait, held_event, paused_event

#: The longest the serving loop sleeps: it also wakes for every byte that arrives and
#: for the device's next due event.
MAX_SLEEP_S = 0.05
#: Bytes queued for a host that does not read before responses are dropped.
TX_BUFFER_LIMIT = 65536


class P24Emulator:
    """One emulated P24 on a fresh pty; ``run`` serves it until stopped."""

    def __init__(self, log: TextIO | None = None, identity: Identity | None = None) -> None:
        self._log_file = log
        self._log_lock = threading.Lock()
        self.device = P24Device(self.log, identity or Identity())
        self._pty = DevicePty()
        self.path = self._pty.path
        self._reader = PacketReader()
        self._tx = bytearray()
        self.tx_dropped = 0
        self._waited: RunQueueWait | None = None

    def log(self, event: str, **fields: Any) -> None:
        """Append one event to the JSON-lines log, stamped with ``monotonic_s`` (now,
        unless the event gives its own time); thread-safe, a no-op without a log."""
        if self._log_file is None:
            return
        fields.setdefault("monotonic_s", time.monotonic())
        line = json.dumps({"event": event, **fields})
        with self._log_lock:
            self._log_file.write(line + "\n")
            self._log_file.flush()

    def run(self, stop: threading.Event | None = None) -> str:
        """Serve until ``stop`` is set; then every output is off and the pty closed."""
        stop = stop or threading.Event()
        self.log("ready", path=self.path, keep_alive_s=KEEP_ALIVE_S)
        self._waited = RunQueueWait()  # this thread's
        try:
            while not stop.is_set():
                self._serve_once()
            return "stopped"
        finally:
            self._waited.close()
            d = self.device
            self.log("counters", packets=d.packets, bad_packets=d.bad_packets + self._reader.bad,
                     pulses=d.pulses, tx_dropped=self.tx_dropped)
            self.close()

    def _serve_once(self) -> None:
        now = time.monotonic()
        sleep_s = min(max(self.device.next_event_s() - now, 0.0), MAX_SLEEP_S)
        master = self._pty.master
        before = self._waited.seconds() if self._waited is not None else None
        readable, _, _ = select.select([master], [master] if self._tx else [], [], sleep_s)
        if before is not None:
            self._log_wait(now, before, sleep_s)
        if readable:
            self._read()
        self._queue(self.device.poll(time.monotonic()))
        self._pty.send(self._tx)

    def _log_wait(self, since_s: float, before_s: float, timeout_s: float | None = None) -> None:
        """Log this thread's wait for a CPU since ``since_s`` (``paused``) and, for a
        ``select`` of ``timeout_s``, the time the kernel held it beyond both (``held``)."""
        after = self._waited.seconds() if self._waited is not None else None
        now = time.monotonic()
        waited = after - before_s if after is not None else 0.0
        if waited >= LOG_WAIT_S:
            event = paused_event(since_s, now, waited)
            self.log(event.pop("event"), **event)
        held = held_event(since_s, now, timeout_s, waited) if timeout_s is not None else None
        if held is not None:
            self.log(held.pop("event"), **held)

    def _read(self) -> None:
        data = self._pty.read()
        if not data:
            time.sleep(0.001)  # readable but empty: no host has the pty open yet
            return
        now = time.monotonic()
        for item in self._reader.feed(data):
            if isinstance(item, BadPacket):
                self._queue(self.device.bad_packet(item, now))
            else:
                self._queue(self.device.receive(item, now))

    def _queue(self, packets: list) -> None:
        for packet in packets:
            raw = encode(packet)
            if len(self._tx) + len(raw) > TX_BUFFER_LIMIT:
                self.tx_dropped += 1
                continue
            self._tx += raw

    def close(self) -> None:
        """Close the pty (idempotent)."""
        self._pty.close()


def serve_p24_in_thread(
    log: TextIO | None = None, identity: Identity | None = None
) -> tuple[P24Emulator, Callable[[], None]]:
    """An emulated P24 served from a background thread (tests, benchmarks in one
    process with the host): the emulator and a function that stops it."""
    emulator = P24Emulator(log, identity)
    stop = threading.Event()
    thread = threading.Thread(target=emulator.run, args=(stop,), name="p24-emulator",
                              daemon=True)
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join(timeout=5.0)

    return emulator, finish


def describe(emulator: P24Emulator) -> str:
    """One line for a person: what is emulated, and where."""
    i = emulator.device.identity
    return (
        f"P24 emulator (ScienceMode {'.'.join(map(str, i.science_mode))}, firmware "
        f"{'.'.join(map(str, i.firmware))}, device id {i.device_id}) on {emulator.path}: "
        f"8 channels, mid-level keep-alive {KEEP_ALIVE_S:g} s"
    )
