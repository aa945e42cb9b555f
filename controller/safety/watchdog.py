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
- *Clamp*: an amplitude rising faster than ``max_amplitude_rise_ma_per_s`` is delivered
  at the highest amplitude the rise limit allows (both phases scaled alike, so charge
  balance is kept); the channel keeps stimulating.

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

Between two submits the stimulator holds the last command; on a wall clock the heartbeat
timeout bounds that hold. The monitor is a Python thread: it runs while the loop blocks
or spins in Python code, not while native code holds the GIL (a numba kernel that never
returns); the board's own communication timeout is the layer below for that case.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from controller.ports import AcknowledgingStimulator, Sample, StimCommand, Stimulator
from controller.safety.channels import ChannelHistory
from controller.safety.limits import (
    MONITOR_PERIOD_S,
    Pulse,
    SafetyLimits,
    pulse_breaches,
    pulse_of,
    unknown_fields,
)

#: A gyroscope reading beyond this is not a measurement (no MEMS gyro reaches it).
SENSOR_MAX_ABS_GYRO_RAD_S = 100.0
ALL_CHANNELS = -1
#: Relative slack of the rise check, so that a ramp exactly at the limit is not clamped
#: by floating-point rounding.
RISE_TOLERANCE = 1e-9
PULSE_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Intervention:
    """A command the watchdog did not pass unchanged, or a fault, and why.

    ``t_s`` is trial time (for a fault found by the wall-clock monitor, the last trial
    time plus the wall time since). ``rule`` is the ``SafetyLimits`` field that was
    exceeded, or the name of a validity rule; ``channel`` is -1 when the rule concerns
    all channels; ``detail`` states the value against its limit.
    """

    t_s: float
    rule: str
    channel: int
    requested: str
    delivered: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Breach:
    """A rule broken: ``requested`` is the command (described only when logged) or text."""

    rule: str
    channel: int
    requested: object
    detail: str


def describe(command: object) -> str:
    """Short text of a command for the intervention log."""
    if not isinstance(command, StimCommand) or unknown_fields(command):
        return repr(command)
    if not command.on:
        return "off"
    pulse = pulse_of(command)
    text = (
        f"on {pulse.amplitude_ma:.4g} mA {pulse.pulse_width_us:.4g} us "
        f"{pulse.frequency_hz:.4g} Hz"
    )
    if pulse != Pulse.symmetric(pulse.amplitude_ma, pulse.pulse_width_us, pulse.frequency_hz):
        text += (
            f" recovery {pulse.recovery_amplitude_ma:.4g} mA "
            f"{pulse.recovery_pulse_width_us:.4g} us"
        )
    return text


def _requested_on(channel: int, commands: Sequence[StimCommand]) -> object:
    """The last command of ``commands`` for ``channel``, or "held on" (none this time)."""
    for command in reversed(commands):
        if command.channel == channel:
            return command
    return "held on"


def sample_ok(sample: Sample) -> bool:
    """A sample the controller can act on: finite time, a plausible gyroscope reading
    (not NaN, not beyond any sensor's range) and a heel switch that is 0 or 1."""
    return (
        math.isfinite(sample.t_s)
        and math.isfinite(sample.gyro_rad_s)
        and abs(sample.gyro_rad_s) <= SENSOR_MAX_ABS_GYRO_RAD_S
        and sample.heel_switch in (0, 1)
    )


def _stimulates(command: StimCommand, pulse: Pulse) -> bool:
    """Whether the output would emit charge: counted as "on" even if only one phase has
    current, which is stricter than ``StimCommand.delivers``."""
    charge = max(
        pulse.amplitude_ma * pulse.pulse_width_us,
        pulse.recovery_amplitude_ma * pulse.recovery_pulse_width_us,
    )
    return bool(command.on) and pulse.frequency_hz > 0.0 and charge > 0.0


class Watchdog:
    """Checks every command, delivers only what is within limits, latches faults.

    Thread-safe: ``submit`` and ``observe`` come from the loop, ``emergency_stop`` from
    any thread (a signal, a key listener), the monitor from its own thread.
    """

    def __init__(self, stimulator: Stimulator, limits: SafetyLimits) -> None:
        self._stimulator = stimulator
        # Looked up without evaluating the property (a driver's may raise before use).
        acks = inspect.getattr_static(stimulator, "last_ack_monotonic_s", None) is not None
        self._acks = cast(AcknowledgingStimulator, stimulator) if acks else None
        self.limits = limits
        self.fault: Intervention | None = None
        self.interventions: list[Intervention] = []
        self.faults = 0
        self.clamped_commands = 0
        self._lock = threading.Lock()
        self._channels = [ChannelHistory() for _ in range(stimulator.channels)]
        # Pulses already found within every per-pulse limit (a held level repeats its
        # pulse at every sample); the limits are immutable, so the answer cannot change.
        self._pulses_within_limits: set[Pulse] = set()
        self._last_t_s = -math.inf
        # Sensor and detector health, in trial time.
        self._first_observed_s = math.nan
        self._last_good_sample_s = math.nan
        self._unknown_since_s = math.nan
        # Wall clock (time.monotonic), for the monitor.
        self._armed = False
        self._beat_wall_s = 0.0
        self._good_sample_wall_s: float | None = None

    @property
    def latched(self) -> bool:
        """True while a fault holds every output off."""
        return self.fault is not None

    # ---- the loop's calls -------------------------------------------------------------

    def submit(self, t_s: float, commands: Sequence[StimCommand]) -> list[StimCommand]:
        """Check ``commands`` requested at trial time ``t_s``; deliver and return what is
        allowed. Each call is also the loop's heartbeat."""
        with self._lock:
            delivered, stop = self._decide(t_s, commands)
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
            breach = self._observe(sample, phase_known)
        if breach is not None:
            self._stimulator.stop_all()

    # ---- explicit requests ------------------------------------------------------------

    def emergency_stop(self, source: str = "api") -> None:
        """E-stop: every output off now and a fault latched until ``reset``.

        Safe from any thread. ``source`` says who asked (``api``, ``key``, ``SIGUSR1``).
        """
        with self._lock:
            t_s = self._trial_time_now()
            if self.fault is None:
                self._latch(t_s, _Breach("emergency_stop", ALL_CHANNELS, f"e-stop ({source})", ""))
            else:
                self._log(t_s, "emergency_stop", ALL_CHANNELS, f"e-stop ({source})", "all off")
        self._stimulator.stop_all()

    def loop_overrun(self, t_s: float, lateness_s: float) -> None:
        """Latch a fault: the commands of the sample at ``t_s`` are ``lateness_s`` late.

        The loop calls this, before submitting them, when a sample's commands would reach
        the stimulator later than ``loop.max_overrun_ms`` after its deadline: commands
        that late are stale, so every output goes off until ``reset``.
        """
        with self._lock:
            if self.fault is None:
                detail = f"sample {lateness_s * 1e3:.3g} ms late"
                self._latch(t_s, _Breach("loop_overrun", ALL_CHANNELS, "stale commands", detail))
        self._stimulator.stop_all()

    def reset(self) -> None:
        """Clear a latched fault; every output is off until the next valid command.

        The duty-cycle history is kept; the monitor re-arms at the next ``submit``.
        """
        with self._lock:
            self.fault = None
            self._armed = False
            self._good_sample_wall_s = None
            for channel in self._channels:
                channel.force_off(self._last_t_s)
        self._stimulator.stop_all()

    def stop_all(self) -> None:
        """Turn every output off now (end of a trial); does not latch a fault. The
        monitor disarms until the next ``submit``: nothing is on to guard."""
        with self._lock:
            self._armed = False
            for channel in self._channels:
                channel.force_off(self._last_t_s)
        self._stimulator.stop_all()

    # ---- the wall-clock monitor -------------------------------------------------------

    @contextmanager
    def monitoring(self) -> Iterator[Watchdog]:
        """Run the monitor thread for the duration of the ``with`` block."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self._monitor, args=(stop,), name="fes-watchdog-monitor", daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def _monitor(self, stop: threading.Event) -> None:
        while not stop.wait(MONITOR_PERIOD_S):
            try:
                self.check_wall_clock()
            except Exception as err:  # a monitor that dies would leave the output unguarded
                with self._lock:
                    if self.fault is None:
                        self._latch(
                            self._trial_time_now(),
                            _Breach("monitor_error", ALL_CHANNELS, "", repr(err)),
                        )
                self._stimulator.stop_all()

    def check_wall_clock(self) -> None:
        """One monitor check: heartbeat, sensor silence and acknowledgement ages."""
        ack_s = self._acks.last_ack_monotonic_s if self._acks is not None else math.inf
        now = time.monotonic()
        with self._lock:
            if self.fault is not None or not self._armed:
                return
            lim = self.limits
            ages = (
                ("heartbeat_timeout_ms", "no command from the loop", self._beat_wall_s),
                ("sensor_timeout_ms", "no valid sensor sample", self._good_sample_wall_s),
                ("ack_timeout_ms", "no acknowledgement from the stimulator", ack_s),
            )
            breach = None
            for rule, what, since in ages:
                age_ms = (now - (now if since is None else since)) * 1000.0
                if age_ms > getattr(lim, rule):
                    breach = _Breach(
                        rule, ALL_CHANNELS, what,
                        f"{age_ms:.1f} ms > {getattr(lim, rule):g} ms (wall clock)",
                    )
                    break
            if breach is None:
                return
            self._latch(self._trial_time_now(now), breach)
        self._stimulator.stop_all()

    # ---- decisions (called with the lock held) ----------------------------------------

    def _decide(
        self, t_s: float, commands: Sequence[StimCommand]
    ) -> tuple[list[StimCommand], bool]:
        """What to deliver for ``commands`` at ``t_s`` and whether to stop everything."""
        now = time.monotonic()
        self._beat_wall_s = now
        if not self._armed:
            self._armed = True
            if self._good_sample_wall_s is None:
                self._good_sample_wall_s = now
        if self.fault is not None:
            return self._refuse_all(self._log_time(t_s), commands, log=True), True
        breach = self._time_breach(t_s)
        pulses: list[Pulse] = []
        for command in commands:
            if breach is not None:
                break
            checked = self._check_command(command)
            if isinstance(checked, _Breach):
                breach = checked
            else:
                pulses.append(checked)
        delivered: list[StimCommand] = []
        clamps: list[tuple[StimCommand, StimCommand, str]] = []
        if breach is None:
            for command, pulse in zip(commands, pulses, strict=True):
                out, out_pulse, why = self._limit_rise(t_s, command, pulse)
                if why:
                    clamps.append((command, out, why))
                peak = max(out_pulse.amplitude_ma, out_pulse.recovery_amplitude_ma)
                stimulates = _stimulates(out, out_pulse)
                self._channels[out.channel].deliver(t_s, peak if stimulates else 0.0)
                delivered.append(out)
            self._last_t_s = t_s
            breach = self._held_breach(t_s, commands)
        if breach is not None:
            t_log = self._log_time(t_s)
            self._latch(t_log, breach)
            return self._refuse_all(t_log, commands, log=False), True
        for requested, out, why in clamps:
            self.clamped_commands += 1
            self._log(t_s, "max_amplitude_rise_ma_per_s", requested.channel,
                      describe(requested), describe(out), why)
        return delivered, False

    def _time_breach(self, t_s: float) -> _Breach | None:
        if not isinstance(t_s, float | int) or not math.isfinite(t_s):
            return _Breach("non_finite_time", ALL_CHANNELS, f"t = {t_s!r}", "")
        if t_s <= self._last_t_s:
            return _Breach(
                "time_not_increasing", ALL_CHANNELS, f"t = {t_s!r}",
                f"{t_s!r} s <= previous {self._last_t_s!r} s",
            )
        return None

    def _check_command(self, command: StimCommand) -> _Breach | Pulse:
        """The first rule a single command breaks on its own, or its pulse if none."""
        unknown = unknown_fields(command)
        if unknown:
            return _Breach("unknown_command_field", ALL_CHANNELS, repr(command),
                           f"not understood: {', '.join(unknown)}")
        channel = command.channel
        if not (isinstance(channel, int) and 0 <= channel < len(self._channels)):
            return _Breach("unknown_channel", ALL_CHANNELS, command,
                           f"channel {channel!r} not in 0..{len(self._channels) - 1}")
        pulse = pulse_of(command)
        values = (pulse.amplitude_ma, pulse.pulse_width_us, pulse.frequency_hz,
                  pulse.recovery_amplitude_ma, pulse.recovery_pulse_width_us,
                  command.interphase_gap_us)
        try:
            finite = all(map(math.isfinite, values))
        except TypeError:  # not a number at all
            finite = False
        if not finite:
            return _Breach("non_finite_value", channel, command, "")
        if not command.on:
            return pulse
        if min(values) < 0.0:
            return _Breach("negative_value", channel, command, "")
        if not _stimulates(command, pulse):
            return pulse
        if pulse not in self._pulses_within_limits:
            breaches = pulse_breaches(self.limits, pulse)
            if breaches:
                return _Breach(breaches[0].rule, channel, command, breaches[0].describe())
            if len(self._pulses_within_limits) >= PULSE_CACHE_SIZE:
                self._pulses_within_limits.clear()
            self._pulses_within_limits.add(pulse)
        return pulse

    def _limit_rise(
        self, t_s: float, command: StimCommand, pulse: Pulse
    ) -> tuple[StimCommand, Pulse, str]:
        """``command`` and its pulse with the amplitude limited by the rise rule, and why
        (empty when the command passes unchanged)."""
        if not _stimulates(command, pulse):
            return command, pulse, ""
        history = self._channels[command.channel]
        rate = self.limits.max_amplitude_rise_ma_per_s
        allowed = history.allowed_amplitude_ma(t_s, rate)
        peak = max(pulse.amplitude_ma, pulse.recovery_amplitude_ma)
        if peak <= allowed * (1.0 + RISE_TOLERANCE):
            return command, pulse, ""
        why = (
            f"rise from {history.amplitude_ma:.4g} to {peak:.4g} mA at t = {t_s:.6g} s; "
            f"at most {rate:g} mA/s"
        )
        if allowed <= 0.0:
            off = StimCommand.off(command.channel)
            return off, pulse_of(off), why
        # Scaling the leading amplitude scales the recovery phase with it (the shape is
        # a width ratio), so an asymmetric pulse stays balanced.
        slowed = dataclasses.replace(command, amplitude_ma=command.amplitude_ma * allowed / peak)
        return slowed, pulse_of(slowed), why

    def _held_breach(self, t_s: float, requested: Sequence[StimCommand]) -> _Breach | None:
        """Limits over time, for every channel as it stands after this submit."""
        lim = self.limits
        sensor = self._sensor_breach(t_s)
        if sensor is not None:
            return sensor
        for index, history in enumerate(self._channels):
            if not history.on:
                continue
            text = _requested_on(index, requested)
            on_ms = history.continuous_on_s(t_s) * 1000.0
            if on_ms > lim.max_continuous_on_ms:
                return _Breach("max_continuous_on_ms", index, text,
                               f"on for {on_ms:.1f} ms > {lim.max_continuous_on_ms:g} ms")
            duty = history.duty(t_s)
            if duty > lim.max_duty_cycle:
                return _Breach("max_duty_cycle", index, text,
                               f"duty cycle {duty:.3f} > {lim.max_duty_cycle:g}")
        return self._unknown_phase_breach(t_s, requested)

    def _unknown_phase_breach(
        self, t_s: float, requested: Sequence[StimCommand]
    ) -> _Breach | None:
        """A channel stimulating while the phase has been unknown for too long."""
        unknown_ms = (t_s - self._unknown_since_s) * 1000.0
        if not unknown_ms > self.limits.max_unknown_phase_ms:  # also while NaN (known)
            return None
        for index, history in enumerate(self._channels):
            if history.on:
                return _Breach("max_unknown_phase_ms", index, _requested_on(index, requested),
                               f"phase unknown for {unknown_ms:.1f} ms > "
                               f"{self.limits.max_unknown_phase_ms:g} ms while stimulating")
        return None

    def _sensor_breach(self, t_s: float) -> _Breach | None:
        """No valid sample for longer than the sensor timeout (trial time)."""
        if math.isnan(self._first_observed_s):
            return None
        reference = self._last_good_sample_s
        if math.isnan(reference):
            reference = self._first_observed_s
        gap_ms = (t_s - reference) * 1000.0
        if gap_ms > self.limits.sensor_timeout_ms:
            return _Breach("sensor_timeout_ms", ALL_CHANNELS, "no valid sensor sample",
                           f"{gap_ms:.1f} ms > {self.limits.sensor_timeout_ms:g} ms")
        return None

    def _observe(self, sample: Sample, phase_known: bool) -> _Breach | None:
        """Track sensor and phase health (also while latched, so that a ``reset`` knows
        how long the sensor has been silent); latch on a new breach."""
        t_s = sample.t_s
        if not math.isfinite(t_s):
            return None  # judged at the next sample with a time; the monitor meanwhile
        if math.isnan(self._first_observed_s):
            self._first_observed_s = t_s
        # The gap before this sample counts even if this one is good: silence is a fault.
        breach = self._sensor_breach(t_s)
        if sample_ok(sample):
            self._last_good_sample_s = t_s
            self._good_sample_wall_s = time.monotonic()
        if phase_known:
            self._unknown_since_s = math.nan
        elif math.isnan(self._unknown_since_s):
            self._unknown_since_s = t_s
        if self.fault is not None:
            return None
        if breach is None:
            breach = self._unknown_phase_breach(t_s, ())
        if breach is not None:
            self._latch(t_s, breach)
        return breach

    def _refuse_all(
        self, t_s: float, commands: Sequence[StimCommand], *, log: bool
    ) -> list[StimCommand]:
        """Every command replaced by "off" on its channel (channel 0 if it has none)."""
        refused = []
        for command in commands:
            channel = getattr(command, "channel", 0)
            safe = StimCommand.off(channel if isinstance(channel, int) and channel >= 0 else 0)
            if command != safe:
                self.clamped_commands += 1
                if log:
                    self._log(t_s, "fault_latched", safe.channel, describe(command), "off",
                              f"latched by {self.fault.rule}" if self.fault else "")
            refused.append(safe)
        return refused

    # ---- bookkeeping ------------------------------------------------------------------

    def _log(
        self, t_s: float, rule: str, channel: int, requested: str, delivered: str,
        detail: str = "",
    ) -> None:
        self.interventions.append(Intervention(t_s, rule, channel, requested, delivered, detail))

    def _latch(self, t_s: float, breach: _Breach) -> None:
        self.faults += 1
        requested = breach.requested
        text = requested if isinstance(requested, str) else describe(requested)
        self._log(t_s, breach.rule, breach.channel, text, "all off", breach.detail)
        self.fault = self.interventions[-1]
        off_s = max(t_s, self._last_t_s)
        for channel in self._channels:
            channel.force_off(off_s)

    def _log_time(self, t_s: float) -> float:
        """``t_s`` if it can be logged, else the last trial time (NaN is not JSON)."""
        return t_s if math.isfinite(t_s) else max(self._last_t_s, 0.0)

    def _trial_time_now(self, now: float | None = None) -> float:
        """Trial time estimated from the last submit and the wall time since."""
        if not math.isfinite(self._last_t_s):
            return 0.0
        if not self._armed:
            return self._last_t_s
        now = time.monotonic() if now is None else now
        return self._last_t_s + max(0.0, now - self._beat_wall_s)
