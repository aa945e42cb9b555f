"""Patient profiles: every physiological number the simulated limb uses, validated.

A profile is one TOML file in ``configs/patients/``. Each field carries its unit in its
name and a range that a gait researcher would accept as physiological; anything outside
is refused with a message naming the field (``ConfigError``), never silently clipped.
The model is the single place where the simulator's parameters are declared, so a later
profile kind (spasticity, fatigue, heat sensitivity) adds fields here, with defaults that
mean "no such effect", without touching the shipped profiles.
"""

from __future__ import annotations

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from controller.resources import load_toml, resolve
from controller.validation import ConfigError, ConfigModel, describe_errors


class PatientProfile(ConfigModel):
    """Gait timing, sensor, muscle and ankle parameters of one simulated patient."""

    description: str = Field(min_length=1)

    # Gait timing.
    cadence_steps_per_min: float = Field(ge=40.0, le=140.0)
    stride_time_cv: float = Field(ge=0.0, le=0.2)
    swing_fraction: float = Field(ge=0.25, le=0.5)
    heel_off_stance_fraction: float = Field(ge=0.2, le=0.95)

    # Sensors.
    gyro_swing_peak_rad_s: float = Field(ge=0.5, le=10.0)
    gyro_noise_rad_s: float = Field(ge=0.0, le=1.0)
    body_mass_kg: float = Field(ge=30.0, le=200.0)
    heel_load_fraction_bw: float = Field(ge=0.1, le=1.5)

    # Voluntary dorsiflexion.
    ta_strength_fraction: float = Field(ge=0.0, le=1.0)
    healthy_dorsiflexion_torque_nm: float = Field(ge=10.0, le=80.0)

    # Tibialis anterior under stimulation.
    fes_max_torque_nm: float = Field(ge=0.0, le=50.0)
    recruitment_threshold_uc: float = Field(ge=0.5, le=50.0)
    recruitment_saturation_uc: float = Field(ge=1.0, le=100.0)
    fusion_half_frequency_hz: float = Field(ge=5.0, le=30.0)
    activation_time_constant_ms: float = Field(ge=5.0, le=300.0)
    deactivation_time_constant_ms: float = Field(ge=5.0, le=500.0)
    electromechanical_delay_ms: float = Field(ge=0.0, le=150.0)

    # Foot and ankle mechanics.
    foot_inertia_kg_m2: float = Field(ge=0.002, le=0.05)
    foot_mass_kg: float = Field(ge=0.3, le=3.0)
    foot_com_distance_m: float = Field(ge=0.02, le=0.15)
    passive_stiffness_nm_per_rad: float = Field(ge=0.0, le=200.0)
    passive_damping_nm_s_per_rad: float = Field(ge=0.0, le=5.0)
    passive_rest_angle_deg: float = Field(ge=-40.0, le=10.0)
    toe_off_ankle_angle_deg: float = Field(ge=-35.0, le=5.0)

    # Toe clearance.
    toe_lever_m: float = Field(ge=0.08, le=0.3)
    hip_compensation_mm: float = Field(ge=0.0, le=60.0)
    toe_clearance_sd_mm: float = Field(ge=0.0, le=20.0)

    @field_validator("recruitment_saturation_uc")
    @classmethod
    def _saturation_above_threshold(cls, value: float, info: ValidationInfo) -> float:
        """A recruitment curve needs saturation strictly above threshold."""
        threshold = info.data.get("recruitment_threshold_uc")
        if threshold is not None and value <= threshold:
            raise ValueError(
                f"must be greater than recruitment_threshold_uc ({threshold})"
            )
        return value


def load_patient(name_or_path: str) -> PatientProfile:
    """The profile shipped as ``configs/patients/<name>.toml``, or read from a path."""
    path = resolve("patients", name_or_path)
    data = load_toml(path)
    try:
        return PatientProfile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(str(path), describe_errors(err, PatientProfile)) from None
