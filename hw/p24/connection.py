"""The ``science_mode_4`` library's ``Connection`` over this project's serial transport.

The library's own ``SerialPortConnection`` opens a device path with ``serial.Serial``
(no ``socket://`` or ``rfc2217://`` URL, no injected link) and, on a serial error, sleeps
3 s in the calling thread and writes the last packet again. Its ``Connection`` base class
is the library's way in for another transport, so the driver hands it this one instead:
any ``hw.transport.Link``: a ``Transport`` (a URL, at the P24's 3 Mbaud) or an
injected link.

A reader thread waits on the link and keeps what arrives; the library's reads
(``read``, called from the driver's I/O thread) take it without waiting, as the library
expects of a connection. ``on_data`` is called from the reader thread whenever bytes
arrive, so the I/O thread can sleep until then. A failed link is kept in ``error`` and
reported through ``on_data`` too; writes after it raise ``TransportError``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from hw.p24.library import sm
from hw.transport import Link, TransportError


class LinkConnection(sm.Connection):  # type: ignore[misc]  # the library has no type hints
    """A ``science_mode_4`` connection over a ``Link``."""

    def __init__(self, link: Link, on_data: Callable[[], None] = lambda: None) -> None:
        self._link = link
        self._on_data = on_data
        self._lock = threading.Lock()
        self._received = bytearray()
        self._open = False
        self._reader: threading.Thread | None = None
        self.error: str | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    def open(self) -> None:
        """Start the reader thread."""
        if self._open:
            return
        self._open = True
        self._reader = threading.Thread(target=self._read_forever, name="p24-reader",
                                        daemon=True)
        self._reader.start()

    def close(self) -> None:
        """Stop the reader and close the link (idempotent)."""
        if not self._open:
            return
        self._open = False
        self._link.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=1.0)

    def is_open(self) -> bool:
        return self._open and self.error is None

    def write(self, data: bytes) -> None:
        """Send ``data`` whole; ``TransportError`` when the link has failed."""
        if self.error is not None:
            raise TransportError(self.error)
        try:
            self._link.write(data)
        except TransportError as err:
            self._fail(str(err))
            raise
        self.bytes_out += len(data)

    def clear_buffer(self) -> None:
        """Forget what has arrived and not been read."""
        with self._lock:
            self._received.clear()

    def _read_intern(self) -> bytes:
        """What has arrived since the last read, without waiting."""
        with self._lock:
            data = bytes(self._received)
            self._received.clear()
        return data

    def _read_forever(self) -> None:
        while self._open:
            try:
                data = self._link.read()
            except TransportError as err:
                if self._open:
                    self._fail(str(err))
                return
            if data:
                with self._lock:
                    self._received += data
                    self.bytes_in += len(data)
                self._on_data()

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self._on_data()
