"""Published values the simulated patient is checked against (``python -m sim.validate``).

Each reference names the quantity, the simulated condition it is compared in, the
published value, the range taken as agreement, and its source with author and year.
How much of the source was read is said in ``source``: "abstract" or "table" when that
part of the original was read for this table, "secondary" when only a page quoting it
was, "textbook" for textbook values quoted from the book without the page at hand,
"not checked here" for a source named from memory, "measured" for numbers measured
here on recordings. Where the published text
gives a mean without a spread, the range is stated as an assumption in ``published``.

``limit`` is empty when the simulator is expected to agree. Otherwise it says why the
simulator cannot agree and what that means for someone tuning stimulation on it; the
validation test then expects that row to stay outside its range (and fails if it comes
into range, so that the docs are updated).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One published quantity and the simulated condition it is compared in."""

    quantity: str
    unit: str
    condition: str
    measure: str  # name of the measurement in sim.validate
    published: str  # the value as published (and how the range was taken)
    low: float
    high: float
    source: str
    profile: str = "healthy"
    stimulated: bool = False
    change: bool = False  # the stimulated value minus the unstimulated one
    limit: str = ""  # why the simulator cannot agree, and what it means for a user

    @property
    def expected_in_range(self) -> bool:
        return not self.limit


_HEALTHY = "healthy, no stimulation"
_DEFAULT_FES = "35 mA, 300 us, 40 Hz from 125 ms before toe off to 100 ms after heel strike"
_MARPINO_IC = (
    "measured: Marpino walking dataset (GitHub Marpino/Walking-dataset, recorded 2018; no "
    "licence: evaluation only), 18 young adults, 58 steady strides, initial contact at the "
    "heel's impact on the foot IMU (python -m controller.bench.shank)")

REFERENCES: tuple[Reference, ...] = (
    # --- Healthy gait ----------------------------------------------------------------
    Reference(
        "stride time", "s", _HEALTHY, "stride_time_s",
        "1.06 (cadence 113 steps/min; men 111, women 117); range +-8 %, about one SD of "
        "cadence (assumption)", 0.98, 1.15,
        "Perry 1992, Gait Analysis: Normal and Pathological Function (textbook)"),
    Reference(
        "stance fraction of the stride", "1", _HEALTHY, "stance_fraction",
        "0.60; 0.597 at 1.3 m/s from Kirtley et al. 1985's regression, 0.618 +- 0.025 "
        "under 45 years", 0.58, 0.64,
        "Perry 1992 (textbook); Kirtley, Whittle and Jefferson 1985, J Biomed Eng 7:282 "
        "(secondary: clinicalgaitanalysis.com)"),
    Reference(
        "ankle angle at toe off", "deg", _HEALTHY, "ankle_at_toe_off_deg",
        "-15 (plantarflexion) by the end of pre-swing", -20.0, -10.0,
        "Perry 1992; Winter 1991, The Biomechanics and Motor Control of Human Gait "
        "(textbooks)"),
    Reference(
        "peak dorsiflexion in late stance", "deg", _HEALTHY, "stance_peak_dorsiflexion_deg",
        "10 at the end of terminal stance", 5.0, 15.0,
        "Perry 1992; Winter 1991 (textbooks)"),
    Reference(
        "ankle angle at initial contact", "deg", _HEALTHY, "ankle_at_heel_strike_deg",
        "0 (neutral)", -5.0, 5.0,
        "Perry 1992 (textbook)"),
    Reference(
        "minimum toe clearance in mid-swing", "mm", _HEALTHY, "minimum_toe_clearance_mm",
        "12.9, variability about 4 mm (range: +-1 SD)", 8.9, 16.9,
        "Winter 1992, Phys Ther 72:45 (abstract)"),
    Reference(
        "shank angular velocity, stance median (swing positive)", "rad/s", _HEALTHY,
        "shank_stance_median_rad_s",
        "-1.15 (quartiles -1.33 to -0.99); negative as in Aminian et al. 2002 Fig. 2",
        -1.33, -0.99,
        "measured: Marpino walking dataset (GitHub Marpino/Walking-dataset, recorded 2018), "
        "19 young adults, 138 strides (no licence: evaluation only); Aminian et al. 2002, "
        "J Biomech 35:689 (abstract and Fig. 2)"),
    Reference(
        "shank minimum at heel strike (50 ms average)", "rad/s", _HEALTHY,
        "shank_heel_strike_minimum_rad_s",
        "-2.11 (quartiles -2.38 to -1.66)", -2.38, -1.66,
        "measured: Marpino walking dataset 2018 (as above); minima at both events: "
        "Catalfamo et al. 2010, Sensors 10:5683 (abstract)"),
    Reference(
        "shank turns through zero from swing to stance, after heel strike", "ms", _HEALTHY,
        "shank_zero_crossing_ms",
        "+5 (quartiles -22 to +15) after the heel's impact; heel strike is detected at this "
        "zero crossing of the shank gyroscope (healthy children; stroke)", -22.0, 15.0,
        _MARPINO_IC + "; Behboodi et al. 2019, Phys Ther 99:739 (figure caption); Monaghan "
        "et al. 2009, Med Biol Eng Comput (abstract; volume not checked here)",
        limit="The template's heel-strike minimum is wide (SD 6 % of the stride) and centred "
        "on heel strike, so the shank crosses zero 44 ms before contact, while the minimum "
        "the shank detector dates heel strike at comes where real shanks have it (next "
        "row). A narrower, later dip that crosses zero at contact needs a stance plateau a "
        "quarter deeper than real shanks' and turns the flat foot (or, balanced at toe off, "
        "makes the detector's toe off 12 ms late): configs/patients/healthy.toml. A "
        "detector that dates heel strike at this zero crossing (Behboodi, Monaghan) would "
        "find it about 45 ms early on the simulator; the shipped detector does not use it."),
    Reference(
        "shank heel-strike minimum after heel strike (the shank detector's rule: first "
        "minimum after the swing peak, 30 ms average, confirmed by a 0.25 rad/s rise)", "ms",
        _HEALTHY, "shank_heel_strike_delay_ms",
        "+45 (quartiles +25 to +62) after the heel's impact; the insole's pressure sensors "
        "(20 % of range) see contact 65 ms (55-75) after the impact, so against them the "
        "minimum seems to come 20 ms early; gyroscope heel strikes 10 ms after footswitches "
        "(Aminian 2002) and within -25 ms of pressure insoles (Catalfamo 2010) carry such a "
        "reference's lag", 25.0, 62.0,
        _MARPINO_IC + "; Aminian et al. 2002 (abstract); Catalfamo et al. 2010 (abstract)"),
    Reference(
        "shank minimum at toe off (50 ms average)", "rad/s", _HEALTHY,
        "shank_toe_off_minimum_rad_s",
        "-2.97 (quartiles -3.43 to -2.60)", -3.43, -2.60,
        "measured: Marpino walking dataset 2018 (as above)"),
    Reference(
        "shank swing peak", "rad/s", _HEALTHY, "shank_swing_peak_rad_s",
        "4-6 (about 300 deg/s in Fig. 2); 5.4 (quartiles 4.6-5.9) measured", 4.0, 6.0,
        "Aminian et al. 2002 (Fig. 2); Catalfamo et al. 2010; measured: Marpino walking "
        "dataset 2018"),
    Reference(
        "foot angular velocity, flat-foot stance (30-60 % of stance)", "rad/s", _HEALTHY,
        "foot_flat_median_rad_s",
        "-0.03 (quartiles -0.06 to -0.01): the flat foot does not turn", -0.1, 0.1,
        "measured: Marpino walking dataset 2018, foot IMUs (as above)"),
    Reference(
        "forefoot lowering after heel strike, peak toe-down velocity", "rad/s", _HEALTHY,
        "forefoot_lowering_rad_s",
        "6.6 (quartiles 4.3-8.6) on one data set, 4.3 (2.6-5.4) on another; the range "
        "spans both", 2.6, 8.6,
        "measured: Voisard et al. 2023, IPOL reference gait data set, 19 healthy adults, "
        "665 footsteps (python -m sim.forefoot); Marpino walking dataset 2018, 138 "
        "strides, heel strike from the heel pressure sensor"),
    Reference(
        "foot-floor angle at initial contact (toes up)", "deg", _HEALTHY,
        "foot_landing_angle_deg",
        "19.4 (per-foot means, quartiles 16.0-23.9): the foot's toe-down rotation from the "
        "labelled heel strike until it is flat", 16.0, 23.9,
        "measured: Voisard et al. 2023, IPOL reference gait data set, 19 healthy adults, "
        "442 steady landings of 38 feet (python -m controller.bench.landing)"),
    Reference(
        "stride-to-stride SD of the foot-floor angle at initial contact", "deg", _HEALTHY,
        "foot_landing_angle_sd_deg",
        "2.28 per foot (quartiles 1.54-4.39); no published stride-to-stride figure of the "
        "ankle or foot angle at initial contact was found (Winter 1984 and Hausdorff's "
        "stride-time CV searched)", 1.54, 4.39,
        "measured: Voisard et al. 2023 (as above, python -m controller.bench.landing)",
        limit="The simulated swing follows the same healthy trajectory in every stride: "
        "only stride timing, toe-clearance scatter and the stimulation vary, so the foot "
        "lands at the same angle within a few tenths of a degree. No published "
        "stride-to-stride spread of the ankle at initial contact was found to calibrate a "
        "scatter (the measured foot-floor figure also holds the shank's scatter). Do not "
        "read a narrow spread of the ankle at heel strike (summary.json: "
        "clearance.ankle_at_heel_strike_deg) as the consistency a patient would show, and "
        "judge a setting by medians and drag counts, not by its stride-to-stride spread."),
    # --- Foot drop without and with peroneal stimulation ------------------------------
    Reference(
        "minimum toe clearance in mid-swing", "mm", "moderate (MS), no stimulation",
        "minimum_toe_clearance_mm",
        "12.7 +- 4.7 after stroke without an orthosis (hip hiking and pelvic obliquity "
        "compensate)", 8.0, 17.4,
        "Cruz and Dhaher 2009, Gait Posture 30:312 (abstract)", profile="moderate",
        limit="The shipped foot-drop profiles are built to catch their toes without "
        "stimulation (their hip compensation is 10-15 mm), so that a stimulation setting "
        "has something to correct; real walkers with foot drop compensate more and keep "
        "about the healthy clearance. Read toe-drag counts without stimulation as a test "
        "case, not as an expected rate; compare settings by the clearance and drags they "
        "leave with stimulation on."),
    Reference(
        "change of ankle angle at initial contact with stimulation", "deg",
        "moderate (MS), stimulated minus not: " + _DEFAULT_FES, "ankle_at_heel_strike_deg",
        "+5.2 mean (32 people with foot drop, adaptive FES); range +2 to +10 "
        "(assumption: no spread in the abstract)", 2.0, 10.0,
        "Robison et al. 2022, medRxiv 2022.04.27.22273623 (abstract)", profile="moderate",
        change=True),
    Reference(
        "peak swing dorsiflexion with stimulation", "deg", "moderate (MS), " + _DEFAULT_FES,
        "swing_peak_dorsiflexion_deg",
        "stimulation of the dorsiflexors improves swing dorsiflexion (no number in the "
        "abstract); taken as at least neutral (within 1 deg), at most the healthy "
        "late-stance peak", -1.0, 10.0,
        "Kesar et al. 2009, Stroke 40:3821 (abstract)", profile="moderate", stimulated=True),
    Reference(
        "strides ending in a foot slap", "1", "moderate (MS), " + _DEFAULT_FES,
        "foot_slap_fraction",
        "none: stimulation held past heel strike (the extension) prevents foot slap",
        0.0, 0.02,
        "Odstock ODFS clinical practice (Taylor et al. 1999, Arch Phys Med Rehabil "
        "80:1577: not checked here); foot slap: premature, rapid forefoot contact (Perry "
        "1992, textbook)",
        profile="moderate", stimulated=True,
        limit="At 35 mA this walker's stimulated muscle gives about 3 N m (5.6 N m while "
        "lengthening), with its voluntary 1.9 N m a third to a half of the 15-20 N m with "
        "which a healthy tibialis anterior brakes the forefoot in loading response (Winter "
        "1991: 0.2-0.3 N m/kg). The forefoot lands at 9.4-10.3 rad/s, right at the 10 "
        "rad/s slap threshold, so a few per cent of strides count as slaps while most "
        "land just under it; the shank's motion is prescribed, so the muscle cannot pull "
        "the tibia forward as it would. Judge the extension and the amplitude by the "
        "forefoot impact speed (summary.json: clearance.forefoot_impact_rad_s), not by "
        "the slap count, which jumps with small changes near the threshold."),
    Reference(
        "stimulation onset before toe off", "% of stride",
        "moderate (MS), default trigger (pre-swing), open loop at its closed-loop median onset",
        "stimulation_lead_stride_percent",
        "clinical stimulators start between heel off on a heel switch (the insole's heel "
        "sensor below 10 N 18.3 % of the stride before toe off, quartiles 12.2-22.4 %, on 72 "
        "controls; 18.8 %, 12.6-26.0 %, on 93 walkers with Parkinson's disease) and heel rise "
        "(about 31 % of the cycle, toe off at 60-62 %: about 30 %)", 12.2, 31.0,
        "Perry 1992 (textbook); heel switch: measured on PhysioNet gaitpdb (Goldberger et al. "
        "2000; Yogev et al. 2005, Hausdorff et al. 2007, Frenkel-Toledo et al. 2005), 165 "
        "walkers, 612 feet, python -m controller.bench.heelwalkers; Odstock ODFS from heel "
        "rise, Bioness L300 from heel off (DESIGN.md; Taylor et al. 1999: not checked here)",
        profile="moderate", stimulated=True,
        limit="Not the simulator but the default trigger: the shank detector's pre-swing "
        "starts the train 125 ms before toe off on the moderate walker (10.5 % of its "
        "1.2 s stride), later than a heel switch releases on three of four gaitpdb walkers "
        "(the row's range was 6.6-7.2 % from one of them, GaCo01, until 7 Dec 2026, an "
        "outlier). The muscle is still at 0.10 of its maximum at toe off (next row) and 2 of "
        "49 swings drag the toes (docs/stimulation.md); nearer a heel switch's onset (18 % of the "
        "stride, 215 ms here) is trigger = \"predicted_toe_off\" with lead_ms = 200 (onset 189 ms "
        "before toe off, activation 0.17, 9 % more charge). Compare triggers by the "
        "activation at toe off and the drags, and expect a heel-switch stimulator to start "
        "earlier than the default."),
    Reference(
        "tibialis anterior activation at toe off", "of tetanic maximum",
        "moderate (MS), " + _DEFAULT_FES, "ta_activation_at_toe_off",
        "active: the tibialis anterior's EMG rises through pre-swing, before toe off, and "
        "clinical stimulators start at heel rise or heel off; taken as at least 0.01 "
        "(assumption: no published force at toe off)", 0.01, 1.0,
        "Perry 1992 (textbook); Silver-Thorn et al. 2013, Int J Phys Med Rehabil 1:8 "
        "(abstract and figure captions: stimulation starts in the stance before swing)",
        profile="moderate", stimulated=True),
    # --- The stimulated muscle ---------------------------------------------------------
    Reference(
        "twitch time to peak", "ms", "healthy tibialis anterior, one saturating pulse",
        "twitch_peak_ms",
        "74.8 +- 3.9 (SE, 19 motor units of the toe extensors, the tibialis anterior's "
        "synergists on the peroneal nerve; range +-1 SD)",
        58.0, 92.0,
        "Macefield et al. 1996, single motor units of the human toe extensors by "
        "intraneural stimulation (abstract; journal not checked here)"),
    Reference(
        "frequency for half the maximal force", "Hz",
        "healthy tibialis anterior, saturating trains", "half_force_frequency_hz",
        "9.6 +- 0.6 (SE, 13 motor units; range +-1 SD)", 7.4, 11.8,
        "Macefield et al. 1996 (abstract)"),
    Reference(
        "endurance at 20 % of the voluntary maximum, 25 Hz", "s",
        "healthy tibialis anterior, stimulated through its nerve", "endurance_20_percent_mvc_s",
        "787 +- 201 through the nerve (84 +- 19 through one muscle electrode)", 586.0, 988.0,
        "Buckmire et al. 2018, J Neural Eng (PMC6370345: abstract; authors not checked "
        "here)",
        limit="The fatigue model (Ding et al. 2003, corrected by Doll et al. 2015, one "
        "recovery time constant of 127 s) cannot give this endurance at any fatigue "
        "rate: scaled from Ding's rates, it fails after 360 s at 0.29 of them and never "
        "at 0.285 (the recovery balances the fatigue at this load), so no setting lands "
        "near 787 s. The shipped profiles use 0.107 of Ding's rates (nerve against "
        "muscle electrode, 84/787) and do not tire under walking duty cycles; study "
        "fatigue with the fatigue_prone profile (Ding's own rates, 39 s here)."),
    Reference(
        "motor threshold at 300 us", "mA", "healthy tibialis anterior, 40 Hz",
        "motor_threshold_ma",
        "about 20 (recruitment from about 20 to 60 mA); range 15-25 (assumption)", 15.0, 25.0,
        "Veltink et al. 1992, as implemented in the cocofest library (secondary)"),
    # --- Spasticity and heat ---------------------------------------------------------
    Reference(
        "ankle clonus frequency", "Hz", "spastic, clinical stretch test (15 deg at 5 rad/s)",
        "clonus_frequency_hz",
        "3-7 Hz in spastic (and loaded normal) ankles; 3-8 Hz in clinical reviews",
        3.0, 8.0,
        "Rack et al. 1984, Brain 107:637 (abstract; authors and journal not checked here); "
        "Hidler and Rymer 1999, IEEE Trans Rehabil Eng 7:327 (abstract)"),
    Reference(
        "clonus beats after a slow stretch", "beats",
        "spastic, stretch test at 1 rad/s", "clonus_beats_slow_stretch",
        "none: the stretch reflex of spasticity is velocity dependent", 0.0, 0.0,
        "Lance 1980 (definition of spasticity, secondary)"),
    Reference(
        "clonus beats after a fast stretch", "beats",
        "spastic, stretch test at 5 rad/s, 3 s", "clonus_beats_fast_stretch",
        "sustained clonus: more than 4 beats (the clinical criterion for a positive test is "
        "sustained, not transient, beats)", 5.0, 1000.0,
        "Hidler and Rymer 1999 (abstract); Rack et al. 1984 (abstract)"),
    Reference(
        "core temperature rise that weakens voluntary dorsiflexion by 10 %", "C",
        "heat_sensitive", "heat_rise_for_weakening_c",
        "symptoms worsen with a rise of 0.25-0.5 C in 60-80 % of people with MS; no "
        "dose-response of dorsiflexor strength published: agreement is weakening within "
        "0.5 C", 0.0, 0.5,
        "Davis et al. 2010, J Appl Physiol 109:1531 (abstract); 0.25-0.5 C: quoted on "
        "the MS Support Foundation's pages (secondary, original not named there)"),
)
