"""The device's side of a pseudo-terminal, for the emulators (``hw.emulator``,
``hw.p24.emulator``).

``os.openpty`` gives two ends: the emulator keeps the master (non-blocking), the host
opens the slave's path (``path``) with pyserial as it would a USB serial device. The slave
is put in raw mode, so no byte is translated or echoed.
"""

from __future__ import annotations

import contextlib
import os
import tty


class DevicePty:
    """An open pty: ``read`` what the host wrote, ``send`` what the device answers."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)

    def read(self) -> bytes:
        """What the host has written, without waiting (``b""``: nothing, or no host has
        the pty open)."""
        try:
            return os.read(self.master, 4096)
        except OSError:  # BlockingIOError, InterruptedError, or EIO without a host
            return b""

    def send(self, pending: bytearray) -> None:
        """Write as much of ``pending`` as the host takes and remove it from there; when
        the pty fails (closed) the bytes are dropped."""
        if not pending:
            return
        try:
            written = os.write(self.master, pending)
        except BlockingIOError:
            return
        except OSError:
            pending.clear()
            return
        del pending[:written]

    def close(self) -> None:
        """Close both ends (idempotent)."""
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master = self._slave = -1
