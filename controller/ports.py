"""The shared vocabulary of the data flow and the two back-end interfaces.

sensor -> detector -> scheduler -> watchdog -> output. Both back ends (the simulated
limb in ``sim/`` and the serial board in ``hw/``) implement ``SensorSource`` and
``Stimulator``; the loop and the watchdog depend only on this module, never on a back
end, so a trial cannot tell which one it drives.

Units are in every field name. Sign convention for the shank gyroscope: positive
sagittal angular velocity is forward rotation of the shank (the large peak of mid-swing).
"""

from __future__ import annotations

import math
from collections.abc import MutableSequence, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # numpy is not imported here: ``fes --help`` loads this module
    import numpy as np
    from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Sample:
    """One timestamped reading of the gait sensors.

    ``heel_force_n`` is NaN when the source has no force sensor. ``gyro_rad_s`` is NaN
    when the gyroscope sample was lost (a dropout), ``heel_switch`` (1 contact, 0 none)
    when the switch's sample was lost (an empty cell of a replayed recording, a board's
    SAMPLE flagged HEEL_LOST or never received: docs/protocol.md); consumers
    must treat NaN as missing, never as a reading (a lost switch sample is not "heel
    off": the detector counts it as missing, and the watchdog as no valid sensor
    sample when the detector reads the switch, docs/safety.md).
    ``gyro_xyz_rad_s`` is all three axes of the gyroscope in its own frame (signs as
    measured; ``gyro_rad_s`` is the one declared sagittal), where the source reads them
    (the project's board), for the axis check (``controller.detect.axis``); None
    where it reads the sagittal axis only.
    """

    t_s: float
    gyro_rad_s: float
    heel_switch: float
    heel_force_n: float = math.nan
    gyro_xyz_rad_s: tuple[float, float, float] | None = None


@dataclass(frozen=True, slots=True)
class StimCommand:
    """The stimulation a channel should deliver from now until the next command.

    ``on=False`` means no pulses whatever the other fields say. Every pulse is biphasic
    and charge balanced: a leading (cathodic) phase of ``amplitude_ma`` for
    ``pulse_width_us``, a pause of ``interphase_gap_us``, then a reversed (anodic) phase
    ``anodic_width_ratio`` times as long at ``1 / anodic_width_ratio`` of the current, so
    both phases carry the same charge. A ratio of 1 is the symmetric pulse; the two
    shape fields default to the plain symmetric pulse without a gap.
    """

    channel: int
    on: bool
    amplitude_ma: float
    pulse_width_us: float
    frequency_hz: float
    interphase_gap_us: float = 0.0
    anodic_width_ratio: float = 1.0

    @staticmethod
    def off(channel: int) -> StimCommand:
        """The command that delivers nothing on ``channel``."""
        return StimCommand(channel, False, 0.0, 0.0, 0.0)

    @property
    def delivers(self) -> bool:
        """True when this command produces pulses."""
        return self.on and self.amplitude_ma > 0.0 and self.pulse_width_us > 0.0 and (
            self.frequency_hz > 0.0
        )


def check_commands(commands: Sequence[StimCommand], channels: int) -> None:
    """Refuse, with ``ValueError`` naming the channel and field, a command that no
    stimulator can deliver: a channel outside 0..channels-1, a negative or non-finite
    amplitude, pulse width, frequency or interphase gap, or an anodic width ratio below 1
    or non-finite. Every ``Stimulator`` back end checks its batch with this before it
    takes any command of it, so both refuse alike (the watchdog upstream refuses far
    more)."""
    for cmd in commands:
        values = (cmd.amplitude_ma, cmd.pulse_width_us, cmd.frequency_hz,
                  cmd.interphase_gap_us, cmd.anodic_width_ratio - 1.0)
        # One comparison and one sum for the usual valid command (this runs for every
        # command of every sample); a NaN fails min() or the finite sum.
        if 0 <= cmd.channel < channels and min(values) >= 0.0 and math.isfinite(sum(values)):
            continue
        if not 0 <= cmd.channel < channels:
            raise ValueError(f"channel {cmd.channel} out of range 0..{channels - 1}")
        for name in ("amplitude_ma", "pulse_width_us", "frequency_hz", "interphase_gap_us"):
            value = getattr(cmd, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"channel {cmd.channel}: {name} {value!r} is invalid")
        ratio = cmd.anodic_width_ratio
        if not (math.isfinite(ratio) and ratio >= 1.0):
            raise ValueError(
                f"channel {cmd.channel}: anodic_width_ratio {ratio!r} is invalid (at least 1)"
            )


#: A command as the compiled stages pass it: one row of float64 numbers, in the field
#: order of ``StimCommand`` (``on`` is 1.0 or 0.0). The scheduler's kernel writes such
#: rows and the watchdog's kernel reads them, so a compiled loop needs no objects.
COMMAND_FIELDS = (
    "channel",
    "on",
    "amplitude_ma",
    "pulse_width_us",
    "frequency_hz",
    "interphase_gap_us",
    "anodic_width_ratio",
)
(
    ROW_CHANNEL,
    ROW_ON,
    ROW_AMPLITUDE_MA,
    ROW_PULSE_WIDTH_US,
    ROW_FREQUENCY_HZ,
    ROW_INTERPHASE_GAP_US,
    ROW_ANODIC_WIDTH_RATIO,
) = range(len(COMMAND_FIELDS))
COMMAND_ROW_SIZE = len(COMMAND_FIELDS)


def command_of_row(row: Sequence[float] | NDArray[np.float64]) -> StimCommand:
    """The command a row of ``COMMAND_FIELDS`` numbers describes (an array row is read
    in one call)."""
    return command_of_values(row.tolist() if hasattr(row, "tolist") else [float(x) for x in row])


def command_of_values(values: Sequence[float]) -> StimCommand:
    """``command_of_row`` of a row already read as Python floats: the watchdog reads all
    the rows it delivers with one ``tolist()`` and builds every command with this."""
    channel, on, amplitude, width, frequency, gap, ratio = values
    return StimCommand(int(channel), on != 0.0, amplitude, width, frequency, gap, ratio)


def write_row(command: StimCommand, row: MutableSequence[float]) -> None:
    """Write ``command`` into ``row`` (``COMMAND_FIELDS`` order); the caller has checked
    that its fields are numbers."""
    row[ROW_CHANNEL] = command.channel
    row[ROW_ON] = 1.0 if command.on else 0.0
    row[ROW_AMPLITUDE_MA] = command.amplitude_ma
    row[ROW_PULSE_WIDTH_US] = command.pulse_width_us
    row[ROW_FREQUENCY_HZ] = command.frequency_hz
    row[ROW_INTERPHASE_GAP_US] = command.interphase_gap_us
    row[ROW_ANODIC_WIDTH_RATIO] = command.anodic_width_ratio


#: A value within this fraction of a step above a whole number of steps is that number
#: of steps: float arithmetic (0.29 mA x 100 = 28.999999999999996) must not cost a step.
STEP_TOLERANCE = 1e-6


@runtime_checkable
class OutputSteps(Protocol):
    """What a stimulator delivers for a command, as a command row: a stimulator whose
    output differs from what it is asked (a wire of whole steps, a calibrated intensity
    scale that starts above zero) exposes one as ``resolution``, and the watchdog checks
    and delivers the row as it maps it, so what it checks, records and counts for the
    rise rule is what reaches the pads (``QuantisingStimulator``).

    ``quantise_row`` rewrites a command row (``COMMAND_FIELDS``) in place to what the
    stimulator will deliver for it, never more on any limit the watchdog enforces (a
    current the stimulator cannot produce becomes the next one down, or off); a field it
    cannot express (not finite, negative, beyond the stimulator's range) is left as it
    is, for the watchdog or the stimulator to refuse. ``lowest_amplitude_ma`` is the
    weakest current above zero it delivers for a command shaped like ``row`` (its width,
    rate and shape): every onset from off is at least that step
    (``controller.safety.watchdog.onset_problems``). Uniform steps are one such mapping
    (``Resolution``), openEMSstim's calibrated intensities another
    (``hw.openems.intensity.IntensitySteps``).
    """

    def quantise_row(self, row: NDArray[np.float64]) -> None: ...

    def lowest_amplitude_ma(self, row: NDArray[np.float64]) -> float: ...


@dataclass(frozen=True, slots=True)
class Resolution:
    """The steps in which a stimulator expresses a command: each field counts steps per
    unit (``amplitude_ma = 100``: steps of 10 uA). A stimulator with one (a board whose
    wire carries integers) exposes it as ``resolution``; the watchdog then quantises
    every command before it checks it and delivers the quantised numbers, so what it
    checked is exactly what goes on the wire.

    Quantising goes toward the safe side of every limit the watchdog enforces: amplitude,
    pulse width, frequency and interphase gap down, the anodic width ratio up (the
    recovery phase's current, amplitude / ratio, then never exceeds the one checked; its
    charge is the leading phase's whatever the ratio).
    """

    amplitude_ma: float
    pulse_width_us: float
    frequency_hz: float
    interphase_gap_us: float
    anodic_width_ratio: float

    def steps(self, command: StimCommand) -> tuple[int, int, int, int, int]:
        """The command's amplitude, pulse width, frequency, interphase gap and anodic
        width ratio in whole steps, toward the safe side. ``ValueError`` for a value
        that is not a finite number (no step expresses it)."""
        a, w, f, g, r = (_safe_steps(getattr(command, name), getattr(self, name), up)
                         for _, name, up in _QUANTISED)
        return a, w, f, g, r

    def quantise_row(self, row: NDArray[np.float64]) -> None:
        """Quantise a command row (``COMMAND_FIELDS``) in place, toward the safe side.

        A field that is not a finite, non-negative number, or so large that its steps
        are not finite, is left as it is: the watchdog refuses it as it stands."""
        for column, name, up in _QUANTISED:
            per_unit = getattr(self, name)
            value = float(row[column])
            if not (value >= 0.0 and math.isfinite(value * per_unit)):
                continue
            row[column] = _safe_steps(value, per_unit, up) / per_unit

    def lowest_amplitude_ma(self, row: NDArray[np.float64]) -> float:
        """One amplitude step: the weakest current a command can deliver."""
        return 1.0 / self.amplitude_ma


#: The quantised fields: their column in a command row, their name (in ``StimCommand``
#: and ``Resolution`` alike), and whether the safe side is up (the anodic width ratio)
#: rather than down.
_QUANTISED = (
    (ROW_AMPLITUDE_MA, "amplitude_ma", False),
    (ROW_PULSE_WIDTH_US, "pulse_width_us", False),
    (ROW_FREQUENCY_HZ, "frequency_hz", False),
    (ROW_INTERPHASE_GAP_US, "interphase_gap_us", False),
    (ROW_ANODIC_WIDTH_RATIO, "anodic_width_ratio", True),
)


def _safe_steps(value: float, per_unit: float, up: bool) -> int:
    """Whole steps of ``1 / per_unit`` in ``value``, rounded toward the safe side."""
    return -_steps_down(-value, per_unit) if up else _steps_down(value, per_unit)


def _steps_down(value: float, per_unit: float) -> int:
    """Whole steps of ``1 / per_unit`` in ``value``, rounded down (``STEP_TOLERANCE``)."""
    return math.floor(value * per_unit + STEP_TOLERANCE)


@runtime_checkable
class SensorSource(Protocol):
    """Yields gait sensor samples at a fixed period.

    ``read`` returns the next sample, or ``None`` when the source has ended (a recording
    ran out, a board was unplugged). A closed-loop source (the simulated limb) advances
    its physics by one period per call, using the stimulation applied so far.
    """

    @property
    def sample_period_s(self) -> float: ...

    def read(self) -> Sample | None: ...

    def close(self) -> None: ...


@runtime_checkable
class Stimulator(Protocol):
    """Accepts per-channel stimulation commands.

    ``apply`` replaces the current command of every channel named in ``commands``;
    channels not named keep theirs. A channel named twice in one ``apply`` holds the last
    of its commands, and the earlier one is never delivered (the watchdog checks each
    against the state before the call and keeps the last as what the channel holds).
    ``stop_all`` turns every channel off at once and must be safe to call at any time,
    also after an error, and from any thread, also while ``apply`` is running or blocked
    in another one: the watchdog's monitor thread and an e-stop call it when the loop
    hangs. It must not wait for a blocked ``apply``.

    A stimulator that delivers other numbers than it is asked (whole steps of each
    setting, calibrated intensities) also has a ``resolution`` attribute (an
    ``OutputSteps``): the watchdog then maps every command to what it delivers before it
    checks it (``QuantisingStimulator``).
    """

    @property
    def channels(self) -> int: ...

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None: ...

    def stop_all(self) -> None: ...


@runtime_checkable
class AcknowledgingStimulator(Stimulator, Protocol):
    """A ``Stimulator`` that can tell whether the device behind it still answers.

    ``last_ack_monotonic_s`` is the ``time.monotonic()`` at which the device last
    acknowledged anything (a command or a keep-alive). The driver must exchange with the
    device often enough that, while it works, this is never older than the watchdog's
    ``safety.ack_timeout_ms``; reading it must never block. A stimulator without this
    property (the simulated limb, which runs in-process) is not checked for
    acknowledgements, so existing back ends need no change.
    """

    @property
    def last_ack_monotonic_s(self) -> float: ...


@runtime_checkable
class QuantisingStimulator(Stimulator, Protocol):
    """A ``Stimulator`` that delivers what ``resolution`` maps a command to (whole steps,
    calibrated intensities: ``OutputSteps``).

    The watchdog maps every command so, toward the safe side, before it checks it, and
    delivers the mapped command, so the stimulator's own rounding can never take a
    checked command beyond a limit and the rise rule counts from what was delivered. A
    stimulator without the attribute (the simulated limb) takes commands as they are.
    """

    @property
    def resolution(self) -> OutputSteps: ...
