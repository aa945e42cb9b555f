"""A trial's configuration: the models of every package composed, loaded from TOML.

Loading order, each layer overriding the one before: ``configs/default.toml`` (every field
with its default, documented), then the stimulation preset named by ``stim.preset``
(``configs/stim/<name>.toml``, a clinical device's settings), then the user's
``--config`` file (any subset of fields), then command-line options. The result is
validated as a whole; a bad value anywhere raises ``ConfigError`` naming each bad field
and its allowed range.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from controller.detect.config import DetectorConfig
from controller.events import EVENT_TOLERANCE_MS, MOST_EVENT_TOLERANCE_MS
from controller.resources import (
    config_layers,
    default_config_path,
    load_toml,
    merge_all,
    merge_tables,
)
from controller.safety.limits import (
    DUTY_WINDOW_S,
    MAX_SAMPLE_RATE_HZ,
    Pulse,
    SafetyLimits,
    pulse_breaches,
)
from controller.stim.presets import preset_layer
from controller.stim.settings import (
    ChannelConfig,
    StimConfig,
    channel_path,
    pulse_length,
    stim_problems,
    unused_stim,
)
from controller.validation import ConfigError, ConfigModel, describe_errors


class LoopConfig(ConfigModel):
    """Pacing of the control loop; the last four fields matter on a wall clock only."""

    sample_rate_hz: float = Field(
        500.0, ge=100.0, le=MAX_SAMPLE_RATE_HZ,
        description="Samples per second of the loop and of the simulated sensors. Event "
        "times are quantised to one period, so a higher rate times detection and "
        "stimulation more finely at more cost per second; a board streams at its own rate, "
        "which must equal this.",
    )
    duration_s: float = Field(
        60.0, gt=0.0, le=86400.0,
        description="Length of a trial: simulated time for fes sim, wall time for "
        "fes sim --realtime and fes run (--duration-s sets it too).",
    )
    max_overrun_ms: float = Field(
        50.0, ge=1.0, le=1000.0,
        description="A sample whose commands would reach the stimulator later than this "
        "after its deadline faults the watchdog (outputs off, latched): stimulation "
        "computed for a moment long past is not delivered. Wall-clock trials only.",
    )
    spin_us: float = Field(
        200.0, ge=0.0, le=5000.0,
        description="Busy-wait this long before each deadline instead of sleeping: absorbs "
        "the operating system's late wake-up, at the cost of this share of a core "
        "(--spin-us). Raise it when samples start late on a busy machine.",
    )
    cpu_index: int = Field(
        -1, ge=-1, le=1023,
        description="Pin the loop thread to this CPU (-1: no pinning; --cpu). A quiet core "
        "of its own keeps other processes from stalling the loop.",
    )
    realtime_priority: int = Field(
        0, ge=0, le=99,
        description="SCHED_FIFO priority of the loop thread (0: normal scheduling; "
        "--rt-priority). Needs root, CAP_SYS_NICE or an rtprio limit; what the system "
        "refuses is reported and the trial runs at normal priority.",
    )


class SimConfig(ConfigModel):
    """The simulated back end: which patient profile and which random seed."""

    patient: str = Field(
        "moderate",
        description="Patient profile the simulated limb walks with: a name from "
        "configs/patients/ (healthy, mild, moderate, severe, spastic, fatigue_prone, "
        "heat_sensitive) or the path of a profile TOML (--patient).",
    )
    seed: int = Field(
        0, ge=0, le=2**32 - 1,
        description="Seed of every random draw of the simulation (stride times, course, "
        "sensor noise): the same seed and config give the same files byte for byte "
        "(--seed; a sweep counts its seeds up from here).",
    )


class MetricsConfig(ConfigModel):
    """How a trial is scored against the ground truth."""

    event_tolerance_ms: float = Field(
        EVENT_TOLERANCE_MS, gt=0.0, le=MOST_EVENT_TOLERANCE_MS,
        description="A detected heel strike or toe off is matched one to one with a true "
        "event of its kind at most this far away; beyond it the detection is a false one "
        "and the true event is missed (lower recall and precision).",
    )
    onset_window_ms: float = Field(
        400.0, gt=0.0, le=1000.0,
        description="A train's onset is matched with the true event its trigger aims at "
        "within this window plus the channel's lead, its offset with the true event of "
        "its stop within this plus extension and ramp down; a true event without an "
        "onset in the window is a missed onset.",
    )
    clearance_trim_fraction: float = Field(
        0.15, ge=0.0, le=0.4,
        description="Share of each true swing left out at either end when taking its "
        "minimum toe clearance, so that the figure is the mid-swing minimum of gait "
        "analysis and not the toe leaving or reaching the floor.",
    )


class TrialConfig(ConfigModel):
    """Everything one trial needs, composed from each package's own model."""

    loop: LoopConfig = Field(
        LoopConfig(),
        description="Pacing of the control loop: its rate and length, and how it keeps "
        "time on a wall clock (the last four fields matter to fes sim --realtime and "
        "fes run only).",
    )
    detector: DetectorConfig = Field(
        DetectorConfig(),
        description="The gait detector of a trial: which sensor, where it is worn, and a "
        "full configuration for each placement and each kind of heel sensor.",
    )
    stim: StimConfig = Field(
        StimConfig(),
        description="The stimulation of a trial: mode, the peroneal channel and optional "
        "others. A preset (configs/stim/<name>.toml: odfs, l300, walkaide, "
        "peroneal_calf) sets a clinical device's values between these defaults and your "
        "own file; fes sim --stim NAME picks one too.",
    )
    safety: SafetyLimits = Field(
        SafetyLimits(),
        description="Limits of one installation, enforced by the watchdog on every "
        "command; each may be set at or below its absolute maximum (compiled into "
        "controller/safety/limits.py), never above. docs/safety.md gives each limit's "
        "source and what the watchdog does on a breach.",
    )
    sim: SimConfig = Field(
        SimConfig(),
        description="The simulated back end: which patient profile walks and with which "
        "random seed (fes run ignores it: the patient is whoever wears the board).",
    )
    metrics: MetricsConfig = Field(
        MetricsConfig(),
        description="How a trial is scored against the simulator's ground truth "
        "(summary.json): matching windows of events and stimulation onsets, the part of "
        "each swing that counts for toe clearance.",
    )



def _longest_train_ms(stim: StimConfig, ch: ChannelConfig) -> tuple[str, float]:
    """What bounds one train of ``ch`` in the trial's mode, and that bound in ms."""
    if stim.mode == "training":
        return "ramp_up_ms + training.on_ms + ramp_down_ms", (
            ch.ramp_up_ms + stim.training.on_ms + ch.ramp_down_ms
        )
    if stim.mode == "test":
        return "ramp_up_ms + test.on_ms + ramp_down_ms", (
            ch.ramp_up_ms + stim.test.on_ms + ch.ramp_down_ms
        )
    return "timeout_ms + ramp_down_ms", ch.timeout_ms + ch.ramp_down_ms


#: Limits that bound one setting of a channel directly; the others bound a combination.
_LIMITED_FIELD = {
    "max_amplitude_ma": "amplitude_ma",
    "max_pulse_width_us": "pulse_width_us",
    "max_frequency_hz": "frequency_hz",
    "max_interphase_gap_us": "interphase_gap_us",
    "max_anodic_width_ratio": "anodic_width_ratio",
}


def _channel_safety(
    name: str, ch: ChannelConfig, stim: StimConfig, lim: SafetyLimits
) -> list[str]:
    """What the watchdog would refuse or clamp in one channel's settings."""
    problems = []
    pulse = Pulse.shaped(
        ch.amplitude_ma, ch.pulse_width_us, ch.frequency_hz, ch.anodic_width_ratio,
        ch.interphase_gap_us,
    )
    for breach in pulse_breaches(lim, pulse):
        limit = f"safety.{breach.rule} = {breach.limit:g}"
        if breach.rule in _LIMITED_FIELD:
            field = _LIMITED_FIELD[breach.rule]
            problems.append(f"{name}.{field}: {getattr(ch, field):g} exceeds {limit}")
        elif breach.rule == "max_pulse_period_fraction":
            problems.append(
                f"{name}: {pulse_length(ch)[1]}, {breach.value:.4g} of the "
                f"{1e6 / ch.frequency_hz:g} us period at {ch.frequency_hz:g} Hz, exceeds {limit}"
            )
        else:
            value = f"{breach.value:.4g} {breach.unit}".strip()
            problems.append(
                f"{name}: {breach.quantity} of {ch.amplitude_ma:g} mA, "
                f"{ch.pulse_width_us:g} us, {ch.frequency_hz:g} Hz is {value}, exceeds {limit}"
            )
    # The ramp scales the amplitude or the pulse width from 0 to full: either way the
    # charge per phase rises from 0 to the pulse's in ramp_up_ms, and that is what the
    # watchdog limits (a pulse-width ramp steps its amplitude at onset).
    charge_uc = pulse.charge_per_phase_uc
    ramp_s = ch.ramp_up_ms / 1000.0
    rise = charge_uc / ramp_s if ramp_s > 0 else math.inf
    if rise > lim.max_charge_rise_uc_per_s:
        problems.append(
            f"{name}.ramp_up_ms: {ch.amplitude_ma:g} mA x {ch.pulse_width_us:g} us = "
            f"{charge_uc:.4g} uC per phase in {ch.ramp_up_ms:g} ms rises at {rise:.4g} "
            f"uC/s, exceeds safety.max_charge_rise_uc_per_s = "
            f"{lim.max_charge_rise_uc_per_s:g}"
        )
    what, longest = _longest_train_ms(stim, ch)
    if longest > lim.max_continuous_on_ms:
        problems.append(
            f"{name}: {what} = {longest:g} ms exceeds "
            f"safety.max_continuous_on_ms = {lim.max_continuous_on_ms:g}"
        )
    problems += _timed_duty(name, ch, stim, lim)
    if ch.ramp_down_ms > lim.max_unknown_phase_ms:
        problems.append(
            f"{name}.ramp_down_ms: {ch.ramp_down_ms:g} ms exceeds "
            f"safety.max_unknown_phase_ms = {lim.max_unknown_phase_ms:g} (a lost gait phase "
            "ramps stimulation down, which must end within that limit)"
        )
    return problems


def _timed_duty(name: str, ch: ChannelConfig, stim: StimConfig, lim: SafetyLimits) -> list[str]:
    """The duty cycle of training and test mode, which the clock times and not the gait:
    the most of any ``DUTY_WINDOW_S`` window a channel stimulates (each train from its
    ramp up to the end of its ramp down, every ``on + off`` of a cycle), against
    ``max_duty_cycle``. The watchdog measures it from the first sample with charge to the
    first without, never longer than this. (Walking mode's depends on the gait: checked at
    run time only.)"""
    if stim.mode not in ("training", "test"):
        return []
    what, train_ms = _longest_train_ms(stim, ch)
    if stim.mode == "training":
        cycle_ms, hint = train_ms + stim.training.off_ms, "lengthen training.off_ms or shorten"
    else:
        cycle_ms, hint = math.inf, "shorten"
    window_ms = DUTY_WINDOW_S * 1000.0
    cycles = math.floor(window_ms / cycle_ms)
    duty = (cycles * train_ms + min(train_ms, window_ms - cycles * cycle_ms)) / window_ms
    if duty <= lim.max_duty_cycle:
        return []
    every = "" if math.isinf(cycle_ms) else f" every {cycle_ms:g} ms"
    return [
        f"{name}: {stim.mode} mode stimulates {train_ms:g} ms ({what}){every}, up to "
        f"{duty:.4g} of any {DUTY_WINDOW_S:g} s, exceeds safety.max_duty_cycle = "
        f"{lim.max_duty_cycle:g} ({hint} the train)"
    ]


def _total_amplitude(stim: StimConfig, lim: SafetyLimits) -> list[str]:
    """The channels that may stimulate at the same time, whose amplitudes (each the
    peak current of its pulse) add up beyond ``max_total_amplitude_ma``: in walking and
    training mode every active channel (walking trains of two muscles overlap as the
    gait decides; training cycles them together), in test mode the one that bursts."""
    channels = stim.active_channels()
    if stim.mode == "test":
        channels = [(name, ch) for name, ch in channels if name == stim.test.channel_name]
    channels.sort(key=lambda named: named[1].channel)  # the watchdog's order of adding
    total_ma = sum(ch.amplitude_ma for _, ch in channels)
    if total_ma <= lim.max_total_amplitude_ma:
        return []
    each = ", ".join(f"{channel_path(name)} {ch.amplitude_ma:g}" for name, ch in channels)
    return [
        f"stim: the amplitudes of the channels that may stimulate together add up to "
        f"{total_ma:g} mA ({each}), exceeds safety.max_total_amplitude_ma = "
        f"{lim.max_total_amplitude_ma:g}"
    ]


def _within_safety(config: TrialConfig) -> list[str]:
    """Settings that the safety limits would refuse, named field by field."""
    problems = []
    lim = config.safety
    for name, ch in config.stim.active_channels():
        problems += _channel_safety(channel_path(name), ch, config.stim, lim)
    problems += _total_amplitude(config.stim, lim)
    period_ms = 1000.0 / config.loop.sample_rate_hz
    for field in ("heartbeat_timeout_ms", "sensor_timeout_ms"):
        value = getattr(lim, field)
        if value < 2.0 * period_ms:
            problems.append(
                f"safety.{field}: {value:g} ms is shorter than two sample periods "
                f"({2.0 * period_ms:g} ms at loop.sample_rate_hz = "
                f"{config.loop.sample_rate_hz:g})"
            )
    return problems


def _has_samples(config: TrialConfig) -> list[str]:
    """A trial too short to hold one sample (the loop counts round(duration x rate))."""
    loop = config.loop
    if round(loop.duration_s * loop.sample_rate_hz) >= 1:
        return []
    return [
        f"loop.duration_s: {loop.duration_s:g} s is shorter than one sample period "
        f"({1000.0 / loop.sample_rate_hz:g} ms at loop.sample_rate_hz = "
        f"{loop.sample_rate_hz:g}): the trial would have no sample"
    ]


def _triggers_available(config: TrialConfig) -> list[str]:
    """Walking-mode triggers that the detector cannot provide."""
    if config.stim.mode != "walking" or config.detector.reports_heel_off():
        return []
    return [
        f"{channel_path(name)}.trigger: "
        "heel_off needs a detector that reports heel off (detector.sensor = heel or fused); "
        "the gyroscope detector does not: use pre_swing or predicted_toe_off"
        for name, ch in config.stim.active_channels()
        if ch.trigger == "heel_off"
    ]


def unused_settings(config: TrialConfig) -> dict[str, str]:
    """The settings a trial with ``config`` never reads, by dotted path (a table or a
    field), each with the choice that leaves it out (``detector.placement = shank``
    for ``detector.gyro.foot``): a value changed there changes nothing in the trial."""
    return config.detector.unused() | unused_stim(config.stim)


def unused_by(unused: dict[str, str], key: str) -> str | None:
    """Why the dotted ``key`` is not read, given ``unused_settings``; None if it is."""
    for path, why in unused.items():
        if key == path or key.startswith(f"{path}."):
            return why
    return None


def simulated_problems(config: TrialConfig) -> list[str]:
    """What a simulated trial (``fes sim``, a sweep's trials) cannot run though a board
    could: the simulated patient has a shank gyroscope and no foot gyroscope
    (``sim/sensors.py``), so the foot's detector would read the shank's signal with the
    foot's thresholds and score that as if it were a foot's detection."""
    if config.detector.placement != "foot" or config.detector.sensor == "heel":
        return []
    return [
        "detector.placement: 'foot', but the simulated patient wears its gyroscope on the "
        "shank (it has no foot gyroscope): the foot's detector would read a shank's signal. "
        "Simulate with placement = 'shank'; run the foot's detector on foot recordings with "
        "fes detect --placement foot"
    ]


def leaves(table: dict[str, Any], where: str = "") -> dict[str, Any]:
    """A nested TOML table's values by dotted path."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat |= leaves(value, f"{where}{key}.")
        else:
            flat[f"{where}{key}"] = value
    return flat


def changed_in_file(path: Path) -> dict[str, Any]:
    """The values the config file at ``path`` sets otherwise than
    ``configs/default.toml``, by dotted path."""
    default = leaves(load_toml(default_config_path()))
    return {key: value for key, value in leaves(load_toml(path)).items()
            if key not in default or default[key] != value}


def unread(changed: dict[str, Any], unused: dict[str, str]) -> dict[str, str]:
    """Of the ``changed`` values (``changed_in_file``), those a trial never reads, given
    ``unused_settings`` (or a section's own ``unused``), each described as ``KEY = VALUE
    (the choice that leaves it out)``: a value tuned in the foot's table while the
    gyroscope is on the shank changes nothing."""
    found = {}
    for key, value in changed.items():
        why = unused_by(unused, key)
        if why is not None:
            found[key] = f"{key} = {value!r} ({why})"
    return found


def build_config(data: dict[str, Any], source: str) -> TrialConfig:
    """Validate a full config dict; raise ``ConfigError`` listing every problem."""
    try:
        config = TrialConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, describe_errors(err, TrialConfig)) from None
    problems = (
        stim_problems(config.stim) + _within_safety(config) + _has_samples(config)
        + _triggers_available(config)
    )
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> TrialConfig:
    """Defaults, then the stimulation preset the result names (``stim.preset``), then
    the file at ``path``, then ``overrides``; validated together."""
    default, layers, source = config_layers(path, overrides)
    try:
        data = merge_all(default, layers)
        stim = data.get("stim")
        preset = preset_layer(stim.get("preset") if isinstance(stim, dict) else None)
        if preset is not None:
            label, preset_data = preset
            source += f" + {label}"
            data = merge_all(merge_tables(default, {"stim": preset_data}), layers)
    except ValueError as err:
        raise ConfigError(source, [str(err)]) from None
    return build_config(data, source)
