"""A trial's configuration: the models of every package composed, loaded from TOML.

Loading order, each layer overriding the one before: ``configs/default.toml`` (every field
with its default, documented), then the user's ``--config`` file (any subset of fields),
then command-line options. The result is validated as a whole; a bad value anywhere
raises ``ConfigError`` naming each bad field and its allowed range.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from controller.detect.gyro import GyroDetectorConfig
from controller.resources import configs_root, load_toml
from controller.safety.limits import Pulse, SafetyLimits, pulse_breaches
from controller.stim.scheduler import ChannelConfig, StimConfig
from controller.validation import ConfigError, ConfigModel, describe_errors


class LoopConfig(ConfigModel):
    """Pacing of the control loop."""

    sample_rate_hz: float = Field(500.0, ge=100.0, le=2000.0)
    duration_s: float = Field(60.0, gt=0.0, le=86400.0)


class SimConfig(ConfigModel):
    """The simulated back end: which patient profile and which random seed."""

    patient: str = "moderate"
    seed: int = Field(0, ge=0, le=2**32 - 1)


class MetricsConfig(ConfigModel):
    """How a trial is scored against the ground truth."""

    event_tolerance_ms: float = Field(100.0, gt=0.0, le=500.0)
    onset_window_ms: float = Field(400.0, gt=0.0, le=1000.0)
    clearance_trim_fraction: float = Field(0.15, ge=0.0, le=0.4)


class TrialConfig(ConfigModel):
    """Everything one trial needs, composed from each package's own model."""

    loop: LoopConfig = LoopConfig()
    detector: GyroDetectorConfig = GyroDetectorConfig()
    stim: StimConfig = StimConfig()
    safety: SafetyLimits = SafetyLimits()
    sim: SimConfig = SimConfig()
    metrics: MetricsConfig = MetricsConfig()


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of nested dicts; values of ``override`` win."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


#: Limits that bound one setting of a channel directly; the others bound a combination.
_LIMITED_FIELD = {
    "max_amplitude_ma": "amplitude_ma",
    "max_pulse_width_us": "pulse_width_us",
    "max_frequency_hz": "frequency_hz",
}


def _channel_safety(name: str, ch: ChannelConfig, lim: SafetyLimits) -> list[str]:
    """What the watchdog would refuse or clamp in one channel's settings."""
    problems = []
    pulse = Pulse.symmetric(ch.amplitude_ma, ch.pulse_width_us, ch.frequency_hz)
    for breach in pulse_breaches(lim, pulse):
        limit = f"safety.{breach.rule} = {breach.limit:g}"
        if breach.rule in _LIMITED_FIELD:
            field = _LIMITED_FIELD[breach.rule]
            problems.append(f"{name}.{field}: {getattr(ch, field):g} exceeds {limit}")
        else:
            value = f"{breach.value:.4g} {breach.unit}".strip()
            problems.append(
                f"{name}: {breach.quantity} of {ch.amplitude_ma:g} mA, "
                f"{ch.pulse_width_us:g} us, {ch.frequency_hz:g} Hz is {value}, exceeds {limit}"
            )
    ramp_s = ch.ramp_up_ms / 1000.0
    rise = ch.amplitude_ma / ramp_s if ramp_s > 0 else math.inf
    if rise > lim.max_amplitude_rise_ma_per_s:
        problems.append(
            f"{name}.ramp_up_ms: {ch.amplitude_ma:g} mA in {ch.ramp_up_ms:g} ms rises at "
            f"{rise:.4g} mA/s, exceeds safety.max_amplitude_rise_ma_per_s = "
            f"{lim.max_amplitude_rise_ma_per_s:g}"
        )
    longest = ch.timeout_ms + ch.ramp_down_ms
    if longest > lim.max_continuous_on_ms:
        problems.append(
            f"{name}.timeout_ms + ramp_down_ms: {longest:g} ms exceeds "
            f"safety.max_continuous_on_ms = {lim.max_continuous_on_ms:g}"
        )
    if ch.ramp_down_ms > lim.max_unknown_phase_ms:
        problems.append(
            f"{name}.ramp_down_ms: {ch.ramp_down_ms:g} ms exceeds "
            f"safety.max_unknown_phase_ms = {lim.max_unknown_phase_ms:g} (a lost gait phase "
            "ramps stimulation down, which must end within that limit)"
        )
    return problems


def _within_safety(config: TrialConfig) -> list[str]:
    """Settings that the safety limits would refuse, named field by field."""
    problems = []
    lim = config.safety
    channels: list[tuple[str, ChannelConfig]] = [("stim.peroneal", config.stim.peroneal)]
    for name, ch in channels:
        if config.stim.enabled and ch.enabled:
            problems += _channel_safety(name, ch, lim)
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


def build_config(data: dict[str, Any], source: str) -> TrialConfig:
    """Validate a full config dict; raise ``ConfigError`` listing every problem."""
    try:
        config = TrialConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, describe_errors(err, TrialConfig)) from None
    problems = _within_safety(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def default_config_path() -> Path:
    """The shipped ``configs/default.toml``."""
    return configs_root() / "default.toml"


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> TrialConfig:
    """Defaults, then the file at ``path``, then ``overrides``; validated together."""
    data = load_toml(default_config_path())
    source = "configs/default.toml"
    if path is not None:
        data = _merge(data, load_toml(path))
        source = str(path)
    if overrides:
        data = _merge(data, overrides)
        source += " + command line"
    return build_config(data, source)
