"""The openEMSstim driver: ``controller.ports.Stimulator`` over the board's own firmware.

What it does, and why (the firmware facts are in ``firmware.py``):

- **Connection.** After opening the port it probes the board with a line neither
  firmware version acts on and recognises the version from the reply; a version named
  in the settings must match it. An Arduino Nano resets when its port is opened and its
  ``setup()`` takes about 11 s, so the probe is repeated once a second until the reply
  comes (the probes sent meanwhile are harmless) or ``boot_timeout_s`` ends with a
  clear error. Then every channel is switched off, so the state is known, and
  ``connect`` returns only once the firmware has echoed that all-off line intact
  (below, "Confirming every channel off").
- **Never more than the board can take.** ``apply`` records what each channel should
  deliver; a routine line (a start, a ramp step, a renewal) goes out only when the
  firmware is free (``budget.py``): from the caller's thread when it is free already,
  else from a sender thread once it is, so a ramp becomes the steps the firmware has
  time for. An off and ``stop_all`` go out at once from the caller's thread, behind at
  most the one line being handled. The receive ring never holds more than it can.
- **Every line acknowledged.** The firmware prints each line it reads; the reader thread
  matches those echoes with what was sent. During a trial a garbled or missing echo, a
  reset board or a line the firmware did not understand is a fault (``fault``, the
  listeners); at connect and close the all-off line is sent again instead (below). The echo
  also paces the sending: no routine line goes out while an earlier line's echo has not
  come, a line counts as unread in the receive ring until its echo has come, and an echo
  later than the budget forecast shifts the budget by as much. So a firmware behind its
  forecast (on the host build: a firmware process the machine kept off the CPU) gets no
  second routine line queued behind the first, no byte is lost, and a stop still waits
  behind one line at most.
- **On-time.** Every start carries ``T<hold_ms>`` and the driver renews a channel before
  that on-time ends, while the caller keeps calling ``apply``: when the host stops, the
  board ends the stimulation by itself within ``hold_ms`` (pads open 50 ms later). Each
  renewal and step restates the intensity, and a channel whose on-time may have ended
  before it was renewed (the host stalled) gets the whole command again and a fault
  saying the stimulation was not delivered: never a silent re-connection at zero. With
  the default ``hold_ms`` (1000 ms) a gait train needs no renewal: the firmware is idle
  through its hold, so a ``stop_all`` there never waits behind a line.
- **Off.** When no other channel stays on, an off is the firmware's fastest all-off line
  (a channel-less ``G`` on ``aa7f198``, ``Connection End`` on ``head``), unless the
  channel's own ``C<ch>T0G`` zeroes it sooner (channel 1 alone on ``aa7f198``: the
  all-off line switches channel 0 off first, 50 ms); with another channel staying on,
  ``C<ch>T0G``, which ends the channel's on-time in the firmware's next check. Either
  way the firmware sets the wiper to no output and opens the pads 50 ms later.
- **stop_all** is the all-off line, one line: the firmware switches the channels off one
  after the other (50 ms each). A ``stop_all`` that comes while the firmware handles a
  line waits for it (the firmware reads the next line only when the previous one's
  prints are out); routine lines go out only when the firmware is free and a pending
  stop goes before any of them, so that is one line at most. Nothing written can be
  taken back: the board reads its bytes as they come, and a line cut short would be
  garbled.
- **Steps up within the rise rule.** The watchdog checks the calibrated output
  (``resolution``), command by command; the firmware takes a line when it is free. So
  a start is the train's first level the watchdog delivered (a step from off it
  checked), also when the firmware was busy until the ramp had gone further, and a step
  up goes no higher than the train's fastest checked rise times the time since the
  board's level last changed, at most ``RISE_WINDOW_S``, as the rule counts a step:
  never a step the watchdog would not have passed (before, intensity 1 to 59 in one
  line, 6.6 uC where a command may rise 4). Falls go at once.
- **Ramps down.** While a channel's amplitude falls steadily, the time it will drop
  below the unit's lowest output (the off) is extrapolated, and no routine line is sent
  that would keep the firmware busy past it, so the off does not wait.
- **Confirming every channel off** (``connect`` and ``close``). The all-off line is
  sent and its echo awaited; a garbled echo of it, or none ``ECHO_TIMEOUT_S`` after it
  was due, has it sent again, at most ``OFF_RESENDS`` times within ``OFF_CONFIRM_S``: a
  garbled line is a normal event on a serial link and the all-off line is idempotent
  (whatever the board made of a garbled one, the next intact one switches every
  channel off). Only then is the state known: ``connect`` raises ``BoardError`` naming
  what did not come, and ``close`` sets ``stop_confirmed`` only when an all-off line
  was echoed intact after every other line the host sent (``all_off_resends_*`` in
  the link counters). During a trial a garbled or missing echo stays a fault: the
  driver cannot know what the board did with a routine line.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from controller.ports import StimCommand, check_commands
from hw.board import BoardError, FaultKind
from hw.openems.budget import Budget, Timing
from hw.openems.firmware import (
    BAUD_RATE,
    BYTE_S,
    CHANNELS,
    DEACTIVATE_S,
    ECHO_PREFIX,
    FIRMWARES,
    PROBE_LINE,
    SETUP_DONE,
    SETUP_START,
    Command,
    Firmware,
    Line,
    recognise,
)
from hw.openems.intensity import IntensitySteps
from hw.openems.settings import OpenEmsSettings
from hw.transport import Link, Transport, TransportError

#: A renewal takes effect at least this long before the on-time it renews ends: room
#: for the host being late (a loaded machine) without a gap.
RENEW_MARGIN_S = 0.06
#: Channels are renewed only while ``apply`` was called within this: a hung caller
#: lets the board end the stimulation by itself.
LIVENESS_S = 0.1
#: A start or a step still goes out this long after it was asked for (at most one
#: on-time): the longest the firmware can stay busy before it is free for it (on
#: ``head``, a channel's ``T0`` off, 130 ms, then another channel's start, 100 ms).
STANDING_S = 0.3
#: An echo this much later than the firmware's schedule says is a lost link.
ECHO_TIMEOUT_S = 0.3
#: Lines written later than this after they were booked have their echoes' due times
#: moved by as much (``_written``).
WRITE_LATE_S = 0.001
#: A routine line must leave the firmware free this long before a foreseen off.
OFF_GUARD_S = 0.002
#: The probe is repeated this often while the board boots.
PROBE_PERIOD_S = 1.0
#: After the board's last reply to a probe, this much silence: it has finished.
QUIET_S = 0.05
#: How many times ``connect`` and ``close`` send the all-off line again when its echo
#: is garbled or missing (so at most this plus one all-off lines each).
OFF_RESENDS = 3
#: The longest ``connect`` and ``close`` wait for an intact echo of the all-off line,
#: its resends included: each may be read only after the lines already in the receive
#: ring (two of ``head``'s wrapped lines fill it) and is given up ``ECHO_TIMEOUT_S``
#: after its echo was due, so the resends end well within this.
OFF_CONFIRM_S = 3.0
#: An all-off line whose echo was given up as missing may still be echoed this long
#: after: such a late echo is taken as that line's, not as a line never sent.
LATE_OFF_ECHO_S = 2.0
#: The longest time one step counts for in the watchdog's rise rule
#: (``controller.safety.limits.RISE_WINDOW_S``, restated: a back end imports only
#: ``controller.ports``; ``tests/test_onset_step.py`` checks they agree).
RISE_WINDOW_S = 0.010


@dataclass(frozen=True, slots=True)
class OpenEmsFault:
    """The first fault: the link (lost or garbled lines, no echo), the board (a reset, a
    line it did not understand) or the host (stimulation not delivered because the host
    stalled). ``monotonic_s``: when the driver declared it; ``since_monotonic_s``: when
    the trouble began as far as the driver can tell."""

    kind: FaultKind
    message: str
    monotonic_s: float
    since_monotonic_s: float


@dataclass(slots=True)
class _Channel:
    """One channel: what the trial wants and what the board has, as far as is known."""

    wanted: int = 0  # intensity the trial asks for (0: off)
    onset: int = 0  # the first intensity it asked for since it last asked for off
    #: The fastest rise of its train as the watchdog delivered it, as the rise rule
    #: counts it (uC per phase per s, each step over its time at most RISE_WINDOW_S).
    rise_uc_s: float = 0.0
    board_since_s: float = -math.inf  # when the board's intensity last changed
    wanted_ma: float = 0.0
    t_s: float = -math.inf  # trial time of the last command
    #: Trial time the wanted intensity last changed: the rise rule counts a step from
    #: the held charge's last change, not from the last command.
    changed_t_s: float = -math.inf
    falling: bool = False  # the last command's amplitude was below the one before
    off_due_s: float = math.inf  # a falling amplitude's foreseen drop below the lowest
    board: int = 0  # intensity the board was sent (0: off)
    on_time_ms: int | None = None  # the on-time the firmware keeps (None: unknown)
    end_s: float = -math.inf  # when the board's on-time ends


@dataclass(slots=True)
class OpenEmsStats:
    """What went over the link, for the trial summary."""

    lines: int = 0
    bytes: int = 0
    echoes: int = 0
    garbled: int = 0
    starts: int = 0
    steps: int = 0
    renewals: int = 0
    offs: int = 0
    stops: int = 0
    not_delivered: int = 0
    #: All-off lines sent again because the echo of the previous one was garbled or
    #: missing, while connecting and while closing.
    off_resends_connect: int = 0
    off_resends_close: int = 0
    max_unread_bytes: int = 0
    #: The latest an echo arrived after the firmware's schedule said it would (ms).
    max_echo_lag_ms: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "lines_sent": self.lines,
            "bytes_sent": self.bytes,
            "echoes": self.echoes,
            "garbled_echoes": self.garbled,
            "starts": self.starts,
            "ramp_steps": self.steps,
            "renewals": self.renewals,
            "offs": self.offs,
            "stops": self.stops,
            "not_delivered": self.not_delivered,
            "all_off_resends_at_connect": self.off_resends_connect,
            "all_off_resends_at_close": self.off_resends_close,
            "max_unread_bytes": self.max_unread_bytes,
            "max_echo_lag_ms": round(self.max_echo_lag_ms, 1),
        }


class OpenEmsStim:
    """Driver of an openEMSstim (either firmware version); a ``Stimulator``.

    ``link`` is a serial URL (opened here, at 19200 baud) or an open ``Link``.
    ``connect`` must be called before ``apply``.
    """

    def __init__(
        self,
        link: Link | str,
        settings: OpenEmsSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.url = link if isinstance(link, str) else type(link).__name__
        self._link_arg = link
        self._link: Link | None = None
        self._clock = clock
        self._calibration = settings.calibration
        self._steps = settings.steps
        self.firmware: Firmware | None = None
        self.fault: OpenEmsFault | None = None
        self.stop_confirmed = False
        self.stats = OpenEmsStats()
        self._listeners: list[Callable[[OpenEmsFault], None]] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._channels = [_Channel() for _ in range(CHANNELS)]
        self._budget = Budget(settings.usb_latency_ms / 1000.0)
        self._awaiting: deque[tuple[Line, float]] = deque()  # (line, echo due)
        self._unwritten: set[int] = set()  # ids of the lines booked, not yet written
        self._received: deque[str] = deque()  # board lines, while connecting
        self._stop_requested = False
        self._unsure = True  # the board's channels may be on whatever the driver sent
        #: Until when a channel taken as ended by its estimated on-time may still be on.
        self._ended_until_s = -math.inf
        self._last_apply_s = -math.inf
        self._running = False
        self._connected = False
        self._threads: list[threading.Thread] = []
        #: ``connect`` or ``close`` is confirming every channel off: a garbled or missing
        #: echo of the all-off line has it sent again (``_off_missed``), not a fault.
        self._confirming: str | None = None  # "connect", "close" or None
        self._off_resends_left = 0
        self._off_failure: str | None = None  # why the all-off line was not confirmed
        #: The all-off lines written while confirming (held, so that no other line takes
        #: one's id): only their echoes, garbled or missing, are sent again (a trial's
        #: own stays its fault).
        self._confirm_lines: list[Line] = []
        #: The last echo taken was an intact one of the all-off line, and nothing was
        #: written since (``_off_confirmed``).
        self._off_echoed = False
        #: Until when each all-off line given up as unechoed may still be echoed.
        self._late_offs: deque[float] = deque()
        #: A garbled all-off echo was taken while confirming: the firmware's complaint
        #: about the garbled line it read (printed before the next echo) is no fault.
        self._forgive_complaint = False
        self._link_broken = False  # the port failed: no echo can come

    # --- Stimulator ---------------------------------------------------------------------

    @property
    def channels(self) -> int:
        """openEMSstim has two channels."""
        return CHANNELS

    @property
    def resolution(self) -> IntensitySteps:
        """What the board delivers for a command (``controller.ports.OutputSteps``): the
        watchdog checks and delivers that, so its records and its rise rule see the
        calibrated output the pads get, the output at intensity 1 at every onset."""
        return self._steps

    def intensity(self, command: StimCommand) -> int:
        """The protocol intensity (1-100) that delivers ``command``, 0 for off (also for
        an amplitude below the unit's lowest output). ``ValueError`` for what no
        stimulator can do (``check_commands``) and for what this one cannot: a pulse
        width or frequency other than the unit's, a shaped pulse, more than the unit's
        output at intensity 100."""
        check_commands((command,), CHANNELS)
        if not command.delivers:
            return 0
        problems = self.settings.pulse_problems(
            f"channel {command.channel}", command.pulse_width_us, command.frequency_hz,
            command.interphase_gap_us, command.anodic_width_ratio,
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self._calibration.intensity(command.amplitude_ma)

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        """Record what each named channel should deliver; send an off at once, leave
        the rest to the sender thread. Raises ``ValueError`` (nothing taken) for a
        command the board cannot deliver."""
        wanted = [(c.channel, self.intensity(c), c.amplitude_ma if c.delivers else 0.0)
                  for c in commands]
        if self.firmware is None:
            raise RuntimeError("openEMSstim: connect() before apply()")
        with self._lock:
            now = self._clock()
            self._note_expired(now)  # against what was wanted until now
            changed = now - self._last_apply_s > LIVENESS_S  # renewals may resume
            self._last_apply_s = now
            for channel, intensity, amplitude in wanted:
                ch = self._channels[channel]
                changed |= self._want(ch, intensity, amplitude, t_s, now)
            urgent = self._urgent_needed()
            if changed:
                self._wake.notify()
        if urgent:
            self._send_urgent(blocking=True)
        elif changed:
            self._send_routine_now()

    def stop_all(self) -> None:
        """Every channel off now. Never waits for a write in progress elsewhere: the
        writer sends the all-off line as soon as its own write is done."""
        with self._lock:
            now = self._clock()
            if self._connected:
                self._note_expired(now)  # against what was wanted until now
            for ch in self._channels:
                self._want(ch, 0, 0.0, ch.t_s, now)
            # Once the board is known off, more calls send nothing (the watchdog calls
            # this at every sample while latched).
            self._stop_requested = (
                self._unsure
                or now < self._ended_until_s
                or any(c.board > 0 for c in self._channels)
            )
            self._wake.notify()
        self._send_urgent(blocking=False)

    def link_counters(self) -> dict[str, object]:
        """What went over the link so far (``OpenEmsStats``), for the trial summary."""
        with self._lock:
            return self.stats.as_dict()

    def add_fault_listener(self, listener: Callable[[OpenEmsFault], None]) -> None:
        """Call ``listener(fault)`` (from a driver thread) at the first fault."""
        self._listeners.append(listener)

    # --- connection --------------------------------------------------------------------

    def connect(self) -> Firmware:
        """Open the link, wait for the board, recognise its firmware, switch every
        channel off, start the sender. ``BoardError`` (``no_board``: nothing answers;
        ``refused``: an unknown reply, or not the version the settings name)."""
        if isinstance(self._link_arg, str):
            try:
                self._link = Transport(self._link_arg, baudrate=BAUD_RATE)
            except TransportError as err:
                raise BoardError("no_board", str(err)) from None
        else:
            self._link = self._link_arg
        self._running = True
        self._start("openems-reader", self._read_loop)
        try:
            self.firmware = self._probe()
        except BaseException:
            self.close()
            raise
        with self._lock:
            self._budget.idle_s = self._clock()
            self._connected = True
        failure = self._confirm_off("connect")  # a known state: every channel off
        if failure is not None:
            self._shut()
            raise BoardError(
                "no_board",
                f"{self.url}: the board answered but did not confirm every channel off: "
                f"{failure} (a noisy or failing link: cable, USB bridge; or a board that "
                "stopped reading)",
            )
        self._start("openems-sender", self._send_loop)
        return self.firmware

    @property
    def off_command(self) -> str:
        """What the host sends to switch every output off and waits to see echoed: the
        firmware has no STOP_ALL."""
        return "the all-off line"

    @property
    def off_without_host(self) -> str:
        """What switches the outputs off when the host can no longer confirm it: the
        firmware has no communication timeout, only each command's on-time."""
        return (f"openEMSstim has no communication timeout: each channel's own on-time "
                f"(hold_ms, {self.settings.hold_ms} ms from its last command) switches it "
                "off, its pads open 50 ms later")

    def close(self) -> None:
        """Every channel off, confirmed as at ``connect`` (``_confirm_off``: resent when
        its echo is garbled or missing; ``stop_confirmed`` only for an all-off line
        echoed intact after every other line, also after a fault during the trial), then
        threads stopped, the port closed if this driver opened it. Safe to call twice."""
        if self._connected:
            with self._lock:
                now = self._clock()
                for ch in self._channels:  # nothing is restarted behind the all-off line
                    self._want(ch, 0, 0.0, ch.t_s, now)
            self.stop_confirmed = self._confirm_off("close") is None
        self._shut()

    def _confirm_off(self, phase: str) -> str | None:
        """Send the all-off line and wait until the firmware echoes one intact after
        every other line written; a garbled or missing echo has it sent again (at most
        ``OFF_RESENDS`` times, within ``OFF_CONFIRM_S``). None once confirmed, else what
        did not come."""
        assert self.firmware is not None
        stop_text = self.firmware.stop_text
        with self._lock:
            self._confirming = phase
            self._off_resends_left = OFF_RESENDS
            self._off_failure = None
            self._stop_requested = True
        deadline = time.monotonic() + OFF_CONFIRM_S
        try:
            while True:
                self._send_urgent(blocking=True)
                with self._lock:
                    if self._off_confirmed():
                        return None
                    sent = len(self._confirm_lines)
                    failure = self._off_failure
                    if failure is None and self._link_broken:
                        why = self.fault.message if self.fault is not None else "closed"
                        failure = f"the link failed ({why})"
                if failure is None and time.monotonic() >= deadline:
                    failure = f"no intact echo within {OFF_CONFIRM_S:g} s"
                if failure is not None:
                    return (f"the all-off line ({stop_text!r}) was not echoed intact ({sent} "
                            f"sent; the last: {failure})")
                time.sleep(0.002)
        finally:
            with self._lock:
                self._confirming = None
                self._confirm_lines.clear()
                self._forgive_complaint = False

    def _off_confirmed(self) -> bool:
        """The all-off line asked for was written (``_commit`` clears the request; a
        full receive ring holds it back) and its echo, intact, was the last one taken,
        with no line written after it (caller holds the lock)."""
        return not self._stop_requested and not self._awaiting and self._off_echoed

    def _off_missed(self, why: str) -> None:
        """The all-off line's echo was garbled or missing while confirming: send it again
        if resends are left, else give up saying ``why`` (caller holds the lock)."""
        self._off_echoed = False
        if self._off_resends_left <= 0:
            self._off_failure = why
            return
        self._off_resends_left -= 1
        if self._confirming == "connect":
            self.stats.off_resends_connect += 1
        else:
            self.stats.off_resends_close += 1
        self._stop_requested = True
        self._wake.notify()

    def _written_to_confirm(self, line: Line) -> bool:
        """``line`` is an all-off line written while confirming (caller holds the lock)."""
        return any(line is confirming for confirming in self._confirm_lines)

    def _is_off(self, line: Line) -> bool:
        return (line.command is None and self.firmware is not None
                and line.text == self.firmware.stop_text)

    def _shut(self) -> None:
        """Threads stopped, the port closed if this driver opened it."""
        with self._lock:
            self._connected = False
            self._running = False
            self._wake.notify()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)
        self._threads.clear()
        if self._link is not None and isinstance(self._link_arg, str):
            self._link.close()
        self._link = None

    def _probe(self) -> Firmware:
        deadline = time.monotonic() + self.settings.boot_timeout_s
        probes, echoes, version, last_heard = 0, 0, None, 0.0
        next_probe = 0.0
        seen: list[str] = []
        while True:
            now = time.monotonic()
            if version is None and now >= next_probe:
                self._write(PROBE_LINE.encode("ascii") + b"\n")
                probes += 1
                next_probe = now + PROBE_PERIOD_S
            with self._lock:
                fresh = list(self._received)
                self._received.clear()
            for text in fresh:
                last_heard = now
                seen.append(text)
                echoes += text == ECHO_PREFIX + PROBE_LINE
            version = version or recognise(seen)
            if version is not None and echoes >= probes and now - last_heard >= QUIET_S:
                break
            if self.fault is not None:
                raise BoardError("no_board", f"{self.url}: {self.fault.message}")
            if now >= deadline:
                raise BoardError("no_board" if echoes == 0 else "refused",
                                 self._probe_failure(echoes, seen))
            time.sleep(0.005)
        wanted = self.settings.firmware
        if wanted != "auto" and wanted != version:
            raise BoardError(
                "refused",
                f"{self.url}: the board runs openEMSstim firmware {version} (from its reply "
                f"to a probe), the settings say firmware = {wanted!r}",
            )
        return FIRMWARES[version]

    def _probe_failure(self, echoes: int, seen: list[str]) -> str:
        timeout = self.settings.boot_timeout_s
        if echoes == 0:
            return (
                f"no openEMSstim answered on {self.url} within {timeout:g} s (an Arduino "
                "Nano resets when its port opens and its setup takes about 11 s; "
                "boot_timeout_s in the board settings); "
                + (f"it printed: {seen[-3:]!r}" if seen else "nothing was received")
            )
        return (
            f"the board on {self.url} echoes lines but its reply to a probe is neither "
            f"openEMSstim version's (head, aa7f198): {seen[-4:]!r}"
        )

    # --- what to send ------------------------------------------------------------------

    def _want(
        self, ch: _Channel, intensity: int, amplitude_ma: float, t_s: float, now: float
    ) -> bool:
        """Record what the trial asks of ``ch`` at trial time ``t_s`` (wall time
        ``now``); True when the intensity changed. An amplitude falling since the
        previous command foresees its off: the rate comes from trial time, the
        amplitude's own clock."""
        falling = 0.0 < amplitude_ma < ch.wanted_ma and t_s > ch.t_s
        if falling and ch.falling:
            rate = (ch.wanted_ma - amplitude_ma) / (t_s - ch.t_s)
            ch.off_due_s = now + (amplitude_ma - self._calibration.lowest_ma) / rate
        elif falling:  # the fall may have begun between two commands: rate unknown yet
            ch.off_due_s = now
        elif amplitude_ma != ch.wanted_ma:
            ch.off_due_s = math.inf
        if intensity > ch.wanted:
            step_uc = self._charge_uc(intensity) - self._charge_uc(ch.wanted)
            rise = step_uc / min(max(t_s - ch.changed_t_s, 1e-6), RISE_WINDOW_S)
            ch.rise_uc_s = rise if ch.wanted == 0 else max(ch.rise_uc_s, rise)
        ch.wanted_ma, ch.t_s, ch.falling = amplitude_ma, t_s, falling
        changed = intensity != ch.wanted
        if changed:
            ch.changed_t_s = t_s
        if ch.wanted == 0:
            ch.onset = intensity
        ch.wanted = intensity
        return changed

    def _charge_uc(self, intensity: int) -> float:
        """The charge per phase the unit gives at ``intensity`` (0: off)."""
        return self._calibration.output_ma(intensity) * self.settings.pulse_width_us / 1e3

    def _level(self, ch: _Channel, now: float) -> tuple[int, float]:
        """The intensity to send ``ch`` now, and (when it is the board's own while more
        is wanted) how long until a step up is allowed. A start is the train's onset (a
        step from off the watchdog checked); a fall goes at once; a rise goes up no
        faster than the train's own checked rise, as the rule counts a step (its time
        since the board's last change, at most ``RISE_WINDOW_S``): a firmware busy for
        45 ms gets a step the watchdog would have passed after a pause, not the sum of
        the ramp's steps meanwhile."""
        if ch.board == 0:
            return min(ch.wanted, ch.onset), 0.0
        if ch.wanted <= ch.board:
            return ch.wanted, 0.0
        since_s = min(max(now - ch.board_since_s, 0.0), RISE_WINDOW_S)
        allowed_uc = self._charge_uc(ch.board) + ch.rise_uc_s * since_s * (1.0 + 1e-9)
        level = ch.board
        while level < ch.wanted and self._charge_uc(level + 1) <= allowed_uc:
            level += 1
        if level > ch.board or ch.rise_uc_s <= 0.0:
            return level, 0.0
        needed_s = (self._charge_uc(level + 1) - self._charge_uc(ch.board)) / ch.rise_uc_s
        return level, max(ch.board_since_s + needed_s - now, 0.0005)

    def _urgent_needed(self) -> bool:
        return self._connected and (
            self._stop_requested or any(c.wanted == 0 and c.board > 0 for c in self._channels)
        )

    def _urgent_lines(self, now: float) -> list[Line]:
        """The off lines due now (caller holds the lock). ``stop_all``: the all-off
        line. An off: the all-off line when no other channel stays on, unless the
        channel's own ``T0`` line zeroes it sooner (channel 1 alone on ``aa7f198``:
        the all-off line switches channel 0 off first, 50 ms); else ``T0`` lines."""
        assert self.firmware is not None
        on = [i for i, c in enumerate(self._channels) if c.board > 0]
        ending = [i for i in on if self._channels[i].wanted == 0]
        stop = self.firmware.stop()
        if self._stop_requested:
            return [stop]
        offs = [self.firmware.command(Command(i, on_time_ms=0)) for i in ending]
        if not ending or len(ending) < len(on):
            return offs
        if len(ending) == 1 and not self._unsure:
            (channel,), (off,) = ending, offs
            if (self._budget.plan(off, now).act_s
                    < self._budget.plan(stop, now).act_s + stop.zero_delay_s(channel)):
                return offs
        return [stop]

    def _routine_line(self, now: float) -> tuple[Line | None, float]:
        """The next routine line to send now, or None and how long to wait before
        looking again (caller holds the lock)."""
        assert self.firmware is not None
        self._note_expired(now)
        if now < self._budget.idle_s:
            return None, self._budget.idle_s - now
        if self._awaiting:  # the firmware has not shown it read the last line: its echo
            return None, math.inf  # wakes the sender
        quiet_s = now - self._last_apply_s
        live = quiet_s <= LIVENESS_S
        # A start or step is what the caller asked for; it stands while the firmware may
        # still be busy with earlier lines, and at most one on-time.
        standing = quiet_s <= min(self.settings.hold_ms / 1000.0, STANDING_S)
        wait = math.inf
        off_due = min((c.off_due_s for c in self._channels if c.board > 0), default=math.inf)
        for i, ch in enumerate(self._channels):
            if ch.board == 0 or ch.wanted == 0 or not live:
                continue
            if ch.off_due_s <= ch.end_s - RENEW_MARGIN_S:
                continue  # the foreseen off comes well before the on-time ends
            renew = self.firmware.command(Command(i, intensity=self._level(ch, now)[0]))
            timing = self._budget.plan(renew, now)
            due = ch.end_s - (timing.act_s - now) - RENEW_MARGIN_S
            # An off foreseen near the on-time's end: renew now if the firmware is free
            # again before the off, rather than at the last moment, on top of it.
            early = ch.off_due_s < math.inf and timing.idle_s <= off_due - OFF_GUARD_S
            if now >= due or early:
                return renew, 0.0
            wait = min(wait, due - now)
        # Starts before steps: a channel not on at all is further from what was asked
        # than one at another intensity.
        for i, ch in sorted(enumerate(self._channels), key=lambda ic: ic[1].board > 0):
            if ch.wanted == 0 or ch.wanted == ch.board or not standing:
                continue
            hold = self.settings.hold_ms
            on_time = None if ch.on_time_ms == hold else hold
            starting = ch.board == 0
            # A start is the onset the watchdog checked as a step from off, also when the
            # firmware was busy until the ramp had risen beyond it; a step up is one the
            # rise rule would pass (``_level``).
            level, later = self._level(ch, now)
            if level == ch.board:
                wait = min(wait, later)
                continue
            line = self.firmware.command(Command(i, intensity=level, on_time_ms=on_time))
            if starting or self._budget.plan(line, now).idle_s <= off_due - OFF_GUARD_S:
                return line, 0.0
        return None, wait

    def _note_expired(self, now: float) -> None:
        """Channels whose on-time has ended on the board: it switched them off (50 ms
        of its time); if the trial still wanted them on, that is stimulation the board
        did not deliver, reported as a fault (caller holds the lock)."""
        for i, ch in enumerate(self._channels):
            if ch.board == 0 or now < ch.end_s:
                continue
            self._budget.busy_at(ch.end_s, DEACTIVATE_S)
            ended, ch.board, ch.on_time_ms = ch.end_s, 0, None
            # The end is an estimate: a stop_all soon after still sends the all-off line.
            self._ended_until_s = max(self._ended_until_s, ended + RENEW_MARGIN_S)
            if ch.wanted > 0:
                self.stats.not_delivered += 1
                late_ms = (now - ended) * 1000.0
                self._fault_later(
                    "host",
                    f"channel {i}: stimulation not delivered: its on-time ended on the "
                    f"board {late_ms:.0f} ms before the host renewed it (hold_ms "
                    f"{self.settings.hold_ms}; the host stalled); sent again in full",
                    ended,
                )

    def _commit(self, line: Line, now: float) -> Timing:
        """Book ``line`` as written now: the budget, the channels, the counters (caller
        holds the lock)."""
        timing = self._budget.commit(line, now)
        # the echo's newline at the host: the board prints it as it reads the line
        echo_due = timing.read_s + (len(line.echo) + 2) * BYTE_S + self._budget.latency_s
        self._awaiting.append((line, echo_due))
        self._unwritten.add(id(line))  # no echo is awaited before it is written
        self._off_echoed = False
        stats = self.stats
        stats.lines += 1
        stats.bytes += line.rx_bytes
        stats.max_unread_bytes = max(stats.max_unread_bytes, self._budget.unread_bytes(now))
        command = line.command
        if command is None:
            if line.text != PROBE_LINE:  # the all-off line
                if self._confirming:
                    self._confirm_lines.append(line)
                stats.stops += 1
                self._stop_requested = self._unsure = False
                for ch in self._channels:
                    ch.board, ch.end_s = 0, -math.inf
            return timing
        ch = self._channels[command.channel]
        if command.on_time_ms == 0:
            stats.offs += 1
            ch.board, ch.on_time_ms, ch.end_s = 0, 0, -math.inf
            return timing
        if command.on_time_ms is not None:
            ch.on_time_ms = command.on_time_ms
        assert command.intensity is not None and ch.on_time_ms is not None
        if ch.board == 0:
            stats.starts += 1
        elif command.intensity != ch.board:
            stats.steps += 1
        else:
            stats.renewals += 1
        if command.intensity != ch.board:
            ch.board_since_s = timing.act_s
        ch.board = command.intensity
        ch.end_s = timing.act_s + ch.on_time_ms / 1000.0
        return timing

    # --- writing -----------------------------------------------------------------------

    def _send_urgent(self, blocking: bool) -> bool:
        """Write the off lines due now; True when something was written. Without
        ``blocking``, give up if another thread is writing: it sends them after its own
        write."""
        if not self._write_lock.acquire(blocking=blocking):
            return False
        wrote = False
        try:
            while True:
                with self._lock:
                    if not self._urgent_needed():
                        return wrote
                    now = self._clock()
                    lines = []
                    for line in self._urgent_lines(now):
                        if not self._budget.fits(line, now, self._unechoed_bytes()):
                            break  # the ring would overflow: the rest after an echo
                        self._commit(line, now)
                        lines.append(line)
                    if not lines:  # the ring is full: the sender retries
                        self._wake.notify()
                        return wrote
                self._write(b"".join(ln.text.encode("ascii") + b"\n" for ln in lines),
                            lines, now)
                wrote = True
        finally:
            self._write_lock.release()

    def _unechoed_bytes(self) -> int:
        """Bytes of the lines written whose echo has not come (caller holds the lock)."""
        return sum(line.rx_bytes for line, _ in self._awaiting)

    def _send_routine_now(self) -> None:
        """From ``apply``: write a start or a step due now from the caller's thread, with
        no wait for the sender thread to be scheduled (a loaded machine can take
        milliseconds), unless another thread is writing (then the sender sends it)."""
        if not self._write_lock.acquire(blocking=False):
            return
        try:
            with self._lock:
                if self._urgent_needed() or (self.fault is not None and self.fault.kind != "host"):
                    return
                now = self._clock()
                line, _ = self._routine_line(now)
                if line is None:
                    return
                self._commit(line, now)
            self._write(line.text.encode("ascii") + b"\n", [line], now)
        finally:
            self._write_lock.release()

    def _send_loop(self) -> None:
        """The sender thread: routine lines when the firmware is free, and urgent ones
        another thread could not write."""
        while True:
            with self._lock:
                if not self._running:
                    return
                urgent = self._urgent_needed()
                line, wait = None, math.inf
                if not urgent and (self.fault is None or self.fault.kind == "host"):
                    line, wait = self._routine_line(self._clock())
                if line is None and not urgent:
                    self._wake.wait(max(0.0005, min(wait, 0.05)))
                    continue
            if line is None:
                if not self._send_urgent(blocking=True):
                    time.sleep(0.002)  # the receive ring is full: let the firmware read
                continue
            with self._write_lock:
                with self._lock:
                    now = self._clock()
                    if self._urgent_needed() or self._routine_line(now)[0] != line:
                        continue  # something changed while waiting for the write lock
                    self._commit(line, now)
                self._write(line.text.encode("ascii") + b"\n", [line], now)
            self._send_urgent(blocking=True)  # a stop_all that came during the write

    def _write(self, data: bytes, lines: Sequence[Line] = (),
               committed_s: float | None = None) -> None:
        """Write ``data``: ``lines``, booked (``_commit``) at ``committed_s``."""
        link = self._link
        if link is None:
            return
        try:
            link.write(data)
        except TransportError as err:
            self._link_broken = True
            self._set_fault("link", str(err))
        if lines and committed_s is not None:
            self._written(lines, self._clock() - committed_s)

    def _written(self, lines: Sequence[Line], late_s: float) -> None:
        """``lines`` reached the port ``late_s`` after they were booked: their echoes
        are awaited from now on, that much later than booked, and the firmware reads
        everything after them later too. The writing thread may wait for a CPU between
        booking and writing (330 ms seen on a loaded machine, the loop on time
        meanwhile): an echo timeout counted from the booking took that for a lost link
        (exit 5). A write the port blocks (the board not reading) lasts
        ``WRITE_TIMEOUT_S`` (0.1 s) at most, then fails (a link fault)."""
        written = {id(line) for line in lines}
        with self._lock:
            self._unwritten -= written
            if late_s <= WRITE_LATE_S:
                return
            self._budget.late(late_s)
            self._awaiting = deque((ln, due + late_s if id(ln) in written else due)
                                   for ln, due in self._awaiting)

    # --- reading -----------------------------------------------------------------------

    def _read_loop(self) -> None:
        """The reader thread: board lines, echoes checked against what was sent.

        The echoes are checked as of the time before the read (``read`` returns every
        byte that had arrived by then), not after it: a read may return the first
        bytes of an echo and the thread then wait for a CPU with the rest already in
        the port. Checked as of after it, an echo the board printed 50 ms after it
        was due was declared missing 300-900 ms after (18 of 26 late walks that ended
        so on a loaded machine, test_hw_openems_walk, 6 Dec 2026): a lost link taken
        from the host's own scheduling."""
        pending = b""
        while self._running and self._link is not None:
            read_from = self._clock()
            try:
                data = self._link.read()
            except TransportError as err:
                self._link_broken = True
                if self._running:
                    self._set_fault("link", str(err))
                return
            now = self._clock()
            if data:
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._heard(raw.decode("ascii", "replace").rstrip("\r"), now)
            self._check_echoes(read_from)

    def _heard(self, text: str, now: float) -> None:
        with self._lock:
            if not self._connected:
                self._received.append(text)
                return
            if text.startswith(ECHO_PREFIX):
                if self._late_off_echo(text):
                    return
                if not self._awaiting:
                    return self._fault_later("board", f"the board read a line never sent: {text!r}")
                line, due = self._awaiting.popleft()
                self._forgive_complaint = False
                self.stats.echoes += 1
                lag_s = now - due
                self.stats.max_echo_lag_ms = max(self.stats.max_echo_lag_ms, lag_s * 1000)
                if lag_s > 0.0:  # the firmware is behind the forecast: so is the rest
                    self._budget.late(lag_s)
                    self._awaiting = deque((ln, d + lag_s) for ln, d in self._awaiting)
                self._wake.notify()  # the sender may send the next routine line
                self._off_echoed = text == line.echo and self._is_off(line)
                if text != line.echo and self._written_to_confirm(line):
                    self.stats.garbled += 1
                    self._forgive_complaint = True
                    self._off_missed(f"the board read {text[len(ECHO_PREFIX):]!r}: bytes "
                                     "were lost or changed on the link")
                elif text != line.echo:
                    self.stats.garbled += 1
                    self._fault_later(
                        "link",
                        f"the board read {text[len(ECHO_PREFIX):]!r} where the host sent "
                        f"{line.text!r}: bytes were lost or changed on the link",
                    )
            elif text.startswith(SETUP_START) or text.startswith(SETUP_DONE):
                self._fault_later("board", "the board restarted (its setup ran): every "
                                  "channel is off and its on-times are lost")
            elif self._forgive_complaint:
                return  # about the garbled all-off line it read: that line is sent again
            elif "ERROR" in text or text.startswith("Unknown command") or "null" in text:
                self._fault_later("board", f"the board did not understand a line: {text!r}")

    def _late_off_echo(self, text: str) -> bool:
        """Whether ``text`` is the late echo of an all-off line given up as unechoed
        (``_check_echoes``), taken here as that line's: it is one unless the line
        awaited next is an all-off line, whose echo it may as well be (the same text;
        the other comes later or not at all). Caller holds the lock."""
        if not self._late_offs:
            return False
        now = self._clock()
        while self._late_offs and self._late_offs[0] < now:
            self._late_offs.popleft()
        if (not self._late_offs or self.firmware is None
                or text != ECHO_PREFIX + self.firmware.stop_text):
            return False
        if self._awaiting and self._is_off(self._awaiting[0][0]):
            return False
        self._late_offs.popleft()
        return True

    def _check_echoes(self, now: float) -> None:
        """A line whose echo is ``ECHO_TIMEOUT_S`` overdue: a link fault, or, while
        confirming every channel off, the all-off line sent again (and an overdue line
        before it given up, its fault declared, so that the all-off line's echo is not
        taken for that line's)."""
        with self._lock:
            if not self._awaiting or (self.fault is not None and not self._confirming):
                return
            line, due = self._awaiting[0]
            if now <= due + ECHO_TIMEOUT_S or id(line) in self._unwritten:
                return
            if self._confirming:
                self._awaiting.popleft()
                self._wake.notify()
                if self._is_off(line):
                    self._late_offs.append(now + LATE_OFF_ECHO_S)
                if self._written_to_confirm(line):
                    self._off_missed(f"no echo {ECHO_TIMEOUT_S * 1000:g} ms after it was due")
                    return
                if self.fault is not None:
                    return
        self._set_fault(
            "link",
            f"no echo of {line.text!r} from the board {ECHO_TIMEOUT_S * 1000:g} ms after it "
            "was due: unplugged, crashed or reset",
            due,
        )

    # --- faults ------------------------------------------------------------------------

    def _declare(self, kind: FaultKind, message: str, since_s: float | None) -> bool:
        """Record the first fault (caller holds the lock); True if this was it."""
        if self.fault is not None:
            return False
        now = time.monotonic()
        self.fault = OpenEmsFault(kind, message, now, now if since_s is None else since_s)
        self._unsure |= kind != "host"
        return True

    def _fault_later(self, kind: FaultKind, message: str, since_s: float | None = None) -> None:
        """Record a fault while holding the lock; listeners are called from a thread
        that does not."""
        if self._declare(kind, message, since_s):
            threading.Thread(target=self._tell, args=(self.fault,), daemon=True).start()

    def _set_fault(self, kind: FaultKind, message: str, since_s: float | None = None) -> None:
        with self._lock:
            declared = self._declare(kind, message, since_s)
        if declared:
            self._tell(self.fault)

    def _tell(self, fault: OpenEmsFault | None) -> None:
        if fault is None:
            return
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener(fault)

    def _start(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
