"""The watchdog's per-sample decisions, as kernels a compiled loop can call.

``watchdog_observe`` (sensor and phase health) and ``watchdog_submit`` (check a batch of
command rows, write what to deliver) are every rule of the watchdog that numbers can
express; the ``Watchdog`` class (``controller.safety.watchdog``) is the shell around
them: it turns command objects into rows, adds the rules that numbers cannot express
(a command with fields the watchdog does not know, a channel that is not an int), runs
the wall-clock monitor, and turns the kernels' log records into ``Intervention``s. The
rules, their order and their policies are those of ``docs/safety.md``.

Arrays (``controller.safety.layout``): ``limits``, ``state`` and ``log``; command rows
are ``(n, 7)`` in the layout of ``controller.ports.COMMAND_FIELDS``. Every intervention
is appended to ``log`` as a record; ``state[S_LOG_COUNT]`` counts them until the shell
drains them. A submit needs ``n + 1`` free rows (a clamp per command, or one fault);
with fewer the kernel latches (``intervention_log_full``) rather than decide without a
record. A latched watchdog refuses everything; a refusal that finds no free row is
counted in ``state[S_UNLOGGED]``.
"""

from __future__ import annotations

import math

from controller.kernels import Floats, kernel
from controller.ports import (
    COMMAND_ROW_SIZE,
    ROW_AMPLITUDE_MA,
    ROW_ANODIC_WIDTH_RATIO,
    ROW_CHANNEL,
    ROW_FREQUENCY_HZ,
    ROW_INTERPHASE_GAP_US,
    ROW_ON,
    ROW_PULSE_WIDTH_US,
)
from controller.safety.channels import (
    allowed_charge_uc,
    channel_base,
    continuous_on_s,
    deliver,
    duty,
    force_off,
    is_on,
)
from controller.safety.layout import (
    ALL_CHANNELS,
    C_AMPLITUDE,
    C_CHARGE,
    C_REFUSAL_LOGGED,
    KIND_CLAMP,
    KIND_LATCH,
    KIND_REFUSED,
    L_CHANNEL,
    L_DELIVERED,
    L_FAULT_RULE,
    L_KIND,
    L_OTHER,
    L_REQUESTED,
    L_RULE,
    L_SOURCE,
    L_T,
    L_VALUE,
    S_CHANNELS,
    S_CLAMPED,
    S_FAULT_RULE,
    S_FAULTS,
    S_FIRST_OBSERVED,
    S_LAST_GOOD,
    S_LAST_T,
    S_LATCHED,
    S_LOG_COUNT,
    S_UNKNOWN_SINCE,
    S_UNLOGGED,
    SOURCE_HELD_ON,
    SOURCE_LOG,
    SOURCE_NO_SENSOR,
    SOURCE_TIME,
)
from controller.safety.pulse_math import (
    charge_per_phase_uc,
    first_max,
    first_pulse_breach,
    recovery_phase,
)
from controller.safety.rules import (
    FAULT_LATCHED,
    INTERVENTION_LOG_FULL,
    MAX_CHARGE_RISE_UC_PER_S,
    MAX_CONTINUOUS_ON_MS,
    MAX_DUTY_CYCLE,
    MAX_TOTAL_AMPLITUDE_MA,
    MAX_UNKNOWN_PHASE_MS,
    NEGATIVE_VALUE,
    NO_RULE,
    NON_FINITE_TIME,
    NON_FINITE_VALUE,
    PULSE_RULES,
    SENSOR_TIMEOUT_MS,
    TIME_NOT_INCREASING,
    UNKNOWN_CHANNEL,
)
from controller.safety.sensors import (
    DEFAULT_SENSORS,
    GYRO_SENSOR,
    HEEL_FORCE_SENSOR,
    HEEL_SWITCH_SENSOR,
    SENSORS,
)

#: A gyroscope reading beyond this is not a measurement (no MEMS gyro reaches it).
SENSOR_MAX_ABS_GYRO_RAD_S = 100.0
#: A heel force beyond this is not a walker's (10 kN: about seven times the body weight
#: of a 150 kg walker; walking loads the heel with 1-1.5 times body weight).
SENSOR_MAX_ABS_HEEL_FORCE_N = 10000.0
#: Relative slack of the rise check, so that a ramp exactly at the limit is not clamped
#: by floating-point rounding.
RISE_TOLERANCE = 1e-9
#: Bits of ``observe_sample``'s answer.
STOP, SAMPLE_OK = 1, 2

# A rule broken, as the kernels pass it around: (rule, channel, source, value, other).
_NONE = (NO_RULE, 0, 0.0, 0.0, 0.0)


# ---- the two entry points of a compiled loop ------------------------------------------


@kernel
def watchdog_observe(
    limits: Floats, state: Floats, log: Floats, t_s: float, gyro_rad_s: float,
    heel: float, phase_known: bool,
) -> int:
    """Track the sensor sample at ``t_s`` and whether the detector knows the phase (as
    ``Watchdog.observe``); 1 if a fault latched now and every output must stop, else 0.
    ``heel`` is the heel reading the detector reads: the switch (0/1), or the force (N)
    when ``limits`` say the heel sensor is a force sensor (``sample_valid``)."""
    return observe_sample(
        limits, state, log, t_s, gyro_rad_s, heel, phase_known
    ) & STOP


@kernel
def watchdog_submit(
    limits: Floats, state: Floats, log: Floats, t_s: float, requested: Floats,
    delivered: Floats,
) -> int:
    """Check the command rows ``requested`` at trial time ``t_s`` (as
    ``Watchdog.submit``) and write what to deliver into ``delivered`` (a refused command
    is "off" on its channel). 1 when every output must stop (a fault latched now or
    before), else 0: then apply ``delivered``."""
    return submit_rows(limits, state, log, t_s, requested, delivered,
                       requested.shape[0], NO_RULE)


# ---- what the shell calls -------------------------------------------------------------


@kernel
def sample_valid(sensors: float, t_s: float, gyro_rad_s: float, heel: float) -> bool:
    """A sample the controller can act on: a finite time and a valid reading of every
    sensor in ``sensors`` (the ``sensors.SENSORS`` slot of the limits: those the detector
    reads), whatever the others read: a plausible gyroscope reading (not NaN, not beyond
    any sensor's range); a heel switch (``heel``) that is 0 or 1; a heel force
    (``heel``, N) that is finite and within any walker's range. A ``sensors`` that is
    not such a sum (a corrupted array) requires the gyroscope and the heel switch."""
    if not math.isfinite(t_s):
        return False
    need = int(sensors) if 0.0 < sensors <= 7.0 else DEFAULT_SENSORS
    if need & GYRO_SENSOR and not abs(gyro_rad_s) <= SENSOR_MAX_ABS_GYRO_RAD_S:
        return False  # (NaN compares false)
    if need & HEEL_SWITCH_SENSOR and not (heel == 0.0 or heel == 1.0):
        return False
    return not (need & HEEL_FORCE_SENSOR and not abs(heel) <= SENSOR_MAX_ABS_HEEL_FORCE_N)


@kernel
def observe_sample(
    limits: Floats, state: Floats, log: Floats, t_s: float, gyro_rad_s: float,
    heel: float, phase_known: bool,
) -> int:
    """``watchdog_observe``, also saying whether the sample was valid (``SAMPLE_OK``).

    Sensor and phase health are tracked also while latched, so that a ``reset`` knows
    how long the sensor has been silent."""
    if not math.isfinite(t_s):
        return 0  # judged at the next sample with a time; the monitor meanwhile
    if math.isnan(state[S_FIRST_OBSERVED]):
        state[S_FIRST_OBSERVED] = t_s
    # The gap before this sample counts even if this one is good: silence is a fault.
    silent, gap_ms = _sensor_gap(limits, state, t_s)
    answer = 0
    if sample_valid(limits[SENSORS], t_s, gyro_rad_s, heel):
        state[S_LAST_GOOD] = t_s
        answer = SAMPLE_OK
    if phase_known:
        state[S_UNKNOWN_SINCE] = math.nan
    elif math.isnan(state[S_UNKNOWN_SINCE]):
        state[S_UNKNOWN_SINCE] = t_s
    if state[S_LATCHED] != 0.0:
        return answer
    # No command rows here: the faults concern no row (their source is < 0), so ``log``
    # stands in for the rows argument, never read.
    if silent:
        _latch_logged(state, log, t_s, (SENSOR_TIMEOUT_MS, ALL_CHANNELS, SOURCE_NO_SENSOR,
                                        gap_ms, 0.0), log)
        return answer | STOP
    channel, unknown_ms = _unknown_phase(limits, state, t_s)
    if channel >= 0:
        _latch_logged(state, log, t_s, (MAX_UNKNOWN_PHASE_MS, channel, SOURCE_HELD_ON,
                                        unknown_ms, 0.0), log)
        return answer | STOP
    return answer


@kernel
def submit_rows(
    limits: Floats, state: Floats, log: Floats, t_s: float, requested: Floats,
    delivered: Floats, invalid_at: int, invalid_rule: int,
) -> int:
    """``watchdog_submit`` for the shell, which may have found row ``invalid_at`` to
    break ``invalid_rule`` (a rule numbers cannot express; ``invalid_at`` = n: none):
    the rows before it are checked first, so the first rule broken wins as it would
    command by command."""
    n = requested.shape[0]
    t_log = t_s if math.isfinite(t_s) else first_max(state[S_LAST_T], 0.0)
    if state[S_LATCHED] != 0.0:
        _refuse_all(state, log, t_log, requested, delivered, True)
        return 1
    room = log.shape[0] - state[S_LOG_COUNT]
    if room < n + 1:  # no room to record what this submit may do: stop, never guess
        return _latch_and_refuse(state, log, t_log, (INTERVENTION_LOG_FULL, ALL_CHANNELS,
                                                     SOURCE_LOG, room, float(n)),
                                 requested, delivered)
    breach = _time_breach(state, t_s)
    for i in range(min(invalid_at, n)):
        if breach[0] != NO_RULE:
            break
        breach = _row_breach(limits, state, requested, i)
    if breach[0] == NO_RULE and invalid_at < n:
        breach = (invalid_rule, ALL_CHANNELS, float(invalid_at), 0.0, 0.0)
    if breach[0] != NO_RULE:
        return _latch_and_refuse(state, log, t_log, breach, requested, delivered)
    clamps = 0
    for i in range(n):
        clamps += _limit_rise_and_deliver(limits, state, log, t_s, requested, delivered, i,
                                          clamps)
    state[S_LAST_T] = t_s
    breach = _held_breach(limits, state, t_s, requested)
    if breach[0] != NO_RULE:  # the clamp records written beyond the count are dropped
        return _latch_and_refuse(state, log, t_log, breach, requested, delivered)
    state[S_LOG_COUNT] += clamps
    state[S_CLAMPED] += clamps
    return 0


@kernel
def latch_outputs(state: Floats, t_s: float, rule: int) -> None:
    """Latch a fault of ``rule`` at ``t_s``: every channel off, nothing delivered until
    the shell's ``reset``. (The shell calls it for the faults it finds itself.)"""
    state[S_LATCHED] = 1.0
    state[S_FAULT_RULE] = rule
    state[S_FAULTS] += 1
    for channel in range(int(state[S_CHANNELS])):
        state[channel_base(state, channel) + C_REFUSAL_LOGGED] = 0.0
    outputs_off(state, first_max(t_s, state[S_LAST_T]))


@kernel
def outputs_off(state: Floats, t_s: float) -> None:
    """Every channel off at ``t_s`` (a latch, a reset, the end of a trial)."""
    for channel in range(int(state[S_CHANNELS])):
        force_off(state, channel_base(state, channel), t_s)


@kernel
def discard_records(state: Floats, log: Floats, rows: int) -> None:
    """Forget the first ``rows`` records (the shell has converted them); records appended
    since the shell read the count move to the front."""
    count = int(state[S_LOG_COUNT])
    for r in range(rows, count):
        for c in range(log.shape[1]):
            log[r - rows, c] = log[r, c]
    state[S_LOG_COUNT] = count - rows


# ---- the rules ------------------------------------------------------------------------


@kernel
def _time_breach(state: Floats, t_s: float) -> tuple[int, int, float, float, float]:
    if not math.isfinite(t_s):
        return (NON_FINITE_TIME, ALL_CHANNELS, SOURCE_TIME, t_s, 0.0)
    if t_s <= state[S_LAST_T]:
        return (TIME_NOT_INCREASING, ALL_CHANNELS, SOURCE_TIME, t_s, state[S_LAST_T])
    return _NONE


@kernel
def _pulse_of_row(rows: Floats, i: int) -> tuple[float, float, float, float, float]:
    """The phases of the pulse a command row describes: (a1, w1, f, a2, w2)."""
    a1, w1 = rows[i, ROW_AMPLITUDE_MA], rows[i, ROW_PULSE_WIDTH_US]
    a2, w2 = recovery_phase(a1, w1, rows[i, ROW_ANODIC_WIDTH_RATIO])
    return a1, w1, rows[i, ROW_FREQUENCY_HZ], a2, w2


@kernel
def _stimulates(on: bool, a1: float, w1: float, f: float, a2: float, w2: float) -> bool:
    """Whether the output would emit charge: counted as "on" even if only one phase has
    current, which is stricter than ``StimCommand.delivers``."""
    return on and f > 0.0 and first_max(a1 * w1, a2 * w2) > 0.0


@kernel
def _row_breach(
    limits: Floats, state: Floats, requested: Floats, i: int
) -> tuple[int, int, float, float, float]:
    """The first rule command row ``i`` breaks on its own."""
    channel = requested[i, ROW_CHANNEL]
    if not (math.isfinite(channel) and channel == math.floor(channel)
            and 0.0 <= channel < state[S_CHANNELS]):
        return (UNKNOWN_CHANNEL, ALL_CHANNELS, float(i), channel, 0.0)
    ch = int(channel)
    a1, w1, f, a2, w2 = _pulse_of_row(requested, i)
    gap = requested[i, ROW_INTERPHASE_GAP_US]
    if not (math.isfinite(a1) and math.isfinite(w1) and math.isfinite(f)
            and math.isfinite(a2) and math.isfinite(w2) and math.isfinite(gap)):
        return (NON_FINITE_VALUE, ch, float(i), 0.0, 0.0)
    on = requested[i, ROW_ON] != 0.0
    if not on:
        return _NONE
    if a1 < 0.0 or w1 < 0.0 or f < 0.0 or a2 < 0.0 or w2 < 0.0 or gap < 0.0:
        return (NEGATIVE_VALUE, ch, float(i), 0.0, 0.0)
    if not _stimulates(on, a1, w1, f, a2, w2):
        return _NONE
    which, value = first_pulse_breach(limits, a1, w1, f, a2, w2, gap,
                                      requested[i, ROW_ANODIC_WIDTH_RATIO], 0)
    if which >= 0:
        return (PULSE_RULES[which], ch, float(i), value, 0.0)
    return _NONE


@kernel
def _limit_rise_and_deliver(
    limits: Floats, state: Floats, log: Floats, t_s: float, requested: Floats,
    delivered: Floats, i: int, clamps: int,
) -> int:
    """Deliver row ``i`` with its charge per phase limited by the rise rule, whatever
    rises (amplitude or pulse width): the amplitude is scaled down, both phases alike, so
    charge balance is kept; 1 if it was clamped (its record is written after the
    ``clamps`` already pending, committed by the caller), else 0."""
    for c in range(COMMAND_ROW_SIZE):
        delivered[i, c] = requested[i, c]
    ch = int(requested[i, ROW_CHANNEL])
    base = channel_base(state, ch)
    on = requested[i, ROW_ON] != 0.0
    a1, w1, f, a2, w2 = _pulse_of_row(requested, i)
    clamped = 0
    if _stimulates(on, a1, w1, f, a2, w2):
        allowed = allowed_charge_uc(state, base, t_s, limits[MAX_CHARGE_RISE_UC_PER_S])
        charge = charge_per_phase_uc(a1, w1, a2, w2)
        if not charge <= allowed * (1.0 + RISE_TOLERANCE):
            held_uc = state[base + C_CHARGE]
            if allowed <= 0.0:
                _write_off(delivered, i, float(ch))
            else:
                # Charge is linear in the leading amplitude, which scales the recovery
                # phase with it (the shape is a width ratio): still balanced.
                delivered[i, ROW_AMPLITUDE_MA] = requested[i, ROW_AMPLITUDE_MA] * (
                    allowed / charge)
            r = int(state[S_LOG_COUNT]) + clamps
            _write_record(log, r, t_s, KIND_CLAMP, (MAX_CHARGE_RISE_UC_PER_S, ch, float(i),
                                                    held_uc, charge))
            _copy_row(requested, i, log, r, L_REQUESTED)
            _copy_row(delivered, i, log, r, L_DELIVERED)
            clamped = 1
    hold_delivered(state, t_s, delivered, i)
    return clamped


@kernel
def hold_delivered(state: Floats, t_s: float, delivered: Floats, i: int) -> None:
    """The channel of row ``i`` holds what that row delivers from ``t_s`` on. (The shell
    calls it again when it has quantised a clamped row down to a stimulator's steps, so
    that the rise limit counts from what was sent.)"""
    base = channel_base(state, int(delivered[i, ROW_CHANNEL]))
    on = delivered[i, ROW_ON] != 0.0
    a1, w1, f, a2, w2 = _pulse_of_row(delivered, i)
    deliver(state, base, t_s, _stimulates(on, a1, w1, f, a2, w2),
            charge_per_phase_uc(a1, w1, a2, w2), first_max(a1, a2))


@kernel
def _last_on_row(requested: Floats) -> float:
    """The last row of ``requested`` that asks for stimulation, or ``SOURCE_HELD_ON``
    (none: what is on was on before this submit)."""
    for i in range(requested.shape[0] - 1, -1, -1):
        if requested[i, ROW_ON] != 0.0:
            return float(i)
    return SOURCE_HELD_ON


@kernel
def _requested_on(requested: Floats, channel: int) -> float:
    """The last row of ``requested`` for ``channel``, or ``SOURCE_HELD_ON`` (none)."""
    for i in range(requested.shape[0] - 1, -1, -1):
        if requested[i, ROW_CHANNEL] == channel:
            return float(i)
    return SOURCE_HELD_ON


@kernel
def _held_breach(
    limits: Floats, state: Floats, t_s: float, requested: Floats
) -> tuple[int, int, float, float, float]:
    """Limits over time, for every channel as it stands after this submit, and the sum
    of the peak currents of the channels that stimulate (their pulses may coincide:
    the watchdog does not know when within its period a back end fires each one)."""
    silent, gap_ms = _sensor_gap(limits, state, t_s)
    if silent:
        return (SENSOR_TIMEOUT_MS, ALL_CHANNELS, SOURCE_NO_SENSOR, gap_ms, 0.0)
    total_ma = 0.0
    for channel in range(int(state[S_CHANNELS])):
        base = channel_base(state, channel)
        if not is_on(state, base):
            continue
        total_ma += state[base + C_AMPLITUDE]
        on_ms = continuous_on_s(state, base, t_s) * 1000.0
        if on_ms > limits[MAX_CONTINUOUS_ON_MS]:
            return (MAX_CONTINUOUS_ON_MS, channel, _requested_on(requested, channel), on_ms, 0.0)
        cycle = duty(state, base, t_s)
        if cycle > limits[MAX_DUTY_CYCLE]:
            return (MAX_DUTY_CYCLE, channel, _requested_on(requested, channel), cycle, 0.0)
    if total_ma > limits[MAX_TOTAL_AMPLITUDE_MA]:
        return (MAX_TOTAL_AMPLITUDE_MA, ALL_CHANNELS, _last_on_row(requested), total_ma, 0.0)
    channel, unknown_ms = _unknown_phase(limits, state, t_s)
    if channel >= 0:
        return (MAX_UNKNOWN_PHASE_MS, channel, _requested_on(requested, channel),
                unknown_ms, 0.0)
    return _NONE


@kernel
def _unknown_phase(limits: Floats, state: Floats, t_s: float) -> tuple[int, float]:
    """The first channel stimulating while the phase has been unknown for too long
    (-1: none), and for how long (ms)."""
    unknown_ms = (t_s - state[S_UNKNOWN_SINCE]) * 1000.0
    if not unknown_ms > limits[MAX_UNKNOWN_PHASE_MS]:  # also while NaN (known)
        return -1, unknown_ms
    for channel in range(int(state[S_CHANNELS])):
        if is_on(state, channel_base(state, channel)):
            return channel, unknown_ms
    return -1, unknown_ms


@kernel
def _sensor_gap(limits: Floats, state: Floats, t_s: float) -> tuple[bool, float]:
    """Whether no valid sample came for longer than the sensor timeout (trial time), and
    the gap (ms)."""
    if math.isnan(state[S_FIRST_OBSERVED]):
        return False, 0.0
    reference = state[S_LAST_GOOD]
    if math.isnan(reference):
        reference = state[S_FIRST_OBSERVED]
    gap_ms = (t_s - reference) * 1000.0
    return gap_ms > limits[SENSOR_TIMEOUT_MS], gap_ms


# ---- latching, refusing, recording ----------------------------------------------------


@kernel
def _latch_and_refuse(
    state: Floats, log: Floats, t_log: float, breach: tuple[int, int, float, float, float],
    requested: Floats, delivered: Floats,
) -> int:
    _latch_logged(state, log, t_log, breach, requested)
    _refuse_all(state, log, t_log, requested, delivered, False)
    return 1


@kernel
def _latch_logged(
    state: Floats, log: Floats, t_s: float, breach: tuple[int, int, float, float, float],
    requested: Floats,
) -> None:
    """Record the fault ``breach`` and latch it."""
    r = _append(state, log)
    if r >= 0:
        _write_record(log, r, t_s, KIND_LATCH, breach)
        if breach[2] >= 0.0:  # its source is a command row
            _copy_row(requested, int(breach[2]), log, r, L_REQUESTED)
    latch_outputs(state, t_s, breach[0])


@kernel
def _refuse_all(
    state: Floats, log: Floats, t_s: float, requested: Floats, delivered: Floats,
    logged: bool,
) -> None:
    """Every command replaced by "off" on its channel (channel 0 if it has none that is
    an int >= 0); each one that was not already that is counted. If ``logged``, the
    first such refusal on each channel under the present latch is logged, later ones
    only counted: a scheduler that keeps asking for hours of a latched trial would
    otherwise add a record per sample."""
    for i in range(requested.shape[0]):
        channel = requested[i, ROW_CHANNEL]
        if not (math.isfinite(channel) and channel == math.floor(channel) and channel >= 0.0):
            channel = 0.0
        _write_off(delivered, i, channel)
        same = True
        for c in range(COMMAND_ROW_SIZE):
            same = same and requested[i, c] == delivered[i, c]
        if same:
            continue
        state[S_CLAMPED] += 1
        if logged and _first_refusal(state, int(channel)):
            r = _append(state, log)
            if r >= 0:
                _write_record(log, r, t_s, KIND_REFUSED,
                              (FAULT_LATCHED, int(channel), float(i), 0.0, 0.0))
                log[r, L_FAULT_RULE] = state[S_FAULT_RULE]
                _copy_row(requested, i, log, r, L_REQUESTED)


@kernel
def _first_refusal(state: Floats, channel: int) -> bool:
    """True (and remembered) for the first refusal on ``channel`` under this latch; a
    channel the stimulator does not have is always logged."""
    if channel >= state[S_CHANNELS]:
        return True
    flag = channel_base(state, channel) + C_REFUSAL_LOGGED
    first = state[flag] == 0.0
    state[flag] = 1.0
    return first


@kernel
def _write_off(rows: Floats, i: int, channel: float) -> None:
    """Row ``i`` becomes ``StimCommand.off(channel)``."""
    for c in range(COMMAND_ROW_SIZE):
        rows[i, c] = 0.0
    rows[i, ROW_CHANNEL] = channel
    rows[i, ROW_ANODIC_WIDTH_RATIO] = 1.0


@kernel
def _append(state: Floats, log: Floats) -> int:
    """The next free row of ``log``, now in use; -1 (counted as unlogged) if it is full."""
    r = int(state[S_LOG_COUNT])
    if r >= log.shape[0]:
        state[S_UNLOGGED] += 1
        return -1
    state[S_LOG_COUNT] = r + 1
    return r


@kernel
def _write_record(
    log: Floats, r: int, t_s: float, kind: float, what: tuple[int, int, float, float, float]
) -> None:
    rule, channel, source, value, other = what
    log[r, L_T] = t_s
    log[r, L_KIND] = kind
    log[r, L_RULE] = rule
    log[r, L_CHANNEL] = channel
    log[r, L_SOURCE] = source
    log[r, L_FAULT_RULE] = NO_RULE
    log[r, L_VALUE] = value
    log[r, L_OTHER] = other


@kernel
def _copy_row(rows: Floats, i: int, log: Floats, r: int, column: int) -> None:
    for c in range(COMMAND_ROW_SIZE):
        log[r, column + c] = rows[i, c]
