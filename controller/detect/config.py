"""Which detector a trial uses, and one configuration per sensor placement.

``[detector]`` chooses the sensor (``gyro``, ``heel`` or ``fused``), where the
gyroscope sits (``shank`` or ``foot``) and what the heel sensor is (a ``switch`` or a
``force`` sensor). Each placement and each heel sensor has its own full configuration
(``[detector.gyro.shank]``, ``[detector.gyro.foot]``, ``[detector.heel.switch]``,
``[detector.heel.force]``), so that switching placement never mixes thresholds made for
another: one configuration per placement, none per recording.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from controller.detect import detector
from controller.detect.fused import FusionConfig
from controller.detect.gyro import FOOT, GyroDetectorConfig
from controller.detect.heel import HEEL_FORCE, HEEL_SWITCH, HeelDetectorConfig, HeelInput
from controller.validation import ConfigModel

Sensor = Literal["gyro", "heel", "fused"]
Placement = Literal["shank", "foot"]


class GyroPlacements(ConfigModel):
    """The gyroscope detector's configuration for each place it can be worn."""

    shank: GyroDetectorConfig = GyroDetectorConfig()
    foot: GyroDetectorConfig = FOOT


class HeelSensors(ConfigModel):
    """The heel detector's configuration for each kind of heel sensor."""

    switch: HeelDetectorConfig = HEEL_SWITCH
    force: HeelDetectorConfig = HEEL_FORCE


class DetectorConfig(ConfigModel):
    """The detector of a trial: which sensor, where, and the configurations."""

    sensor: Sensor = Field(
        "gyro", description="Which detector runs: the gyroscope, the heel sensor or both."
    )
    placement: Placement = Field(
        "shank", description="Where the gyroscope is worn (selects [detector.gyro.<placement>])."
    )
    heel_input: HeelInput = Field(
        "switch", description="What the heel sensor is (selects [detector.heel.<heel_input>])."
    )
    gyro: GyroPlacements = GyroPlacements()
    heel: HeelSensors = HeelSensors()
    fused: FusionConfig = FusionConfig()

    def gyro_config(self) -> GyroDetectorConfig:
        """The gyroscope configuration of the chosen placement."""
        return getattr(self.gyro, self.placement)  # type: ignore[no-any-return]

    def heel_config(self) -> HeelDetectorConfig:
        """The heel configuration of the chosen heel sensor."""
        return getattr(self.heel, self.heel_input)  # type: ignore[no-any-return]

    def reports_heel_off(self) -> bool:
        """Whether the chosen detector reports heel off: only a heel sensor sees it."""
        return self.sensor != "gyro"

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
