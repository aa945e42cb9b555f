"""openEMSstim, a second stimulator behind the ``Stimulator`` interface, and its emulator.

openEMSstim (Lopes et al., open hardware, github.com/PedroLopes/openEMSstim) sits between
an off-the-shelf TENS/EMS unit and the electrodes: per channel it connects the unit's
output to the pads and scales it with a digital potentiometer. Its protocol, from its
software guide and its Arduino firmware (``EMSSystem.cpp``, ``EMSChannel.cpp``):

- USB serial at 19200 baud; one ASCII command per line (``\\n``).
- ``C<channel>I<intensity>T<on-time ms>G``: channel 0-1, intensity 0-100 (per cent of the
  range the unit's own knob allows), on-time in ms; ``G`` applies. Each field may be
  left out and keeps its previous value. The firmware caps the on-time at 5000 ms.
- A channel switches itself off when its on-time ends; a new on-time replaces the
  running one, also a shorter one ("C0T50G" ends a running channel after 50 ms).
- A channel number out of range switches every channel off.
- No acknowledgement, no sensors: this is a ``Stimulator`` only.

What the host can and cannot set: the pulse width and frequency are the TENS unit's own
settings, so the driver is told them and refuses a command that asks for others; the
amplitude maps linearly onto the intensity over ``[0, full_scale_ma]``, the unit's output
at intensity 100 (measured by the user on the unit). Keep-alive follows the device's
design: every "on" command carries a short on-time (``hold_ms``) and is repeated every
``refresh_s`` while it holds, so the stimulation never outlives the host by more than
``hold_ms``. Off is ``C<ch>T1G`` (the channel ends after 1 ms), sent only for a channel
that is on (on an idle channel it would first switch it on); ``stop_all`` is ``C9G``, the
out-of-range channel that switches every channel off.
"""

from __future__ import annotations

import math
import os
import re
import select
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from controller.ports import StimCommand, check_commands
from hw.transport import Transport, TransportError

BAUD_RATE = 19200
CHANNELS = 2
#: openEMSstim's firmware caps every on-time at this (EMSSystem.cpp).
MAX_ON_TIME_MS = 5000
#: The channel number ``stop_all`` sends: out of range, so every channel goes off.
STOP_ALL_CHANNEL = 9


class OpenEmsStim:
    """Driver of an openEMSstim on a serial URL; implements ``controller.ports.Stimulator``."""

    def __init__(
        self,
        url: str,
        full_scale_ma: float,
        pulse_width_us: float,
        frequency_hz: float,
        hold_ms: int = 150,
        refresh_s: float = 0.05,
    ) -> None:
        if not (full_scale_ma > 0.0 and 1 <= hold_ms <= MAX_ON_TIME_MS):
            raise ValueError("full_scale_ma must be positive and hold_ms 1-5000")
        if refresh_s * 1000.0 >= hold_ms:
            raise ValueError("refresh_s must be shorter than hold_ms, or the channel blinks")
        self.full_scale_ma = full_scale_ma
        self.pulse_width_us = pulse_width_us
        self.frequency_hz = frequency_hz
        self.hold_ms = hold_ms
        self.refresh_s = refresh_s
        self._transport = Transport(url, baudrate=BAUD_RATE)
        self._intensity = [0] * CHANNELS  # 0: off (as far as the host knows)
        self._sent_s = [0.0] * CHANNELS
        self.fault: str | None = None

    @property
    def channels(self) -> int:
        """openEMSstim has two channels."""
        return CHANNELS

    def intensity(self, command: StimCommand) -> int:
        """The 0-100 intensity of a command (0 for one that delivers nothing).

        Raises ``ValueError`` for what no stimulator can do (``controller.ports.
        check_commands``) and for what this device cannot: a pulse width or frequency
        other than the TENS unit's, more than its full scale.
        """
        check_commands((command,), CHANNELS)
        if not command.delivers:
            return 0
        if not (
            math.isclose(command.pulse_width_us, self.pulse_width_us, abs_tol=0.5)
            and math.isclose(command.frequency_hz, self.frequency_hz, abs_tol=0.05)
        ):
            raise ValueError(
                f"the TENS unit delivers {self.pulse_width_us:g} us at {self.frequency_hz:g} "
                f"Hz; openEMSstim cannot set {command.pulse_width_us:g} us at "
                f"{command.frequency_hz:g} Hz"
            )
        if command.amplitude_ma > self.full_scale_ma + 1e-9:
            raise ValueError(
                f"{command.amplitude_ma:g} mA is over the unit's full scale "
                f"{self.full_scale_ma:g} mA"
            )
        return max(1, round(100.0 * command.amplitude_ma / self.full_scale_ma))

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        """Send the channels whose intensity changed, and refresh the ones that hold."""
        wanted = [(c.channel, self.intensity(c)) for c in commands]
        now = time.monotonic()
        for channel, intensity in wanted:
            if intensity == self._intensity[channel]:
                continue
            if intensity == 0:
                self._send(f"C{channel}T1G")
            else:
                self._send(f"C{channel}I{intensity}T{self.hold_ms}G")
            self._intensity[channel], self._sent_s[channel] = intensity, now
        for channel in range(CHANNELS):
            if self._intensity[channel] and now - self._sent_s[channel] >= self.refresh_s:
                self._send(f"C{channel}T{self.hold_ms}G")  # a bare "G" is test mode
                self._sent_s[channel] = now

    def stop_all(self) -> None:
        """Every channel off: the out-of-range channel command."""
        self._intensity = [0] * CHANNELS
        self._send(f"C{STOP_ALL_CHANNEL}G")

    def close(self) -> None:
        """Every channel off, port closed."""
        self.stop_all()
        self._transport.close()

    def _send(self, line: str) -> None:
        try:
            self._transport.write(line.encode("ascii") + b"\n")
        except TransportError as err:
            # Not raised into the loop: the device's on-time ends every channel within
            # hold_ms, and the loop's owner reads ``fault``.
            self.fault = str(err)


# --- the emulator -------------------------------------------------------------------


@dataclass
class _Channel:
    active: bool = False
    intensity: int = 0
    on_time_ms: int = 1
    end_s: float = 0.0


class OpenEmsFirmware:
    """openEMSstim's command handling as its firmware does it, on a clock it is given."""

    def __init__(self) -> None:
        self.channels = [_Channel() for _ in range(CHANNELS)]
        self.unknown: list[str] = []

    def command(self, line: str, now_s: float) -> None:
        """One received line (``doCommand``: lines of 2 characters or fewer are the
        firmware's single-key test mode, which this model does not emulate)."""
        line = line.strip()
        if len(line) <= 2 or "G" not in line:
            self.unknown.append(line)
            return
        channel = _number_after(line, "C")
        if channel is None or not 0 <= channel < CHANNELS:
            self.stop_all()
            return
        target = self.channels[channel]
        on_time = _number_after(line, "T")
        if on_time is not None:
            target.on_time_ms = min(on_time, MAX_ON_TIME_MS)
        intensity = _number_after(line, "I")
        if intensity is not None:
            target.intensity = intensity
        target.active = True
        target.end_s = now_s + target.on_time_ms / 1000.0

    def stop_all(self) -> None:
        """Every channel off (an out-of-range channel number)."""
        for c in self.channels:
            c.active = False

    def poll(self, now_s: float) -> None:
        """Channels whose on-time has ended switch off (the firmware's ``check``)."""
        for c in self.channels:
            if c.active and now_s >= c.end_s:
                c.active = False

    def channels_on(self) -> list[int]:
        """Channels connected to the pads now."""
        return [i for i, c in enumerate(self.channels) if c.active]


def _number_after(line: str, letter: str) -> int | None:
    """The decimal number right after the first ``letter`` in ``line``, as the firmware
    reads it (``getNextNumberOfSting``), or None."""
    at = line.find(letter)
    digits = re.match(r"\d+", line[at + 1 :]) if at >= 0 else None
    return int(digits.group()) if digits else None


def serve_openems_in_thread() -> tuple[OpenEmsFirmware, str, Callable[[], None]]:
    """An emulated openEMSstim on a fresh pty, served from a thread: the firmware model,
    the device path and a function that stops it."""
    firmware = OpenEmsFirmware()
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    stop = threading.Event()
    lock = threading.Lock()

    def serve() -> None:
        pending = b""
        while not stop.is_set():
            if select.select([master], [], [], 0.001)[0]:
                pending += os.read(master, 4096)
                *lines, pending = pending.split(b"\n")
                with lock:
                    for line in lines:
                        firmware.command(line.decode("ascii", "replace"), time.monotonic())
            with lock:
                firmware.poll(time.monotonic())

    thread = threading.Thread(target=serve, name="openems-emulator", daemon=True)
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join(timeout=2.0)
        os.close(master)
        os.close(slave)

    return firmware, path, finish
