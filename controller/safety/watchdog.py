"""The safety watchdog: the only path from the controller to a ``Stimulator``.

It trusts nothing upstream: not the scheduler's commands, not the config, not the loop's
timing, not the sensor data, not the clock. Policy per limit (``docs/safety.md`` has the
table):

- *Refuse and latch*: a command that is malformed (a field the watchdog does not know, a
  channel the stimulator does not have, a non-finite or negative value, time not
  increasing) or whose pulse exceeds a per-pulse limit (amplitude, pulse width,
  frequency, charge per phase, r.m.s. current density, Shannon k, net d.c.); a channel
  on for longer than the continuous on-time or above the duty cycle; stimulation while
  the detector's phase has been unknown too long; sensor data missing or invalid for
  longer than its timeout; no heartbeat (command) from the loop, or no acknowledgement
  from the stimulator, within their timeouts (wall clock, checked by the monitor
  thread); an e-stop. The watchdog turns every output off (``stop_all``) and from then
  on delivers only "off", whatever it is asked, until ``reset``.
- *Clamp*: a charge per phase rising faster than ``max_charge_rise_uc_per_s``
  (whether the amplitude or the pulse width rises) is delivered at the highest charge
  the rise limit allows, by a lower amplitude (both phases scaled alike, so charge
  balance is kept); the channel keeps stimulating.

What it delivers is rebuilt from the numbers it checked (read once from the caller's
command), never the caller's object. For a stimulator that delivers other numbers than
it is asked (a ``resolution``, ``controller.ports.OutputSteps``: the board's wire in
whole steps, openEMSstim's calibrated intensities), every command is mapped to what the
stimulator delivers, toward the safe side, first, then checked, and a clamped amplitude
is mapped down again: what is checked, recorded and counted by the rise rule is what is
sent. A stimulator whose weakest output is a step from off larger than the rise rule
lets through is refused before a trial starts (``onset_problems``): every onset would
be clamped to off.

Every intervention (a clamp, a fault, a command refused while latched, an e-stop) is an
``Intervention`` in ``interventions``: trial time, rule, channel, what was requested,
what was delivered, and the value against its limit.

Two time bases. Limits over time (on-time, duty cycle, rise, sensor gap, unknown phase)
are checked in *trial* time at every ``submit`` and ``observe``, so a virtual-clock
simulation is deterministic. The checks that a hung loop cannot perform for itself
(heartbeat, sensor silence, stimulator acknowledgement) run on the *wall* clock in the
monitor thread, which runs only inside ``monitoring()``; ``controller.loop.run_loop``
enters it for every clock except the virtual one. The monitor arms at the first
``submit`` (the output cannot be on before) and checks every ``MONITOR_PERIOD_S``.

The decisions themselves are kernels (``controller.safety.decide``) over float arrays
(``controller.safety.layout``), so that a compiled loop can call them at every sample
without Python: ``Watchdog`` is the shell around them. It turns commands into rows,
refuses what numbers cannot express (a command with a field the watchdog does not know,
a channel that is not an int), runs the monitor thread and turns the kernels' records
into ``Intervention``s (``controller.safety.records``). ``kernel_arrays`` hands the
same live arrays to a compiled loop, which calls ``watchdog_observe``/``watchdog_submit``
itself and ``drain_log`` between its runs.

Between two submits the stimulator holds the last command; on a wall clock the heartbeat
timeout bounds that hold. The monitor is a Python thread: it runs while the loop blocks
or spins in Python code, not while native code holds the GIL (a numba kernel that never
returns); the board's own communication timeout is the layer below for that case.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import cast

import numpy as np

from controller.kernels import Floats
from controller.ports import (
    COMMAND_ROW_SIZE,
    ROW_AMPLITUDE_MA,
    ROW_ANODIC_WIDTH_RATIO,
    ROW_CHANNEL,
    ROW_ON,
    ROW_PULSE_WIDTH_US,
    AcknowledgingStimulator,
    OutputSteps,
    Sample,
    StimCommand,
    Stimulator,
    command_of_values,
    write_row,
)
from controller.safety.decide import (
    SAMPLE_OK,
    STOP,
    discard_records,
    hold_delivered,
    latch_outputs,
    observe_sample,
    outputs_off,
    sample_valid,
    submit_rows,
    watchdog_observe,
    watchdog_submit,
)
from controller.safety.layout import (
    ALL_CHANNELS,
    KIND_CLAMP,
    KIND_LATCH,
    L_DELIVERED,
    L_KIND,
    L_SOURCE,
    S_CLAMPED,
    S_FAULTS,
    S_LAST_T,
    S_LATCHED,
    S_LOG_COUNT,
    S_UNLOGGED,
    new_log,
    new_state,
)
from controller.safety.limits import (
    ABSOLUTE_MAX_CHARGE_RISE_UC_PER_S,
    MONITOR_PERIOD_S,
    RISE_WINDOW_S,
    SafetyLimits,
    unknown_fields,
)
from controller.safety.pulse_math import charge_per_phase_uc, recovery_phase
from controller.safety.records import CallTexts, Intervention, intervention_of
from controller.safety.rules import (
    ACK_TIMEOUT_MS,
    EMERGENCY_STOP,
    HEARTBEAT_TIMEOUT_MS,
    INTERVENTION_LOG_FULL,
    LOOP_OVERRUN,
    MONITOR_ERROR,
    NO_RULE,
    RULE_NAMES,
    SENSOR_TIMEOUT_MS,
    UNKNOWN_CHANNEL,
    UNKNOWN_COMMAND_FIELD,
)
from controller.safety.sensors import DEFAULT_SENSORS, HEEL_FORCE_SENSOR, check_sensors

__all__ = ["ALL_CHANNELS", "Intervention", "Watchdog", "onset_problems", "sample_ok"]

#: Log rows the shell keeps free: its own calls drain after each one.
SHELL_LOG_ROWS = 64
#: Exactly representable ints (a channel beyond them cannot be a row's number).
_EXACT_INT = 2**53
_COMMAND_NUMBERS = ("amplitude_ma", "pulse_width_us", "frequency_hz", "interphase_gap_us",
                    "anodic_width_ratio")


def number(value: object) -> float:
    """``value`` as a float, or NaN if it is not a number (a string, None, an object
    without ``__float__``) or too large for a float."""
    if type(value) is float:
        return value
    if isinstance(value, (str, bytes, bytearray)):
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan


def sample_ok(sample: Sample, sensors: int = DEFAULT_SENSORS) -> bool:
    """A sample the controller can act on: a finite time and a valid reading of every
    sensor in ``sensors`` (``controller.safety.sensors``: those the detector reads; by
    default the gyroscope and the heel switch), whatever the others read: a plausible
    gyroscope reading (not NaN, not beyond any sensor's range), a heel switch that is 0
    or 1, a finite heel force within any walker's range."""
    heel = sample.heel_force_n if check_sensors(sensors) & HEEL_FORCE_SENSOR else (
        sample.heel_switch)
    return bool(sample_valid(float(sensors), number(sample.t_s), number(sample.gyro_rad_s),
                             number(heel)))


def warm_up_kernels(limits: np.ndarray, state: np.ndarray) -> None:
    """Run every kernel a ``Watchdog`` calls once on ``limits`` and the scratch
    ``state`` (which it changes), so that none compiles later. ``fes run`` calls it
    before the board's communication timer starts, when no ``Watchdog`` exists yet."""
    log = new_log(8)
    rows = np.zeros((1, COMMAND_ROW_SIZE))
    rows[0] = (0.0, 1.0, 1.0, 100.0, 40.0, 0.0, 1.0)
    out = np.zeros_like(rows)
    watchdog_observe(limits, state, log, 0.0, 0.0, 0.0, True)
    watchdog_submit(limits, state, log, 0.001, rows, out)
    observe_sample(limits, state, log, 0.002, 0.0, 0.0, True)
    submit_rows(limits, state, log, 0.002, rows, out, 1, NO_RULE)
    hold_delivered(state, 0.002, out, 0)  # after quantising a clamped row (a board)
    latch_outputs(state, 0.003, EMERGENCY_STOP)
    outputs_off(state, 0.003)
    discard_records(state, log, 0)


def onset_problems(
    steps: OutputSteps, limits: SafetyLimits, channels: Sequence[tuple[str, StimCommand]],
) -> list[str]:
    """Why a trial cannot start on a stimulator delivering ``steps``: one message per
    channel (``channels``: its config path and its full command) whose weakest output
    (``steps.lowest_amplitude_ma`` at the channel's pulse, as ``steps`` delivers it) is
    a larger step from off than the rise rule lets one command take
    (``max_charge_rise_uc_per_s`` x ``RISE_WINDOW_S``: an off channel's count runs
    from its last change, whatever the command rate).
    Such a channel could never start: the watchdog would clamp every onset below the
    stimulator's lowest output, which it delivers as off. Each message names
    ``safety.max_charge_rise_uc_per_s``, the lowest output (mA x us = uC) and what to
    change; an empty list when every onset fits."""
    rise = limits.max_charge_rise_uc_per_s
    allowed_uc = rise * RISE_WINDOW_S
    problems = []
    for path, command in channels:
        values = [0.0] * COMMAND_ROW_SIZE
        write_row(command, values)
        row = np.array(values)
        row[ROW_AMPLITUDE_MA] = steps.lowest_amplitude_ma(row)
        steps.quantise_row(row)
        amplitude, width, ratio = (float(row[c]) for c in (
            ROW_AMPLITUDE_MA, ROW_PULSE_WIDTH_US, ROW_ANODIC_WIDTH_RATIO))
        lowest_uc = charge_per_phase_uc(amplitude, width, *recovery_phase(amplitude, width, ratio))
        if lowest_uc <= allowed_uc * (1.0 + 1e-9):
            continue
        needed = lowest_uc / RISE_WINDOW_S
        change = (f"Raise safety.max_charge_rise_uc_per_s to at least {needed:.4g} uC/s, or"
                  if needed <= ABSOLUTE_MAX_CHARGE_RISE_UC_PER_S else
                  f"No safety.max_charge_rise_uc_per_s up to its maximum "
                  f"{ABSOLUTE_MAX_CHARGE_RISE_UC_PER_S:g} uC/s lets it through:")
        problems.append(
            f"{path}: the stimulator's lowest output, {amplitude:.4g} mA x {width:.4g} us "
            f"= {lowest_uc:.4g} uC per phase, is a step from off larger than "
            f"safety.max_charge_rise_uc_per_s = {rise:g} uC/s lets one command rise "
            f"({allowed_uc:.4g} uC in {RISE_WINDOW_S * 1e3:g} ms): every onset would be "
            "clamped to off. "
            f"{change} set the stimulator's lowest output to at most "
            f"{allowed_uc / width * 1e3:.4g} mA at {width:.4g} us (openEMSstim: the unit's "
            "output at intensity 1, output_at_lowest_ma, docs/hardware.md)")
    return problems


class Watchdog:
    """Checks every command, delivers only what is within limits, latches faults.

    Thread-safe: ``submit`` and ``observe`` come from the loop, ``emergency_stop`` from
    any thread (a signal, a key listener), the monitor from its own thread.
    """

    def __init__(
        self, stimulator: Stimulator, limits: SafetyLimits, sensors: int = DEFAULT_SENSORS
    ) -> None:
        """``sensors``: those a sample must have valid to count for the sensor timeout,
        the ones the trial's detector reads (``controller.safety.sensors``: a sum of
        ``GYRO_SENSOR``, ``HEEL_SWITCH_SENSOR``, ``HEEL_FORCE_SENSOR``;
        ``controller.trial.session.watched_sensors``); by default the gyroscope and the
        heel switch."""
        self._stimulator = stimulator
        # Looked up without evaluating the property (a driver's may raise before use).
        acks = inspect.getattr_static(stimulator, "last_ack_monotonic_s", None) is not None
        self._acks = cast(AcknowledgingStimulator, stimulator) if acks else None
        resolution = getattr(stimulator, "resolution", None)
        self._resolution = resolution if isinstance(resolution, OutputSteps) else None
        self.limits = limits
        self.fault: Intervention | None = None
        #: ``time.monotonic()`` when ``fault`` latched (None while none is latched): a
        #: caller that also sees faults elsewhere (a board's link) can tell which came
        #: first.
        self.fault_monotonic_s: float | None = None
        self.interventions: list[Intervention] = []
        self._lock = threading.Lock()
        self._channels = stimulator.channels
        self._limits = limits.kernel_array(sensors)
        # The heel reading the kernel checks: the force sensor's or the switch's.
        self._heel_force = bool(sensors & HEEL_FORCE_SENSOR)
        self._state = new_state(self._channels)
        self._log = new_log(SHELL_LOG_ROWS)
        # Command rows of a submit of n commands, by n (views of one buffer pair).
        self._rows: dict[int, tuple[Floats, Floats]] = {}
        # The commands last delivered and their rows' bytes (``_commands_of``).
        self._built: list[StimCommand] = []
        self._built_key = b""
        # Wall clock (time.monotonic), for the monitor; ``_monitored`` while it runs.
        self._monitored = False
        self._armed = False
        self._beat_wall_s = 0.0
        self._good_sample_wall_s: float | None = None
        # When the loop last reported a sample (valid or not): for the heartbeat's note.
        self._observed_wall_s: float | None = None

    @property
    def latched(self) -> bool:
        """True while a fault holds every output off."""
        return bool(self._state[S_LATCHED] != 0.0)

    @property
    def faults(self) -> int:
        """Faults latched so far (``reset`` does not clear the count)."""
        return int(self._state[S_FAULTS])

    @property
    def clamped_commands(self) -> int:
        """Commands not delivered as asked so far: clamped, or refused under a latch
        (those are not all logged, so they are counted here, not from ``interventions``)."""
        return int(self._state[S_CLAMPED])

    # ---- for a compiled loop ----------------------------------------------------------

    @property
    def kernel_arrays(self) -> tuple[Floats, Floats, Floats]:
        """``(limits, state, log)``: the live arrays of this watchdog, for a compiled loop
        that calls ``watchdog_observe`` and ``watchdog_submit`` itself. ``log`` is
        replaced only by ``reserve_log``; take the arrays after it."""
        return self._limits, self._state, self._log

    def reserve_log(self, rows: int) -> Floats:
        """A log with room for at least ``rows`` more records (the same one if it has
        it, else a larger copy that replaces it); a compiled loop running k samples of
        n commands between two ``drain_log`` needs k * (n + 1)."""
        with self._lock:
            return self._ensure_room(rows)

    def drain_log(self) -> None:
        """Turn every pending record of the kernels into an ``Intervention``; update
        ``fault``."""
        with self._lock:
            self._drain(None)

    def warm_up(self) -> None:
        """Compile the kernels (or load their cache) on scratch copies; change nothing."""
        warm_up_kernels(self._limits, self._state.copy())

    # ---- the loop's calls -------------------------------------------------------------

    def submit(self, t_s: float, commands: Sequence[StimCommand]) -> list[StimCommand]:
        """Check ``commands`` requested at trial time ``t_s``; deliver and return what is
        allowed. Each call is also the loop's heartbeat."""
        with self._lock:
            now = time.monotonic()
            self._check_own_heartbeat(now)
            delivered, stop = self._decide(t_s, commands, now)
        if stop:
            self._stimulator.stop_all()
            return delivered
        self._stimulator.apply(t_s, delivered)
        if self.latched:  # another thread latched a fault while this was being applied
            self._stimulator.stop_all()
        return delivered

    def observe(self, sample: Sample, phase_known: bool) -> None:
        """Report the sensor sample the loop just read and whether the detector knows
        the gait phase; a sensor gap or unknown phase beyond its limit latches a fault."""
        with self._lock:
            self._drain(None)
            answer = observe_sample(
                self._limits, self._state, self._log, number(sample.t_s),
                number(sample.gyro_rad_s),
                number(sample.heel_force_n if self._heel_force else sample.heel_switch),
                bool(phase_known),
            )
            self._observed_wall_s = now = time.monotonic()
            if answer & SAMPLE_OK:
                self._good_sample_wall_s = now
            if answer & STOP:
                self._drain(None)
        if answer & STOP:
            self._stimulator.stop_all()

    # ---- explicit requests ------------------------------------------------------------

    def emergency_stop(self, source: str = "api") -> None:
        """E-stop: every output off now and a fault latched until ``reset``.

        Safe from any thread. ``source`` says who asked (``api``, ``key``, ``SIGUSR1``).
        """
        with self._lock:
            self._drain(None)
            t_s = self._trial_time_now()
            if not self.latched:
                self._latch(t_s, EMERGENCY_STOP, f"e-stop ({source})", "")
            else:
                self.interventions.append(Intervention(
                    t_s, "emergency_stop", ALL_CHANNELS, f"e-stop ({source})", "all off"))
        self._stimulator.stop_all()

    def loop_overrun(self, t_s: float, lateness_s: float) -> None:
        """Latch a fault: the commands of the sample at ``t_s`` are ``lateness_s`` late.

        The loop calls this, before submitting them, when a sample's commands would reach
        the stimulator later than ``loop.max_overrun_ms`` after its deadline: commands
        that late are stale, so every output goes off until ``reset``.
        """
        with self._lock:
            if not self.latched:
                self._latch(t_s, LOOP_OVERRUN, "stale commands",
                            f"sample {lateness_s * 1e3:.3g} ms late")
        self._stimulator.stop_all()

    def reset(self) -> None:
        """Clear a latched fault; every output is off until the next valid command.

        The duty-cycle history is kept; the monitor re-arms at the next ``submit``.
        """
        with self._lock:
            self._drain(None)
            self.fault = self.fault_monotonic_s = None
            self._state[S_LATCHED] = 0.0
            self._armed = False
            self._good_sample_wall_s = self._observed_wall_s = None
            outputs_off(self._state, self._state[S_LAST_T])
        self._stimulator.stop_all()

    def stop_all(self) -> None:
        """Turn every output off now (end of a trial); does not latch a fault. The
        monitor disarms until the next ``submit``: nothing is on to guard."""
        with self._lock:
            self._armed = False
            outputs_off(self._state, self._state[S_LAST_T])
        self._stimulator.stop_all()

    # ---- the wall-clock monitor -------------------------------------------------------

    @contextmanager
    def monitoring(self) -> Iterator[Watchdog]:
        """Run the monitor thread for the duration of the ``with`` block."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self._monitor, args=(stop,), name="fes-watchdog-monitor", daemon=True
        )
        self._monitored = True
        thread.start()
        try:
            yield self
        finally:
            self._monitored = False
            stop.set()
            thread.join()

    def _monitor(self, stop: threading.Event) -> None:
        while not stop.wait(MONITOR_PERIOD_S):
            try:
                self.check_wall_clock()
            except Exception as err:  # a monitor that dies would leave the output unguarded
                with self._lock:
                    if not self.latched:
                        self._latch(self._trial_time_now(), MONITOR_ERROR, "", repr(err))
                self._stimulator.stop_all()

    def check_wall_clock(self) -> None:
        """One monitor check: heartbeat, sensor silence and acknowledgement ages."""
        ack_s = self._acks.last_ack_monotonic_s if self._acks is not None else math.inf
        now = time.monotonic()
        with self._lock:
            if self.latched or not self._armed:
                return
            lim = self.limits
            ages = (
                (HEARTBEAT_TIMEOUT_MS, "no command from the loop", self._beat_wall_s),
                (SENSOR_TIMEOUT_MS, "no valid sensor sample", self._good_sample_wall_s),
                (ACK_TIMEOUT_MS, "no acknowledgement from the stimulator", ack_s),
            )
            for rule, what, since in ages:
                age_ms = (now - (now if since is None else since)) * 1000.0
                limit = getattr(lim, RULE_NAMES[rule])
                if age_ms > limit:
                    detail = f"{age_ms:.1f} ms > {limit:g} ms (wall clock)"
                    self._latch(self._trial_time_now(now), rule, what, detail
                                + self._loop_silent_too(rule, now)
                                + self._loop_waits_for_sample(rule, now))
                    break
            else:
                return
        self._stimulator.stop_all()

    def _check_own_heartbeat(self, now: float) -> None:
        """Latch the heartbeat fault the monitor missed (lock held): a gap between two
        submits longer than the heartbeat timeout while the monitor runs. When the whole
        process was off the CPU (stopped, swapped out, a host under load), the loop's
        next submit may come round before the monitor looks again and would otherwise
        hide the gap (2 of 4 runs with the process stopped for 40 ms, branch linkload,
        6 Dec 2026): the rule is the gap, whichever thread sees it first. Only the
        heartbeat: the acknowledgements and samples the board sent during such a pause
        wait in the port for the reader thread, so their ages say nothing yet."""
        if not (self._monitored and self._armed) or self.latched:
            return
        gap_ms = (now - self._beat_wall_s) * 1000.0
        limit = self.limits.heartbeat_timeout_ms
        if gap_ms > limit:
            self._latch(self._trial_time_now(now), HEARTBEAT_TIMEOUT_MS,
                        "no command from the loop",
                        f"{gap_ms:.1f} ms > {limit:g} ms (wall clock, seen at the next command)")

    def _loop_silent_too(self, rule: int, now: float) -> str:
        """For a sensor or acknowledgement trip: a note when the loop has not come round
        for over half its heartbeat timeout either. A loop stuck anywhere (a hung
        detector, a blocked read or command) stops the samples it observes and the
        commands it sends together, and the sample is observed a few microseconds
        before the command, so its silence may trip the sensor rule first; the note
        keeps the diagnosis on the loop (lock held)."""
        if rule == HEARTBEAT_TIMEOUT_MS:
            return ""
        beat_ms = (now - self._beat_wall_s) * 1000.0
        if beat_ms <= self.limits.heartbeat_timeout_ms / 2.0:
            return ""
        return f"; the loop has sent no command for {beat_ms:.1f} ms either (a stalled loop)"

    def _loop_waits_for_sample(self, rule: int, now: float) -> str:
        """For a heartbeat trip: a note when the loop sent its command for the last
        sample it reported and has reported none since, i.e. it waits for its sensor (a
        board whose stream went silent, a read that blocks) rather than hangs in its own
        work, which would stop it between a sample and its command (lock held). A
        board emulator whose stream stopped for 35 ms at sample 2**18 (a copy of its
        truth rows, branch stop2e18) was reported as a loop that sent no command."""
        seen = self._observed_wall_s
        if rule != HEARTBEAT_TIMEOUT_MS or seen is None or seen > self._beat_wall_s:
            return ""
        return (f"; it waits for its next sensor sample: none read for {(now - seen) * 1e3:.1f}"
                " ms (a sensor or board that went silent, or a read that blocks)")

    # ---- decisions (called with the lock held) ----------------------------------------

    def _decide(
        self, t_s: float, commands: Sequence[StimCommand], now: float
    ) -> tuple[list[StimCommand], bool]:
        """What to deliver for ``commands`` at ``t_s`` and whether to stop everything;
        ``now`` (``time.monotonic``) is the loop's heartbeat."""
        self._beat_wall_s = now
        if not self._armed:
            self._armed = True
            if self._good_sample_wall_s is None:
                self._good_sample_wall_s = now
        self._drain(None)
        n = len(commands)
        requested, delivered_rows = self._rows.get(n) or self._new_rows(n)
        self._ensure_room(n + 1)
        texts = CallTexts(invalid_row=n)
        invalid_rule = NO_RULE
        for i, command in enumerate(commands):
            rule = self._write_row(command, requested[i], i, texts)
            if rule != NO_RULE and invalid_rule == NO_RULE:
                invalid_rule, texts.invalid_row = rule, i
        tf = number(t_s) if isinstance(t_s, float | int) else math.nan
        if not math.isfinite(tf) or tf <= self._state[S_LAST_T]:
            texts.time = repr(t_s)
        stop = submit_rows(self._limits, self._state, self._log, tf, requested,
                           delivered_rows, texts.invalid_row, invalid_rule)
        if not stop and self._resolution is not None:
            self._settle(tf, delivered_rows)
        self._drain(texts)
        if stop:
            return [StimCommand.off(int(row[ROW_CHANNEL])) for row in delivered_rows], True
        # Rebuilt from the numbers checked, never the caller's objects: a command whose
        # fields read differently the second time is delivered as it was checked.
        return self._commands_of(delivered_rows), False

    def _commands_of(self, rows: Floats) -> list[StimCommand]:
        """The commands ``rows`` describe, built from their numbers. Rows bit for bit
        those of the last submit (a held or off output: most samples of a walk) get the
        commands built then, which are frozen and were built here from the same
        numbers. (The rows are read as one list: a loop over the array itself ends in
        an IndexError, whose message numpy formats, some 5,700 instructions a submit.)"""
        key = rows.tobytes()
        if key != self._built_key:
            self._built = [command_of_values(values) for values in rows.tolist()]
            self._built_key = key
        return list(self._built)

    def _settle(self, t_s: float, delivered: Floats) -> None:
        """Quantise the rows the rise clamp scaled (off the stimulator's steps) down to
        a step: each channel then holds, and its clamp record shows, what is sent. (A
        channel holds its last row of the submit: an earlier one is not held again.)"""
        assert self._resolution is not None
        # Rows and records by index: a loop over an array (even an empty one) ends in an
        # IndexError whose message numpy formats, thousands of instructions a submit.
        asked = delivered.tolist()  # before quantising
        last = {int(values[ROW_CHANNEL]): i for i, values in enumerate(asked)}
        for i, values in enumerate(asked):
            row = delivered[i]
            self._resolution.quantise_row(row)
            if (row[ROW_AMPLITUDE_MA] != values[ROW_AMPLITUDE_MA]
                    and last[int(values[ROW_CHANNEL])] == i):
                hold_delivered(self._state, t_s, delivered, i)
        for r in range(int(self._state[S_LOG_COUNT])):
            record = self._log[r]
            if record[L_KIND] == KIND_CLAMP:
                record[L_DELIVERED : L_DELIVERED + COMMAND_ROW_SIZE] = delivered[
                    int(record[L_SOURCE])]

    def _new_rows(self, n: int) -> tuple[Floats, Floats]:
        rows = (np.zeros((n, COMMAND_ROW_SIZE)), np.zeros((n, COMMAND_ROW_SIZE)))
        self._rows[n] = rows
        return rows

    def _ensure_room(self, rows: int) -> Floats:
        """The log, replaced by a larger copy if it has fewer than ``rows`` free rows."""
        used = int(self._state[S_LOG_COUNT])
        if self._log.shape[0] - used < rows:
            larger = new_log(used + rows)
            larger[:used] = self._log[:used]
            self._log = larger
        return self._log

    def _write_row(self, command: object, row: Floats, i: int, texts: CallTexts) -> int:
        """Write ``command``, the ``i``-th of its submit, into ``row``; return the rule it
        breaks that numbers cannot express (``NO_RULE``: none). A field that is not a
        number becomes NaN, which the kernel refuses as a non-finite value; a command
        that is no command row gets NaN in every field but its channel, so that the
        kernel never takes it for "off"."""
        channel = getattr(command, "channel", 0)
        exact = isinstance(channel, int) and -_EXACT_INT < channel < _EXACT_INT
        row[ROW_CHANNEL] = channel if exact else math.nan
        unknown = unknown_fields(command)
        if unknown:
            row[ROW_ON:] = math.nan
            texts.requested[i] = repr(command)
            if texts.invalid_row > i:
                texts.invalid_detail = f"not understood: {', '.join(unknown)}"
            return UNKNOWN_COMMAND_FIELD
        row[ROW_ON] = 1.0 if command.on else 0.0  # type: ignore[attr-defined]
        for column, name in enumerate(_COMMAND_NUMBERS, start=ROW_AMPLITUDE_MA):
            row[column] = number(getattr(command, name))
        if self._resolution is not None:  # what is checked is what the stimulator sends
            self._resolution.quantise_row(row)
        if not exact:
            if texts.invalid_row > i:
                texts.invalid_detail = (
                    f"channel {channel!r} not in 0..{self._channels - 1}")
            return UNKNOWN_CHANNEL
        return NO_RULE

    # ---- bookkeeping ------------------------------------------------------------------

    def _drain(self, texts: CallTexts | None) -> None:
        """Turn pending records into ``Intervention``s (``texts``: those of the shell's
        own submit)."""
        count = int(self._state[S_LOG_COUNT])
        unlogged = int(self._state[S_UNLOGGED])
        if not (count or unlogged):
            return
        if count:
            records = self._log[:count].copy()
            discard_records(self._state, self._log, count)
            for record in records:
                item = intervention_of(record, self.limits, self._channels, texts)
                self.interventions.append(item)
                if record[L_KIND] == KIND_LATCH:
                    self._set_fault(item)
        if unlogged:
            self._state[S_UNLOGGED] = 0
            self.interventions.append(Intervention(
                max(float(self._state[S_LAST_T]), 0.0), RULE_NAMES[INTERVENTION_LOG_FULL],
                ALL_CHANNELS, f"{unlogged} interventions", "all off",
                "not logged one by one: the interventions log was full"))
            if self.latched and self.fault is None:
                self._set_fault(self.interventions[-1])

    def _latch(self, t_s: float, rule: int, requested: str, detail: str) -> None:
        """Latch a fault the shell found itself (the kernels' records drained first)."""
        self._drain(None)
        latch_outputs(self._state, t_s, rule)
        fault = Intervention(t_s, RULE_NAMES[rule], ALL_CHANNELS, requested, "all off", detail)
        self._set_fault(fault)
        self.interventions.append(fault)

    def _set_fault(self, fault: Intervention) -> None:
        """``fault`` is the latched fault, latched now."""
        self.fault = fault
        self.fault_monotonic_s = time.monotonic()

    def _trial_time_now(self, now: float | None = None) -> float:
        """Trial time estimated from the last submit and the wall time since."""
        last_t = float(self._state[S_LAST_T])
        if not math.isfinite(last_t):
            return 0.0
        if not self._armed:
            return last_t
        now = time.monotonic() if now is None else now
        return last_t + max(0.0, now - self._beat_wall_s)
