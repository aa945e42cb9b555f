"""Which detector a trial uses, and one configuration per sensor placement.

``[detector]`` chooses the sensor (``gyro``, ``heel`` or ``fused``), where the
gyroscope sits (``shank`` or ``foot``) and what the heel sensor is (a ``switch`` or a
``force`` sensor). Each placement and each heel sensor has its own full configuration
(``[detector.gyro.shank]``, ``[detector.gyro.foot]``, ``[detector.heel.switch]``,
``[detector.heel.force]``), so that switching placement never mixes thresholds made for
another: one configuration per placement, none per recording.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from controller.detect import detector
from controller.detect.fused import FusionConfig
from controller.detect.gyro import FOOT, SHANK, GyroDetectorConfig
from controller.detect.heel import HEEL_FORCE, HEEL_SWITCH, HeelDetectorConfig, HeelInput
from controller.resources import config_layers, merge_all
from controller.validation import ConfigError, ConfigModel, describe_errors

Sensor = Literal["gyro", "heel", "fused"]
Placement = Literal["shank", "foot"]


class GyroPlacements(ConfigModel):
    """The gyroscope detector's configuration for each place it can be worn."""

    shank: GyroDetectorConfig = Field(
        SHANK,
        description="The gyroscope detector worn on the shank (the stimulator's own "
        "sensor). Chosen on the Marpino shank walkers, each scored with the setting chosen "
        "without them (docs/detection.md).",
    )
    foot: GyroDetectorConfig = Field(
        FOOT,
        description="The gyroscope detector worn on the foot (instep or shoe): toe off on "
        "the rising flank, heel strike where the signal falls through a level. Chosen on "
        "the Voisard et al. 2023 foot recordings, each walker scored with the setting "
        "chosen without them (docs/detection.md).",
    )


class HeelSensors(ConfigModel):
    """The heel detector's configuration for each kind of heel sensor."""

    switch: HeelDetectorConfig = Field(
        HEEL_SWITCH,
        description="The heel detector on a heel switch (0/1); the force thresholds are "
        "not used.",
    )
    force: HeelDetectorConfig = Field(
        HEEL_FORCE,
        description="The heel detector on a force sensor under the heel (N); toe off is "
        "dated from heel strike at the stance fraction chosen on the gaitpdb Ga study's "
        "force insoles, and the contact level follows the walker's heel peak "
        "(docs/detection.md).",
    )


class DetectorConfig(ConfigModel):
    """The detector of a trial: which sensor, where, and the configurations."""

    sensor: Sensor = Field(
        "gyro",
        description="Which detector runs: the gyroscope, the heel sensor or both fused. A "
        "heel sensor times heel strike to a sample and sees heel off; the gyroscope "
        "times toe off.",
    )
    placement: Placement = Field(
        "shank", description="Where the gyroscope is worn (selects [detector.gyro.<placement>])."
    )
    heel_input: HeelInput = Field(
        "switch", description="What the heel sensor is (selects [detector.heel.<heel_input>])."
    )
    gyro: GyroPlacements = Field(
        GyroPlacements(),
        description="The gyroscope detector's settings, one full table per place it can "
        "be worn; placement picks the one in use.",
    )
    heel: HeelSensors = Field(
        HeelSensors(),
        description="The heel detector's settings, one full table per kind of heel sensor; "
        "heel_input picks the one in use.",
    )
    fused: FusionConfig = Field(
        FusionConfig(),
        description="How the fused detector (sensor = fused) combines the gyroscope and "
        "the heel sensor, each the fallback of the other.",
    )

    def gyro_config(self) -> GyroDetectorConfig:
        """The gyroscope configuration of the chosen placement."""
        return getattr(self.gyro, self.placement)  # type: ignore[no-any-return]

    def heel_config(self) -> HeelDetectorConfig:
        """The heel configuration of the chosen heel sensor."""
        return getattr(self.heel, self.heel_input)  # type: ignore[no-any-return]

    def reports_heel_off(self) -> bool:
        """Whether the chosen detector reports heel off: only a heel sensor sees it."""
        return self.sensor != "gyro"

    def unused(self) -> dict[str, str]:
        """The settings this detector never reads, by dotted path under ``detector.``
        (a table or a field), each with the choice that leaves it out: the placement
        and heel sensor not chosen, the sensors and fusion a single sensor does
        without."""
        sensor = f"detector.sensor = {self.sensor}"
        unused: dict[str, str] = {}
        if self.sensor == "heel":
            unused |= {"detector.gyro": sensor, "detector.placement": sensor}
        else:
            unused |= {f"detector.gyro.{p}": f"detector.placement = {self.placement}"
                       for p in GyroPlacements.model_fields if p != self.placement}
        if self.sensor == "gyro":
            unused |= {"detector.heel": sensor, "detector.heel_input": sensor}
        else:
            unused |= {f"detector.heel.{h}": f"detector.heel_input = {self.heel_input}"
                       for h in HeelSensors.model_fields if h != self.heel_input}
        if self.sensor != "fused":
            unused["detector.fused"] = sensor
        return unused

    def setup(self) -> detector.DetectorSetup:
        """The kernel set-up of the chosen detector."""
        if self.sensor == "gyro":
            return detector.gyro_setup(self.gyro_config())
        if self.sensor == "heel":
            return detector.heel_setup(self.heel_config(), self.heel_input)
        return detector.fused_setup(
            self.gyro_config(), self.heel_config(), self.heel_input, self.fused
        )


def build_detector(config: DetectorConfig, sample_rate_hz: float) -> detector.GaitDetector:
    """The per-sample detector a trial's loop runs."""
    return detector.GaitDetector(config.setup(), sample_rate_hz)


def load_detector_config(
    path: Path | None = None, overrides: dict[str, Any] | None = None
) -> DetectorConfig:
    """The ``[detector]`` section of a trial's config, layered as ``load_config`` layers
    a whole one (defaults, the file at ``path``, ``overrides``) and validated alone.

    For a command that runs a detector and nothing else (``fes detect``): validating
    the whole trial checks the stimulation against the safety limits with the
    watchdog's kernels, a tenth of a second of start-up for settings it never uses. A
    section the trial config does not have (every one is in ``configs/default.toml``)
    is still refused, so that a misspelt ``[detectr]`` is not silently ignored; the
    other sections' fields are checked by ``fes check-config``.
    """
    default, layers, source = config_layers(path, overrides)
    problems = [
        f"{name}: unknown section (check the spelling)"
        for layer in layers for name in layer if name not in default
    ]
    if problems:
        raise ConfigError(source, problems)
    try:
        section = merge_all(default, layers)["detector"]
    except ValueError as err:
        raise ConfigError(source, [str(err)]) from None
    if not isinstance(section, dict):
        raise ConfigError(source, [f"detector: {section!r} is not a table of fields"])
    try:
        return DetectorConfig.model_validate(section)
    except ValidationError as err:
        raise ConfigError(source, describe_errors(err, DetectorConfig, "detector.")) from None
