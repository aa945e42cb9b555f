"""A scripted in-memory ``hw.transport.Link``: the device's side of a byte-exact exchange.

As pymeasure's ``expected_protocol``: a script of steps ``(bytes the host must write,
bytes the device answers)``. Each write must be exactly the next step's bytes; the
device's answer then becomes readable. A step whose host bytes are ``None`` is something
the device sends on its own: it becomes readable as soon as the steps before it are
done. A write that differs from the script fails the test at once (in the thread that
wrote) and is kept in ``mismatch``; ``assert_done`` checks that every step was played.
No serial port, no pty, no timing but the driver's own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from hw.transport import READ_TIMEOUT_S, TransportError

Step = tuple[bytes | None, bytes]


class ScriptedLink:
    """A ``Link`` that plays a device from ``script`` (see the module docstring)."""

    url = "scripted://"

    def __init__(self, script: Iterable[Step]) -> None:
        self._steps = list(script)
        self._done = 0
        self._incoming = bytearray()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.written: list[bytes] = []
        self.mismatch: str | None = None
        self.closed = False
        with self._lock:
            self._release_unprompted()

    def _release_unprompted(self) -> None:
        """Queue every step the device sends without being asked, up to the next step
        that waits for the host."""
        while self._done < len(self._steps) and self._steps[self._done][0] is None:
            self._incoming += self._steps[self._done][1]
            self._done += 1
        self._arrived.notify_all()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self.closed:
                raise TransportError("scripted link closed")
            self.written.append(bytes(data))
            expected = self._steps[self._done][0] if self._done < len(self._steps) else None
            if data != expected:
                self.mismatch = (
                    f"step {self._done}: host wrote {bytes(data).hex(' ')}, the script expects "
                    f"{expected.hex(' ') if expected is not None else 'nothing more'}"
                )
                raise AssertionError(self.mismatch)
            self._incoming += self._steps[self._done][1]
            self._done += 1
            self._release_unprompted()

    def device_sends(self, data: bytes) -> None:
        """The device sends ``data`` now, outside the script: answers it was slow to give."""
        with self._lock:
            self._incoming += data
            self._arrived.notify_all()

    def read(self) -> bytes:
        with self._lock:
            if self.closed:
                raise TransportError("scripted link closed")
            if not self._incoming:
                self._arrived.wait(READ_TIMEOUT_S)
            data, self._incoming = bytes(self._incoming), bytearray()
            return data

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._arrived.notify_all()

    def wait_done(self, timeout_s: float = 2.0) -> bool:
        """Whether every step has been played within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._done == len(self._steps):
                    return True
            time.sleep(0.001)
        return False

    def assert_done(self) -> None:
        """Every step played, no write off the script."""
        assert self.mismatch is None, self.mismatch
        remaining = [host.hex(" ") if host else "(device) " + answer.hex(" ")
                     for host, answer in self._steps[self._done:]]
        assert not remaining, f"steps never played: {remaining}"


def exchanges(lines: Iterable[tuple[str, bytes]]) -> list[Step]:
    """Script steps from a transcript of ``("H>B" | "B>H", bytes)`` lines: each host frame
    with the device frames that follow it; device frames before any host frame are
    sent unprompted."""
    steps: list[Step] = []
    for direction, data in lines:
        if direction == "H>B":
            steps.append((data, b""))
        elif steps and steps[-1][0] is not None:
            host, answer = steps[-1]
            steps[-1] = (host, answer + data)
        else:
            steps.append((None, data))
    return steps
