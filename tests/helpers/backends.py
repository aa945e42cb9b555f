"""A back end under test, as the contract suites see it (``tests/conftest.py`` makes them).

The contract suites (``tests/test_contract_stimulator.py``,
``tests/test_contract_sensors.py``) drive ``device`` through the interfaces of
``controller.ports`` only, and judge it by what the device itself then does: which
outputs deliver pulses (``outputs_on``, read on the device's side: the simulated limb's
held commands, the emulated board's or openEMSstim's firmware) and, for a back end with
a ground truth, the pulses the patient received (``truth_after_close``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: How long a back end may take to act on a command it was sent (a frame through a pty,
#: the emulator's thread), on a loaded test machine.
ACT_WITHIN_S = 0.3


@dataclass
class Backend:
    """One back end under test.

    ``outputs_on`` lists the channels delivering pulses now, seen on the device's side
    (None where that cannot be seen yet: such a back end is in the sensor suite only).
    ``shapes`` says whether it delivers a pulse shape (interphase gap, anodic width
    ratio); ``truth_after_close(samples)`` closes it and returns its ground truth (a
    ``pulses`` column per sample), or is None for a device without one. ``rate_hz`` is
    the sample rate a sensor source announces (None for a stimulator only). A sensor
    source reports the limb's values to within its resolution: a gyro step (rad/s) and
    scale error (relative), a heel force step (N); 0 for the limb itself.
    """

    name: str
    device: Any
    outputs_on: Callable[[], list[int]] | None
    shapes: bool
    truth_after_close: Callable[[int], dict[str, np.ndarray]] | None = None
    rate_hz: float | None = None
    gyro_step_rad_s: float = 0.0
    gyro_scale_error: float = 0.0
    force_step_n: float = 0.0

    def gyro_matches(self, exact: float, reported: float) -> bool:
        """Whether ``reported`` is the limb's ``exact`` gyro to this source's resolution."""
        return abs(exact - reported) <= (
            self.gyro_step_rad_s / 2 + self.gyro_scale_error * abs(exact) + 1e-12
        )

    def channels_on(self) -> list[int]:
        """The channels delivering pulses now, in order."""
        assert self.outputs_on is not None, f"{self.name}: its outputs cannot be seen"
        return sorted(self.outputs_on())

    def outputs_become(self, expected: list[int], within_s: float = ACT_WITHIN_S) -> list[int]:
        """The channels on once they are ``expected``, or as they are after ``within_s``."""
        deadline = time.monotonic() + within_s
        while True:
            now_on = self.channels_on()
            if now_on == expected or time.monotonic() >= deadline:
                return now_on
            time.sleep(0.002)

    def outputs_stay(self, expected: list[int], for_s: float = 0.05) -> bool:
        """Whether the channels on stay ``expected`` for ``for_s``."""
        deadline = time.monotonic() + for_s
        while time.monotonic() < deadline:
            if self.channels_on() != expected:
                return False
            time.sleep(0.002)
        return self.channels_on() == expected


class PulseLog:
    """The channels a device's JSON-lines pulse log (``{"event": "pulse", "channel": c,
    "monotonic_s": t}``, as the AVR harness writes it) shows pulsing now: those with a
    pulse within ``within_s`` before ``time.monotonic()``. Reads the lines appended since
    the last call; a line still being written is read whole on the next call."""

    def __init__(self, path: Path, within_s: float) -> None:
        self._path = path
        self._within_s = within_s
        self._offset = 0
        self._last_pulse_s: dict[int, float] = {}

    def channels_on(self) -> list[int]:
        self._read_new_lines()
        now = time.monotonic()
        return sorted(c for c, t in self._last_pulse_s.items() if now - t <= self._within_s)

    def _read_new_lines(self) -> None:
        if not self._path.exists():
            return
        with self._path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            event = json.loads(line)
            if event.get("event") == "pulse":
                self._last_pulse_s[event["channel"]] = event["monotonic_s"]
