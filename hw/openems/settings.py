"""An openEMSstim installation's settings (``configs/boards/openemsstim.toml``) and the
check of a trial's pulses against them.

openEMSstim switches and scales the pulses of a TENS/EMS unit: the unit sets the pulse
width, the frequency and the pulse's shape, openEMSstim only its strength (an intensity
1-100 on a digital potentiometer) and when the pads are connected. So the settings say
what the unit delivers (measured once by the user: the output at intensity 1 and at
intensity 100, the unit's pulse width and frequency), and a trial is refused before it
starts, naming the field and the range, when it asks for a pulse the unit cannot give.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from controller.resources import configs_root, load_toml
from controller.validation import ConfigError, ConfigModel, describe_errors
from hw.openems.firmware import MAX_ON_TIME_MS
from hw.openems.intensity import (
    RATE_TOLERANCE_HZ,
    WIDTH_TOLERANCE_US,
    Calibration,
    IntensitySteps,
)

#: The shipped example (``configs/boards/openemsstim.toml``).
DEFAULT_PATH = Path("boards") / "openemsstim.toml"


class OpenEmsSettings(ConfigModel):
    """One openEMSstim with its TENS/EMS unit."""

    firmware: Literal["auto", "head", "aa7f198"] = Field(
        "auto",
        description="Upstream firmware version on the board: head (master, commands "
        "wrapped as WV,<handle>,<hex>.) or aa7f198 (2016, plain lines); auto finds it at "
        "connection from the board's reply to a probe. A version named here must match "
        "that reply.",
    )
    output_at_lowest_ma: float = Field(
        gt=0.0, le=100.0,
        description="The unit's output current at intensity 1 (wiper 200), measured on "
        "the pads (docs/hardware.md).",
    )
    output_at_highest_ma: float = Field(
        gt=0.0, le=100.0,
        description="The unit's output current at intensity 100 (wiper 42), measured on "
        "the pads.",
    )
    pulse_width_us: float = Field(
        ge=10.0, le=1000.0,
        description="The pulse width the unit is set to (openEMSstim cannot change it).",
    )
    frequency_hz: float = Field(
        ge=1.0, le=100.0, description="The pulse rate the unit is set to (openEMSstim cannot "
        "change it)."
    )
    hold_ms: int = Field(
        1000, ge=150, le=MAX_ON_TIME_MS,
        description="On-time of every command: the board ends a channel by itself this "
        "long after the host's last line for it (its pads open 50 ms later), so also the "
        "longest stimulation after the host dies. A train shorter than this needs no "
        "renewal, so the firmware is idle through its hold and a stop_all there waits "
        "behind no line; a longer train is renewed every hold_ms - 60 ms, and a stop_all "
        "that comes while the firmware handles a renewal waits for it (a renewal keeps "
        "the firmware busy 34 ms on aa7f198, 81 ms on head).",
    )
    usb_latency_ms: float = Field(
        2.0, ge=0.0, le=50.0,
        description="Delay of the USB-serial bridge from a write to the first byte on "
        "the board's wire (0 for the firmware's host build on a pty).",
    )
    boot_timeout_s: float = Field(
        15.0, ge=1.0, le=120.0,
        description="How long to wait for the board after opening its port: an Arduino "
        "Nano resets when its port opens and the firmware's setup takes about 11 s.",
    )

    @model_validator(mode="after")
    def _calibration_ordered(self) -> OpenEmsSettings:
        if self.output_at_lowest_ma >= self.output_at_highest_ma:
            raise ValueError(
                f"output_at_lowest_ma ({self.output_at_lowest_ma:g}) must be below "
                f"output_at_highest_ma ({self.output_at_highest_ma:g})"
            )
        return self

    @property
    def calibration(self) -> Calibration:
        """Amplitude to intensity for this unit."""
        return Calibration(self.output_at_lowest_ma, self.output_at_highest_ma)

    @property
    def steps(self) -> IntensitySteps:
        """What the board and its unit deliver for a command (the watchdog's mapping)."""
        return IntensitySteps(self.calibration, self.pulse_width_us, self.frequency_hz)

    def pulse_problems(
        self,
        path: str,
        pulse_width_us: float,
        frequency_hz: float,
        interphase_gap_us: float,
        anodic_width_ratio: float,
    ) -> list[str]:
        """What a pulse (config path ``path``, e.g. ``stim.peroneal``) asks for that the
        unit does not give, one message per field; empty when it fits."""
        problems = []
        if not math.isclose(pulse_width_us, self.pulse_width_us, abs_tol=WIDTH_TOLERANCE_US):
            problems.append(
                f"{path}.pulse_width_us: {pulse_width_us:g} us, but the unit is set to "
                f"{self.pulse_width_us:g} us (openEMSstim cannot change it)"
            )
        if not math.isclose(frequency_hz, self.frequency_hz, abs_tol=RATE_TOLERANCE_HZ):
            problems.append(
                f"{path}.frequency_hz: {frequency_hz:g} Hz, but the unit is set to "
                f"{self.frequency_hz:g} Hz (openEMSstim cannot change it)"
            )
        if interphase_gap_us != 0.0 or anodic_width_ratio != 1.0:
            problems.append(
                f"{path}: a shaped pulse (interphase_gap_us {interphase_gap_us:g}, "
                f"anodic_width_ratio {anodic_width_ratio:g}) cannot be delivered: "
                "openEMSstim passes the unit's own pulses and cannot shape them; allowed: "
                "interphase_gap_us = 0 and anodic_width_ratio = 1"
            )
        return problems

    def channel_problems(
        self,
        path: str,
        amplitude_ma: float,
        pulse_width_us: float,
        frequency_hz: float,
        interphase_gap_us: float,
        anodic_width_ratio: float,
        ramp_parameter: str,
    ) -> list[str]:
        """What a channel of a trial (config path ``path``) asks for that this board and
        its unit cannot give, one message per field naming the allowed range."""
        problems = []
        low, high = self.output_at_lowest_ma, self.output_at_highest_ma
        if not low <= amplitude_ma <= high:
            problems.append(
                f"{path}.amplitude_ma: {amplitude_ma:g} mA is outside what this "
                f"openEMSstim and its unit produce: {low:g}-{high:g} mA (the outputs at "
                "intensity 1 and 100 in the board settings)"
            )
        problems += self.pulse_problems(
            path, pulse_width_us, frequency_hz, interphase_gap_us, anodic_width_ratio
        )
        if ramp_parameter != "amplitude":
            problems.append(
                f"{path}.ramp_parameter: {ramp_parameter!r} cannot be delivered: "
                "openEMSstim scales the amplitude only; allowed: 'amplitude'"
            )
        return problems


def load_settings(path: Path | None = None) -> OpenEmsSettings:
    """The settings in ``path`` (default: the shipped ``configs/boards/openemsstim.toml``);
    ``ConfigError`` naming each bad field."""
    path = path if path is not None else configs_root() / DEFAULT_PATH
    data = load_toml(path)
    try:
        return OpenEmsSettings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(str(path), describe_errors(err, OpenEmsSettings)) from None
