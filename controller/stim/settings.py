"""What a trial's stimulation is asked to do: the ``[stim]`` section of a config.

One model per thing a clinician sets on a drop-foot stimulator (Odstock ODFS, Bioness
L300, WalkAide; DESIGN.md): per channel the pulse (amplitude, width, frequency,
biphasic shape) and the per-stride envelope (trigger, ramps, extension, timeout,
minimum off-time); for the walker the toe-off prediction that latency compensation
uses; and the modes a device offers (walking, training, test). Units are in every field
name. Cross-field rules that pydantic cannot express per field are in ``stim_problems``,
which ``controller.config`` applies with the safety limits when a config is loaded.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from controller.detect.events import Event
from controller.validation import ConfigModel

#: Where a channel's train starts. ``pre_swing`` is the gyro detector's entry into
#: pre-swing (late stance); ``predicted_toe_off`` is ``lead_ms`` before the toe off
#: predicted from the walker's recent strides.
Trigger = Literal["heel_off", "pre_swing", "toe_off", "predicted_toe_off", "mid_swing",
                  "heel_strike"]
#: The event that ends a train's hold: the extension starts there, then the ramp down.
Stop = Literal["heel_strike", "toe_off", "predicted_toe_off", "mid_swing"]

#: The true gait event a train's onset is scored against, per trigger: a trigger that
#: aims at toe off (pre-swing entry, a predicted toe off) is scored against toe off.
ONSET_REFERENCE: dict[str, Event] = {
    "heel_off": Event.HEEL_OFF,
    "pre_swing": Event.TOE_OFF,
    "toe_off": Event.TOE_OFF,
    "predicted_toe_off": Event.TOE_OFF,
    "mid_swing": Event.MID_SWING,
    "heel_strike": Event.HEEL_STRIKE,
}
#: The true gait event a train's end is scored against, per stop.
OFFSET_REFERENCE: dict[str, Event] = {
    "heel_strike": Event.HEEL_STRIKE,
    "toe_off": Event.TOE_OFF,
    "predicted_toe_off": Event.TOE_OFF,
    "mid_swing": Event.MID_SWING,
}


class ChannelConfig(ConfigModel):
    """One stimulation channel: its pulses and the shape of its per-stride envelope."""

    enabled: bool = True
    channel: int = Field(0, ge=0, le=7, description="Output of the stimulator.")
    amplitude_ma: float = Field(
        35.0, ge=0.0, le=100.0, description="Current of the cathodic phase at full level."
    )
    pulse_width_us: float = Field(
        300.0, ge=10.0, le=1000.0, description="Width of the cathodic phase at full level."
    )
    frequency_hz: float = Field(40.0, ge=1.0, le=100.0, description="Pulse rate.")
    interphase_gap_us: float = Field(
        0.0, ge=0.0, le=500.0, description="Pause between the cathodic and anodic phase."
    )
    anodic_width_ratio: float = Field(
        1.0, ge=1.0, le=10.0,
        description="Anodic phase width over cathodic width (1: symmetric pulse; above 1 "
        "asymmetric, the anodic phase longer and lower at the same charge).",
    )
    trigger: Trigger = Field(
        "pre_swing",
        description="Where the train starts: heel_off, pre_swing, toe_off, "
        "predicted_toe_off, mid_swing or heel_strike.",
    )
    stop: Stop = Field(
        "heel_strike",
        description="Event that starts the extension: heel_strike, toe_off, "
        "predicted_toe_off or mid_swing.",
    )
    lead_ms: float = Field(
        100.0, ge=0.0, le=500.0,
        description="With trigger predicted_toe_off: start this long before the "
        "predicted toe off.",
    )
    fallback_trigger: Literal["pre_swing", "toe_off", "none"] = Field(
        "pre_swing",
        description="With trigger predicted_toe_off: what starts a train when no "
        "prediction has (yet) done so.",
    )
    confirm_ms: float = Field(
        250.0, ge=50.0, le=1000.0,
        description="A train started on a prediction ramps down unless the detector "
        "sees the toe off (pre-swing, swing or toe off) by the predicted toe off + this.",
    )
    ramp_parameter: Literal["amplitude", "pulse_width"] = Field(
        "amplitude", description="What the ramps scale: amplitude or pulse_width."
    )
    ramp_up_ms: float = Field(60.0, ge=0.0, le=2000.0)
    ramp_down_ms: float = Field(100.0, ge=0.0, le=2000.0)
    extension_ms: float = Field(
        100.0, ge=0.0, le=1000.0, description="Hold at full level after the stop event."
    )
    timeout_ms: float = Field(
        1500.0, ge=100.0, le=5000.0,
        description="Longest train from onset; then it ramps down (no stop event came).",
    )
    min_off_ms: float = Field(
        100.0, ge=0.0, le=5000.0,
        description="A trigger this soon after a train ended is refused.",
    )


class PredictionConfig(ConfigModel):
    """How the next toe off is predicted from the walker's recent stride times."""

    history_strides: int = Field(
        5, ge=2, le=20, description="Stride times kept; the prediction uses their median."
    )
    min_strides: int = Field(
        2, ge=1, le=20, description="Stride times needed before predicting."
    )
    max_stride_ms: float = Field(
        2500.0, ge=1000.0, le=10000.0,
        description="A longer gap between toe offs is a pause: the history restarts.",
    )


class TrainingConfig(ConfigModel):
    """Training (exercise) mode: every enabled channel cycles on and off, gait ignored."""

    on_ms: float = Field(
        2000.0, ge=100.0, le=5000.0, description="Time at full level between the ramps."
    )
    off_ms: float = Field(4000.0, ge=500.0, le=60000.0, description="Rest between cycles.")
    start_ms: float = Field(1000.0, ge=0.0, le=60000.0, description="First cycle starts.")


class BurstConfig(ConfigModel):
    """Test mode: one burst on one channel, for setting the amplitude on the bench."""

    channel_name: str = Field("peroneal", description="Which configured channel bursts.")
    on_ms: float = Field(
        1000.0, ge=100.0, le=5000.0, description="Time at full level between the ramps."
    )
    start_ms: float = Field(1000.0, ge=0.0, le=60000.0, description="When the burst starts.")


class StimConfig(ConfigModel):
    """The stimulation of a trial: mode, the peroneal channel and optional others."""

    enabled: bool = True
    preset: str = Field(
        "", description="Preset from configs/stim/ (or a TOML path) applied under this file."
    )
    mode: Literal["walking", "training", "test"] = Field(
        "walking", description="walking (gait-triggered), training (cyclic) or test (burst)."
    )
    peroneal: ChannelConfig = ChannelConfig()
    channels: dict[str, ChannelConfig] = Field(
        default_factory=dict, description="Further channels by muscle name, e.g. calf."
    )
    prediction: PredictionConfig = PredictionConfig()
    training: TrainingConfig = TrainingConfig()
    test: BurstConfig = BurstConfig()

    def named_channels(self) -> list[tuple[str, ChannelConfig]]:
        """Every configured channel by name, peroneal first, enabled or not."""
        return [("peroneal", self.peroneal), *sorted(self.channels.items())]

    def active_channels(self) -> list[tuple[str, ChannelConfig]]:
        """The channels that stimulate in this trial (none when stimulation is off)."""
        if not self.enabled:
            return []
        return [(name, ch) for name, ch in self.named_channels() if ch.enabled]


def channel_path(name: str) -> str:
    """Where a channel lives in a config: ``stim.peroneal`` or ``stim.channels.<name>``."""
    return "stim.peroneal" if name == "peroneal" else f"stim.channels.{name}"


def _pulse_fits_period(path: str, ch: ChannelConfig) -> list[str]:
    period_us = 1e6 / ch.frequency_hz
    length_us = ch.pulse_width_us * (1.0 + ch.anodic_width_ratio) + ch.interphase_gap_us
    if length_us < period_us:
        return []
    return [
        f"{path}: a pulse of {ch.pulse_width_us:g} us + gap {ch.interphase_gap_us:g} us "
        f"+ anodic {ch.pulse_width_us * ch.anodic_width_ratio:g} us lasts {length_us:g} us, "
        f"not less than the {period_us:g} us period at {ch.frequency_hz:g} Hz"
    ]


def stim_problems(stim: StimConfig) -> list[str]:
    """Cross-field mistakes of a stimulation config, one message per problem."""
    problems: list[str] = []
    used: dict[int, str] = {}
    for name, ch in stim.named_channels():
        path = channel_path(name)
        if name != "peroneal" and not (name.isidentifier() and name.islower()):
            problems.append(
                f"{path}: a channel name must be a lower-case identifier "
                "(it names CSV columns and summary blocks)"
            )
        if not ch.enabled:
            continue
        problems += _pulse_fits_period(path, ch)
        if ch.channel in used:
            problems.append(
                f"{path}.channel: output {ch.channel} is already used by {used[ch.channel]}"
            )
        used.setdefault(ch.channel, path)
    if stim.prediction.min_strides > stim.prediction.history_strides:
        problems.append(
            f"stim.prediction.min_strides: {stim.prediction.min_strides} exceeds "
            f"stim.prediction.history_strides = {stim.prediction.history_strides}: "
            "no prediction would ever be made"
        )
    if stim.mode == "test":
        names = [name for name, _ in stim.active_channels()]
        if stim.test.channel_name not in names:
            problems.append(
                f"stim.test.channel_name: {stim.test.channel_name!r} is not an enabled "
                f"channel; enabled: {', '.join(names) or 'none'}"
            )
    return problems
