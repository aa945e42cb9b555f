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

from controller.events import Event
from controller.validation import ConfigModel

#: Where a channel's train starts. ``pre_swing`` is the gyro detector's entry into
#: pre-swing (late stance), or into a swing that had none (a first step from standing);
#: ``predicted_toe_off`` is ``lead_ms`` before the toe off predicted from the walker's
#: recent strides.
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

    enabled: bool = Field(
        True,
        description="Whether this channel stimulates; false keeps its settings in the "
        "file but leaves its output off (e.g. a preset's second channel).",
    )
    channel: int = Field(
        0, ge=0, le=7,
        description="Output of the stimulator the channel drives; each enabled channel "
        "needs its own (the simulated limb's tibialis anterior is output 0).",
    )
    amplitude_ma: float = Field(
        35.0, ge=0.0, le=100.0,
        description="Current of the cathodic phase at full level. With the pulse width it "
        "sets the charge per pulse, which recruits the muscle: raise it when the foot does "
        "not lift (toe drags), within the [safety] limits.",
    )
    pulse_width_us: float = Field(
        300.0, ge=10.0, le=1000.0,
        description="Width of the cathodic phase at full level; recruitment follows the "
        "charge per pulse (amplitude x width), so a longer pulse lifts the foot at a lower "
        "current (clinical devices: 100-350 us).",
    )
    frequency_hz: float = Field(
        40.0, ge=1.0, le=100.0,
        description="Pulses per second while the channel is on. Force rises with "
        "frequency towards tetanic fusion (above about 15-20 Hz), and so does fatigue; "
        "clinical devices use 20-50 Hz, 33-40 typically.",
    )
    interphase_gap_us: float = Field(
        0.0, ge=0.0, le=500.0,
        description="Pause between the cathodic and the anodic phase of each pulse, as "
        "some stimulators (and their presets) deliver it; it must fit the board's own "
        "limit on a live trial.",
    )
    anodic_width_ratio: float = Field(
        1.0, ge=1.0, le=10.0,
        description="Anodic phase width over cathodic width (1: symmetric pulse; above 1 "
        "asymmetric, the anodic phase longer and lower at the same charge).",
    )
    trigger: Trigger = Field(
        "pre_swing",
        description="Gait event that starts a train: pre_swing (the gyroscope detector's "
        "entry into pre-swing, at heel rise, 80-300 ms before toe off on the shank; or into "
        "a swing that had none, a first step from standing), toe_off (detected, about 100 ms "
        "late), predicted_toe_off (lead_ms before the predicted toe off), heel_off (needs a "
        "heel sensor), mid_swing or heel_strike.",
    )
    stop: Stop = Field(
        "heel_strike",
        description="Event after which the train holds for extension_ms, then ramps down: "
        "heel_strike for a foot lifted through swing; toe_off or predicted_toe_off for a "
        "push-off channel that stops as the foot leaves the ground.",
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
    ramp_up_ms: float = Field(
        60.0, ge=0.0, le=2000.0,
        description="Time from off to full level at the start of a train (on amplitude or "
        "pulse width: ramp_parameter). A gentle rise avoids provoking a calf stretch "
        "reflex; the charge per phase it raises (whatever the ramp acts on) may not rise "
        "faster than safety.max_charge_rise_uc_per_s, so 0 is refused.",
    )
    ramp_down_ms: float = Field(
        100.0, ge=0.0, le=2000.0,
        description="Time from full level to off after the extension, so the foot is "
        "released gradually. A lost gait phase ramps down at once, so it must fit "
        "safety.max_unknown_phase_ms.",
    )
    extension_ms: float = Field(
        100.0, ge=0.0, le=1000.0,
        description="Hold at full level after the stop event before ramping down: "
        "stimulation past heel strike holds the forefoot up through loading response and "
        "prevents foot slap (clinical devices: 0-1 s).",
    )
    timeout_ms: float = Field(
        1500.0, ge=100.0, le=5000.0,
        description="Longest train from onset when no stop event comes (the walker "
        "stopped, the detector missed heel strike); it then ramps down. With ramp_down_ms "
        "it must fit safety.max_continuous_on_ms.",
    )
    min_off_ms: float = Field(
        100.0, ge=0.0, le=5000.0,
        description="A trigger this soon after the previous train ended is refused, so a "
        "spurious event right after a train cannot start another one.",
    )


class PredictionConfig(ConfigModel):
    """How the next toe off is predicted from the walker's recent stride times."""

    history_strides: int = Field(
        5, ge=2, le=20,
        description="Stride times kept; the prediction uses their median. More strides "
        "resist an odd one, fewer follow a change of pace sooner.",
    )
    min_strides: int = Field(
        2, ge=1, le=20,
        description="Stride times needed before the first prediction; until then (and "
        "after a pause) the fallback trigger starts each train.",
    )
    max_stride_ms: float = Field(
        2500.0, ge=1000.0, le=10000.0,
        description="A longer gap between toe offs is a pause, not a stride: the history "
        "restarts, so a walker who stopped is not stimulated on a stale rhythm.",
    )


class TrainingConfig(ConfigModel):
    """Training (exercise) mode: every enabled channel cycles on and off, gait ignored."""

    on_ms: float = Field(
        2000.0, ge=100.0, le=5000.0,
        description="Time at full level between the ramps of each cycle; with the ramps "
        "it must fit safety.max_continuous_on_ms.",
    )
    off_ms: float = Field(
        4000.0, ge=500.0, le=60000.0,
        description="Rest between the end of one cycle's ramp down and the next ramp up; a "
        "longer rest lets the stimulated muscle recover from fatigue.",
    )
    start_ms: float = Field(
        1000.0, ge=0.0, le=60000.0,
        description="Time from the start of the trial to the first cycle's ramp up.",
    )


class BurstConfig(ConfigModel):
    """Test mode: one burst on one channel, for setting the amplitude on the bench."""

    channel_name: str = Field(
        "peroneal",
        description="Which enabled channel bursts: peroneal or a name under "
        "[stim.channels].",
    )
    on_ms: float = Field(
        1000.0, ge=100.0, le=5000.0,
        description="Time at full level between the ramps of the burst; long enough to "
        "see the muscle's response while setting the amplitude.",
    )
    start_ms: float = Field(
        1000.0, ge=0.0, le=60000.0,
        description="Time from the start of the trial to the burst's ramp up.",
    )


class StimConfig(ConfigModel):
    """The stimulation of a trial: mode, the peroneal channel and optional others."""

    enabled: bool = Field(
        True,
        description="False runs the trial without any stimulation, the patient's own gait "
        "(fes sim --no-stim); the detector and the watchdog still run.",
    )
    preset: str = Field(
        "",
        description="Stimulation preset applied between these defaults and your own file: "
        "a name from configs/stim/ or a TOML path (--stim; empty: none).",
    )
    mode: Literal["walking", "training", "test"] = Field(
        "walking",
        description="walking: trains triggered by the gait; training: every enabled "
        "channel cycles on and off, gait ignored (exercise); test: one burst on one "
        "channel (the bench test button).",
    )
    peroneal: ChannelConfig = Field(
        ChannelConfig(),
        description="The peroneal channel, which lifts the foot in swing. Each pulse is "
        "biphasic and charge balanced: cathodic phase (amplitude_ma for pulse_width_us), "
        "interphase gap, anodic phase anodic_width_ratio times longer at "
        "1/anodic_width_ratio of the current.",
    )
    channels: dict[str, ChannelConfig] = Field(
        default_factory=dict,
        description="Further channels by muscle name ([stim.channels.<name>]), each with "
        "every field of [stim.peroneal]: its own output, pulses, trigger and stop. None "
        "by default; configs/stim/peroneal_calf.toml adds a calf channel that pushes off "
        "in pre-swing.",
    )
    prediction: PredictionConfig = Field(
        PredictionConfig(),
        description="How the next toe off is predicted from the walker's recent stride "
        "times, for channels triggered at a predicted toe off.",
    )
    training: TrainingConfig = Field(
        TrainingConfig(),
        description="Training (exercise) mode: every enabled channel cycles on and off, "
        "gait ignored.",
    )
    test: BurstConfig = Field(
        BurstConfig(),
        description="Test mode: one burst on one channel, for setting the amplitude on the "
        "bench.",
    )

    def named_channels(self) -> list[tuple[str, ChannelConfig]]:
        """Every configured channel by name, peroneal first, enabled or not."""
        return [("peroneal", self.peroneal), *sorted(self.channels.items())]

    def active_channels(self) -> list[tuple[str, ChannelConfig]]:
        """The channels that stimulate in this trial (none when stimulation is off)."""
        if not self.enabled:
            return []
        return [(name, ch) for name, ch in self.named_channels() if ch.enabled]


#: The fields of a channel that only a train started at a predicted toe off reads.
PREDICTION_FIELDS = ("lead_ms", "fallback_trigger", "confirm_ms")


def unused_stim(stim: StimConfig) -> dict[str, str]:
    """The settings of ``stim`` a trial never reads, by dotted path (a table or a
    field), each with the choice that leaves it out: everything but ``stim.enabled``
    when stimulation is off, the tables of the modes not chosen, every field but
    ``enabled`` of a disabled channel, and the toe-off prediction where no channel
    starts at a predicted toe off."""
    if not stim.enabled:
        off = "stim.enabled = false"
        return {f"stim.{name}": off for name in StimConfig.model_fields if name != "enabled"}
    mode = f"stim.mode = {stim.mode}"
    unused = {f"stim.{name}": mode for name in ("training", "test") if name != stim.mode}
    predicting = False
    for name, ch in stim.named_channels():
        path = channel_path(name)
        if not ch.enabled:
            unused |= {f"{path}.{field}": f"{path}.enabled = false"
                       for field in ChannelConfig.model_fields if field != "enabled"}
            continue
        walking = stim.mode == "walking"
        predicting |= walking and "predicted_toe_off" in (ch.trigger, ch.stop)  # (a stop
        if not (walking and ch.trigger == "predicted_toe_off"):  # reads the prediction)
            why = mode if not walking else f"{path}.trigger = {ch.trigger}"
            unused |= {f"{path}.{field}": why for field in PREDICTION_FIELDS}
    if not predicting:
        unused["stim.prediction"] = (
            mode if stim.mode != "walking"
            else "no channel's trigger or stop is predicted_toe_off")
    return unused


def channel_path(name: str) -> str:
    """Where a channel lives in a config: ``stim.peroneal`` or ``stim.channels.<name>``."""
    return "stim.peroneal" if name == "peroneal" else f"stim.channels.{name}"


def pulse_length(ch: ChannelConfig) -> tuple[float, str]:
    """How long one whole pulse of ``ch`` lasts (us: leading phase + interphase gap +
    anodic phase), and that sum in words for a message."""
    length_us = ch.pulse_width_us * (1.0 + ch.anodic_width_ratio) + ch.interphase_gap_us
    return length_us, (
        f"a pulse of {ch.pulse_width_us:g} us + gap {ch.interphase_gap_us:g} us + anodic "
        f"{ch.pulse_width_us * ch.anodic_width_ratio:g} us lasts {length_us:g} us"
    )


def _pulse_fits_period(path: str, ch: ChannelConfig) -> list[str]:
    period_us = 1e6 / ch.frequency_hz
    length_us, text = pulse_length(ch)
    if length_us < period_us:
        return []
    return [f"{path}: {text}, not less than the {period_us:g} us period at "
            f"{ch.frequency_hz:g} Hz"]


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
