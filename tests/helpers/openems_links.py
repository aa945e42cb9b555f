"""A link between the openEMSstim driver and its firmware's pty that damages echoes on
their way back: the firmware read the line intact (its logs say what it did) and the
host gets a garbled echo or none, as a noisy cable or a USB bridge's hiccup gives."""

from __future__ import annotations

import threading

from hw.openems.firmware import ECHO_PREFIX
from hw.transport import Link

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
