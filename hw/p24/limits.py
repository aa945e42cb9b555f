"""What a P24 can deliver, what it announces, and a command in the device's own terms.

The P24 announces its identity over ScienceMode 4 (device id, firmware and ScienceMode
versions: the general layer), not its limits: those are the model's, from its
instructions for use (v1.1, technical data and tables 15, 22), and are announced here on
its behalf (``describe_p24``) as the project's board announces its own in INFO, and
checked against the trial's needs (``model_problems`` before connecting, ``check_p24``
with the device's answers, like ``hw.board.check_board``):

- 8 channels (4 per connector); 0-130 mA into 1 kOhm in 0.5 mA steps (the protocol
  carries -150..150 mA); a pulse of up to 16 points of 0-4095 us each.
- Mid level: the device makes the pulse train, period 0.5-16383 ms in 0.5 ms steps; the
  ``science_mode_4`` library takes whole milliseconds, so a frequency becomes the
  whole-ms period at or above its own (33 Hz: 31 ms, 32.3 Hz). Stimulation stops 2 s
  after the host's last Ml_update or Ml_get_current_data (the keep-alive).
- Low level: each pulse is one command from the host; the device fires nothing unasked.

Safety: the P24's own current and pulse limits are fixed and far above the trial's, so
unlike the project's board it is no second layer for amplitude, pulse width or rate:
the watchdog alone bounds those. What the device does bound is how long it stimulates
after its host went quiet (a crash, a pulled cable): ``stop_after_host_loss_ms``, held to
the same bound as the board's communication timeout (``hw.board.
MAX_BOARD_COMM_TIMEOUT_MS``). The low level meets it (no pulse without a command); the
mid level's 2 s keep-alive does not.

A ``StimCommand`` becomes one biphasic pulse of points: the leading phase as a positive
current, the interphase gap as a point at 0 mA, the recovery phase as a negative current.
Every quantity is rounded toward less stimulation (current down to 0.5 mA, widths down
to 1 us, the mid-level period up to a whole ms); the recovery phase's current is the
leading current over the anodic width ratio rounded up to a step (never above the
leading current), and its width is chosen so that its charge equals the leading
phase's to half a step (split over several points when longer than 4095 us). Rounded
up, not down: the pulse is then never longer, nor its width ratio larger, than the
command the watchdog checked (``max_anodic_width_ratio``, ``max_pulse_period_fraction``
are maxima; rounded down, 33 mA at a ratio of 10 had a 3.0 mA recovery 3,300 us long, a
ratio of 11), and the recovery's current stays below the leading one, which is what the
amplitude and density limits bound. ``P24Steps`` is this conversion as the watchdog
applies it (``controller.ports.OutputSteps``): it checks the pulse the device fires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from controller.ports import (
    ROW_AMPLITUDE_MA,
    ROW_ANODIC_WIDTH_RATIO,
    ROW_FREQUENCY_HZ,
    ROW_INTERPHASE_GAP_US,
    ROW_ON,
    ROW_PULSE_WIDTH_US,
    StimCommand,
)
from hw.board import MAX_BOARD_COMM_TIMEOUT_MS, BoardRequirements

Layer = Literal["low", "mid"]
LAYERS: tuple[Layer, ...] = ("low", "mid")

CHANNELS = 8
MAX_CURRENT_MA = 130.0
CURRENT_STEP_MA = 0.5
MAX_POINT_US = 4095
MAX_POINTS = 16
#: Mid-level periods the library can send: whole milliseconds, within the protocol's range.
MIN_PERIOD_MS = 1
MAX_PERIOD_MS = 16383
#: Mid-level stimulation outlives the host's last keep-alive by this (documented).
MID_KEEP_ALIVE_MS = 2000.0
#: The ScienceMode major version this driver speaks.
SCIENCE_MODE_MAJOR = 4


@dataclass(frozen=True, slots=True)
class DevicePulse:
    """One pulse as the device takes it: points of (duration us, current mA), and the
    period of its train in seconds (a whole number of ms on the mid level)."""

    points: tuple[tuple[int, float], ...]
    period_s: float

    @property
    def length_us(self) -> int:
        """The pulse's length: its points' durations added."""
        return sum(d for d, _ in self.points)


def quantise_current(current_ma: float) -> float:
    """``current_ma`` rounded down to the device's 0.5 mA step."""
    return math.floor(current_ma / CURRENT_STEP_MA + 1e-9) * CURRENT_STEP_MA


def recovery_current(current_ma: float, anodic_width_ratio: float) -> float:
    """The recovery phase's current for a leading ``current_ma`` (a whole number of
    steps, at least one) and ``anodic_width_ratio`` (at least 1): the leading current
    over the ratio rounded up to a step, so never above the leading current."""
    steps = math.ceil(current_ma / anodic_width_ratio / CURRENT_STEP_MA - 1e-9)
    return min(max(steps, 1) * CURRENT_STEP_MA, current_ma)


def whole_us(value_us: float) -> int:
    """A width or gap rounded down to the device's 1 us."""
    return math.floor(value_us + 1e-9)


def period_s(frequency_hz: float, layer: Layer) -> float:
    """The train period the device runs for ``frequency_hz``: exact on the low level (the
    host times the pulses), the whole ms at or above it on the mid level."""
    if layer == "low":
        return 1.0 / frequency_hz
    period_ms = math.ceil(1000.0 / frequency_hz - 1e-9)
    return min(max(period_ms, MIN_PERIOD_MS), MAX_PERIOD_MS) / 1000.0


def device_pulse(command: StimCommand, layer: Layer) -> DevicePulse | None:
    """``command`` (checked by ``controller.ports.check_commands``) as the device's
    pulse, or None when it delivers nothing at the device's resolution. ``ValueError``
    when it asks for more current than the device gives or a pulse longer than its
    period."""
    if not command.delivers:
        return None
    current = quantise_current(command.amplitude_ma)
    width = whole_us(command.pulse_width_us)
    if command.amplitude_ma > MAX_CURRENT_MA:
        raise ValueError(
            f"channel {command.channel}: {command.amplitude_ma:g} mA is above the P24's "
            f"{MAX_CURRENT_MA:g} mA"
        )
    if current <= 0.0 or width <= 0:
        return None
    points: list[tuple[int, float]] = [*_split(width, current)]
    gap = whole_us(command.interphase_gap_us)
    if gap > 0:
        points += _split(gap, 0.0)
    recovery = recovery_current(current, command.anodic_width_ratio)
    points += _split(round(current * width / recovery), -recovery)
    if len(points) > MAX_POINTS:
        raise ValueError(f"channel {command.channel}: the pulse needs more than 16 points")
    pulse = DevicePulse(tuple(points), period_s(command.frequency_hz, layer))
    if pulse.length_us >= pulse.period_s * 1e6:
        raise ValueError(
            f"channel {command.channel}: a pulse of {pulse.length_us} us does not fit its "
            f"period of {pulse.period_s * 1e3:g} ms"
        )
    return pulse


@dataclass(frozen=True, slots=True)
class P24Steps:
    """What a P24 fires for a command row on ``layer`` (``controller.ports.OutputSteps``,
    as ``device_pulse`` builds it): the current down to 0.5 mA (off below one step),
    widths and gap down to 1 us, the mid level's rate down to a whole-ms period, and the
    width ratio of the recovery phase the device fires (leading over recovery current).
    Its recovery width is the leading charge over its current to the nearest 1 us, so
    the pulse's length and balance are the row's to half a microsecond of recovery."""

    layer: Layer

    def quantise_row(self, row: NDArray[np.float64]) -> None:
        """Rewrite ``row`` to what the device fires for it; a value that is not finite
        and non-negative, an amplitude above 130 mA or a ratio below 1 is left as it
        is (the watchdog or ``device_pulse`` refuses it)."""
        amplitude, width, frequency, gap, ratio = (float(row[c]) for c in (
            ROW_AMPLITUDE_MA, ROW_PULSE_WIDTH_US, ROW_FREQUENCY_HZ, ROW_INTERPHASE_GAP_US,
            ROW_ANODIC_WIDTH_RATIO))
        if 0.0 <= amplitude <= MAX_CURRENT_MA:
            row[ROW_AMPLITUDE_MA] = current = quantise_current(amplitude)
            if current > 0.0 and 1.0 <= ratio < math.inf:
                row[ROW_ANODIC_WIDTH_RATIO] = current / recovery_current(current, ratio)
        for column, value in ((ROW_PULSE_WIDTH_US, width), (ROW_INTERPHASE_GAP_US, gap)):
            if 0.0 <= value < math.inf:
                row[column] = whole_us(value)
        if 0.0 < frequency < math.inf:
            row[ROW_FREQUENCY_HZ] = 1.0 / period_s(frequency, self.layer)
        if row[ROW_AMPLITUDE_MA] == 0.0 or row[ROW_PULSE_WIDTH_US] == 0.0:
            row[ROW_ON] = 0.0  # device_pulse: nothing fired

    def lowest_amplitude_ma(self, row: NDArray[np.float64]) -> float:
        """One current step."""
        return CURRENT_STEP_MA


def _split(duration_us: int, current_ma: float) -> list[tuple[int, float]]:
    """One phase as points of at most ``MAX_POINT_US``, the same current each."""
    count = -(-duration_us // MAX_POINT_US)
    base, extra = divmod(duration_us, count)
    return [(base + (1 if i < extra else 0), current_ma) for i in range(count)]


def stop_after_host_loss_ms(layer: Layer) -> float:
    """How long the device stimulates on its own once its host is quiet: the mid-level
    keep-alive; on the low level nothing beyond the pulse under way."""
    return MID_KEEP_ALIVE_MS if layer == "mid" else 0.0


@dataclass(frozen=True, slots=True)
class P24Info:
    """What a connected P24 reported in the general layer, and the layer the driver
    uses; the model's limits are this module's constants."""

    device_id: str
    firmware_version: str
    science_mode_version: str
    layer: Layer


def check_p24(info: P24Info, requirements: BoardRequirements | None) -> list[str]:
    """Every reason not to stimulate through the P24 that sent ``info``: a ScienceMode
    version other than 4, and (given the trial's ``requirements``) ``model_problems``."""
    problems = []
    major = info.science_mode_version.split(".")[0]
    if major != str(SCIENCE_MODE_MAJOR):
        problems.append(
            f"ScienceMode version {info.science_mode_version}, this driver speaks "
            f"ScienceMode {SCIENCE_MODE_MAJOR}"
        )
    if requirements is not None:
        problems += model_problems(requirements, info.layer)
    return problems


def model_problems(requirements: BoardRequirements, layer: Layer) -> list[str]:
    """What a trial needs that the P24 model cannot give on ``layer``, naming the config
    field: more channels, more current than it delivers (``safety.max_amplitude_ma``),
    stimulation that outlives its host longer than a board's communication timeout may."""
    problems = []
    if requirements.channels > CHANNELS:
        problems.append(
            f"stim: the trial needs {requirements.channels} outputs (channel up to "
            f"{requirements.channels - 1}); the P24 has {CHANNELS} (0-{CHANNELS - 1})"
        )
    if requirements.limits.max_amplitude_ma > MAX_CURRENT_MA:
        problems.append(
            f"safety.max_amplitude_ma {requirements.limits.max_amplitude_ma:g} is above "
            f"what the P24 delivers ({MAX_CURRENT_MA:g} mA)"
        )
    host_loss_ms = stop_after_host_loss_ms(layer)
    if host_loss_ms > MAX_BOARD_COMM_TIMEOUT_MS:
        problems.append(
            f"on the {layer} level the P24 stimulates for {host_loss_ms:g} ms after its "
            f"host goes quiet, longer than {MAX_BOARD_COMM_TIMEOUT_MS} ms (the bound on a "
            "board's communication timeout)"
        )
    return problems


def describe_p24(info: P24Info) -> dict[str, Any]:
    """What the P24 reported and can do, for the trial summary."""
    return {
        "device": "P24 (ScienceMode 4)",
        "device_id": info.device_id,
        "firmware": info.firmware_version,
        "science_mode": info.science_mode_version,
        "layer": info.layer,
        "channels": CHANNELS,
        "max_amplitude_ma": MAX_CURRENT_MA,
        "current_step_ma": CURRENT_STEP_MA,
        "max_point_us": MAX_POINT_US,
        "stop_after_host_loss_ms": stop_after_host_loss_ms(info.layer),
    }
