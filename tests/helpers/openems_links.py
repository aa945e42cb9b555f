"""A link between the openEMSstim driver and its firmware's pty that damages echoes on
their way back: the firmware read the line intact (its logs say what it did) and the
host gets a garbled echo or none, as a noisy cable or a USB bridge's hiccup gives. In
the driver's own process it is a ``Link`` (``EchoFaultLink``); for ``fes run``, a pty
of its own copying bytes to and from the firmware's (``EchoFaultPty``)."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty

from hw.openems.firmware import BAUD_RATE, ECHO_PREFIX
from hw.transport import Link, Transport, TransportError

_PREFIX = ECHO_PREFIX.encode("ascii")


class EchoFaultLink:
    """A ``hw.transport.Link`` over ``link``: the next echoes of a line whose text starts
    with a given text are garbled (``garble``: the text's last byte changed) or dropped
    (``drop``: the echo line removed whole). Bytes are handed on line by line, so that
    an echo is judged whole; writes go through as they are."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._lock = threading.Lock()
        self._pending = b""
        self._faults: list[tuple[bytes, str]] = []  # (text's start, "garble" | "drop")

    def garble(self, text: str, count: int) -> None:
        """The next ``count`` echoes of a line starting with ``text`` arrive garbled."""
        with self._lock:
            self._faults += [(text.encode("ascii"), "garble")] * count

    def drop(self, text: str, count: int) -> None:
        """The next ``count`` echoes of a line starting with ``text`` never arrive."""
        with self._lock:
            self._faults += [(text.encode("ascii"), "drop")] * count

    def read(self) -> bytes:
        data = self._pending + self._link.read()
        end = data.rfind(b"\n") + 1
        whole, self._pending = data[:end], data[end:]
        return b"".join(self._damaged(line) for line in whole.splitlines(keepends=True))

    def _damaged(self, line: bytes) -> bytes:
        with self._lock:
            if not self._faults or not line.startswith(_PREFIX):
                return line
            start, fault = self._faults[0]
            text = line[len(_PREFIX):].rstrip(b"\r\n")
            if not text.startswith(start):
                return line
            self._faults.pop(0)
        if fault == "drop":
            return b""
        at = len(_PREFIX) + len(text) - 1
        return line[:at] + bytes([line[at] ^ 1]) + line[at + 1:]

    def write(self, data: bytes) -> None:
        self._link.write(data)

    def close(self) -> None:
        self._link.close()


class EchoFaultPty:
    """A pseudo-terminal of its own between a separate host process (``fes run``) and a
    firmware's pty: what the host writes goes to the firmware as it is, what the
    firmware prints comes back through an ``EchoFaultLink`` (``link``), so its echoes
    can be damaged. ``path`` is the port to give the host; ``close`` stops the copying."""

    def __init__(self, firmware_path: str) -> None:
        self._master, self._slave = os.openpty()  # the slave held open: no EIO between opens
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.link = EchoFaultLink(Transport(firmware_path, BAUD_RATE))
        self._running = True
        self._threads = [threading.Thread(target=self._up, daemon=True),
                         threading.Thread(target=self._down, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _up(self) -> None:
        while self._running:
            ready, _, _ = select.select([self._master], [], [], 0.01)
            if ready:
                with contextlib.suppress(OSError, TransportError):
                    self.link.write(os.read(self._master, 4096))

    def _down(self) -> None:
        while self._running:
            with contextlib.suppress(OSError, TransportError):
                data = self.link.read()
                if data:
                    os.write(self._master, data)

    def close(self) -> None:
        self._running = False
        for thread in self._threads:
            thread.join(timeout=1.0)
        self.link.close()
        os.close(self._master)
        os.close(self._slave)
