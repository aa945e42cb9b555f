"""The P24's ScienceMode 4 behaviour, on a clock it is given: the emulator's device model.

From the P24's instructions for use (v1.1, ScienceMode4_P24 repository): the general
layer (device id, extended version, stim status, reset), the low-level layer (Ll_init,
Ll_channel_config, Ll_stop) and the mid-level layer (Ml_init, Ml_update, Ml_stop,
Ml_get_current_data). What the instructions leave open is decided here and said so:

- **Mid-level pulses.** A channel switched on by Ml_update fires its first pulse at
  once (after its ramp's first, lowest pulse when it has a ramp) and then one every
  period; an Ml_update of a channel already on changes its pulse from the next one and
  keeps its rhythm (the next pulse stays when it was due; a new period applies from the
  one after), as the project's own pulse rule (``controller.pulses``) and a pulse
  generator behave. A ramp of n makes the first n pulses of a switched-on channel
  rise linearly to full current (pulse k of n at (k + 1) / (n + 1) of it).
- **Keep-alive** (documented): mid-level stimulation stops 2 s after the last Ml_update
  or Ml_get_current_data; the level stays initialized, so Ml_update starts it again.
- **Errors.** A pulse longer than its channel's period cannot run: the channel reports
  a pulse timeout error in Ml_get_current_data and stops (every channel stops when
  Ml_init asked to stop on all errors). Parameters out of range (table 15: 0-4095 us,
  -150..150 mA as 0-600; 1-16 points; a period of at least one step) are refused with a
  parameter error and change nothing; a command of a level that is not initialized is
  refused with "not initialized"; a packet whose length or CRC is wrong is answered with
  General_error (transfer error), an unknown command with Unknown_cmd.
- **Low-level pulses.** Each Ll_channel_config that asks for stimulation is one pulse,
  fired when it arrives or, when a pulse is still running, right after it; the device
  buffers up to 10 (documented), an 11th is refused with the acknowledgement's
  "timeout stimulation" result. The acknowledgement is sent when the pulse has run
  (documented). The low level has no keep-alive: without a command there is no pulse.
  Measurement modes (Ll_init's current or voltage sampling) are not emulated: Ll_init
  asking for one is refused with a parameter error.

Every pulse the device fires is passed to ``log`` with its time on the device's clock
(``monotonic_s``, the emulator uses ``time.monotonic()``), channel (0-7; low level:
connector x 4 + channel), the leading phase's current and width and the whole point list;
so are the state changes (trains starting and ending, keep-alive timeouts, errors).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hw.p24.sciencemode import (
    HIGH_VOLTAGE_OFF,
    HIGH_VOLTAGE_ON,
    BadPacket,
    Command,
    Packet,
    Result,
    StimStatus,
)

CHANNELS = 8
#: Mid-level stimulation stops this long after the last Ml_update or Ml_get_current_data.
KEEP_ALIVE_S = 2.0
#: Low-level pulses the device holds while one runs.
LOW_LEVEL_BUFFER = 10
#: Ll_channel_config_ack's result when a pulse could not be run in time (table 16).
LL_TIMEOUT_STIMULATION = 3
#: Table 15: a point's duration, and its current as 2 x mA + 300.
MAX_POINT_US = 4095
MAX_CURRENT_CODE = 600
MAX_POINTS = 16
#: Ml_get_current_data's only data selection the P24 documents: all errors of all channels.
DATA_ALL_CHANNEL_ERRORS = 4
#: Channel error codes of Ml_get_current_data_ack (table 26).
CHANNEL_OK = 0
CHANNEL_PULSE_TIMEOUT = 2

Log = Callable[..., None]


@dataclass(frozen=True, slots=True)
class Identity:
    """What the device reports about itself in the general layer."""

    device_id: str = "P24EMU0001"
    firmware: tuple[int, int, int] = (1, 0, 0)
    science_mode: tuple[int, int, int] = (4, 0, 0)
    firmware_hash: int = 0


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a pulse: a duration at a current (negative: the reverse direction)."""

    duration_us: int
    current_ma: float


def parse_points(data: bytes, count: int) -> tuple[Point, ...]:
    """``count`` points of 4 bytes each (table 15, big endian: duration in the top 12
    bits, the current code in the next 10, 10 reserved); ``ValueError`` when ``data``
    holds another number of bytes or a current code above 600."""
    if len(data) != 4 * count:
        raise ValueError(f"{len(data)} bytes for {count} points")
    points = []
    for i in range(count):
        word = int.from_bytes(data[4 * i : 4 * i + 4], "big")
        code = (word >> 10) & 0x3FF
        if code > MAX_CURRENT_CODE:
            raise ValueError(f"current code {code} above {MAX_CURRENT_CODE}")
        points.append(Point(word >> 20, (code - 300) / 2.0))
    return tuple(points)


def pulse_us(points: tuple[Point, ...]) -> int:
    """A pulse's length: the sum of its points' durations."""
    return sum(p.duration_us for p in points)


@dataclass(slots=True)
class _MidChannel:
    """One mid-level channel: on or off, its pulse, its rhythm."""

    on: bool = False
    period_s: float = 0.0
    ramp: int = 0
    points: tuple[Point, ...] = ()
    next_s: float = math.inf
    #: Pulse times are counted from an anchor (the train's start, or the first pulse at
    #: a new period), not added up, so that they do not drift.
    anchor_s: float = math.inf
    since_anchor: int = 0
    fired: int = 0
    error: int = CHANNEL_OK


@dataclass(order=True, slots=True)
class _Due:
    """A response the device sends later (a low-level acknowledgement after its pulse)."""

    t_s: float
    order: int
    packet: Packet = field(compare=False)


class P24Device:
    """A P24 on the clock of the caller: ``receive`` a packet at time ``now_s``, ``poll``
    for what becomes due (pulses, deferred acknowledgements, the keep-alive) and wake
    by ``next_event_s``. Times are seconds on one monotonic clock."""

    def __init__(self, log: Log, identity: Identity | None = None) -> None:
        self.identity = identity or Identity()
        self._log = log
        self.level = StimStatus.NO_LEVEL
        self.stop_on_all_errors = False
        self._mid = [_MidChannel() for _ in range(CHANNELS)]
        self._keep_alive_until_s = math.inf
        self._busy_until_s = -math.inf
        self._queued: deque[float] = deque()  # end times of low-level pulses not yet run
        self._due: list[_Due] = []
        self._order = 0
        self.packets = 0
        self.bad_packets = 0
        self.pulses = 0
        self._last_pulse_s = [-math.inf] * CHANNELS

    # --- the clock --------------------------------------------------------------------

    def next_event_s(self) -> float:
        """When something next becomes due (a pulse, a response, the keep-alive)."""
        times = [c.next_s for c in self._mid if c.on]
        if any(c.on for c in self._mid):
            times.append(self._keep_alive_until_s)
        if self._due:
            times.append(min(d.t_s for d in self._due))
        return min(times, default=math.inf)

    def poll(self, now_s: float) -> list[Packet]:
        """Fire the pulses due by ``now_s``, apply the keep-alive, and return the
        responses due by then, oldest first."""
        self._advance(now_s)
        ready = sorted(d for d in self._due if d.t_s <= now_s)
        self._due = [d for d in self._due if d.t_s > now_s]
        return [d.packet for d in ready]

    def _advance(self, now_s: float) -> None:
        """Mid-level pulses up to ``now_s`` in time order, and the keep-alive's end."""
        while self._queued and self._queued[0] <= now_s:
            self._queued.popleft()
        deadline = self._keep_alive_until_s
        while True:
            due = [(c.next_s, i) for i, c in enumerate(self._mid)
                   if c.on and c.next_s <= now_s and c.next_s < deadline]
            if not due:
                break
            index = min(due)[1]
            self._fire_mid(index, self._mid[index])
        if now_s >= deadline and any(c.on for c in self._mid):
            self._log("keep_alive_timeout", monotonic_s=deadline,
                      channels=[i for i, c in enumerate(self._mid) if c.on])
            self._stop_mid(deadline, "keep_alive_timeout")
            self.level = StimStatus.MID_LEVEL_INITIALIZED

    def _fire_mid(self, index: int, channel: _MidChannel) -> None:
        scale = 1.0
        if channel.fired < channel.ramp:
            scale = (channel.fired + 1) / (channel.ramp + 1)
        points = tuple(Point(p.duration_us, p.current_ma * scale) for p in channel.points)
        self._pulse(channel.next_s, "mid", index, points, period_ms=channel.period_s * 1e3)
        channel.fired += 1
        channel.since_anchor += 1
        channel.next_s = channel.anchor_s + channel.since_anchor * channel.period_s

    def _pulse(self, t_s: float, layer: str, channel: int, points: tuple[Point, ...],
               **extra: Any) -> None:
        self.pulses += 1
        self._last_pulse_s[channel] = t_s
        self._log("pulse", monotonic_s=t_s, layer=layer, channel=channel,
                  current_ma=points[0].current_ma, width_us=points[0].duration_us,
                  points=[[p.duration_us, p.current_ma] for p in points], **extra)

    # --- packets ----------------------------------------------------------------------

    def bad_packet(self, err: BadPacket, now_s: float) -> list[Packet]:
        """A packet whose framing, length or CRC is wrong: General_error (transfer)."""
        self.bad_packets += 1
        self._log("bad_packet", monotonic_s=now_s, reason=str(err))
        return [Packet(Command.GENERAL_ERROR, 0, bytes((Result.TRANSFER_ERROR,)))]

    def receive(self, packet: Packet, now_s: float) -> list[Packet]:
        """Act on ``packet`` arriving at ``now_s``; the responses to send now (a
        low-level pulse's acknowledgement comes later, from ``poll``)."""
        self._advance(now_s)
        self.packets += 1
        handler = _HANDLERS.get(packet.command)
        if handler is None:
            self._log("unknown_command", monotonic_s=now_s, command=packet.command)
            return [Packet(Command.UNKNOWN_CMD, packet.number, bytes((Result.INVALID_CMD,)))]
        answer = handler(self, packet, now_s)
        return [] if answer is None else [Packet(packet.command + 1, packet.number, answer)]

    # general layer

    def _get_device_id(self, packet: Packet, now_s: float) -> bytes:
        text = self.identity.device_id.encode("ascii")[:10].ljust(10, b"\x00")
        return bytes((Result.NO_ERROR,)) + text

    def _get_extended_version(self, packet: Packet, now_s: float) -> bytes:
        i = self.identity
        return bytes((Result.NO_ERROR, *i.firmware, *i.science_mode)) + (
            i.firmware_hash.to_bytes(4, "big") + bytes((1, 1))  # a valid git hash
        )

    def _get_stim_status(self, packet: Packet, now_s: float) -> bytes:
        voltage = HIGH_VOLTAGE_OFF if self.level == StimStatus.NO_LEVEL else HIGH_VOLTAGE_ON
        return bytes((Result.NO_ERROR, self.level, voltage))

    def _reset(self, packet: Packet, now_s: float) -> bytes:
        self._stop_mid(now_s, "reset")
        self._end_low_level()
        self.level = StimStatus.NO_LEVEL
        self._log("reset", monotonic_s=now_s)
        return bytes((Result.NO_ERROR,))

    # low level

    def _ll_init(self, packet: Packet, now_s: float) -> bytes:
        if self.level not in (StimStatus.NO_LEVEL, StimStatus.LOW_LEVEL_INITIALIZED):
            return bytes((Result.NOT_INITIALIZED,))
        if len(packet.data) != 1 or (packet.data[0] >> 4) & 0x07:
            return bytes((Result.PARAMETER_ERROR,))  # measurement modes are not emulated
        self.level = StimStatus.LOW_LEVEL_INITIALIZED
        self._log("low_level_init", monotonic_s=now_s)
        return bytes((Result.NO_ERROR,))

    def _ll_channel_config(self, packet: Packet, now_s: float) -> bytes | None:
        data = packet.data
        head = data[0] if data else 0
        channel, connector = (head >> 5) & 0x03, (head >> 4) & 0x01

        def ack(result: int) -> bytes:
            return bytes((result, (connector << 4) | channel, 0))

        if self.level != StimStatus.LOW_LEVEL_INITIALIZED:
            return ack(Result.NOT_INITIALIZED)
        try:
            points = parse_points(data[1:], (head & 0x0F) + 1)
        except ValueError:
            return ack(Result.PARAMETER_ERROR)
        if not head & 0x80:
            return ack(Result.NO_ERROR)  # configuration without stimulation
        if len(self._queued) >= LOW_LEVEL_BUFFER:
            self._log("low_level_overflow", monotonic_s=now_s, channel=connector * 4 + channel)
            return ack(LL_TIMEOUT_STIMULATION)
        start = max(now_s, self._busy_until_s)
        self._busy_until_s = start + pulse_us(points) / 1e6
        self._queued.append(self._busy_until_s)
        self._pulse(start, "low", connector * 4 + channel, points)
        self._later(self._busy_until_s, Packet(Command.LL_CHANNEL_CONFIG_ACK, packet.number,
                                               ack(Result.NO_ERROR)))
        return None

    def _ll_stop(self, packet: Packet, now_s: float) -> bytes:
        if self.level != StimStatus.LOW_LEVEL_INITIALIZED:
            return bytes((Result.NOT_INITIALIZED,))
        self._end_low_level()
        self.level = StimStatus.NO_LEVEL
        self._log("low_level_stop", monotonic_s=now_s)
        return bytes((Result.NO_ERROR,))

    def _end_low_level(self) -> None:
        """Low-level pulses are fired when accepted; a stop answers what is pending."""
        self._queued.clear()

    def _later(self, t_s: float, packet: Packet) -> None:
        self._order += 1
        self._due.append(_Due(t_s, self._order, packet))

    # mid level

    def _ml_init(self, packet: Packet, now_s: float) -> bytes:
        if self.level == StimStatus.LOW_LEVEL_INITIALIZED:
            return bytes((Result.NOT_INITIALIZED,))
        if len(packet.data) != 1:
            return bytes((Result.PARAMETER_ERROR,))
        self.stop_on_all_errors = bool(packet.data[0] & 0x01)
        if self.level == StimStatus.NO_LEVEL:
            self.level = StimStatus.MID_LEVEL_INITIALIZED
        self._log("mid_level_init", monotonic_s=now_s, stop_on_all_errors=self.stop_on_all_errors)
        return bytes((Result.NO_ERROR,))

    def _ml_update(self, packet: Packet, now_s: float) -> bytes:
        if self.level not in (StimStatus.MID_LEVEL_INITIALIZED, StimStatus.MID_LEVEL_RUNNING):
            return bytes((Result.NOT_INITIALIZED,))
        try:
            configs = parse_update(packet.data)
        except ValueError as err:
            self._log("parameter_error", monotonic_s=now_s, command="Ml_update", reason=str(err))
            return bytes((Result.PARAMETER_ERROR,))
        self._keep_alive_until_s = now_s + KEEP_ALIVE_S
        too_long = {i for i, (period_s, _, points) in configs.items()
                    if pulse_us(points) / 1e6 >= period_s}
        for index, channel in enumerate(self._mid):
            channel.error = CHANNEL_PULSE_TIMEOUT if index in too_long else CHANNEL_OK
            config = configs.get(index)
            if config is None or index in too_long or (too_long and self.stop_on_all_errors):
                if channel.on:
                    why = "update" if config is None else "pulse_timeout_error"
                    self._end_train(index, channel, now_s, why)
                continue
            period_s, ramp, points = config
            if not channel.on:
                channel.next_s, channel.fired = now_s, 0
                self._log("train_start", monotonic_s=now_s, channel=index)
            if not channel.on or period_s != channel.period_s:
                channel.anchor_s, channel.since_anchor = channel.next_s, 0
            channel.on, channel.period_s = True, period_s
            channel.ramp, channel.points = ramp, points
        self.level = (
            StimStatus.MID_LEVEL_RUNNING
            if any(c.on for c in self._mid)
            else StimStatus.MID_LEVEL_INITIALIZED
        )
        self._advance(now_s)  # a channel switched on fires its first pulse now
        return bytes((Result.NO_ERROR,))

    def _ml_get_current_data(self, packet: Packet, now_s: float) -> bytes:
        if self.level not in (StimStatus.MID_LEVEL_INITIALIZED, StimStatus.MID_LEVEL_RUNNING):
            return bytes((Result.NOT_INITIALIZED, DATA_ALL_CHANNEL_ERRORS, 0, 0, 0, 0, 0))
        if packet.data != bytes((DATA_ALL_CHANNEL_ERRORS,)):
            return bytes((Result.PARAMETER_ERROR, DATA_ALL_CHANNEL_ERRORS, 0, 0, 0, 0, 0))
        self._keep_alive_until_s = now_s + KEEP_ALIVE_S
        active = sum(1 << i for i, c in enumerate(self._mid) if c.on)
        errors = bytes(
            self._mid[2 * i].error | (self._mid[2 * i + 1].error << 4) for i in range(4)
        )
        return bytes((Result.NO_ERROR, DATA_ALL_CHANNEL_ERRORS, active)) + errors

    def _ml_stop(self, packet: Packet, now_s: float) -> bytes:
        if self.level not in (StimStatus.MID_LEVEL_INITIALIZED, StimStatus.MID_LEVEL_RUNNING):
            return bytes((Result.NOT_INITIALIZED,))
        self._stop_mid(now_s, "stop")
        self.level = StimStatus.NO_LEVEL
        self._log("mid_level_stop", monotonic_s=now_s)
        return bytes((Result.NO_ERROR,))

    def _stop_mid(self, now_s: float, why: str) -> None:
        for index, channel in enumerate(self._mid):
            if channel.on:
                self._end_train(index, channel, now_s, why)
        self._keep_alive_until_s = math.inf

    def _end_train(self, index: int, channel: _MidChannel, now_s: float, why: str) -> None:
        channel.on, channel.next_s = False, math.inf
        self._log("train_end", monotonic_s=now_s, channel=index, why=why)

    def channels_on(self) -> list[int]:
        """Mid-level channels stimulating now."""
        return [i for i, c in enumerate(self._mid) if c.on]

    def pulsing(self, now_s: float, within_s: float) -> list[int]:
        """Channels that fired a pulse within ``within_s`` before ``now_s``, on either
        level (the low level has no train to be on: only pulses)."""
        return [i for i, t in enumerate(self._last_pulse_s) if now_s - t <= within_s]


def parse_update(data: bytes) -> dict[int, tuple[float, int, tuple[Point, ...]]]:
    """Ml_update's command data (table 22): per channel switched on, its period in
    seconds, ramp and points; ``ValueError`` naming what is wrong."""
    if not data:
        raise ValueError("no channel activation byte")
    active, at = data[0], 1
    configs = {}
    for index in range(CHANNELS):
        if not active & (1 << index):
            continue
        if at + 3 > len(data):
            raise ValueError(f"channel {index}: configuration cut short")
        head, word = data[at], int.from_bytes(data[at + 1 : at + 3], "big")
        count, ramp = (head >> 4) + 1, head & 0x0F
        value, quarter = word >> 1, word & 0x01
        if value == 0:
            raise ValueError(f"channel {index}: period 0")
        period_s = value / (4000.0 if quarter else 2000.0)
        end = at + 3 + 4 * count
        configs[index] = (period_s, ramp, parse_points(data[at + 3 : end], count))
        at = end
    if at != len(data):
        raise ValueError(f"{len(data) - at} bytes after the last channel")
    return configs


_Handler = Callable[[P24Device, Packet, float], "bytes | None"]
_HANDLERS: dict[int, _Handler] = {
    Command.GET_DEVICE_ID: P24Device._get_device_id,
    Command.GET_EXTENDED_VERSION: P24Device._get_extended_version,
    Command.GET_STIM_STATUS: P24Device._get_stim_status,
    Command.RESET: P24Device._reset,
    Command.LL_INIT: P24Device._ll_init,
    Command.LL_CHANNEL_CONFIG: P24Device._ll_channel_config,
    Command.LL_STOP: P24Device._ll_stop,
    Command.ML_INIT: P24Device._ml_init,
    Command.ML_UPDATE: P24Device._ml_update,
    Command.ML_GET_CURRENT_DATA: P24Device._ml_get_current_data,
    Command.ML_STOP: P24Device._ml_stop,
}
