"""Serial transport by URL: a thin layer over pyserial's ``serial_for_url``.

One URL names where the board is: a device path (``/dev/ttyACM0``, ``COM3``, the pty of
``fes board-emulator``), ``socket://host:port`` (a board behind a TCP serial bridge),
``rfc2217://host:port`` (a networked serial server) or ``loop://`` (bytes written come
back; no board answers). The transport only moves bytes; every failure of the port,
at opening or later (an unplugged cable), becomes ``TransportError`` with the URL in
its message.
"""

from __future__ import annotations

import contextlib

import serial

from hw.protocol import BAUD_RATE

#: How long a read waits for the first byte: the reader thread's polling period, which
#: bounds how late it notices a silent board.
READ_TIMEOUT_S = 0.005
#: A write that cannot complete in this time means the port is stuck.
WRITE_TIMEOUT_S = 0.1


class TransportError(OSError):
    """The port could not be opened, or failed while open (unplugged, closed)."""


class Transport:
    """An open serial port: blocking reads with a short timeout, whole writes."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._port = serial.serial_for_url(
                url,
                baudrate=BAUD_RATE,
                timeout=READ_TIMEOUT_S,
                write_timeout=WRITE_TIMEOUT_S,
                exclusive=True if "://" not in url else None,
            )
        except (serial.SerialException, ValueError, OSError) as err:
            raise TransportError(f"cannot open {url}: {err}") from None
        self._port.reset_input_buffer()

    def read(self) -> bytes:
        """Whatever has arrived, waiting up to ``READ_TIMEOUT_S`` for the first byte."""
        try:
            waiting = self._port.in_waiting
            return bytes(self._port.read(max(1, waiting)))
        except (serial.SerialException, OSError, TypeError, AttributeError) as err:
            raise TransportError(f"{self.url}: port lost while reading ({err})") from None

    def write(self, data: bytes) -> None:
        """Send all of ``data``."""
        try:
            self._port.write(data)
        except (serial.SerialException, OSError, TypeError, AttributeError) as err:
            raise TransportError(f"{self.url}: port lost while writing ({err})") from None

    def close(self) -> None:
        """Close the port; safe to call twice and after a failure."""
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()
