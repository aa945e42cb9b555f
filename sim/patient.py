"""Patient profiles: every number the simulated limb uses, validated.

A profile is one TOML file in ``configs/patients/``. Each field carries its unit in its
name and a range that a gait researcher would accept as physiological; anything outside
is refused with a message naming the field (``ConfigError``), never silently clipped.
This model is the single place where the simulator's parameters are declared: the
kernels in ``sim/`` hold no physiological constants of their own.

A profile may start with ``base = "<name or path>"``: it then inherits every field of
that profile and lists only what differs (a relative path is taken from the folder of
the file that names it). ``healthy.toml`` lists every field with its source; the other
shipped profiles derive from it. Fields of effects a healthy walker does not have
(sensor faults, spasticity, central fatigue, heat sensitivity, stops and turns) default
to "no such effect", so a profile written for an older version still loads.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, model_validator

from controller.resources import load_toml, resolve
from controller.validation import ConfigError, ConfigModel, describe_errors

#: The key naming the profile a profile derives from.
BASE_KEY = "base"

StanceFraction = Annotated[float, Field(ge=0.0, le=1.0)]
AnkleDeg = Annotated[float, Field(ge=-40.0, le=30.0)]
ToeHeightMm = Annotated[float, Field(ge=0.0, le=200.0)]
ToeSlope = Annotated[float, Field(ge=-2000.0, le=2000.0)]


class PatientProfile(ConfigModel):
    """Gait, course, sensor, muscle, ankle and spasticity parameters of one patient."""

    description: str = Field(min_length=1)

    # Gait timing at the profile's own walking speed.
    cadence_steps_per_min: float = Field(ge=40.0, le=140.0)
    walking_speed_m_s: float = Field(ge=0.1, le=2.0)
    stride_time_cv: float = Field(ge=0.0, le=0.2)
    swing_fraction: float = Field(ge=0.25, le=0.5)
    heel_off_stance_fraction: float = Field(ge=0.2, le=0.95)

    # Walking course: bouts with standing between them, speed changes, turns.
    bout_mean_strides: float = Field(0.0, ge=0.0, le=1000.0)  # 0: one continuous walk
    standing_mean_s: float = Field(0.0, ge=0.0, le=600.0)
    stop_transition_ms: float = Field(200.0, ge=20.0, le=1000.0)
    standing_stance_fraction: float = Field(0.3, ge=0.15, le=0.6)
    bout_edge_speed_fraction: float = Field(1.0, ge=0.3, le=1.0)
    bout_speed_sd_m_s: float = Field(0.0, ge=0.0, le=0.5)
    turn_interval_mean_strides: float = Field(0.0, ge=0.0, le=1000.0)  # 0: no turns
    turn_angle_deg: float = Field(180.0, ge=10.0, le=360.0)
    turn_strides: int = Field(2, ge=1, le=6)
    turn_speed_fraction: float = Field(1.0, ge=0.2, le=1.0)
    turn_inner_outer_difference_fraction: float = Field(0.0, ge=0.0, le=0.8)
    turn_stride_time_factor: float = Field(1.0, ge=1.0, le=2.0)

    # Shank gyroscope: template shape (fractions of the swing peak and of the stride).
    gyro_swing_peak_rad_s: float = Field(ge=0.5, le=10.0)
    gyro_swing_peak_width_fraction: float = Field(ge=0.05, le=0.4)
    gyro_heel_strike_dip_fraction: float = Field(ge=0.0, le=1.0)
    gyro_heel_strike_dip_delay_fraction: float = Field(ge=0.0, le=0.05)
    gyro_heel_strike_dip_width_fraction: float = Field(ge=0.005, le=0.08)
    gyro_stance_fraction: float = Field(ge=0.0, le=0.5)
    gyro_toe_off_dip_fraction: float = Field(ge=0.0, le=1.0)
    gyro_toe_off_dip_width_fraction: float = Field(ge=0.005, le=0.08)

    # Shank gyroscope: the sensor and its mounting.
    gyro_noise_rad_s: float = Field(ge=0.0, le=1.0)
    gyro_noise_density_rad_s_per_sqrt_hz: float = Field(0.0, ge=0.0, le=0.01)
    gyro_bias_rad_s: float = Field(0.0, ge=-0.5, le=0.5)
    gyro_bias_drift_rad_s_per_sqrt_s: float = Field(0.0, ge=0.0, le=0.01)
    gyro_scale_error_fraction: float = Field(0.0, ge=-0.2, le=0.2)
    gyro_range_rad_s: float = Field(34.9, ge=2.0, le=100.0)
    gyro_mounting_tilt_deg: float = Field(0.0, ge=-45.0, le=45.0)
    sample_jitter_ms: float = Field(0.0, ge=0.0, le=5.0)
    gyro_dropouts_per_min: float = Field(0.0, ge=0.0, le=60.0)
    gyro_dropout_ms: float = Field(50.0, ge=1.0, le=5000.0)

    # Heel foot switch and heel force sensor.
    body_mass_kg: float = Field(ge=30.0, le=200.0)
    heel_load_fraction_bw: float = Field(ge=0.1, le=1.5)
    heel_load_ramp_fraction: float = Field(ge=0.02, le=0.5)
    heel_force_tail_n: float = Field(ge=0.0, le=500.0)
    heel_force_release_stance_fraction: float = Field(ge=0.2, le=1.0)
    heel_switch_contact_delay_ms: float = Field(0.0, ge=0.0, le=100.0)
    heel_switch_release_delay_ms: float = Field(0.0, ge=0.0, le=200.0)
    heel_switch_bounce_ms: float = Field(0.0, ge=0.0, le=30.0)
    heel_force_noise_n: float = Field(0.0, ge=0.0, le=100.0)

    # Voluntary dorsiflexion: strength, how it is used, how it fades.
    ta_strength_fraction: float = Field(ge=0.0, le=1.0)
    healthy_dorsiflexion_torque_nm: float = Field(ge=10.0, le=80.0)
    tracking_bandwidth_hz: float = Field(ge=1.0, le=10.0)
    tracking_damping_ratio: float = Field(ge=0.3, le=2.0)
    voluntary_fatigue_min_fraction: float = Field(1.0, ge=0.0, le=1.0)  # 1: no fatigue
    voluntary_fatigue_time_constant_s: float = Field(300.0, ge=10.0, le=7200.0)
    voluntary_recovery_time_constant_s: float = Field(300.0, ge=10.0, le=7200.0)
    core_temperature_c: float = Field(37.0, ge=35.0, le=40.0)
    core_warming_c_per_min: float = Field(0.0, ge=0.0, le=0.2)
    uhthoff_threshold_c: float = Field(37.0, ge=35.0, le=40.0)
    uhthoff_strength_loss_per_c: float = Field(0.0, ge=0.0, le=2.0)  # 0: not heat sensitive

    # Tibialis anterior under stimulation: recruitment, Ding force model, fatigue.
    fes_max_torque_nm: float = Field(ge=0.0, le=50.0)
    recruitment_threshold_uc: float = Field(ge=0.5, le=50.0)
    recruitment_saturation_uc: float = Field(ge=1.0, le=100.0)
    electromechanical_delay_ms: float = Field(ge=0.0, le=150.0)
    ding_tau_c_ms: float = Field(ge=5.0, le=100.0)
    ding_r0_km_offset_unitless: float = Field(ge=0.5, le=5.0)
    ding_a_rest_n_per_s: float = Field(ge=100.0, le=20000.0)
    ding_tau1_rest_ms: float = Field(ge=10.0, le=300.0)
    ding_tau2_ms: float = Field(ge=10.0, le=300.0)
    ding_km_rest_unitless: float = Field(ge=0.01, le=2.0)
    ding_tau_fat_s: float = Field(ge=10.0, le=3600.0)
    ding_alpha_a_per_s2: float = Field(ge=-5.0, le=0.0)
    ding_alpha_km_per_n_s: float = Field(ge=0.0, le=1e-3)
    ding_alpha_tau1_per_n: float = Field(ge=0.0, le=1e-3)

    # Foot and ankle mechanics.
    foot_inertia_kg_m2: float = Field(ge=0.002, le=0.05)
    foot_mass_kg: float = Field(ge=0.3, le=3.0)
    foot_com_distance_m: float = Field(ge=0.02, le=0.15)
    passive_stiffness_nm_per_rad: float = Field(ge=0.0, le=200.0)
    passive_damping_nm_s_per_rad: float = Field(ge=0.0, le=5.0)
    passive_rest_angle_deg: float = Field(ge=-40.0, le=10.0)
    dorsiflexion_limit_deg: float = Field(ge=0.0, le=40.0)
    plantarflexion_limit_deg: float = Field(ge=-70.0, le=-10.0)
    end_range_stiffness_nm_per_rad: float = Field(ge=1.0, le=500.0)
    end_range_width_deg: float = Field(ge=1.0, le=20.0)
    toe_off_ankle_angle_deg: float = Field(ge=-35.0, le=5.0)
    ta_max_shortening_velocity_rad_s: float = Field(ge=3.0, le=50.0)
    ta_hill_curvature_fraction: float = Field(ge=0.1, le=1.0)
    ta_eccentric_max_fraction: float = Field(ge=1.0, le=2.5)
    swing_lift_fraction: float = Field(ge=0.2, le=0.9)
    stance_knots_fraction: list[StanceFraction] = Field(min_length=3, max_length=3)
    stance_knots_deg: list[AnkleDeg] = Field(min_length=3, max_length=3)

    # Loading response: heel rocker, foot slap, landing.
    heel_strike_foot_angle_deg: float = Field(ge=5.0, le=40.0)
    heel_behind_ankle_m: float = Field(ge=0.01, le=0.1)
    heel_below_ankle_m: float = Field(ge=0.03, le=0.15)
    foot_slap_velocity_rad_s: float = Field(ge=1.0, le=30.0)
    landing_time_constant_ms: float = Field(ge=5.0, le=200.0)

    # Plantarflexor spasticity: delayed velocity-dependent stretch reflex.
    spastic_reflex_gain_nm_s_per_rad: float = Field(0.0, ge=0.0, le=50.0)  # 0: none
    spastic_velocity_threshold_rad_s: float = Field(1.0, ge=0.0, le=10.0)
    spastic_reflex_delay_ms: float = Field(40.0, ge=10.0, le=100.0)
    spastic_reflex_time_constant_ms: float = Field(30.0, ge=5.0, le=200.0)
    spastic_reflex_max_torque_nm: float = Field(20.0, ge=0.0, le=100.0)

    # Toe clearance.
    toe_lever_m: float = Field(ge=0.08, le=0.3)
    hip_compensation_mm: float = Field(ge=0.0, le=60.0)
    toe_clearance_sd_mm: float = Field(ge=0.0, le=20.0)
    toe_knots_fraction: list[StanceFraction] = Field(min_length=5, max_length=5)
    toe_knots_mm: list[ToeHeightMm] = Field(min_length=5, max_length=5)
    toe_knot_slopes_mm_per_swing: list[ToeSlope] = Field(min_length=5, max_length=5)

    @model_validator(mode="after")
    def _consistent(self) -> PatientProfile:
        """Cross-field rules: orderings that a physical model needs."""
        problems = []
        if self.recruitment_saturation_uc <= self.recruitment_threshold_uc:
            problems.append(
                "recruitment_saturation_uc: must be greater than recruitment_threshold_uc "
                f"({self.recruitment_threshold_uc})"
            )
        for name in ("stance_knots_fraction", "toe_knots_fraction"):
            knots = getattr(self, name)
            if knots[0] != 0.0 or any(b <= a for a, b in itertools.pairwise(knots)):
                problems.append(f"{name}: must start at 0.0 and increase strictly")
        if self.toe_knots_fraction[-1] != 1.0:
            problems.append("toe_knots_fraction: must end at 1.0 (heel strike)")
        if self.stance_knots_fraction[-1] >= 1.0:
            problems.append("stance_knots_fraction: the last knot must lie before toe off")
        if not self.standing_stance_fraction < self.heel_off_stance_fraction:
            problems.append(
                "standing_stance_fraction: must lie before heel off "
                f"(heel_off_stance_fraction = {self.heel_off_stance_fraction})"
            )
        if not self.heel_off_stance_fraction < self.heel_force_release_stance_fraction:
            problems.append(
                "heel_force_release_stance_fraction: must lie after heel off "
                f"(heel_off_stance_fraction = {self.heel_off_stance_fraction})"
            )
        if not self.stance_knots_fraction[1] < self.standing_stance_fraction:
            problems.append(
                "standing_stance_fraction: must lie after the foot-flat knot "
                f"(stance_knots_fraction[1] = {self.stance_knots_fraction[1]})"
            )
        angles = (self.toe_off_ankle_angle_deg, *self.stance_knots_deg)
        if not all(self.plantarflexion_limit_deg < a < self.dorsiflexion_limit_deg for a in angles):
            problems.append(
                "stance_knots_deg, toe_off_ankle_angle_deg: must lie inside "
                "plantarflexion_limit_deg .. dorsiflexion_limit_deg"
            )
        if self.stance_knots_deg[1] >= self.stance_knots_deg[0]:
            problems.append(
                "stance_knots_deg: the foot-flat angle (second knot) must lie below the "
                "heel-strike angle (first knot)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _profile_data(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The fields of the profile at ``path`` with those of its base filled in."""
    data = load_toml(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(str(path), [f"{BASE_KEY}: must be a profile name or path"])
    if "/" in base or base.endswith(".toml"):
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise ConfigError(str(path), [f"{BASE_KEY}: file not found: {base}"])
    else:
        base_path = resolve("patients", base).resolve()
    if base_path in seen:
        chain = " -> ".join(p.stem for p in (*seen, base_path))
        raise ConfigError(str(path), [f"{BASE_KEY}: profiles derive from each other ({chain})"])
    return _profile_data(base_path, (*seen, base_path)) | data


def load_patient(name_or_path: str) -> PatientProfile:
    """The profile shipped as ``configs/patients/<name>.toml``, or read from a path."""
    path = resolve("patients", name_or_path)
    data = _profile_data(path, (path.resolve(),))
    try:
        return PatientProfile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(str(path), _describe(err)) from None


def _describe(err: ValidationError) -> list[str]:
    """Field errors as ``describe_errors`` words them; cross-field rules one per line."""
    problems = []
    for line in describe_errors(err, PatientProfile):
        if line.startswith("(top level)"):
            message = line.split(": ", 1)[1].removeprefix("value error, ")
            problems += [p.strip() for p in message.rsplit(" (got ", 1)[0].split("; ")]
        else:
            problems.append(line)
    return problems
