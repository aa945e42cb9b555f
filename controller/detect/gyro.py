"""Gait-phase detection from a shank or foot gyroscope: a causal, sample-by-sample
state machine.

The input is the sagittal angular velocity of the shank or of the foot (rad/s, positive
= the forward rotation of swing). Over one stride a real shank shows (Aminian et al.
2002, J Biomech 35:689; Catalfamo et al. 2010, Sensors 10:5683): a large positive peak
at mid swing, a negative minimum just after heel strike, a negative plateau through
stance (the shank turns backward over the planted foot while the body passes over it:
-1.1 to -1.3 rad/s median on the Marpino walkers, see docs/detection.md) and a deeper
negative minimum at toe off. A foot (instep or shoe; Mariani et al. 2010, J Biomech
43:2999) is near zero in stance, turns fast backward in push-off (-5 to -12 rad/s),
forward in swing, and slaps backward just after contact. The detector walks through

    STANCE -> PRE_SWING -> SWING -> LOADING -> STANCE

and reports each event once it is certain of it, with the time at which it happened.
The difference is the detection latency; the scheduler acts on the phase, the metrics
compare the estimated times with the truth.

Rules, and the reason for each:

* The push-off dip. In stance and pre-swing the detector tracks the minimum of the
  signal over the last ``pre_swing_timeout_ms`` (the dip): toe off is dated from it,
  at the minimum or, with ``toe_off_rise_fraction``, where the rising signal crosses
  that fraction of it (on the foot, toe off lies 20-40 ms after the fastest push-off
  rotation: Voisard et al. 2023).
* STANCE -> PRE_SWING when the signal falls below the pre-swing threshold, the smaller
  of ``pre_swing_threshold_rad_s`` and ``pre_swing_fraction`` of the walker's mean
  push-off dip (so it sits below a real shank's negative stance plateau once the walker
  has been seen, and always below the amplitude of clonus), provided that the signal
  stayed above the threshold for ``min_stance_ms``, that it did not rise above
  ``swing_entry_rad_s`` within ``oscillation_guard_ms`` (clonus and tremor rise every
  125-250 ms, a stance lasts longer) and that ``refractory_ms`` have passed since the
  last toe off. PRE_SWING is what starts stimulation.
* Toe off becomes known when the signal rises through ``swing_entry_rad_s`` -> SWING.
  After a pre-swing that lasted at least ``min_push_off_ms`` (a push-off: 130 ms or more
  in every steady step of the recordings, a clonus beat at 5-8 Hz less than 100 ms) it
  is reported at once. After such a push-off, with ``swing_entry_fraction``, the level
  is that fraction of the walker's mean swing peak where this is lower, never below
  ``swing_hold_level_rad_s``: a weak leg swings at 0.7-1.5 rad/s (the Moving
  Reality walker pp03's right shank), and most of its swings never reached the fixed
  level (the detector found 30-114 of its 119-128 strides). The push-off before it, a
  stance before that (``min_stance_ms``) and the oscillation guard keep clonus out as
  before; the walker's mean peak comes from swings that did reach the fixed level.
  Without a push-off (a first step from standing, a small turning step, or a beat of
  clonus) the swing is unconfirmed: the phase stays STANCE, nothing is reported,
  and it counts only once the signal has been above ``swing_hold_level_rad_s`` for
  ``swing_hold_ms`` in all (longer than half a cycle of clonus at 5 Hz, 100 ms, shorter
  than any real swing) and its peak so far has reached the swing-peak threshold (below);
  then TOE_OFF is reported with its date from the dip, or, when the dip stayed within
  the stance band (above minus ``SETTLE_FLOOR_RAD_S``: a wobble, no push-off), from
  where the signal last rose out of the band (a noise-level dip's rise crosses its
  fraction at once: a foot standing in the U-turn had its toe off dated 170 ms before
  it moved, a false toe off and a missed one). The time
  adds up over the humps of a slow swing (a first step from standing often rises,
  sags and rises again) as long as the signal neither falls to zero (the forward
  rotation ended: clonus crosses zero every half cycle) nor stays below the hold level
  for ``swing_hold_ms``; a signal that does either first was no step.
* The swing-peak threshold, ``max(min_swing_peak_rad_s, swing_peak_fraction *
  average)``, the average being a running mean over about ``peak_average_strides``
  recent swing peaks of this walker: a swing without a push-off is reported only once
  its peak so far has also reached it (a foot pivoting in a U-turn rises for longer than
  the hold time, but not as far as a step; on the Voisard walkers this removed 7 of 13
  false toe offs, 4 of them in the U-turn, and 4 true ones of closing or turning steps
  whose heel strike was missed anyway).
* SWING tracks the maximum. Once the signal has fallen below
  ``mid_swing_confirm_fraction`` of it, MID_SWING is reported at the time of the
  maximum, and the peak feeds the average (so the threshold follows a walker who slows
  down). A swing whose toe off has been reported always goes on to its heel strike: a
  toe off starts or continues the peroneal train and the heel strike ends it. (Before,
  a swing whose peak fell short of the threshold here went back to stance without a
  heel strike, and the train ran on through the stance to the next stride's heel
  strike or its timeout: 142 of 3,915 toe offs on the 110 Voisard trials had no heel
  strike before the next toe off or the end of the recording; 15 now, each at the end
  of a recording or followed by UNKNOWN, which ends the train.)
* After mid swing HEEL_STRIKE is dated at the minimum that follows, once it lies below
  ``heel_strike_max_rad_s`` and the signal has risen from it by
  ``heel_strike_rise_rad_s`` (shank), or where the signal falls through minus
  ``heel_strike_level_fraction`` of the stride's swing peak (``heel_strike_estimate =
  "level"``, foot: contact comes 20-40 ms before the slap's minimum, and the level is
  crossed there with almost no latency). Both scale with the stride.
* The heel-strike deadline. A flat landing (a turning or stopping step) may never cross
  the heel-strike level. The landing follows closely on the end of the swing's forward
  rotation, where the signal falls through zero after mid swing (a foot: 0-90 ms later
  in steady walking, 2nd to 98th percentile on the Voisard walkers, while mid swing,
  the highest of two or three humps, lies 50-370 ms before it). Each heel strike found
  by the rule above teaches the walker's time from that zero crossing to heel strike
  (running mean); once that time plus ``heel_strike_margin_ms`` has passed since the
  crossing (for a swing that has not crossed zero: ``heel_strike_wait_factor`` times
  the walker's mean time from mid swing to heel strike, ``heel_strike_wait_ms`` before
  the first stride), the landing is dated at the minimum since mid swing as soon as
  the signal has risen from that minimum as the shank's rule asks (a foot's minimum
  must also reach half its heel-strike level: a slap too small for the level), or has
  settled to stance (quiet, and for ``settle_ms`` within a band of
  ``settle_band_fraction`` of the stride's swing peak). A stride thus never runs on
  into the next push-off. (The deadline counted from mid swing alone announced 7 of
  657 heel strikes 160-280 ms after contact: on a short turning or stopping swing the
  walker's usual time from mid swing ran out long after the foot had landed.)
  A settled signal alone is no landing before the deadline: a foot carried forward
  without turning (a slow or turning step) reads zero too.
* The refractory time between two toe offs follows the walker's cadence: the larger of
  ``refractory_ms`` and ``refractory_stride_fraction`` of the running mean stride time.
* LOADING lasts ``loading_time_ms`` after the estimated heel strike (the contact dip and
  the ringing of the slap are no push-off), then STANCE.
* A swing that has not ended ``max_swing_ms`` after it began means the detector is
  confused: UNKNOWN, so that stimulation never stays on for long on a wrong belief.

Walker-adaptive quantities (swing peak, push-off dip, stride time, mid swing and zero
crossing to heel strike times) start from the first stride and are running means with a memory of
``peak_average_strides``; the first stride uses the configured floors, so the detector
is fully adapted after about that many strides (4 by default), and usable from the first.

The mounting check. A gyroscope worn upside down or on the other leg gives the mirror
image of the signal, and the state machine finds "strides" in it too (with the sign
flipped and the check off, none of 297 events matched on a simulated 60 s walk:
docs/detection.md, "The mounting check", has the commands). So
during the first ``mount_check_strides`` strides a second copy of the state machine runs
on the signal with its sign flipped, and each copy measures its strides' swing
fraction (toe off to heel strike over toe off to toe off, the toe off dated from the
dip in both copies). Walking, a swing is shorter
than a stance (about 40 % of the stride; Perry 1992), so the copy with the smaller
swing fraction sees the signal the right way round: on the real recordings the right
way gives 0.35-0.42, the flipped one 0.50-0.77 (docs/detection.md). The strides that
decide must also follow the walk: the deciding machine's steady strides (each within
``SKIPPED`` times the one before, either way, and no longer than ``SLOWEST_STRIDE_S``)
add up to ``MOUNT_COVERAGE`` of the time since either machine's first stride began.
On a weak leg the mirror copy found 3 strides in 28 s, or double strides (2 s against
single ones of 0.9 s, each holding a swing it missed, which halves its swing fraction),
or (a synthetic weak leg) triple ones of 2.7-3.0 s in a row, and was believed: the sign
was called flipped.
The winner's swings must also be the wider rotations: its mean swing angle (the signal
integrated from swing entry to heel strike) at least the other copy's, or, the other
without strides, at least the widest swing the other has begun. The mirror copy's
"swings" are the real push-offs (and a foot's slaps), which can be faster than the
swing but are narrower: on a foot the mirror's strides looked like walking and decided
two of 110 Moving Reality feet and two of 182 Voisard feet flipped; on synthetic weak
legs whose push-off outweighs the swing it won with a smaller swing fraction.
Such a check stays undecided (``mounting`` reports ``UNDECIDED``, and
the status line and summary say why). Until the verdict is
"mounted" the detector reports STANCE and no events, so nothing gait-triggered is
stimulated on a signal not yet checked (training and test modes, which ignore the gait,
still run); a verdict of "flipped" makes it UNKNOWN for good. ``fes detect`` checks a
whole file the same way and corrects the sign with a warning that names ``--invert``.
The axis is not checked here: a wrong axis sometimes shows no strides either way round
(the check never ends, nothing is stimulated), but often it shows some. Where the other
two axes are read, ``controller.detect.axis`` checks it (docs/detection.md).

UNKNOWN is also the phase before the detector has locked on, and after the gyroscope
sample has been missing (NaN) or saturated for longer than ``unknown_after_missing_ms``;
the state machine then restarts (keeping what it learnt about the walker). It locks on
after ``lock_quiet_ms`` of quiet stance (``|gyro| <= quiet_threshold_rad_s``, e.g.
standing before the first step) or at the first toe off it confirms, whichever comes
first. The state machine runs the whole time; only the phase it reports and the events
are withheld until it is locked on. Shorter gaps hold the current phase; saturated
samples within them still drive the state machine (a clipped value is a lower bound).

Each event is produced by a state transition, and the kernel makes at most one
transition per sample, so one event slot per sample is enough: toe off needs a rise
after the dip, mid swing a fall after the swing maximum, and heel strike comes after
mid swing (a level crossed on the mid-swing sample itself is reported at the next one,
dated where it was crossed).

The state machine sees a moving average of the last ``smoothing_ms`` of samples dated at
the mean time of the samples it averages: a boxcar is symmetric, so extremum times
carry no filter delay, while white sensor noise is averaged over the same time span at
100 Hz and at 1000 Hz.

All times are in milliseconds in the config and are compared with the sample
timestamps, so one configuration works at any sample rate and with jittered or dropped
samples. The kernel is numba-compiled and allocation free; ``controller.detect.detector``
wraps it for one sample at a time (the loop) and for whole recordings (the same kernel).
``SHANK`` and ``FOOT`` are the configurations of the two placements.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from controller import events
from controller.detect.stride import MAX_STRIDE_S, SKIPPED, running_mean, stride_average
from controller.kernels import in_python, kernel, pack
from controller.validation import ConfigModel


class GyroDetectorConfig(ConfigModel):
    """Thresholds and times of the gyroscope detector (``SHANK`` and ``FOOT`` are the
    two placements' configurations)."""

    pre_swing_threshold_rad_s: float = Field(
        -1.5, ge=-5.0, le=-0.1,
        description="Signal below this in stance starts a pre-swing (the first one, when "
        "pre_swing_fraction is set).",
    )
    pre_swing_fraction: float = Field(
        0.0, ge=0.0, le=0.9,
        description="Once the walker's push-off is known, the pre-swing threshold is this "
        "fraction of their mean push-off dip (0: the fixed threshold only).",
    )
    pre_swing_hold_ms: float = Field(
        40.0, ge=0.0, le=200.0,
        description="A pre-swing is reported (and can start stimulation) once the signal "
        "has stayed in it this long (a beat of clonus dips for less).",
    )
    swing_entry_rad_s: float = Field(
        1.0, ge=0.3, le=5.0,
        description="Rising through this after the push-off dip announces toe off.",
    )
    swing_entry_fraction: float = Field(
        0.0, ge=0.0, le=0.9,
        description="After a push-off (a pre-swing of min_push_off_ms), swing is entered "
        "from this fraction of the walker's mean swing peak when that is below "
        "swing_entry_rad_s, never below swing_hold_level_rad_s (0: swing_entry_rad_s "
        "only): a weak leg's swing may peak below swing_entry_rad_s.",
    )
    min_push_off_ms: float = Field(
        110.0, ge=0.0, le=500.0,
        description="A pre-swing this long before the rise is a push-off: toe off is "
        "reported at once (shorter: the swing must hold first).",
    )
    swing_hold_level_rad_s: float = Field(
        0.5, ge=0.1, le=5.0,
        description="A swing without a push-off (first step, clonus, a pivot) must be above "
        "this ...",
    )
    swing_hold_ms: float = Field(
        110.0, ge=0.0, le=500.0,
        description="... this long in all, without falling to zero or staying below it "
        "this long, and reach the swing-peak threshold, before its toe off is reported "
        "(longer than half a cycle of 5-8 Hz clonus).",
    )
    min_swing_peak_rad_s: float = Field(
        1.1, ge=0.5, le=10.0,
        description="Floor of the adaptive swing-peak threshold (the peak a swing without a "
        "push-off must reach before its toe off is reported).",
    )
    swing_peak_fraction: float = Field(
        0.4, ge=0.1, le=0.9,
        description="Adaptive threshold as a fraction of the running mean swing peak.",
    )
    peak_average_strides: int = Field(
        4, ge=1, le=50,
        description="Memory of the walker's running means (swing peak, push-off dip, "
        "stride time, mid swing to heel strike), in strides.",
    )
    mid_swing_confirm_fraction: float = Field(
        0.7, ge=0.2, le=0.95,
        description="Mid swing is confirmed when the signal falls below this fraction "
        "of the swing peak.",
    )
    heel_strike_max_rad_s: float = Field(
        0.0, ge=-3.0, le=1.0,
        description="The minimum after mid swing must lie below this to be a heel strike.",
    )
    heel_strike_rise_rad_s: float = Field(
        0.25, ge=0.05, le=2.0,
        description="Rise from the post-swing minimum that confirms heel strike.",
    )
    heel_strike_estimate: Literal["minimum", "level"] = Field(
        "minimum",
        description="Date heel strike at the post-swing minimum (shank) or where the "
        "signal falls through a level below zero after mid swing (foot).",
    )
    heel_strike_level_fraction: float = Field(
        0.35, ge=0.05, le=2.0,
        description="That level, as a fraction of the stride's swing peak (used when "
        "heel_strike_estimate is 'level').",
    )
    heel_strike_margin_ms: float = Field(
        80.0, ge=0.0, le=2000.0,
        description="Heel-strike deadline: the walker's mean time from the end of the "
        "swing's forward rotation (the signal falling through zero after mid swing) to "
        "heel strike, plus this; then a risen or settled signal dates the landing.",
    )
    heel_strike_wait_factor: float = Field(
        1.2, ge=1.0, le=5.0,
        description="Heel-strike deadline of a swing whose signal has not fallen through "
        "zero: this many times the walker's mean time from mid swing to heel strike.",
    )
    heel_strike_wait_ms: float = Field(
        300.0, ge=100.0, le=2000.0,
        description="That deadline (after mid swing) before a stride has been learnt.",
    )
    settle_ms: float = Field(
        45.0, ge=10.0, le=500.0,
        description="After the deadline, a signal that has settled for this long has "
        "landed (see settle_band_fraction).",
    )
    settle_band_fraction: float = Field(
        0.1, ge=0.01, le=0.5,
        description="A settled signal stays within this fraction of the stride's swing "
        "peak, below as much.",
    )
    toe_off_rise_fraction: float = Field(
        0.0, ge=0.0, le=0.9,
        description="Toe off is dated where the signal rising after the push-off dip "
        "crosses this fraction of it (0: at the minimum).",
    )
    loading_time_ms: float = Field(
        120.0, ge=0.0, le=500.0,
        description="Duration of LOADING after the estimated heel strike.",
    )
    pre_swing_timeout_ms: float = Field(
        400.0, ge=50.0, le=2000.0,
        description="The push-off dip is the minimum over this long; a pre-swing without "
        "a swing within this time of its minimum returns to stance.",
    )
    max_swing_ms: float = Field(
        1000.0, ge=200.0, le=3000.0,
        description="A swing longer than this makes the detector UNKNOWN.",
    )
    min_stance_ms: float = Field(
        0.0, ge=0.0, le=1000.0,
        description="The signal must stay above the pre-swing threshold this long before "
        "a new pre-swing.",
    )
    oscillation_guard_ms: float = Field(
        250.0, ge=0.0, le=1000.0,
        description="No pre-swing starts within this time of the signal rising above "
        "swing_hold_level_rad_s (a 4-8 Hz clonus rises every 125-250 ms).",
    )
    refractory_ms: float = Field(
        500.0, ge=0.0, le=2000.0,
        description="Minimum time between two toe offs (one event of each kind per stride).",
    )
    refractory_stride_fraction: float = Field(
        0.5, ge=0.0, le=0.9,
        description="Minimum time between two toe offs as a fraction of the walker's mean "
        "stride time (the larger of this and refractory_ms applies).",
    )
    lock_quiet_ms: float = Field(
        300.0, ge=50.0, le=2000.0,
        description="Quiet stance needed to lock on without a swing.",
    )
    quiet_threshold_rad_s: float = Field(
        1.0, ge=0.1, le=3.0,
        description="|gyro| at or below this counts as quiet for locking on.",
    )
    mount_check_strides: int = Field(
        3, ge=0, le=20,
        description="Strides over which the gyroscope's sign is checked before the phase is "
        "trusted (UNKNOWN until then: no stimulation; a flipped sign stays UNKNOWN). 0: no "
        "check, and no axis check either on a board that sends all three axes.",
    )
    unknown_after_missing_ms: float = Field(
        100.0, ge=20.0, le=2000.0,
        description="Missing or saturated data for longer than this gives UNKNOWN.",
    )
    smoothing_ms: float = Field(
        30.0, ge=0.0, le=60.0,
        description="Width of the moving average the state machine sees (0: raw samples).",
    )
    saturation_rad_s: float = Field(
        34.0, ge=2.0, le=100.0,
        description="|gyro| at or above this is saturated (34 rad/s: a 2000 deg/s sensor).",
    )


# Parameter array: one slot per name (SI units: seconds, rad/s), packed by make_params.
PARAMS = (
    "pre_swing", "pre_swing_fraction", "pre_swing_hold_s", "swing_entry", "entry_fraction",
    "min_push_off_s",
    "hold_level", "hold_s", "min_peak", "peak_fraction", "avg_weight", "confirm_fraction",
    "hs_max", "hs_rise", "hs_by_level", "hs_level_fraction", "hs_margin_s", "hs_wait_factor",
    "hs_wait_s",
    "settle_s", "settle_fraction", "to_rise_fraction", "loading_s", "pre_swing_timeout_s",
    "max_swing_s", "min_stance_s", "guard_s", "refractory_s", "refractory_stride_fraction",
    "lock_quiet_s", "quiet", "mount_strides", "missing_s", "saturation", "smoothing_s",
)  # fmt: skip
(
    _P_PRE_SWING, _P_PRE_SWING_FRACTION, _P_PRE_SWING_HOLD_S, _P_SWING_ENTRY,
    _P_ENTRY_FRACTION, _P_MIN_PUSH_OFF_S, _P_HOLD_LEVEL, _P_HOLD_S, _P_MIN_PEAK, _P_PEAK_FRACTION,
    _P_AVG_WEIGHT, _P_CONFIRM_FRACTION, _P_HS_MAX, _P_HS_RISE, _P_HS_BY_LEVEL,
    _P_HS_LEVEL_FRACTION, _P_HS_MARGIN_S, _P_HS_WAIT_FACTOR, _P_HS_WAIT_S, _P_SETTLE_S,
    _P_SETTLE_FRACTION,
    _P_TO_RISE_FRACTION, _P_LOADING_S, _P_PRE_SWING_TIMEOUT_S, _P_MAX_SWING_S,
    _P_MIN_STANCE_S, _P_GUARD_S, _P_REFRACTORY_S, _P_REFRACTORY_STRIDE_FRACTION,
    _P_LOCK_QUIET_S, _P_QUIET, _P_MOUNT_STRIDES, _P_MISSING_S, _P_SATURATION,
    _P_SMOOTHING_S,
) = range(len(PARAMS))  # fmt: skip
N_PARAMS = len(PARAMS)

# State array: one slot per name, then the moving-average window.
STATE = (
    "phase",  # phase of the state machine (also while not locked on)
    "locked",  # 1.0 once the reported phase can be trusted
    "confirmed",  # in SWING: 1.0 once toe off was reported (0.0: the swing must hold)
    "descent",  # 1.0 in SWING after mid swing was confirmed
    "t_enter",  # time the current phase began
    "ext_value",  # SWING: the peak, then the minimum since mid swing
    "ext_t",  # time of that extremum
    "dip_value",  # STANCE, PRE_SWING: minimum over the last pre_swing_timeout (the dip)
    "dip_t",  # time of that minimum
    "cross_t",  # toe off: the dip's rise crossing; terminal swing: heel-strike level crossing
    "t_pre_swing",  # when the current pre-swing began (NaN: the swing started from stance)
    "t_toe_off",  # toe off of the swing in progress dated from the dip (the stride time,
    # the refractory time and the mounting check run on it)
    "t_toe_off_reported",  # ... and as reported (from the rise out of the stance band,
    # for a swing without a push-off)
    "t_last_below",  # last time the signal was below the pre-swing threshold
    "t_last_high",  # last time the signal was at or above the hold level (oscillation guard)
    "t_hold",  # when the signal last rose through the hold level (NaN: below it; inf:
    # above it since a restart, no rise seen)
    "held",  # unconfirmed swing: time above the hold level in its earlier humps
    "run",  # ... and in the current one, so far
    "t_last_toe_off",  # estimated time of the last reported toe off
    "t_mid",  # estimated time of the last mid swing
    "t_zero",  # terminal swing: when the signal fell through zero (NaN: not yet)
    "t_rise",  # when the signal last rose out of the stance band (SETTLE_FLOOR_RAD_S)
    "settle_anchor",  # terminal swing: the value the settled signal stays near ...
    "t_settle",  # ... since this time
    "t_quiet_since",  # start of the current run of quiet samples (inf: not quiet)
    "t_last_good",  # time of the last sample that was neither NaN nor saturated
    "peak_average",  # running mean of swing peaks (0: none seen yet)
    "dip_average",  # running mean of push-off dips (0: none yet)
    "stride_average",  # running mean of toe-off to toe-off intervals (0: none yet)
    "hs_wait_average",  # running mean of mid swing to heel strike (0: none yet)
    "zero_average",  # running mean of zero crossing to heel strike (0: none yet)
    "hs_level",  # heel-strike level of the current stride (level estimate)
    "hs_peak",  # swing peak of the current stride (the settle band scales with it)
    "prev_t",  # centre time of the previous smoothed sample (NaN after a restart)
    "prev_g",  # its smoothed value
    "ring_start",  # slot of the oldest sample in the moving-average window
    "ring_count",  # number of samples in the window
)
(
    _S_PHASE, _S_LOCKED, _S_CONFIRMED, _S_DESCENT, _S_T_ENTER, _S_EXT_VALUE, _S_EXT_T,
    _S_DIP_VALUE, _S_DIP_T, _S_CROSS_T, _S_T_PRE_SWING, _S_T_TOE_OFF, _S_T_TOE_OFF_REPORTED,
    _S_T_LAST_BELOW,
    _S_T_LAST_HIGH, _S_T_HOLD, _S_HELD, _S_RUN, _S_T_LAST_TOE_OFF, _S_T_MID, _S_T_ZERO,
    _S_T_RISE, _S_SETTLE_ANCHOR, _S_T_SETTLE,
    _S_T_QUIET_SINCE, _S_T_LAST_GOOD, _S_PEAK_AVERAGE, _S_DIP_AVERAGE, _S_STRIDE_AVERAGE,
    _S_HS_WAIT_AVERAGE, _S_ZERO_AVERAGE, _S_HS_LEVEL, _S_HS_PEAK, _S_PREV_T, _S_PREV_G,
    _S_RING_START, _S_RING_COUNT,
) = range(len(STATE))  # fmt: skip
_RING = 128  # window capacity: 60 ms at 2 kHz; a longer window keeps the newest samples
_S_RING_VALUES = len(STATE)  # the window's values, then its times
_S_RING_TIMES = _S_RING_VALUES + _RING
_CORE = _S_RING_TIMES + _RING  # one state machine (the mirror's window stays unused)

# The mounting check: the verdict, then per machine (the detector's own, then the mirror
# that sees the signal with its sign flipped) its strides so far.
MOUNT = ("verdict", "t_verdict",
         "strides", "fraction_sum", "t_toe_off", "t_heel_strike", "steady_s", "t_first",
         "last_stride_s", "angle_sum", "swing_angle", "last_swing_angle", "widest_swing",
         "mirror_strides", "mirror_fraction_sum", "mirror_t_toe_off", "mirror_t_heel_strike",
         "mirror_steady_s", "mirror_t_first", "mirror_last_stride_s", "mirror_angle_sum",
         "mirror_swing_angle", "mirror_last_swing_angle", "mirror_widest_swing")
_M_VERDICT = _CORE
_M_T_VERDICT = _M_VERDICT + 1  # when the verdict was reached (NaN: not yet)
# Per machine: strides, swing-fraction sum, last toe off, last heel strike, the time of
# its steady strides, when its first stride began, the last stride (0: the last toe off
# ended none), the sum of its strides' swing angles, the angle turned so far in the swing
# in progress, that of its last swing ended by a heel strike, and the widest swing it has
# begun (counted as a stride or not).
_M_MAIN = _M_T_VERDICT + 1
_M_MIRROR = _M_MAIN + 11
_S_MIRROR = _CORE + len(MOUNT)  # the mirror machine's state
N_STATE = _S_MIRROR + _CORE
#: The settle band is never narrower than this: a foot pivoting in a turn, or
#: shuffling to a stop, turns this fast while it bears weight.
SETTLE_FLOOR_RAD_S = 0.3
#: The adaptive pre-swing threshold never rises above this (sway and sensor noise).
PRE_SWING_CEILING_RAD_S = -0.3
#: How much smaller one machine's swing fraction must be than the other's to decide the
#: sign (right way round 0.35-0.48, flipped 0.50-0.88 on the recordings and the
#: simulator).
MOUNT_MARGIN = 0.05
#: The strides that decide the sign must add up to at least this share of the time
#: since the first stride either way round began, counting only steady strides (within
#: ``SKIPPED`` times the stride before, either way): a machine that sees the signal the
#: right way round follows the walk, while a few strides scattered over it, or strides
#: that each hold a stride it missed, are no evidence (a weak leg whose mirror
#: copy found 3 strides in 28 s, or double strides of 2 s against single ones of 0.9 s,
#: and was believed: docs/detection.md, "The mounting check").
MOUNT_COVERAGE = 0.4
#: No stride longer than this counts as steady for the mounting check. The slowest real
#: strides here are 2.07-2.12 s (Moving Reality walker pp01, Ensink et al. 2024; DESIGN.md's
#: slowest cadence, 60 steps/min, is 2 s), while a mirror copy that misses two swings in
#: three walks "strides" of 2.7-3.0 s in a row, each as long as the one before: steady by
#: ``SKIPPED`` alone, and on a weak leg they decided the sign wrong before the right copy
#: had walked its second stride (docs/detection.md, "The mounting check").
SLOWEST_STRIDE_S = 2.5
#: Verdicts of the mounting check (``mounting``).
CHECKING, MOUNTED, FLIPPED = 0, 1, 2
#: Not a verdict of the kernel, which goes on checking: a machine has walked the strides
#: the check needs, yet they decide nothing (swing fractions within the margin, or
#: strides too few or too irregular over the walk: ``MOUNT_COVERAGE``). ``mounting``
#: reports it so that the user learns why nothing is stimulated.
UNDECIDED = 3
_WINDOW_GUARD_S = 1e-6  # keeps a sample exactly one window old out despite rounding


def make_params(config: GyroDetectorConfig) -> np.ndarray:
    """The kernel's parameter array for ``config`` (times converted to seconds)."""
    c = config
    values = {
        "pre_swing": c.pre_swing_threshold_rad_s,
        "pre_swing_fraction": c.pre_swing_fraction,
        "pre_swing_hold_s": c.pre_swing_hold_ms / 1000.0,
        "swing_entry": c.swing_entry_rad_s,
        "entry_fraction": c.swing_entry_fraction,
        "min_push_off_s": c.min_push_off_ms / 1000.0,
        "hold_level": c.swing_hold_level_rad_s,
        "hold_s": c.swing_hold_ms / 1000.0,
        "min_peak": c.min_swing_peak_rad_s,
        "peak_fraction": c.swing_peak_fraction,
        "avg_weight": 1.0 / c.peak_average_strides,
        "confirm_fraction": c.mid_swing_confirm_fraction,
        "hs_max": c.heel_strike_max_rad_s,
        "hs_rise": c.heel_strike_rise_rad_s,
        "hs_by_level": 1.0 if c.heel_strike_estimate == "level" else 0.0,
        "hs_level_fraction": c.heel_strike_level_fraction,
        "hs_margin_s": c.heel_strike_margin_ms / 1000.0,
        "hs_wait_factor": c.heel_strike_wait_factor,
        "hs_wait_s": c.heel_strike_wait_ms / 1000.0,
        "settle_s": c.settle_ms / 1000.0,
        "settle_fraction": c.settle_band_fraction,
        "to_rise_fraction": c.toe_off_rise_fraction,
        "loading_s": c.loading_time_ms / 1000.0,
        "pre_swing_timeout_s": c.pre_swing_timeout_ms / 1000.0,
        "max_swing_s": c.max_swing_ms / 1000.0,
        "min_stance_s": c.min_stance_ms / 1000.0,
        "guard_s": c.oscillation_guard_ms / 1000.0,
        "refractory_s": c.refractory_ms / 1000.0,
        "refractory_stride_fraction": c.refractory_stride_fraction,
        "lock_quiet_s": c.lock_quiet_ms / 1000.0,
        "quiet": c.quiet_threshold_rad_s,
        "mount_strides": c.mount_check_strides,
        "missing_s": c.unknown_after_missing_ms / 1000.0,
        "saturation": c.saturation_rad_s,
        "smoothing_s": c.smoothing_ms / 1000.0,
    }
    return pack(PARAMS, values)


@kernel
def _restart(state: np.ndarray) -> None:
    """Forget the stride in progress and the lock; keep the walker's averages."""
    state[_S_PHASE] = events.STANCE
    state[_S_LOCKED] = 0.0
    state[_S_CONFIRMED] = 0.0
    state[_S_DESCENT] = 0.0
    state[_S_T_ENTER] = -np.inf
    state[_S_EXT_VALUE] = 0.0
    state[_S_EXT_T] = np.nan
    state[_S_DIP_VALUE] = np.inf
    state[_S_DIP_T] = -np.inf
    state[_S_CROSS_T] = np.nan
    state[_S_T_PRE_SWING] = np.nan
    state[_S_T_TOE_OFF] = np.nan
    state[_S_T_TOE_OFF_REPORTED] = np.nan
    state[_S_T_LAST_BELOW] = -np.inf
    state[_S_T_LAST_HIGH] = -np.inf
    state[_S_T_HOLD] = np.inf  # a swing from stance needs a rise through the hold level
    state[_S_T_LAST_TOE_OFF] = -np.inf
    state[_S_T_MID] = np.nan
    state[_S_T_ZERO] = np.nan
    state[_S_T_RISE] = -np.inf
    state[_S_HELD] = 0.0
    state[_S_RUN] = 0.0
    state[_S_SETTLE_ANCHOR] = np.nan
    state[_S_T_SETTLE] = np.nan
    state[_S_T_QUIET_SINCE] = np.inf
    state[_S_PREV_T] = np.nan
    state[_S_PREV_G] = np.nan


def new_state() -> np.ndarray:
    """The state of a detector that has seen no sample (not locked on)."""
    state = np.zeros(N_STATE)
    for start in (0, _S_MIRROR):
        in_python(_restart)(state[start : start + _CORE])
    state[_S_T_LAST_GOOD] = -np.inf
    state[_M_T_VERDICT] = np.nan
    for base in (_M_MAIN, _M_MIRROR):
        state[base + 2 : base + 4] = -np.inf
        state[base + 5] = np.nan
    return state


@kernel
def _smooth(state: np.ndarray, window_s: float, t_s: float, g: float) -> tuple[float, float]:
    """Add a sample to the moving-average window; return (centre time, mean value).

    The window holds the samples of the last ``window_s`` seconds, (t - window, t]. A
    boxcar is symmetric, so its output belongs to the mean time of the samples in it:
    extremum times taken at that centre carry no filter delay, while white sensor noise
    is averaged over a fixed time span whatever the sample rate.
    """
    start = int(state[_S_RING_START])
    count = int(state[_S_RING_COUNT])
    if count == _RING:
        start = (start + 1) % _RING
        count -= 1
    slot = (start + count) % _RING
    state[_S_RING_VALUES + slot] = g
    state[_S_RING_TIMES + slot] = t_s
    count += 1
    while count > 1 and state[_S_RING_TIMES + start] <= t_s - window_s + _WINDOW_GUARD_S:
        start = (start + 1) % _RING
        count -= 1
    state[_S_RING_START] = start
    state[_S_RING_COUNT] = count
    total_g = 0.0
    total_t = 0.0
    for k in range(count):
        slot = (start + k) % _RING
        total_g += state[_S_RING_VALUES + slot]
        total_t += state[_S_RING_TIMES + slot] - t_s
    return t_s + total_t / count, total_g / count


@kernel
def _enter(state: np.ndarray, phase: int, t_s: float, t_c: float, g: float) -> None:
    """Switch to ``phase`` at ``t_s``, starting its extremum tracking at (``t_c``, ``g``)."""
    state[_S_PHASE] = phase
    state[_S_T_ENTER] = t_s
    state[_S_DESCENT] = 0.0
    state[_S_EXT_VALUE] = g
    state[_S_EXT_T] = t_c


@kernel
def _crossing(state: np.ndarray, t_c: float, g: float, level: float) -> float:
    """Time at which the smoothed signal crossed ``level`` between the previous sample
    and this one, by linear interpolation (this sample's time if there is no previous)."""
    t_prev = state[_S_PREV_T]
    g_prev = state[_S_PREV_G]
    if math.isnan(t_prev) or g == g_prev:
        return t_c
    weight = min(1.0, max(0.0, (level - g_prev) / (g - g_prev)))
    return t_prev + weight * (t_c - t_prev)


@kernel
def _refractory_s(state: np.ndarray, params: np.ndarray) -> float:
    """Minimum time between toe offs: fixed floor or a fraction of the mean stride."""
    return max(
        params[_P_REFRACTORY_S],
        params[_P_REFRACTORY_STRIDE_FRACTION] * state[_S_STRIDE_AVERAGE],
    )


@kernel
def _pre_swing_threshold(state: np.ndarray, params: np.ndarray) -> float:
    """The configured threshold until the walker's push-off is known, then (with a
    fraction) that fraction of their mean dip, never above ``PRE_SWING_CEILING_RAD_S``."""
    fraction = params[_P_PRE_SWING_FRACTION]
    if fraction == 0.0 or state[_S_DIP_AVERAGE] == 0.0:
        return params[_P_PRE_SWING]
    return min(PRE_SWING_CEILING_RAD_S, fraction * state[_S_DIP_AVERAGE])


@kernel
def _track_dip(state: np.ndarray, params: np.ndarray, t_c: float, g: float) -> None:
    """Follow the minimum of the last ``pre_swing_timeout`` and, on the rise after it,
    where the signal crosses ``toe_off_rise_fraction`` of it."""
    if g < state[_S_DIP_VALUE] or t_c - state[_S_DIP_T] > params[_P_PRE_SWING_TIMEOUT_S]:
        state[_S_DIP_VALUE] = g
        state[_S_DIP_T] = t_c
        state[_S_CROSS_T] = np.nan
        return
    fraction = params[_P_TO_RISE_FRACTION]
    if fraction > 0.0 and math.isnan(state[_S_CROSS_T]):
        level = fraction * state[_S_DIP_VALUE]
        if g >= level:
            state[_S_CROSS_T] = _crossing(state, t_c, g, level)


@kernel
def _forget_dip(state: np.ndarray, t_c: float, g: float) -> None:
    """Start the dip afresh (after loading: the contact dip is no push-off)."""
    state[_S_DIP_VALUE] = g
    state[_S_DIP_T] = t_c
    state[_S_CROSS_T] = np.nan


@kernel
def _dip_date(state: np.ndarray, params: np.ndarray) -> float:
    """The toe off the push-off dip so far dates: where the rise crossed
    ``toe_off_rise_fraction`` of it, or (no such crossing yet) the minimum."""
    if params[_P_TO_RISE_FRACTION] > 0.0 and not math.isnan(state[_S_CROSS_T]):
        return float(state[_S_CROSS_T])
    return float(state[_S_DIP_T])


@kernel
def _start_swing(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float, confirmed: bool
) -> tuple[int, float]:
    """Enter SWING on the rise through swing entry, with toe off dated from the dip;
    report it now if ``confirmed``, else once the swing has held."""
    t_toe_off = _dip_date(state, params)
    state[_S_T_TOE_OFF] = t_toe_off
    if (
        not confirmed
        and math.isnan(state[_S_T_PRE_SWING])
        and state[_S_DIP_VALUE] > -SETTLE_FLOOR_RAD_S
    ):
        # A swing from stance whose dip stayed within the stance band: no push-off to
        # date it from (a noise-level dip's rise crosses its fraction at once, up to
        # 280 ms before the foot moves): it starts where the signal left the band.
        # Only the date reported moves: the machine itself runs on the dip's date.
        t_toe_off = max(t_toe_off, state[_S_T_RISE])
    state[_S_T_TOE_OFF_REPORTED] = t_toe_off
    _enter(state, events.SWING, t_s, t_c, g)  # the dip is kept for the walker's mean
    if confirmed:
        return _confirm_swing(state, params)
    state[_S_CONFIRMED] = 0.0
    state[_S_HELD] = 0.0
    state[_S_RUN] = 0.0
    return events.NONE, np.nan


@kernel
def _confirm_swing(state: np.ndarray, params: np.ndarray) -> tuple[int, float]:
    """The swing in progress counts: report its toe off and learn from it."""
    t_toe_off = state[_S_T_TOE_OFF]
    weight = params[_P_AVG_WEIGHT]
    state[_S_CONFIRMED] = 1.0
    state[_S_LOCKED] = 1.0
    state[_S_STRIDE_AVERAGE] = stride_average(
        state[_S_STRIDE_AVERAGE], t_toe_off - state[_S_T_LAST_TOE_OFF], weight
    )
    state[_S_DIP_AVERAGE] = running_mean(
        state[_S_DIP_AVERAGE], min(state[_S_DIP_VALUE], 0.0), weight
    )
    state[_S_T_LAST_TOE_OFF] = t_toe_off
    return events.TOE_OFF, state[_S_T_TOE_OFF_REPORTED]


@kernel
def _stance(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float
) -> tuple[int, float]:
    """STANCE: lock on when quiet; a pre-swing on a push-off, or a swing straight from
    stance (unconfirmed) on a rise without one."""
    if state[_S_LOCKED] == 0.0 and t_s - state[_S_T_QUIET_SINCE] >= params[_P_LOCK_QUIET_S]:
        state[_S_LOCKED] = 1.0
    _track_dip(state, params, t_c, g)
    rested = t_c - state[_S_T_LAST_TOE_OFF] >= _refractory_s(state, params)
    below = g < _pre_swing_threshold(state, params)
    if (
        below
        and rested
        and t_s - state[_S_T_LAST_BELOW] >= params[_P_MIN_STANCE_S]
        and t_s - state[_S_T_LAST_HIGH] >= params[_P_GUARD_S]
    ):
        _enter(state, events.PRE_SWING, t_s, t_c, g)
        state[_S_T_PRE_SWING] = t_s
    elif math.isfinite(state[_S_T_HOLD]) and rested:
        state[_S_T_PRE_SWING] = np.nan
        return _start_swing(state, params, t_s, t_c, g, False)
    if below:
        state[_S_T_LAST_BELOW] = t_s
    return events.NONE, np.nan


@kernel
def _pre_swing(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float
) -> tuple[int, float]:
    """PRE_SWING: follow the dip; toe off once the signal rises into swing."""
    _track_dip(state, params, t_c, g)
    if g < _pre_swing_threshold(state, params):
        state[_S_T_LAST_BELOW] = t_s
    push_off = t_s - state[_S_T_PRE_SWING] >= params[_P_MIN_PUSH_OFF_S]
    if g >= _swing_entry(state, params, push_off):
        return _start_swing(state, params, t_s, t_c, g, push_off)
    if t_c - state[_S_DIP_T] > params[_P_PRE_SWING_TIMEOUT_S]:
        _enter(state, events.STANCE, t_s, t_c, g)
    return events.NONE, np.nan


@kernel
def _swing_entry(state: np.ndarray, params: np.ndarray, push_off: bool) -> float:
    """The level whose rise enters swing: ``swing_entry_rad_s``; after a push-off, with
    ``swing_entry_fraction``, that fraction of the walker's mean swing peak when lower,
    never below the hold level (a weak leg's swing may never reach the fixed level)."""
    entry = params[_P_SWING_ENTRY]
    fraction = params[_P_ENTRY_FRACTION]
    if push_off and fraction > 0.0 and state[_S_PEAK_AVERAGE] > 0.0:
        entry = min(entry, max(params[_P_HOLD_LEVEL], fraction * state[_S_PEAK_AVERAGE]))
    return entry


@kernel
def _unconfirmed_swing(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float
) -> tuple[int, float]:
    """SWING not yet reported: it counts once the signal has been above the hold level for
    the hold time in all and its peak has reached the swing-peak threshold, and was none
    if the signal falls to zero or stays below the hold level for the hold time first."""
    if g > state[_S_EXT_VALUE]:
        state[_S_EXT_VALUE] = g
        state[_S_EXT_T] = t_c
    if math.isnan(state[_S_T_HOLD]):
        state[_S_HELD] += state[_S_RUN]
        state[_S_RUN] = 0.0
        if g <= 0.0 or t_s - state[_S_T_LAST_HIGH] > params[_P_HOLD_S]:
            _enter(state, events.STANCE, t_s, t_c, g)
            _forget_dip(state, t_c, g)
        return events.NONE, np.nan
    state[_S_RUN] = t_s - state[_S_T_HOLD]
    if state[_S_HELD] + state[_S_RUN] >= params[_P_HOLD_S] and state[_S_EXT_VALUE] >= max(
        params[_P_MIN_PEAK], params[_P_PEAK_FRACTION] * state[_S_PEAK_AVERAGE]
    ):
        return _confirm_swing(state, params)
    return events.NONE, np.nan


@kernel
def _swing_peak(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float
) -> tuple[int, float]:
    """SWING before mid swing: track the peak; mid swing once the signal has fallen from
    it (the toe off was reported: the swing goes on to its heel strike)."""
    peak = state[_S_EXT_VALUE]
    if g > peak:
        state[_S_EXT_VALUE] = g
        state[_S_EXT_T] = t_c
        return events.NONE, np.nan
    if g >= params[_P_CONFIRM_FRACTION] * peak or t_s - state[_S_T_ENTER] < params[_P_HOLD_S]:
        return events.NONE, np.nan
    state[_S_PEAK_AVERAGE] = running_mean(state[_S_PEAK_AVERAGE], peak, params[_P_AVG_WEIGHT])
    t_mid_swing = state[_S_EXT_T]
    state[_S_LOCKED] = 1.0
    state[_S_DESCENT] = 1.0
    state[_S_T_MID] = t_mid_swing
    state[_S_T_ZERO] = t_c if g < 0.0 else np.nan
    state[_S_EXT_VALUE] = g
    state[_S_EXT_T] = t_c
    state[_S_SETTLE_ANCHOR] = g
    state[_S_T_SETTLE] = t_s
    state[_S_CROSS_T] = np.nan
    state[_S_HS_LEVEL] = -params[_P_HS_LEVEL_FRACTION] * peak
    state[_S_HS_PEAK] = peak
    level = state[_S_HS_LEVEL]
    if params[_P_HS_BY_LEVEL] == 1.0 and g < level:
        # Fell through the heel-strike level on this very sample: date it now, report
        # it at the next sample (one event per sample).
        state[_S_CROSS_T] = _crossing(state, t_c, g, level)
    return events.MID_SWING, t_mid_swing


@kernel
def _deadline_passed(state: np.ndarray, params: np.ndarray, t_s: float) -> bool:
    """Whether the walker's usual time from the end of the swing's forward rotation (or,
    without one, from mid swing) to heel strike is well past."""
    if not math.isnan(state[_S_T_ZERO]):
        wait = state[_S_ZERO_AVERAGE] + params[_P_HS_MARGIN_S]
        return t_s - state[_S_T_ZERO] >= wait
    learnt = state[_S_HS_WAIT_AVERAGE]
    wait = params[_P_HS_WAIT_FACTOR] * learnt if learnt > 0.0 else params[_P_HS_WAIT_S]
    return t_s - state[_S_T_MID] >= wait


@kernel
def _settled(state: np.ndarray, params: np.ndarray, t_s: float, g: float) -> bool:
    """Follow how long the signal has stayed within the settle band (a fraction of the
    stride's swing peak, at least ``SETTLE_FLOOR_RAD_S``); True once it has for
    ``settle_ms`` at a stance level (quiet, not swinging forward)."""
    band = max(SETTLE_FLOOR_RAD_S, params[_P_SETTLE_FRACTION] * state[_S_HS_PEAK])
    if abs(g - state[_S_SETTLE_ANCHOR]) > band:
        state[_S_SETTLE_ANCHOR] = g
        state[_S_T_SETTLE] = t_s
    return g <= params[_P_QUIET] and t_s - state[_S_T_SETTLE] >= params[_P_SETTLE_S]


@kernel
def _terminal_swing(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float
) -> tuple[int, float]:
    """SWING after mid swing: heel strike by level or by minimum and rise, or, past the
    walker's deadline, at the minimum once the signal has risen from it or settled."""
    t_heel_strike = np.nan
    learn = True
    if params[_P_HS_BY_LEVEL] == 1.0:
        level = state[_S_HS_LEVEL]
        if not math.isnan(state[_S_CROSS_T]):
            t_heel_strike = state[_S_CROSS_T]
        elif g < level:
            t_heel_strike = _crossing(state, t_c, g, level)
    elif (
        state[_S_EXT_VALUE] < params[_P_HS_MAX]
        and g - state[_S_EXT_VALUE] >= params[_P_HS_RISE]
    ):
        t_heel_strike = state[_S_EXT_T]
    if g < state[_S_EXT_VALUE]:
        state[_S_EXT_VALUE] = g
        state[_S_EXT_T] = t_c
    if g < 0.0 and math.isnan(state[_S_T_ZERO]):
        state[_S_T_ZERO] = _crossing(state, t_c, g, 0.0)
    settled = _settled(state, params, t_s, g)
    if math.isnan(t_heel_strike) and _deadline_passed(state, params, t_s):
        risen = g - state[_S_EXT_VALUE] >= params[_P_HS_RISE]
        deep = state[_S_EXT_VALUE] < min(params[_P_HS_MAX], 0.5 * state[_S_HS_LEVEL])
        if settled or (deep and risen):
            t_heel_strike = state[_S_EXT_T]
            learn = False
    if math.isnan(t_heel_strike):
        return events.NONE, np.nan
    if learn:
        weight = params[_P_AVG_WEIGHT]
        state[_S_HS_WAIT_AVERAGE] = running_mean(
            state[_S_HS_WAIT_AVERAGE], t_heel_strike - state[_S_T_MID], weight
        )
        if not math.isnan(state[_S_T_ZERO]):
            state[_S_ZERO_AVERAGE] = running_mean(
                state[_S_ZERO_AVERAGE], max(t_heel_strike - state[_S_T_ZERO], 0.0), weight
            )
    _enter(state, events.LOADING, t_s, t_heel_strike, g)
    return events.HEEL_STRIKE, t_heel_strike


@kernel
def _machine(
    state: np.ndarray, params: np.ndarray, t_s: float, t_c: float, g: float
) -> tuple[int, float]:
    """Advance the state machine by one sample; return (event code, event time).

    ``g`` is the smoothed signal and ``t_c`` the time it belongs to (the window centre);
    extremum times are taken there, timeouts run on the sample time ``t_s``.
    """
    if abs(g) <= params[_P_QUIET]:
        if state[_S_T_QUIET_SINCE] == np.inf:
            state[_S_T_QUIET_SINCE] = t_s
    else:
        state[_S_T_QUIET_SINCE] = np.inf
    if g > SETTLE_FLOOR_RAD_S >= state[_S_PREV_G]:
        state[_S_T_RISE] = _crossing(state, t_c, g, SETTLE_FLOOR_RAD_S)
    if g < params[_P_HOLD_LEVEL]:
        state[_S_T_HOLD] = np.nan
    elif math.isnan(state[_S_T_HOLD]):
        state[_S_T_HOLD] = t_s

    phase = int(state[_S_PHASE])
    if phase == events.STANCE:
        result = _stance(state, params, t_s, t_c, g)
    elif phase == events.PRE_SWING:
        result = _pre_swing(state, params, t_s, t_c, g)
    elif phase == events.SWING:
        if t_s - state[_S_T_ENTER] > params[_P_MAX_SWING_S]:
            _restart(state)
            result = (events.NONE, np.nan)
        elif state[_S_CONFIRMED] == 0.0:
            result = _unconfirmed_swing(state, params, t_s, t_c, g)
        elif state[_S_DESCENT] == 0.0:
            result = _swing_peak(state, params, t_s, t_c, g)
        else:
            result = _terminal_swing(state, params, t_s, t_c, g)
    else:
        # LOADING (the extremum time holds the heel strike).
        if g < _pre_swing_threshold(state, params):
            state[_S_T_LAST_BELOW] = t_s
        if t_s - state[_S_EXT_T] >= params[_P_LOADING_S]:
            _enter(state, events.STANCE, t_s, t_c, g)
            _forget_dip(state, t_c, g)
        result = (events.NONE, np.nan)
    if g >= params[_P_HOLD_LEVEL]:
        state[_S_T_LAST_HIGH] = t_s
    return result


@kernel
def _reported_phase(state: np.ndarray, params: np.ndarray, t_s: float) -> int:
    """The phase the detector reports: a swing not yet confirmed, or a pre-swing younger
    than ``pre_swing_hold_ms``, is still stance."""
    phase = int(state[_S_PHASE])
    if phase == events.SWING and state[_S_CONFIRMED] == 0.0:
        return events.STANCE
    if phase == events.PRE_SWING and t_s - state[_S_T_PRE_SWING] < params[_P_PRE_SWING_HOLD_S]:
        return events.STANCE
    return phase


@kernel
def _count_stride(state: np.ndarray, base: int, event: int, t_event: float) -> None:
    """Follow one machine's strides: at each toe off after a heel strike, one stride more
    and its swing fraction (toe off to heel strike over toe off to toe off); the time of
    a stride within ``SKIPPED`` times the stride before it (either way) and no longer than
    ``SLOWEST_STRIDE_S`` adds to its steady time (a stride that holds one the machine
    missed is twice as long; one that holds two, three times); a counted stride adds the
    angle of its swing (``_track_swing_angle``) to the machine's sum."""
    if event == events.HEEL_STRIKE:
        state[base + 3] = t_event
        state[base + 9] = state[base + 8]
    elif event == events.TOE_OFF:
        t_to, t_hs = state[base + 2], state[base + 3]
        stride = t_event - t_to
        last = state[base + 6]
        state[base + 6] = 0.0
        if t_to < t_hs < t_event and stride < MAX_STRIDE_S:
            state[base] += 1.0
            state[base + 1] += (t_hs - t_to) / stride
            state[base + 7] += state[base + 9]
            state[base + 6] = stride
            if math.isnan(state[base + 5]):
                state[base + 5] = t_to
            if (
                last > 0.0
                and last < SKIPPED * stride
                and stride < SKIPPED * last
                and stride <= SLOWEST_STRIDE_S
            ):
                state[base + 4] += stride
        state[base + 2] = t_event


@kernel
def _track_swing_angle(
    state: np.ndarray, base: int, swinging: bool, was_swinging: bool, dt_s: float,
    value: float,
) -> None:
    """Integrate one machine's signal (in its own sign) over the swing in progress: the
    angle the swing turns, from where the machine entered SWING to its heel strike; and
    keep the widest swing the machine has begun, whether it became a stride or not (a
    weak leg's first swings stay unconfirmed below the swing-peak threshold, yet they
    turn the leg further than the mirror copy's "swings", its push-offs)."""
    if swinging and not was_swinging:
        state[base + 8] = 0.0
    elif swinging and dt_s > 0.0:
        state[base + 8] += value * dt_s
        state[base + 10] = max(state[base + 10], state[base + 8])


@kernel
def _followed(state: np.ndarray, base: int, t_s: float) -> bool:
    """Whether one machine's steady strides (at ``base``) add up to at least
    ``MOUNT_COVERAGE`` of the time since the first stride either machine counted began."""
    first = state[base + 5]
    other = state[_M_MAIN + _M_MIRROR - base + 5]
    if not math.isnan(other) and (math.isnan(first) or other < first):
        first = other
    return t_s > first and state[base + 4] >= MOUNT_COVERAGE * (t_s - first)


@kernel
def _wins(state: np.ndarray, base: int, other: int, needed: float, t_s: float) -> bool:
    """Whether the machine at ``base`` sees the signal the right way round against the
    one at ``other`` (``_judge_mounting`` says why): ``needed`` strides and the other at
    least one (or, the other none, twice that many with a swing fraction below a half),
    a swing fraction ``MOUNT_MARGIN`` below the other's, swings at least as wide on
    average (the other without strides: as its widest swing begun), and strides that
    follow the walk."""
    mine, theirs = state[base], state[other]
    fraction = state[base + 1] / mine if mine > 0.0 else 1.0
    their_fraction = state[other + 1] / theirs if theirs > 0.0 else 1.0
    # Mean swing angle; a machine without strides: the widest swing it has begun.
    angle = state[base + 7] / mine if mine > 0.0 else state[base + 10]
    their_angle = state[other + 7] / theirs if theirs > 0.0 else state[other + 10]
    return (
        mine >= needed
        and fraction + MOUNT_MARGIN <= their_fraction
        and (theirs > 0.0 or (mine >= 2.0 * needed and fraction < 0.5))
        and angle >= their_angle
        and _followed(state, base, t_s)
    )


@kernel
def _judge_mounting(state: np.ndarray, needed: float, t_s: float) -> None:
    """Decide the sign from the two machines' strides: a swing is shorter than a stance,
    so the machine whose swing fraction is ``MOUNT_MARGIN`` below the other's sees the
    signal the right way round. Decided once that machine has walked ``needed`` strides
    and the other at least one, or (the other none) twice that many with a swing fraction
    below a half, and its strides follow the walk (``_followed``); two fractions closer
    than the margin decide nothing, nor do a few strides scattered over the walk. The
    winner's swings must also turn the leg at least as far, on average, as the other's
    (or, the other without strides, as the widest swing the other has begun): a swing is
    the stride's widest rotation, and the mirror copy's "swings" are push-offs and
    heel-strike dips, which may be as fast as the swing or faster, and shorter (a leg
    whose push-off dip outweighs its swing peak, or a foot, whose push-off and slap
    outrun its swing, docs/detection.md)."""
    verdict = CHECKING
    if _wins(state, _M_MAIN, _M_MIRROR, needed, t_s):
        verdict = MOUNTED
    elif _wins(state, _M_MIRROR, _M_MAIN, needed, t_s):
        verdict = FLIPPED
    if verdict != CHECKING:
        state[_M_VERDICT] = verdict
        state[_M_T_VERDICT] = t_s


@kernel
def gyro_step(
    state: np.ndarray, params: np.ndarray, t_s: float, gyro_rad_s: float
) -> tuple[int, int, float]:
    """Process one gyroscope sample; return (phase, event code, estimated event time).

    ``state`` (from ``new_state``) is updated in place; ``params`` come from
    ``make_params``. The event code is ``Event.NONE`` (and the time NaN) when no event
    became known at this sample. Phase and event are the integer values of ``Phase`` and
    ``Event``. Until the mounting check has found the sign right the phase is UNKNOWN
    (events are reported: they are estimates, the phase is what stimulates).
    """
    core = state[:_CORE]
    saturated = abs(gyro_rad_s) >= params[_P_SATURATION]
    missing = math.isnan(gyro_rad_s)
    gap_too_long = t_s - state[_S_T_LAST_GOOD] > params[_P_MISSING_S]
    if missing or saturated:
        if gap_too_long:
            _restart(core)
            _restart(state[_S_MIRROR:])
            return events.UNKNOWN, events.NONE, np.nan
        if missing:
            return _trusted_phase(state, params, t_s), events.NONE, np.nan
    else:
        if gap_too_long:
            _restart(core)
            _restart(state[_S_MIRROR:])
        state[_S_T_LAST_GOOD] = t_s
    t_c, smoothed = _smooth(core, params[_P_SMOOTHING_S], t_s, gyro_rad_s)
    was_swinging = core[_S_PHASE] == events.SWING
    dt_s = t_c - state[_S_PREV_T]  # NaN after a restart: no angle added
    event, t_event = _machine(core, params, t_s, t_c, smoothed)
    state[_S_PREV_T] = t_c
    state[_S_PREV_G] = smoothed
    if params[_P_MOUNT_STRIDES] > 0.0 and state[_M_VERDICT] == CHECKING:
        mirror = state[_S_MIRROR:]
        mirror_was_swinging = mirror[_S_PHASE] == events.SWING
        mirror_event, mirror_t = _machine(mirror, params, t_s, t_c, -smoothed)
        mirror[_S_PREV_T] = t_c
        mirror[_S_PREV_G] = -smoothed
        _track_swing_angle(
            state, _M_MAIN, core[_S_PHASE] == events.SWING, was_swinging, dt_s, smoothed
        )
        _track_swing_angle(
            state, _M_MIRROR, mirror[_S_PHASE] == events.SWING, mirror_was_swinging, dt_s,
            -smoothed,
        )
        # Strides are measured with toe off dated from the dip, in both copies: the
        # swing fractions the check was validated on (docs/detection.md).
        t_counted = core[_S_T_TOE_OFF] if event == events.TOE_OFF else t_event
        if mirror_event == events.TOE_OFF:
            mirror_t = mirror[_S_T_TOE_OFF]
        _count_stride(state, _M_MAIN, event, t_counted)
        _count_stride(state, _M_MIRROR, mirror_event, mirror_t)
        _judge_mounting(state, params[_P_MOUNT_STRIDES], t_s)
    if not _trusted(state, params):
        return _trusted_phase(state, params, t_s), events.NONE, np.nan
    return _reported_phase(core, params, t_s), event, t_event


@kernel
def _trusted(state: np.ndarray, params: np.ndarray) -> bool:
    """Locked on, and the gyroscope's sign checked (or no check asked for)."""
    checked = params[_P_MOUNT_STRIDES] == 0.0 or state[_M_VERDICT] == MOUNTED
    return state[_S_LOCKED] == 1.0 and checked


@kernel
def _trusted_phase(state: np.ndarray, params: np.ndarray, t_s: float) -> int:
    """What the detector may say: the state machine's phase once trusted; before, UNKNOWN
    (not locked on, or the sign found flipped) or STANCE while the mounting check runs
    (nothing gait-triggered starts, no events; modes that ignore the gait run)."""
    if _trusted(state, params):
        return _reported_phase(state, params, t_s)
    if state[_S_LOCKED] == 0.0 or state[_M_VERDICT] == FLIPPED:
        return events.UNKNOWN
    return events.STANCE


#: What each verdict means for the user, for status lines, summaries and warnings.
MOUNTING_TEXT = {
    CHECKING: "checking the gyroscope's sign: nothing gait-triggered is stimulated until "
    "it has seen three strides",
    MOUNTED: "gyroscope sign checked",
    FLIPPED: "gyroscope sign flipped (worn upside down or on the other leg): no "
    "stimulation; turn the sensor round (fes detect: --invert)",
    UNDECIDED: "gyroscope sign undecided: the strides found either way round do not tell "
    "which is right (a leg that swings little, or an irregular walk): nothing "
    "gait-triggered is stimulated; check that the sensor is worn as shown",
}


@kernel
def toe_off_under_way(state: np.ndarray, params: np.ndarray) -> float:
    """The date a trusted gyroscope gives the toe off it is on its way to report, NaN
    when none is under way: in its pre-swing (the push-off seen, the swing not yet
    entered) the dip's date so far, in a swing not yet confirmed the date it will report.
    The fused detector waits for this toe off rather than report the heel's estimate of
    it (an untrusted gyroscope reports no toe off: nothing to wait for)."""
    if not _trusted(state, params):
        return np.nan
    core = state[:_CORE]
    if core[_S_PHASE] == events.PRE_SWING:
        return _dip_date(core, params)
    if core[_S_PHASE] == events.SWING and core[_S_CONFIRMED] == 0.0:
        return float(core[_S_T_TOE_OFF_REPORTED])
    return np.nan


def checks_mounting(params: np.ndarray) -> bool:
    """Whether a gyroscope parameter array asks for the mounting check."""
    return params.size == N_PARAMS and params[_P_MOUNT_STRIDES] > 0.0


def mounting(state: np.ndarray, params: np.ndarray) -> int:
    """The mounting check's verdict in a gyroscope state: ``CHECKING``, ``MOUNTED`` or
    ``FLIPPED``; ``UNDECIDED`` while it checks on after a machine has walked the strides
    the check needs (``params``: ``make_params``)."""
    verdict = int(state[_M_VERDICT])
    if verdict == CHECKING and max(mounting_strides(state)) >= params[_P_MOUNT_STRIDES]:
        return UNDECIDED
    return verdict


def mounting_strides(state: np.ndarray) -> tuple[int, int]:
    """Strides seen so far the right way round and with the sign flipped."""
    return int(state[_M_MAIN]), int(state[_M_MIRROR])


#: The verdicts as ``mounting_block`` names them.
VERDICT_NAMES = {CHECKING: "checking", MOUNTED: "mounted", FLIPPED: "flipped"}


def mounting_block(state: np.ndarray, params: np.ndarray) -> dict[str, object]:
    """The mounting check of a gyroscope state, for a trial's summary (an undecided check
    is still "checking", its message says why)."""
    decided = float(state[_M_T_VERDICT])
    return {
        "verdict": VERDICT_NAMES[int(state[_M_VERDICT])],
        "decided_s": None if math.isnan(decided) else decided,
        "strides": list(mounting_strides(state)),
        "message": MOUNTING_TEXT[mounting(state, params)],
    }


def missing_limit_s(config: GyroDetectorConfig) -> float:
    """Longest gap in the data that holds the phase, in seconds."""
    return config.unknown_after_missing_ms / 1000.0


#: The shank configuration: the field defaults, and what differs from them (chosen on the
#: Marpino walkers, each scored with the setting chosen without them: docs/detection.md).
SHANK = GyroDetectorConfig(
    # A real shank turns backward through stance (-1.1 to -1.3 rad/s median) and dips to
    # -2..-4 rad/s at push-off: start the pre-swing on the push-off, below the stance
    # plateau (the walker's own dip, once known), after a stance that was above it.
    pre_swing_fraction=0.5,
    min_stance_ms=100.0,
    # The toe-off minimum is broad; the toes leave the ground on its rising flank.
    toe_off_rise_fraction=0.8,
    # The last step of a walk swings at a third of the others' peak.
    swing_peak_fraction=0.2,
    # A weak leg swings at 0.7-1.5 rad/s, below swing_entry_rad_s: after a
    # push-off, enter swing from 0.6 of the walker's own mean peak (chosen with the
    # Moving Reality walker pp03's right shank in view: docs/detection.md).
    swing_entry_fraction=0.6,
)

#: The foot (instep or shoe) configuration. Chosen on the Voisard et al. 2023
#: recordings, each walker scored with the setting chosen without them
#: (docs/detection.md), and why each value differs:
FOOT = GyroDetectorConfig(
    # Push-off drives the foot to -5..-12 rad/s, and its stance is flat (near 0) but
    # rings for up to ~150 ms after the slap: enter pre-swing only well below zero, and
    # only after a longer loading phase (a fast walker's foot starts to roll off soon
    # after it lands).
    loading_time_ms=200.0,
    # The swing of the foot has two or three humps: judge its peak only once the
    # signal has fallen well below it.
    mid_swing_confirm_fraction=0.3,
    # Event dating on the foot curve (see the module docstring).
    heel_strike_estimate="level",
    heel_strike_level_fraction=0.45,
    toe_off_rise_fraction=0.7,
    # Turning and stopping steps swing at a third of the others' peak.
    swing_peak_fraction=0.3,
)
