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

from controller.resources import available, load_toml, resolve
from controller.validation import ConfigError, ConfigModel, describe_errors

#: The key naming the profile a profile derives from.
BASE_KEY = "base"

StanceFraction = Annotated[float, Field(ge=0.0, le=1.0)]
AnkleDeg = Annotated[float, Field(ge=-40.0, le=30.0)]
ToeHeightMm = Annotated[float, Field(ge=0.0, le=200.0)]
ToeSlope = Annotated[float, Field(ge=-2000.0, le=2000.0)]


class PatientProfile(ConfigModel):
    """Gait, course, sensor, muscle, ankle and spasticity parameters of one patient."""

    description: str = Field(
        min_length=1,
        description="One line saying whom the profile represents and how it differs from its "
        "base; for the reader of the file (the simulator does not use it).",
    )

    # Gait timing at the profile's own walking speed.
    cadence_steps_per_min: float = Field(
        ge=40.0, le=140.0,
        description="Steps per minute at the profile's own walking speed; sets the mean stride "
        "time, two steps per stride (healthy 110; foot drop walks slower).",
    )
    walking_speed_m_s: float = Field(
        ge=0.1, le=2.0,
        description="Comfortable walking speed. A stride's speed over this one scales its shank "
        "gyroscope features and shortens or lengthens it (healthy 1.3 m/s).",
    )
    stride_time_cv: float = Field(
        ge=0.0, le=0.2,
        description="Coefficient of variation of stride time from stride to stride (healthy "
        "0.02, Hausdorff et al. 1995; higher in MS): the scatter a toe-off "
        "prediction must live with.",
    )
    swing_fraction: float = Field(
        ge=0.25, le=0.5,
        description="Share of each stride spent in swing (healthy 0.40, Perry 1992); the rest "
        "is stance.",
    )
    heel_off_stance_fraction: float = Field(
        ge=0.2, le=0.95,
        description="Point of stance at which the heel leaves the ground, as a heel switch sees "
        "it (healthy 0.60 of stance, about 36 % of the stride).",
    )

    # Walking course: bouts with standing between them, speed changes, turns.
    bout_mean_strides: float = Field(
        0.0, ge=0.0, le=1000.0,
        description="Mean number of strides of a walking bout between standing pauses, each "
        "drawn within +-50 % of it (0: one continuous walk without stops).",
    )
    standing_mean_s: float = Field(
        0.0, ge=0.0, le=600.0,
        description="Mean length of the quiet standing between two bouts, drawn within +-50 % "
        "of it (with bout_mean_strides above 0).",
    )
    stop_transition_ms: float = Field(
        200.0, ge=20.0, le=1000.0,
        description="Time over which stance slows down into standing and speeds up out of it (a "
        "raised-cosine speed profile), shortened where the stance leaves no room "
        "for it.",
    )
    standing_stance_fraction: float = Field(
        0.3, ge=0.15, le=0.6,
        description="Point of stance at which the walker stands still (foot flat, ankle near "
        "neutral, heel loaded); it must lie after foot flat and before heel off.",
    )
    bout_edge_speed_fraction: float = Field(
        1.0, ge=0.3, le=1.0,
        description="Speed of the stopping and the starting stride of a bout over the bout's "
        "own speed (gait initiation reaches steady speed within about two steps, "
        "Breniere and Do 1986).",
    )
    bout_speed_sd_m_s: float = Field(
        0.0, ge=0.0, le=0.5,
        description="Standard deviation of each bout's speed around walking_speed_m_s (0: every "
        "bout at the same speed).",
    )
    turn_interval_mean_strides: float = Field(
        0.0, ge=0.0, le=1000.0,
        description="Mean number of strides between two turns (0: no turns). A turn shows on a "
        "tilted gyroscope as an offset (gyro_mounting_tilt_deg).",
    )
    turn_angle_deg: float = Field(
        180.0, ge=10.0, le=360.0,
        description="Angle of each turn, left or right at random (180: the U-turn of a "
        "walk-and-return test).",
    )
    turn_strides: int = Field(
        2, ge=1, le=6,
        description="Strides a turn takes; the body's yaw rate is a raised-cosine bump over "
        "them.",
    )
    turn_speed_fraction: float = Field(
        1.0, ge=0.2, le=1.0,
        description="Speed factor of a turning stride, which scales its shank features (0.6: "
        "the swing peak in 180 deg turns over straight walking, python -m "
        "sim.turns).",
    )
    turn_inner_outer_difference_fraction: float = Field(
        0.0, ge=0.0, le=0.8,
        description="Difference between the outer and the inner leg's speed factor in a turn: "
        "each leg turns at turn_speed_fraction plus or minus half of it (0.5 spans "
        "the measured quartiles).",
    )
    turn_stride_time_factor: float = Field(
        1.0, ge=1.0, le=2.0,
        description="Duration of a turning stride over a straight one (1.06 measured in 180 deg "
        "turns, python -m sim.turns).",
    )

    # Shank gyroscope: template shape (fractions of the swing peak, stride and stance).
    gyro_swing_peak_rad_s: float = Field(
        ge=0.5, le=10.0,
        description="Shank angular velocity at mid-swing at the profile's walking speed, "
        "positive in the sense of the swing (healthy 5 rad/s at 1.3 m/s, Aminian et al. "
        "2002): the feature the gyroscope detector locks on.",
    )
    gyro_swing_peak_width_fraction: float = Field(
        ge=0.05, le=0.4,
        description="Width (standard deviation) of the swing peak as a fraction of the swing "
        "(healthy 0.31).",
    )
    gyro_heel_strike_dip_fraction: float = Field(
        ge=0.0, le=1.0,
        description="Depth of the negative minimum at heel strike as a fraction of the "
        "swing peak (healthy 0.55): the feature heel strike is detected on.",
    )
    gyro_heel_strike_dip_delay_fraction: float = Field(
        ge=0.0, le=0.05,
        description="Delay of the centre of that minimum after heel strike as a fraction of "
        "the stride (healthy 0: with its width the first minimum after the swing, where a "
        "shank detector dates heel strike, comes 38 ms after heel strike; on real shanks 45 "
        "ms after the heel's impact on a foot IMU, python -m controller.bench.shank).",
    )
    gyro_heel_strike_dip_width_fraction: float = Field(
        ge=0.005, le=0.08,
        description="Width (standard deviation) of the heel-strike minimum as a fraction of the "
        "stride (healthy 0.06).",
    )
    gyro_stance_onset_fraction: float = Field(
        0.16, ge=0.02, le=0.5,
        description="Share of stance over which the negative stance plateau builds up after "
        "heel strike (healthy 0.16). The plateau's depth is not a parameter: it returns the "
        "shank to its posture every stride.",
    )
    gyro_stance_taper_fraction: float = Field(
        0.31, ge=0.01, le=0.5,
        description="Share of stance before toe off over which the plateau hands over to the "
        "toe-off minimum (healthy 0.31).",
    )
    gyro_stance_deepening_fraction: float = Field(
        0.32, ge=0.0, le=0.9,
        description="How much the plateau deepens through stance: from 1 - this to 1 + this "
        "times its mean depth (healthy 0.32: the shank turns faster once the heel rises).",
    )
    gyro_toe_off_dip_fraction: float = Field(
        ge=0.0, le=1.0,
        description="Depth of the negative minimum at toe off as a fraction of the swing peak "
        "(healthy 0.7): the pre-swing feature on which stimulation starts by default.",
    )
    gyro_toe_off_dip_width_fraction: float = Field(
        ge=0.005, le=0.15,
        description="Width (standard deviation) of the toe-off minimum as a fraction of the "
        "stride (healthy 0.088).",
    )

    # Shank gyroscope: the sensor and its mounting.
    gyro_noise_rad_s: float = Field(
        ge=0.0, le=1.0,
        description="White noise from soft-tissue and cable artefact, the same at any sample "
        "rate (healthy profile 0.05 rad/s); added in quadrature to the sensor's own "
        "noise.",
    )
    gyro_noise_density_rad_s_per_sqrt_hz: float = Field(
        0.0, ge=0.0, le=0.01,
        description="The sensor's own noise density; its noise grows with the square root of "
        "the sample rate (consumer MEMS about 1.75e-4, i.e. 0.01 deg/s/sqrt(Hz)).",
    )
    gyro_bias_rad_s: float = Field(
        0.0, ge=-0.5, le=0.5,
        description="Turn-on bias of the gyroscope: an offset the detector must tolerate (0: "
        "ideal sensor).",
    )
    gyro_bias_drift_rad_s_per_sqrt_s: float = Field(
        0.0, ge=0.0, le=0.01,
        description="Bias random walk (rate random walk): how fast the offset wanders during a "
        "trial (0: none).",
    )
    gyro_scale_error_fraction: float = Field(
        0.0, ge=-0.2, le=0.2,
        description="Scale-factor error of the gyroscope: it reads (1 + this) times the true "
        "rate.",
    )
    gyro_range_rad_s: float = Field(
        34.9, ge=2.0, le=100.0,
        description="Full scale of the gyroscope; faster rotation reads as this and the "
        "detector treats it as saturated (34.9 rad/s: a 2000 deg/s sensor).",
    )
    gyro_mounting_tilt_deg: float = Field(
        0.0, ge=-45.0, le=45.0,
        description="Tilt of the sensitive axis from the medio-lateral axis towards the shank's "
        "long axis: a sensor mounted askew, which then sees the yaw of turns as an "
        "offset.",
    )
    sample_jitter_ms: float = Field(
        0.0, ge=0.0, le=5.0,
        description="Standard deviation of when each sample is really taken while it keeps its "
        "nominal time stamp (clipped at 3 SD): a sensor link that time-stamps on "
        "arrival.",
    )
    gyro_dropouts_per_min: float = Field(
        0.0, ge=0.0, le=60.0,
        description="Rate of dropouts in which the gyroscope reads NaN (a lost packet, a loose "
        "connector), as a Poisson process (0: none).",
    )
    gyro_dropout_ms: float = Field(
        50.0, ge=1.0, le=5000.0,
        description="Mean length of a dropout, exponentially distributed; one longer than the "
        "detector's unknown_after_missing_ms makes the phase unknown, which stops "
        "stimulation.",
    )

    # Heel foot switch and heel force sensor.
    body_mass_kg: float = Field(
        ge=30.0, le=200.0,
        description="Body mass: with heel_load_fraction_bw it sets the load under the heel, "
        "which a force sensor reads and the heel rocker turns about.",
    )
    heel_load_fraction_bw: float = Field(
        ge=0.1, le=1.5,
        description="Peak load under the heel in loading response, in body weights (healthy "
        "0.8, Perry 1992).",
    )
    heel_load_ramp_fraction: float = Field(
        ge=0.02, le=0.5,
        description="Fraction of heel contact over which the heel load ramps up, and down "
        "before heel off; it sets the loading rate (0.25: about 8 body weights per "
        "second at 1.3 m/s, Keller et al. 1996).",
    )
    heel_force_tail_n: float = Field(
        ge=0.0, le=500.0,
        description="Reading of an insole heel sensor at heel off, falling linearly to zero at "
        "heel_force_release_stance_fraction: real insoles read a little after heel "
        "rise (fitted on PhysioNet gaitpdb, python -m controller.bench.heelforce). A reading "
        "only, not a load.",
    )
    heel_force_release_stance_fraction: float = Field(
        ge=0.2, le=1.0,
        description="Point of stance at which the insole's heel reading reaches zero (0.82 on "
        "gaitpdb's controls, 0.81 with Parkinson's disease); it must lie after heel off.",
    )
    heel_switch_contact_delay_ms: float = Field(
        0.0, ge=0.0, le=100.0,
        description="Delay from heel strike to the heel switch closing (the foam and the "
        "threshold of a pressure switch; 0: ideal switch).",
    )
    heel_switch_release_delay_ms: float = Field(
        0.0, ge=0.0, le=200.0,
        description="Delay from heel off to the heel switch opening (0: ideal switch).",
    )
    heel_switch_bounce_ms: float = Field(
        0.0, ge=0.0, le=30.0,
        description="Time after each switch transition during which it chatters at random, "
        "contact bounce that the heel detector must debounce (0: none).",
    )
    heel_switch_dropouts_per_min: float = Field(
        0.0, ge=0.0, le=60.0,
        description="Rate of dropouts in which the heel switch reads NaN (a wireless insole's "
        "lost packets, a loose connector), as a Poisson process of its own (0: none); the "
        "heel force sensor keeps reading.",
    )
    heel_switch_dropout_ms: float = Field(
        50.0, ge=1.0, le=5000.0,
        description="Mean length of a heel switch dropout, exponentially distributed; with "
        "a detector that reads the switch (heel, fused) the watchdog counts a sample "
        "without its reading as invalid, so one longer than its sensor_timeout_ms stops "
        "the trial (the gyroscope detector walks on).",
    )
    heel_force_noise_n: float = Field(
        0.0, ge=0.0, le=100.0,
        description="Standard deviation of Gaussian noise on the heel force reading, which "
        "never goes below zero (0: noise-free).",
    )

    # Voluntary dorsiflexion: strength, how it is used, how it fades.
    ta_strength_fraction: float = Field(
        ge=0.0, le=1.0,
        description="Voluntary dorsiflexion strength as a fraction of a healthy adult's: the "
        "severity of the foot drop (1: healthy, 0: none left).",
    )
    healthy_dorsiflexion_torque_nm: float = Field(
        ge=10.0, le=80.0,
        description="Maximum voluntary dorsiflexion torque of a healthy adult (about 35 N m), "
        "which ta_strength_fraction scales.",
    )
    tracking_bandwidth_hz: float = Field(
        ge=1.0, le=10.0,
        description="Bandwidth of the patient's own control of the ankle in swing (about 5 Hz): "
        "how closely the voluntary torque follows the healthy trajectory.",
    )
    tracking_damping_ratio: float = Field(
        ge=0.3, le=2.0,
        description="Damping ratio of that voluntary control loop (1: critically damped; lower "
        "overshoots).",
    )
    voluntary_fatigue_min_fraction: float = Field(
        1.0, ge=0.0, le=1.0,
        description="Fitness the voluntary muscle tends to under sustained effort, central "
        "fatigue after Riener et al. 1996 (1: no fatigue). Lower makes a foot that "
        "clears at the start of a walk drop after some minutes.",
    )
    voluntary_fatigue_time_constant_s: float = Field(
        300.0, ge=10.0, le=7200.0,
        description="Time constant of central fatigue at full effort: how long a walk tires the "
        "voluntary muscle.",
    )
    voluntary_recovery_time_constant_s: float = Field(
        300.0, ge=10.0, le=7200.0,
        description="Time constant of recovery from central fatigue without effort (standing, "
        "or swings the stimulation lifts).",
    )
    core_temperature_c: float = Field(
        37.0, ge=35.0, le=40.0,
        description="Core body temperature at the start of the trial; above uhthoff_threshold_c "
        "a heat-sensitive walker is weaker.",
    )
    core_warming_c_per_min: float = Field(
        0.0, ge=0.0, le=0.2,
        description="Rise of core temperature while walking (exercise, a warm room); with a "
        "heat-sensitive profile it weakens the walker over a session (0: none).",
    )
    uhthoff_threshold_c: float = Field(
        37.0, ge=35.0, le=40.0,
        description="Core temperature above which voluntary strength falls (Uhthoff's "
        "phenomenon); the stimulated peripheral nerve is unaffected.",
    )
    uhthoff_strength_loss_per_c: float = Field(
        0.0, ge=0.0, le=2.0,
        description="Fraction of voluntary strength lost per degree above uhthoff_threshold_c "
        "(0: not heat sensitive). No dose-response is published: set it from a "
        "patient's own history.",
    )

    # Tibialis anterior under stimulation: recruitment, Ding force model, fatigue.
    fes_max_torque_nm: float = Field(
        ge=0.0, le=50.0,
        description="Dorsiflexion torque of the fully recruited, rested tibialis anterior at "
        "high frequency (healthy 15 N m, about 40 % of the voluntary maximum): how "
        "strongly stimulation can lift the foot.",
    )
    recruitment_threshold_uc: float = Field(
        ge=0.5, le=50.0,
        description="Charge per pulse (amplitude x pulse width) below which stimulation "
        "recruits no motor unit (healthy 6 uC: 20 mA at 300 us, Veltink et al. "
        "1992).",
    )
    recruitment_saturation_uc: float = Field(
        ge=1.0, le=100.0,
        description="Charge per pulse at which every motor unit is recruited, so more adds no "
        "force (healthy 18 uC: 60 mA at 300 us); it must exceed the threshold.",
    )
    electromechanical_delay_ms: float = Field(
        ge=0.0, le=150.0,
        description="Delay from a pulse to the start of its calcium drive (conduction, "
        "neuromuscular transmission; 10 ms): one reason stimulation must start "
        "before toe off.",
    )
    ding_tau_c_ms: float = Field(
        ge=5.0, le=100.0,
        description="Time constant of the calcium-troponin complex in the force model of Ding "
        "et al. 2003 (20 ms): how long each pulse drives the muscle, hence how well "
        "pulses fuse.",
    )
    ding_r0_km_offset_unitless: float = Field(
        ge=0.5, le=5.0,
        description="R0 minus Km in Ding's model (1.04): how much a pulse soon after another "
        "adds to the calcium drive.",
    )
    ding_a_rest_n_per_s: float = Field(
        ge=100.0, le=20000.0,
        description="Force scaling factor A of the rested muscle in Ding's model (3009 N/s); "
        "fatigue lowers it.",
    )
    ding_tau1_rest_ms: float = Field(
        ge=10.0, le=300.0,
        description="Force decay time constant tau1 of the rested muscle in Ding's model "
        "(50.957 ms); fatigue lengthens it, so force relaxes more slowly.",
    )
    ding_tau2_ms: float = Field(
        ge=10.0, le=300.0,
        description="Force decay time constant tau2 in Ding's model with cross-bridges bound "
        "(60 ms); with tau1 it sets how fast force relaxes between pulses.",
    )
    ding_km_rest_unitless: float = Field(
        ge=0.01, le=2.0,
        description="Sensitivity Km of strongly bound cross-bridges to the calcium-troponin "
        "complex, rested muscle, in Ding's model (0.103); fatigue raises it.",
    )
    ding_tau_fat_s: float = Field(
        ge=10.0, le=3600.0,
        description="Time constant with which A, Km and tau1 recover towards rest (127 s, Ding "
        "et al. 2003): how fast the stimulated muscle recovers between trains.",
    )
    ding_alpha_a_per_s2: float = Field(
        ge=-5.0, le=0.0,
        description="Rate at which force lowers A during stimulation (Ding's alpha_A; the "
        "shipped profiles scale it by 84/787 for nerve stimulation). More negative: "
        "faster stimulated fatigue.",
    )
    ding_alpha_km_per_n_s: float = Field(
        ge=0.0, le=1e-3,
        description="Rate at which force raises Km during stimulation (Ding's alpha_Km, scaled "
        "as alpha_A in the shipped profiles).",
    )
    ding_alpha_tau1_per_n: float = Field(
        ge=0.0, le=1e-3,
        description="Rate at which force lengthens tau1 during stimulation (Ding's alpha_tau1, "
        "scaled as alpha_A in the shipped profiles).",
    )

    # Foot and ankle mechanics.
    foot_inertia_kg_m2: float = Field(
        ge=0.002, le=0.05,
        description="Moment of inertia of the foot with a shoe about the ankle (0.010 kg m2, "
        "Winter 1990 anthropometry).",
    )
    foot_mass_kg: float = Field(
        ge=0.3, le=3.0,
        description="Mass of the foot with a shoe: with foot_com_distance_m it sets the "
        "plantarflexing torque of gravity in swing.",
    )
    foot_com_distance_m: float = Field(
        ge=0.02, le=0.15,
        description="Distance of the foot's centre of mass in front of the ankle (6 cm).",
    )
    passive_stiffness_nm_per_rad: float = Field(
        ge=0.0, le=200.0,
        description="Passive ankle stiffness in mid-range about passive_rest_angle_deg (8 N "
        "m/rad with the knee flexed, after Riener and Edrich 1999); a stiff calf "
        "raises it, and stimulation must overcome it.",
    )
    passive_damping_nm_s_per_rad: float = Field(
        ge=0.0, le=5.0,
        description="Passive damping of the ankle (0.3 N m s/rad, after Riener and Edrich "
        "1999).",
    )
    passive_rest_angle_deg: float = Field(
        ge=-40.0, le=10.0,
        description="Ankle angle at which the passive moment is zero (-10 deg: slightly "
        "plantarflexed, knee flexed as in swing).",
    )
    dorsiflexion_limit_deg: float = Field(
        ge=0.0, le=40.0,
        description="End of the dorsiflexion range, beyond which the exponential end-range "
        "moment stops the foot (healthy 20 deg): stimulation cannot lift it far "
        "past.",
    )
    plantarflexion_limit_deg: float = Field(
        ge=-70.0, le=-10.0,
        description="End of the plantarflexion range, beyond which the end-range moment stops "
        "the foot (healthy -40 deg).",
    )
    end_range_stiffness_nm_per_rad: float = Field(
        ge=1.0, le=500.0,
        description="Slope of the exponential end-range moment at either limit of the range of "
        "motion (40 N m/rad).",
    )
    end_range_width_deg: float = Field(
        ge=1.0, le=20.0,
        description="Angle over which the end-range moment grows e-fold beyond a limit (5 deg): "
        "how sharply the range of motion ends.",
    )
    toe_off_ankle_angle_deg: float = Field(
        ge=-35.0, le=5.0,
        description="Ankle angle at toe off, plantarflexed by push-off (healthy -15 deg): where "
        "each swing starts.",
    )
    ta_max_shortening_velocity_rad_s: float = Field(
        ge=3.0, le=50.0,
        description="Dorsiflexion speed at which the tibialis anterior's force falls to zero on "
        "Hill's curve (15 rad/s at the joint, Maganaris 2001 geometry).",
    )
    ta_hill_curvature_fraction: float = Field(
        ge=0.1, le=1.0,
        description="Curvature a/F0 of Hill's force-velocity relation in shortening (0.25, Hill "
        "1938).",
    )
    ta_eccentric_max_fraction: float = Field(
        ge=1.0, le=2.5,
        description="Force of the muscle lengthening fast over its isometric force (1.8, Katz "
        "1939): what lets a weakly active muscle brake the forefoot after heel "
        "strike.",
    )
    swing_lift_fraction: float = Field(
        ge=0.2, le=0.9,
        description="Point of swing by which the healthy trajectory returns from the toe-off "
        "angle to neutral (0.5: by mid-swing): the target of the voluntary control.",
    )
    stance_knots_fraction: list[StanceFraction] = Field(
        min_length=3, max_length=3,
        description="Stance fractions of the knots of the healthy stance template: heel strike "
        "(0), foot flat and peak dorsiflexion in late stance (healthy 0, 0.12, "
        "0.75).",
    )
    stance_knots_deg: list[AnkleDeg] = Field(
        min_length=3, max_length=3,
        description="Ankle angles at those knots (healthy 0, -5, 10 deg; Winter 1991, Perry "
        "1992).",
    )

    # Loading response: heel rocker, foot slap, landing.
    heel_strike_foot_angle_deg: float = Field(
        ge=5.0, le=40.0,
        description="Angle between the healthy foot and the floor at heel strike, toe up (20 "
        "deg, Perry 1992).",
    )
    heel_behind_ankle_m: float = Field(
        ge=0.01, le=0.1,
        description="Distance of the heel's contact point behind the ankle (3.5 cm with a "
        "shoe): with heel_below_ankle_m, the heel rocker's lever.",
    )
    heel_below_ankle_m: float = Field(
        ge=0.03, le=0.15,
        description="Distance of the heel's contact point below the ankle (8 cm with a shoe).",
    )
    foot_slap_velocity_rad_s: float = Field(
        ge=1.0, le=30.0,
        description="Forefoot speed onto the floor above which a landing before the healthy "
        "foot-flat time counts as a foot slap (10 rad/s; healthy feet lower at up "
        "to 6-7 rad/s).",
    )
    landing_time_constant_ms: float = Field(
        ge=5.0, le=200.0,
        description="Time constant with which a foot that lands flat or forefoot first is "
        "brought onto the stance template (30 ms).",
    )

    # Plantarflexor spasticity: delayed velocity-dependent stretch reflex.
    spastic_reflex_gain_nm_s_per_rad: float = Field(
        0.0, ge=0.0, le=50.0,
        description="Gain of the plantarflexor stretch reflex on dorsiflexion speed above the "
        "threshold (0: no spasticity); a high gain with the reflex delay gives "
        "ankle clonus at 4-8 Hz.",
    )
    spastic_velocity_threshold_rad_s: float = Field(
        1.0, ge=0.0, le=10.0,
        description="Dorsiflexion speed above which the calf's stretch reflex responds "
        "(velocity dependent, Lance 1980).",
    )
    spastic_reflex_delay_ms: float = Field(
        40.0, ge=10.0, le=100.0,
        description="Latency of the stretch reflex (30-50 ms in the literature): with a high "
        "gain, the delay makes the loop oscillate.",
    )
    spastic_reflex_time_constant_ms: float = Field(
        30.0, ge=5.0, le=200.0,
        description="Time constant of the rise and fall of the reflex contraction.",
    )
    spastic_reflex_max_torque_nm: float = Field(
        20.0, ge=0.0, le=100.0,
        description="Largest plantarflexing torque the stretch reflex can produce.",
    )

    # Toe clearance.
    toe_lever_m: float = Field(
        ge=0.08, le=0.3,
        description="Distance from the ankle to the toe (18 cm): how far the toe drops when the "
        "ankle lags the healthy angle.",
    )
    hip_compensation_mm: float = Field(
        ge=0.0, le=60.0,
        description="Extra lift of the limb in mid-swing from hip hiking or circumduction, "
        "added to the toe clearance (healthy 0): how a walker compensates a dropped "
        "foot.",
    )
    toe_clearance_sd_mm: float = Field(
        ge=0.0, le=20.0,
        description="Stride-to-stride scatter (standard deviation) of toe clearance (healthy 4 "
        "mm, Begg et al. 2007).",
    )
    toe_knots_fraction: list[StanceFraction] = Field(
        min_length=5, max_length=5,
        description="Swing fractions of the knots of the healthy toe height, from toe off (0) "
        "to heel strike (1).",
    )
    toe_knots_mm: list[ToeHeightMm] = Field(
        min_length=5, max_length=5,
        description="Healthy toe height at those knots (healthy 0, 50, 13 at mid-swing: the "
        "minimum toe clearance of Winter 1992, 100 and 75 mm).",
    )
    toe_knot_slopes_mm_per_swing: list[ToeSlope] = Field(
        min_length=5, max_length=5,
        description="Slope of the healthy toe height at each knot, in mm per whole swing.",
    )

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
        problems = _describe(err)
        if any(e["type"] == "missing" for e in err.errors()):
            problems.append(
                f"{BASE_KEY}: a profile may start from a shipped one and list only what "
                f'differs: {BASE_KEY} = "moderate" ({", ".join(available("patients"))}; '
                "docs/simulator.md)"
            )
        raise ConfigError(str(path), problems) from None


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
