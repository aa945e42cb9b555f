"""The link to a device: the ``Link`` protocol, and ``Transport``, a serial port by URL.

A driver (``hw.board.Board``, ``hw.openems.OpenEmsStim``) needs three things of its link
to the device: ``read`` what has arrived, ``write`` bytes, ``close``; that is ``Link``.
A driver takes either a ``Link`` or a serial URL (``open_link``), as pymeasure's
instruments take an adapter: the URL opens a ``Transport``, which the driver closes; a
link handed in stays its owner's to close. A test hands in a scripted link that checks
every byte the host writes and answers as the device would
(``tests/helpers/scripted_link.py``), with no serial port at all.

``Transport`` is a thin layer over pyserial's ``serial_for_url``.

One URL names where the board is: a device path (``/dev/ttyACM0``, ``COM3``, the pty of
``fes board-emulator``), ``socket://host:port`` (a board behind a TCP serial bridge),
``rfc2217://host:port`` (a networked serial server) or ``loop://`` (bytes written come
back; no board answers). The transport only moves bytes; every failure of the port,
at opening or later (an unplugged cable), becomes ``TransportError`` with the URL in
its message.

Writes to a device (a file descriptor) go through ``os.write`` with a deadline of our
own: pyserial's write raises "Write timeout" after a complete write whenever the calling
thread was paused for longer than the timeout (a loaded machine), which would end a
trial on a healthy link. Here a write fails only when the device has accepted nothing
for ``WRITE_TIMEOUT_S``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import time
from typing import Protocol, runtime_checkable

import serial

from hw.protocol import BAUD_RATE

#: How long a read waits for the first byte: the reader thread's polling period, which
#: bounds how late it notices a silent board.
READ_TIMEOUT_S = 0.005
#: A device that accepts no byte for this long is stuck.
WRITE_TIMEOUT_S = 0.1
#: Write timeout of the ports without a file descriptor (socket://, rfc2217://), where
#: pyserial's own timeout applies and must outlast a pause of this process.
URL_WRITE_TIMEOUT_S = 1.0


class TransportError(OSError):
    """The port could not be opened, or failed while open (unplugged, closed)."""


@runtime_checkable
class Link(Protocol):
    """An open link to a device, as a driver uses it.

    ``read`` returns what has arrived, waiting at most about ``READ_TIMEOUT_S`` for the
    first byte (``b""`` when nothing came: a driver's reader polls it); ``write`` sends
    all of ``data``; ``close`` is safe to call twice. A link that fails (unplugged,
    closed) raises ``TransportError`` from ``read`` and ``write``. A driver reads from
    one thread and writes from others, so both must be safe to call concurrently.
    """

    def read(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


def open_link(port: str | Link, baudrate: int = BAUD_RATE) -> Link:
    """``port`` itself when it is a ``Link``, else a ``Transport`` opened on the URL."""
    return Transport(port, baudrate) if isinstance(port, str) else port


def link_name(port: str | Link) -> str:
    """How messages name ``port``: its URL, or the link's ``url`` or class name."""
    if isinstance(port, str):
        return port
    return str(getattr(port, "url", type(port).__name__))


class Transport:
    """An open serial port: blocking reads with a short timeout, whole writes; a
    ``Link``."""

    def __init__(self, url: str, baudrate: int = BAUD_RATE) -> None:
        self.url = url
        try:
            self._port = serial.serial_for_url(
                url,
                baudrate=baudrate,
                timeout=READ_TIMEOUT_S,
                write_timeout=URL_WRITE_TIMEOUT_S,
                exclusive=True if "://" not in url else None,
            )
        except (serial.SerialException, ValueError, OSError) as err:
            if getattr(err, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK) and (
                "exclusively lock" in str(err)
            ):
                raise TransportError(
                    f"cannot open {url}: another program has it open (another fes run or "
                    "fes ports --probe, a terminal program; fuser names it)"
                ) from None
            raise TransportError(f"cannot open {url}: {err}") from None
        self._port.reset_input_buffer()
        self._fd: int | None = None
        if "://" not in url:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                self._fd = self._port.fileno()

    def set_baudrate(self, baudrate: int) -> None:
        """Change the line's rate on the open port, without closing it: every open of an
        Arduino's USB serial port resets the board into its bootloader (DTR), a change of
        rate does not. Whatever arrived at the old rate is dropped."""
        try:
            self._port.baudrate = baudrate
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError, ValueError) as err:
            raise TransportError(f"{self.url}: cannot change the rate to {baudrate} baud "
                                 f"({err})") from None

    def read(self) -> bytes:
        """Whatever has arrived, waiting up to ``READ_TIMEOUT_S`` for the first byte."""
        try:
            waiting = self._port.in_waiting
            return bytes(self._port.read(max(1, waiting)))
        except (serial.SerialException, OSError, TypeError, AttributeError) as err:
            raise TransportError(f"{self.url}: port lost while reading ({err})") from None

    def write(self, data: bytes) -> None:
        """Send all of ``data``."""
        if self._fd is None:
            try:
                self._port.write(data)
            except (serial.SerialException, OSError, TypeError, AttributeError) as err:
                raise TransportError(f"{self.url}: port lost while writing ({err})") from None
            return
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as err:
                raise TransportError(f"{self.url}: port lost while writing ({err})") from None
            left = deadline - time.monotonic()
            if left <= 0.0 or not select.select([], [self._fd], [], left)[1]:
                raise TransportError(
                    f"{self.url}: the device accepted nothing for {WRITE_TIMEOUT_S * 1000:g} ms"
                )

    def close(self) -> None:
        """Close the port; safe to call twice and after a failure."""
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()
