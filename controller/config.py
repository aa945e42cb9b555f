"""A trial's configuration: the models of every package composed, loaded from TOML.

Loading order, each layer overriding the one before: ``configs/default.toml`` (every field
with its default, documented), then the user's ``--config`` file (any subset of fields),
then command-line options. The result is validated as a whole; a bad value anywhere
raises ``ConfigError`` naming each bad field and its allowed range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from controller.detect.gyro import GyroDetectorConfig
from controller.resources import configs_root, load_toml
from controller.stim.scheduler import ChannelConfig, StimConfig
from controller.validation import ConfigError, ConfigModel, describe_errors
from controller.watchdog import SafetyLimits


class LoopConfig(ConfigModel):
    """Pacing of the control loop; the last four fields matter on a wall clock only."""

    sample_rate_hz: float = Field(500.0, ge=100.0, le=2000.0)
    duration_s: float = Field(60.0, gt=0.0, le=86400.0)
    max_overrun_ms: float = Field(
        50.0, ge=1.0, le=1000.0,
        description="A sample started later than this after its deadline faults the "
        "watchdog (outputs off, latched).",
    )
    spin_us: float = Field(
        200.0, ge=0.0, le=5000.0,
        description="Busy-wait this long before each deadline instead of sleeping "
        "(absorbs the OS wake-up delay; costs this share of a core).",
    )
    cpu_index: int = Field(
        -1, ge=-1, le=1023, description="Pin the loop thread to this CPU (-1: no pinning)."
    )
    realtime_priority: int = Field(
        0, ge=0, le=99,
        description="SCHED_FIFO priority of the loop thread (0: normal scheduling).",
    )


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


def _within_safety(config: TrialConfig) -> list[str]:
    """Stimulation settings that the safety limits would refuse, named field by field."""
    problems = []
    lim = config.safety
    channels: list[tuple[str, ChannelConfig]] = [("stim.peroneal", config.stim.peroneal)]
    for name, ch in channels:
        if not (config.stim.enabled and ch.enabled):
            continue
        for field, limit_field in (
            ("amplitude_ma", "max_amplitude_ma"),
            ("pulse_width_us", "max_pulse_width_us"),
            ("frequency_hz", "max_frequency_hz"),
        ):
            value, limit = getattr(ch, field), getattr(lim, limit_field)
            if value > limit:
                problems.append(
                    f"{name}.{field}: {value:g} exceeds safety.{limit_field} = {limit:g}"
                )
        longest = ch.timeout_ms + ch.ramp_down_ms
        if longest > lim.max_continuous_on_ms:
            problems.append(
                f"{name}.timeout_ms + ramp_down_ms: {longest:g} ms exceeds "
                f"safety.max_continuous_on_ms = {lim.max_continuous_on_ms:g}"
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
