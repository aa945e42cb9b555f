"""A late product for the live walk tests: with this folder on ``PYTHONPATH`` and
``FES_TEST_LATE_S`` set, ``fes run`` is made that much late on one back end
(``FES_TEST_LATE``): ``p24``, the driver's I/O thread waits before the first pulse of
every train (a driver slow to start a train); ``openemsstim``, every line reaches the
port that much after the driver wrote it (a slow link, in a thread of its own, so the
loop is not held up). The tests show that such lateness is never taken for a starved
machine. ``board`` (the project's board, ``hw.board``): from 2 s after its first read
the driver's reader loses every byte it reads for that long, a silence of the host's own
making, which ends the run by the link timeout (exit 5) with the board on time."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time

_DELAY_S = float(os.environ.get("FES_TEST_LATE_S", "0") or 0)
_BACK_END = os.environ.get("FES_TEST_LATE", "")


def _late_p24() -> None:
    from hw.p24 import driver

    step = driver._LowLevel.step

    def late_step(self, now, wanted, alive, stop):  # type: ignore[no-untyped-def]
        if alive and any(p is not None and not on for p, on in zip(wanted, self._on,
                                                                    strict=True)):
            time.sleep(_DELAY_S)
            now = time.monotonic()
        step(self, now, wanted, alive, stop)

    driver._LowLevel.step = late_step  # type: ignore[method-assign]


def _late_openems() -> None:
    from hw.openems import driver

    write = driver.OpenEmsStim._write
    lines: queue.Queue = queue.Queue()
    started = threading.Lock()

    class LateLink:
        """The driver's link, its writes reaching the port ``_DELAY_S`` late (the
        driver's own write returns at once, as on a slow USB link)."""

        def __init__(self, link) -> None:  # type: ignore[no-untyped-def]
            self.link = link

        def read(self) -> bytes:
            return self.link.read()

        def write(self, data: bytes) -> None:
            if started.acquire(blocking=False):
                threading.Thread(target=deliver, daemon=True).start()
            lines.put((time.monotonic() + _DELAY_S, self.link, data))

        def close(self) -> None:
            self.link.close()

    def deliver() -> None:
        while True:
            due, link, data = lines.get()
            time.sleep(max(0.0, due - time.monotonic()))
            with contextlib.suppress(Exception):  # closed meanwhile: the line is lost
                link.write(data)

    def late_write(self, data, *args):  # type: ignore[no-untyped-def]
        if self._link is not None and not isinstance(self._link, LateLink):
            self._link = LateLink(self._link)
        write(self, data, *args)

    driver.OpenEmsStim._write = late_write  # type: ignore[method-assign]


#: ``board``: when the host starts losing the board's bytes, seconds after its first read.
_BOARD_LOSS_AT_S = 2.0


def _deaf_board() -> None:
    from hw.transport import Transport

    read = Transport.read
    first: list[float] = []

    def deaf_read(self):  # type: ignore[no-untyped-def]
        data = read(self)
        if data and not first:
            first.append(time.monotonic())
        since = time.monotonic() - first[0] if first else 0.0
        if _BOARD_LOSS_AT_S <= since < _BOARD_LOSS_AT_S + _DELAY_S:
            return b""  # read, and lost
        return data

    Transport.read = deaf_read  # type: ignore[method-assign]


if _DELAY_S > 0:
    {"p24": _late_p24, "openemsstim": _late_openems, "board": _deaf_board}[_BACK_END]()
