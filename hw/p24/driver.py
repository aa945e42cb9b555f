"""The P24 driver: ``controller.ports.Stimulator`` through the ``science_mode_4`` library.

How it talks to the device, and why:

- **One I/O thread owns the library.** The library is not thread-safe, encodes every
  packet bit by bit in Python (0.2-0.9 ms of the GIL per packet on the bench machine)
  and its awaited calls poll for their answer every 10 ms. None of that may happen on
  the loop's thread: ``apply`` only converts the commands to the device's terms
  (``hw.p24.limits``), stores them as the wanted state of each channel and wakes the
  I/O thread when something changed; ``stop_all`` marks every channel off and a stop as
  due, which the I/O thread serves before anything else (it "jumps the queue": there is
  no queue, only the latest wanted state, so nothing stale is ever sent). The I/O thread
  has its own asyncio event loop for the library's awaited calls (initialisation and the
  final stop), and sends the commands of the trial with the library's non-waiting
  ``send_packet``, reading the answers as they arrive (a reader thread fills the
  connection, ``hw.p24.connection``).
- **Two layers** (``layer``). ``low``: the host times every pulse, one
  Ll_channel_config each, first pulse at once when a channel switches on, then one per
  period taking the channel's latest amplitude (a ramp is followed pulse by pulse); a
  pulse missed by a paused host is skipped, never sent in a burst. Without a command the
  device fires nothing, so a dead host stops the stimulation at once. ``mid``: the
  device makes the train; the driver sends an Ml_update when a channel switches on or
  off or changes period at once, and a changed level at most once per period (the device
  takes it at its next pulse anyway), and keeps the device alive with
  Ml_get_current_data; a dead host leaves it stimulating for up to 2 s. The low level is
  the default (docs/hardware.md gives the measurements and the reasons).
- **Liveness.** The I/O thread fires low-level pulses and keeps mid-level channels on
  only while ``apply`` was called within ``liveness_s``: a hung loop lets the stimulation
  end (at once on the low level; on the mid level the driver switches the channels off
  itself; ``stats.stalls`` counts it), besides the watchdog's own stop.
- **Faults** (``fault``, and every listener of ``add_fault_listener``, called from the
  I/O thread): the link failed or an answer is more than ``ack_timeout_s`` late
  (``link``), the device refused a command or reports a channel error such as an
  electrode off the skin (``board``, as ``hw.board`` calls a device's own fault). After a
  fault nothing more is sent but off and stop.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from controller.ports import StimCommand, check_commands
from hw.board import BoardError, BoardFault, BoardRequirements, FaultKind
from hw.p24.connection import LinkConnection
from hw.p24.library import sm
from hw.p24.limits import (
    CHANNELS,
    MID_KEEP_ALIVE_MS,
    DevicePulse,
    Layer,
    P24Info,
    P24Steps,
    check_p24,
    describe_p24,
    device_pulse,
)
from hw.p24.sciencemode import BAUD_RATE
from hw.transport import Link, Transport, TransportError

#: The loop must have called ``apply`` this recently for pulses and keep-alives to go out.
LIVENESS_S = 0.1
#: An answer this late (in time the I/O thread spent running) means a lost link.
ACK_TIMEOUT_S = 0.3
#: The mid-level keep-alive (and error poll) period; the low level asks for the stim
#: status as often while idle, to notice a silent device.
POLL_S = 0.25
#: Connecting: how long the device has to answer the general layer and the level's init.
CONNECT_TIMEOUT_S = 3.0
#: Closing: how long the level's stop may take to be acknowledged.
CLOSE_TIMEOUT_S = 1.0
#: The I/O thread's clock of waiting advances by at most this much per wake-up, so that
#: a pause of the whole host process is not taken for a silent device.
LISTEN_STEP_S = 0.02
#: Longest sleep of the I/O thread.
MAX_SLEEP_S = 0.05

@dataclass(slots=True)
class P24Stats:
    """What went over the link, for the trial summary and the benchmark."""

    packets_out: int = 0
    acks: int = 0
    pulses: int = 0
    updates: int = 0
    polls: int = 0
    stops: int = 0
    skipped_pulses: int = 0
    stalls: int = 0
    max_ack_ms: float = 0.0
    bad_answers: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class _Pending:
    """A packet waiting for its answer."""

    sent_listen_s: float
    sent_monotonic_s: float
    what: str


class P24Stimulator:
    """Driver of a P24 on a serial URL or an injected ``Link``; see the module docstring.

    ``connect`` (initialise the device, check it: its ScienceMode version, and the
    trial's ``requirements`` when given) before
    ``apply``; ``close`` at the end (every channel off, the level stopped, the link
    closed).
    """

    def __init__(
        self,
        link: Link | str,
        requirements: BoardRequirements | None = None,
        *,
        layer: Layer = "low",
        liveness_s: float = LIVENESS_S,
        ack_timeout_s: float = ACK_TIMEOUT_S,
        poll_s: float = POLL_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.url = link if isinstance(link, str) else type(link).__name__
        self.requirements = requirements
        self.layer: Layer = layer
        self._link_arg = link
        self._liveness_s = liveness_s
        self._ack_timeout_s = ack_timeout_s
        self._poll_s = poll_s
        self._connect_timeout_s = connect_timeout_s
        self.info: P24Info | None = None
        self.fault: BoardFault | None = None
        self.stop_confirmed = False
        self.stats = P24Stats()
        self._listeners: list[Callable[[BoardFault], None]] = []
        # Shared with the I/O thread, under ``_lock``: what each channel should deliver.
        self._lock = threading.Lock()
        self._wanted: list[DevicePulse | None] = [None] * CHANNELS
        self._commands: list[StimCommand | None] = [None] * CHANNELS
        self._stop_due = False
        self._last_apply_s = -math.inf
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._connect_error: Exception | None = None
        # The I/O thread's own state.
        self._device: Any = None
        self._connection: LinkConnection | None = None
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._listen_s = 0.0
        self._delivery: _LowLevel | _MidLevel | None = None

    # --- connecting -------------------------------------------------------------------

    def connect(self) -> P24Info:
        """Open the link, initialise the device (general layer, then the layer's init)
        and check it. ``BoardError("no_board")`` when nothing answers as a P24 does,
        ``BoardError("refused")`` naming every failed check."""
        if self._thread is not None:
            raise RuntimeError("connect() was called already")
        self._thread = threading.Thread(target=self._io_main, name="p24-io", daemon=True)
        self._thread.start()
        self._connected.wait()
        if self._connect_error is not None:
            self._thread.join(timeout=CLOSE_TIMEOUT_S + 1.0)
            err = self._connect_error
            if isinstance(err, BoardError):
                raise err
            why = str(err) or type(err).__name__
            raise BoardError("no_board", f"no P24 answers on {self.url}: {why}") from None
        assert self.info is not None
        return self.info

    # --- Stimulator -------------------------------------------------------------------

    @property
    def channels(self) -> int:
        """The P24's eight channels (channel 0-3 on the first connector, 4-7 on the
        second)."""
        return CHANNELS

    @property
    def resolution(self) -> P24Steps:
        """What the device fires for a command (``controller.ports.OutputSteps``): the
        watchdog checks that, the current in 0.5 mA steps and the recovery as fired."""
        return P24Steps(self.layer)

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        """Make ``commands`` the wanted state of their channels (``ValueError`` before
        anything changes for a command no stimulator or not the P24 can deliver). Never
        waits for the device: the I/O thread sends what changed."""
        check_commands(commands, CHANNELS)
        converted = []
        for command in commands:
            if command != self._commands[command.channel]:
                converted.append((command, device_pulse(command, self.layer)))
        with self._lock:
            self._last_apply_s = time.monotonic()
            changed = False
            for command, pulse in converted:
                self._commands[command.channel] = command
                if pulse != self._wanted[command.channel]:
                    self._wanted[command.channel] = pulse
                    changed = True
        if changed:
            self._wake.set()

    def stop_all(self) -> None:
        """Every channel off now: served by the I/O thread before anything else, from
        any thread, without waiting for it."""
        with self._lock:
            self._wanted = [None] * CHANNELS
            self._commands = [None] * CHANNELS
            self._stop_due = True
        self._wake.set()

    @property
    def off_command(self) -> str:
        """What the host sends to switch every output off and waits to be acknowledged:
        the P24 has no STOP_ALL, its level is stopped."""
        return f"the stop of the {self.layer} level"

    @property
    def off_without_host(self) -> str:
        """What switches the outputs off when the host can no longer confirm it."""
        if self.layer == "low":
            return ("on the low level every pulse is the host's command: no further pulse "
                    "comes (at most the one under way)")
        return (f"the P24 stops on its own {MID_KEEP_ALIVE_MS / 1000:g} s after the "
                "host's last keep-alive (mid level)")

    def close(self) -> None:
        """Every channel off, the level stopped (``stop_confirmed`` when the device
        acknowledged it), the link closed. Safe to call twice and after a fault."""
        self.stop_all()
        self._closing.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=CLOSE_TIMEOUT_S + 2.0)

    def link_counters(self) -> dict[str, Any]:
        """What went over the link so far (``stats``), by name, and once connected what
        the device is (``hw.p24.limits.describe_p24``) under ``device``."""
        counters: dict[str, Any] = self.stats.as_dict()
        if self.info is not None:
            counters["device"] = describe_p24(self.info)
        return counters

    def add_fault_listener(self, listener: Callable[[BoardFault], None]) -> None:
        """Call ``listener(fault)`` (from the I/O thread) when the first fault occurs."""
        self._listeners.append(listener)

    # --- the I/O thread ---------------------------------------------------------------

    def _io_main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            try:
                self.info = loop.run_until_complete(
                    asyncio.wait_for(self._initialise(), self._connect_timeout_s)
                )
                problems = check_p24(self.info, self.requirements)
                if problems:
                    raise BoardError(
                        "refused",
                        f"P24 on {self.url} refused:\n" + "\n".join(f"  - {x}" for x in problems),
                    )
            except TimeoutError:  # asyncio.wait_for's, which says nothing
                self._connect_error = BoardError(
                    "no_board",
                    f"no P24 answered on {self.url} within {self._connect_timeout_s:g} s "
                    "(is it switched on, is this its port?)",
                )
                self._connected.set()
                self._finish(loop)
                return
            except Exception as err:  # handed to connect()'s caller
                self._connect_error = err
                self._connected.set()
                self._finish(loop)
                return
            self._connected.set()
            self._serve()
            self._finish(loop)
        finally:
            loop.close()

    async def _initialise(self) -> P24Info:
        """The general layer (the library's ``initialize``: stim status, a running level
        stopped, device id, versions), then the layer's init."""
        link = self._link_arg
        if isinstance(link, str):
            try:
                link = Transport(link, baudrate=BAUD_RATE)
            except TransportError as err:
                raise BoardError("no_board", str(err)) from None
        self._connection = LinkConnection(link, self._wake.set)
        self._connection.open()
        device = sm.DeviceP24(self._connection)
        self._device = device
        await device.initialize()
        general = device.get_layer_general()
        if self.layer == "low":
            await device.get_layer_low_level().init(
                sm.LowLevelMode.NO_MEASUREMENT, sm.LowLevelHighVoltageSource.STANDARD
            )
            self._delivery = _LowLevel(self)
        else:
            await device.get_layer_mid_level().init(True)
            self._delivery = _MidLevel(self)
        return P24Info(
            device_id=str(general.device_id).rstrip("\x00"),
            firmware_version=str(general.firmware_version),
            science_mode_version=str(general.science_mode_version),
            layer=self.layer,
        )

    def _serve(self) -> None:
        delivery = self._delivery
        assert delivery is not None
        previous = time.monotonic()
        while not self._closing.is_set():
            now = time.monotonic()
            self._wake.wait(min(max(delivery.next_due_s() - now, 0.0), MAX_SLEEP_S))
            self._wake.clear()
            now = time.monotonic()
            self._listen_s += min(now - previous, LISTEN_STEP_S)
            previous = now
            self._read_answers(now)
            with self._lock:
                wanted = list(self._wanted)
                stop, self._stop_due = self._stop_due, False
                alive = now - self._last_apply_s <= self._liveness_s
            if self.fault is not None:
                wanted, alive = [None] * CHANNELS, False
            elif not alive and any(p is not None for p in wanted):
                self.stats.stalls += 1  # the loop stopped calling with a channel on
            try:
                if stop:
                    self.stats.stops += 1
                delivery.step(now, wanted, alive, stop)
            except TransportError:
                pass  # the connection has recorded it: a link fault below
            self._check_link(now)

    def _finish(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every channel off, the level stopped and acknowledged if the device answers,
        the link closed."""
        connection, device = self._connection, self._device
        if connection is None:
            return
        try:
            if device is not None and connection.error is None and connection.bytes_in:
                if self._delivery is not None:
                    self._delivery.step(time.monotonic(), [None] * CHANNELS, False, True)
                self._await_answers(time.monotonic() + self._ack_timeout_s)
                layer = (
                    device.get_layer_low_level()
                    if self.layer == "low"
                    else device.get_layer_mid_level()
                )
                loop.run_until_complete(asyncio.wait_for(layer.stop(), CLOSE_TIMEOUT_S))
                self.stop_confirmed = True
        except (sm.ScienceMode4Error, TransportError, TimeoutError, OSError):
            pass
        finally:
            connection.close()

    def _await_answers(self, deadline_s: float) -> None:
        """Read answers until none is pending or ``deadline_s`` (monotonic) passes:
        before the level's stop, whose library call reads the same buffer and drops the
        answers it does not wait for, so that every packet answered is counted
        (``acks``; one still in flight at close was counted as unanswered)."""
        while self._pending and time.monotonic() < deadline_s:
            self._wake.wait(min(MAX_SLEEP_S, max(deadline_s - time.monotonic(), 0.0)))
            self._wake.clear()
            self._read_answers(time.monotonic())

    # --- packets ----------------------------------------------------------------------

    def send(self, layer: Any, packet: Any, what: str, now: float) -> None:
        """Send ``packet`` through the library and expect its answer (I/O thread only)."""
        assert self._connection is not None
        layer.send_packet(packet)  # numbers, encodes and writes it; may raise TransportError
        self.stats.packets_out += 1
        self._pending[(int(packet.command) + 1, int(packet.number))] = _Pending(
            self._listen_s, now, what
        )

    def _read_answers(self, now: float) -> None:
        buffer = self._device.packet_buffer
        while True:
            try:
                answer = buffer.get_packet_from_buffer()
            except (ValueError, KeyError, IndexError):
                # A packet the library cannot parse stays at the head of its buffer:
                # drop what is buffered (an answer lost with it becomes a link fault).
                self.stats.bad_answers += 1
                buffer.clear_buffer()
                return
            if answer is None:
                return
            self._on_answer(answer, now)

    def _on_answer(self, answer: Any, now: float) -> None:
        command = int(answer.command)
        if command in (sm.Commands.GENERAL_ERROR, sm.Commands.UNKNOWN_COMMAND):
            self._set_fault("board", f"the P24 answered {sm.Commands(command).name}: "
                            f"{answer.result_error.name}")
            return
        pending = self._pending.pop((command, int(answer.number)), None)
        if pending is None:
            return  # an answer to a packet given up on
        self.stats.acks += 1
        self.stats.max_ack_ms = max(self.stats.max_ack_ms,
                                    (now - pending.sent_monotonic_s) * 1e3)
        result = getattr(answer, "result_error", getattr(answer, "result", None))
        if result is not None and int(result) != 0:
            self._set_fault("board", f"the P24 refused {pending.what}: "
                            f"{_result_name(int(result))}")
            return
        errors = getattr(answer, "channel_error", None)
        if errors:
            bad = [(i, e) for i, e in enumerate(errors) if int(e) != 0]
            if bad:
                text = ", ".join(f"channel {i}: {e.name}" for i, e in bad)
                self._set_fault("board", f"the P24 reports {text}")

    def _check_link(self, now: float) -> None:
        connection = self._connection
        if connection is not None and connection.error is not None:
            self._set_fault("link", f"link lost: {connection.error}")
            return
        late = [p for p in self._pending.values()
                if self._listen_s - p.sent_listen_s > self._ack_timeout_s]
        if late:
            self._pending.clear()
            self._set_fault("link", f"the P24 did not answer {late[0].what} within "
                            f"{self._ack_timeout_s * 1e3:g} ms")

    def _set_fault(self, kind: FaultKind, message: str) -> None:
        if self.fault is not None:
            return
        now = time.monotonic()  # the P24's faults are known when they are declared
        self.fault = BoardFault(kind, message, now, now)
        for listener in self._listeners:
            listener(self.fault)


def _result_name(value: int) -> str:
    return (sm.ResultAndError(value).name
            if value in sm.ResultAndError._value2member_map_ else str(value))


class _LowLevel:
    """Low-level delivery: one Ll_channel_config per pulse, timed by the I/O thread."""

    def __init__(self, driver: P24Stimulator) -> None:
        self._driver = driver
        self._layer = driver._device.get_layer_low_level()
        self._general = driver._device.get_layer_general()
        self._next_s = [math.inf] * CHANNELS
        self._on = [False] * CHANNELS
        self._last_sent_s = time.monotonic()

    def next_due_s(self) -> float:
        return min(min(self._next_s), self._last_sent_s + self._driver._poll_s)

    def step(self, now: float, wanted: list[DevicePulse | None], alive: bool,
             stop: bool) -> None:
        driver = self._driver
        for channel in range(CHANNELS):
            pulse = wanted[channel] if alive else None
            if pulse is None:
                self._on[channel], self._next_s[channel] = False, math.inf
                continue
            if not self._on[channel]:
                self._on[channel], self._next_s[channel] = True, now
            if now < self._next_s[channel]:
                continue
            packet = sm.PacketLowLevelChannelConfig()
            packet.execute_stimulation = True
            packet.channel = sm.Channel(channel % 4)
            packet.connector = sm.Connector(channel // 4)
            packet.points = [sm.ChannelPoint(us, ma) for us, ma in pulse.points]
            driver.send(self._layer, packet, f"the pulse on channel {channel}", now)
            driver.stats.pulses += 1
            self._last_sent_s = now
            due = self._next_s[channel] + pulse.period_s
            if due <= now:  # the host was paused past a whole period: skip, never burst
                driver.stats.skipped_pulses += 1
                due = now + pulse.period_s
            self._next_s[channel] = due
        if now - self._last_sent_s >= driver._poll_s:
            driver.send(self._general, sm.PacketGeneralGetStimStatus(), "Get_stim_status", now)
            driver.stats.polls += 1
            self._last_sent_s = now


class _MidLevel:
    """Mid-level delivery: Ml_update on a change, Ml_get_current_data as keep-alive."""

    def __init__(self, driver: P24Stimulator) -> None:
        self._driver = driver
        self._layer = driver._device.get_layer_mid_level()
        self._sent: list[DevicePulse | None] = [None] * CHANNELS
        self._last_update_s = -math.inf
        self._last_poll_s = time.monotonic()
        self._deferred = False

    def next_due_s(self) -> float:
        due = self._last_poll_s + self._driver._poll_s
        if self._deferred:
            due = min(due, self._last_update_s + self._level_period_s())
        return due

    def _level_period_s(self) -> float:
        return min((p.period_s for p in self._sent if p is not None), default=0.0)

    def step(self, now: float, wanted: list[DevicePulse | None], alive: bool,
             stop: bool) -> None:
        driver = self._driver
        target: list[DevicePulse | None] = wanted if alive else [None] * CHANNELS
        if target != self._sent or stop:
            switching = stop or any(
                (a is None) != (b is None) or (a is not None and b is not None
                                               and a.period_s != b.period_s)
                for a, b in zip(target, self._sent, strict=True)
            )
            if switching or now - self._last_update_s >= self._level_period_s():
                self._update(target, now)
                self._deferred = False
            else:
                self._deferred = True
        if now - self._last_poll_s >= driver._poll_s:
            driver.send(self._layer, sm.PacketMidLevelGetCurrentData(),
                        "Ml_get_current_data", now)
            driver.stats.polls += 1
            self._last_poll_s = now

    def _update(self, target: list[DevicePulse | None], now: float) -> None:
        configs = [
            None if p is None else sm.MidLevelChannelConfiguration(
                True, 0, round(p.period_s * 1000.0),
                [sm.ChannelPoint(us, ma) for us, ma in p.points],
            )
            for p in target
        ]
        packet = sm.PacketMidLevelUpdate()
        packet.channel_configuration = configs
        self._driver.send(self._layer, packet, "Ml_update", now)
        self._driver.stats.updates += 1
        self._sent = list(target)
        self._last_update_s = self._last_poll_s = now
