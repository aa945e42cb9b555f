"""The board's firmware as ``docs/protocol.md`` specifies it, as a pure state machine.

Given valid frames and the board time, it answers, switches its outputs, enforces its
own limits and its communication timeout, and streams sensor samples. Its front end
(sensors and electrodes) is the simulated patient: the samples come from a
``SimulatedLimb`` that receives the stimulation this firmware delivers, so a trial
through it is closed-loop. No I/O and no clock of its own: ``hw.emulator`` moves its
bytes over a pty and tells it the time; tests drive it directly.

The firmware samples its front end on a fixed grid after the first START_STREAM (the
patient keeps walking while the stream is stopped) and applies every accepted command at
once, so a command that answers sample k arrives before sample k+1 and governs the next
sample period, exactly as in ``fes sim``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from controller.events import EVENT_BY_NAME, Event
from controller.ports import Sample
from controller.validation import ConfigModel
from hw import protocol as p
from sim.limb import SimulatedLimb

#: Samples remembered for round-trip measurement (ref_sample of STIM and HEARTBEAT).
RTT_MEMORY = 1024
#: Board times are floats of seconds: 0.507 - 0.407 is 0.10000000000000003, which is
#: over a 100 ms timeout. Limits on a difference of times allow this much more, so that
#: the model faults at the AVR firmware's millisecond (its times are whole numbers).
TIME_ROUNDING_S = 1e-9
#: The duty-cycle limit counts each channel's milliseconds on in buckets of 100 ms over
#: the bucket filling and the 100 before it (10.0-10.1 s, never less than the host's
#: 10 s window), as the AVR firmware does (hw/avr/firmware/session.h).
DUTY_BUCKET_MS = 100
DUTY_BUCKETS = 101
#: The duty-cycle limit a board of version 4 has unless told otherwise: 80 % of 10 s,
#: the host's default ``safety.max_duty_cycle`` (the AVR firmware's compiled value).
DEFAULT_MAX_DUTY_CYCLE = 0.8
#: Gyroscope axis (z) that carries the sagittal shank rate on the emulated board (x and
#: y carry a fraction of it: ``FirmwareSettings.cross_axis_fraction``).
EMULATED_SAGITTAL_AXIS = 2
#: The reference firmware of each protocol version it models (``hw.board.KNOWN_FIRMWARE``).
#: Version 3 is version 2 on a 1 Mbaud link (a pty ignores the rate): it has no firmware
#: of this model of its own; 1.2.0 speaks it as part of version 4.
REFERENCE_FIRMWARE = {1: (1, 0, 0), 2: (1, 1, 0), 4: (1, 2, 0)}
#: The newest version this model speaks: version 4 adds the board's own charge-per-phase
#: limit (INFO, ACK OVER_CHARGE) and delivers nothing for a pulse width under
#: ``protocol.MIN_PULSE_WIDTH_US``, as the AVR firmware 2.2.0 of hw/avr does.
MODEL_PROTOCOL_VERSION = 4


#: One part of a firmware version as INFO carries it: an unsigned byte.
VersionPart = Annotated[int, Field(ge=0, le=255)]


class FirmwareSettings(ConfigModel):
    """The board's own configuration: identity, rate and the limits it enforces itself."""

    channels: int = Field(
        2, ge=1, le=8,
        description="Stimulation outputs the board has (--channels); a trial whose "
        "channels use an output beyond them is refused at HELLO.",
    )
    sample_rate_hz: int = Field(
        500, ge=100, le=2000,
        description="Sensor samples per second the board streams (--rate-hz); it is the "
        "clock of a live trial and must equal the trial's loop.sample_rate_hz.",
    )
    max_amplitude_ma: float = Field(
        60.0, gt=0.0, le=200.0,
        description="The board's own amplitude limit (--max-amplitude-ma): it refuses a "
        "command above it. The host refuses a board whose limit is looser than the "
        "trial's safety.max_amplitude_ma.",
    )
    max_pulse_width_us: int = Field(
        500, ge=1, le=2000,
        description="The board's own limit of the leading phase's width "
        "(--max-pulse-width-us); a board looser than the trial's safety limit is refused.",
    )
    max_frequency_hz: float = Field(
        60.0, gt=0.0, le=200.0,
        description="The board's own pulse-rate limit (--max-frequency-hz); a board looser "
        "than the trial's safety limit is refused.",
    )
    max_on_time_ms: int = Field(
        3000, ge=100, le=60000,
        description="Continuous stimulation after which the board switches the output "
        "off and reports a fault (--max-on-time-ms), whatever the host asks.",
    )
    comm_timeout_ms: int = Field(
        100, ge=10, le=10000,
        description="No valid frame from the host for this long switches every output "
        "off (--comm-timeout-ms); the host refuses a board whose timeout exceeds 500 ms.",
    )
    protocol_version: int = Field(
        MODEL_PROTOCOL_VERSION, ge=1, le=MODEL_PROTOCOL_VERSION,
        description="Newest protocol version the board speaks (it speaks every older one): "
        "4, 2 (a board from before the charge limit, firmware 1.1.0) or 1 (from before "
        "pulse shapes, 1.0.0); 3 is the AVR firmware's own.",
    )
    max_duty_cycle: float | None = Field(
        None, ge=0.1, le=1.0,
        description="The board's own limit of the fraction of the last 10 s a channel may "
        "deliver pulses, in steps of 0.001 (--max-duty-cycle): beyond it the board switches "
        "every output off and reports FAULT DUTY, whatever the host asks. Unset: 0.8. "
        "Protocol version 4 only; the host refuses a board whose limit is looser than the "
        "trial's safety.max_duty_cycle.",
    )
    max_charge_per_phase_uc: float | None = Field(
        None, ge=p.CHARGE_UNIT_UC, le=200.0,
        description="The board's own limit of the charge per phase, amplitude x pulse "
        "width, in steps of 0.01 uC (--max-charge-per-phase-uc), at least one step (a limit "
        "of 0 would refuse every pulse): it refuses a command above it (ACK OVER_CHARGE). "
        "Unset: max_amplitude_ma x max_pulse_width_us. Protocol "
        "version 4 only; the host refuses a board whose limit is looser than the trial's "
        "safety.max_charge_per_phase_uc.",
    )
    max_interphase_gap_us: int = Field(
        500, ge=0, le=0xFFFF,
        description="The board's own limit of the gap between a pulse's two phases "
        "(--max-interphase-gap-us); a channel asking for more is refused at HELLO.",
    )
    max_anodic_width_ratio: float = Field(
        10.0, ge=1.0, le=100.0,
        description="The board's own limit of the anodic width ratio, in steps of 0.01 "
        "(--max-anodic-width-ratio; 1: symmetric pulses only).",
    )
    firmware_version: tuple[VersionPart, VersionPart, VersionPart] | None = Field(
        None,
        description="Firmware version reported at HELLO (--firmware X.Y.Z); unset: the "
        "reference firmware of protocol_version. The host refuses firmware it does not "
        "know.",
    )
    board_id: int = Field(
        1, ge=0, le=2**32 - 1,
        description="The board's serial number, reported at HELLO (--board-id): fes ports "
        "--probe prints it and a live trial's summary.json records it.",
    )
    gyro_full_scale_dps: int = Field(
        2000, ge=125, le=4000,
        description="Full scale of the board's gyroscope in degrees per second, reported "
        "at HELLO so that the host can scale the counts it streams.",
    )
    declared_sagittal_axis: int | None = Field(
        None, ge=0, le=2,
        description="The gyroscope axis INFO declares sagittal (0 x, 1 y, 2 z; "
        "--declared-sagittal-axis); unset: z, the axis that carries the patient's sagittal "
        "rate. Another emulates a board configured wrong: the host's axis check finds it "
        "and stimulates nothing gait-triggered.",
    )
    cross_axis_fraction: float = Field(
        0.4, ge=0.0, le=1.0,
        description="The two other gyroscope axes (x and y) carry this fraction of the "
        "sagittal rate, x with its sign and y reversed (--cross-axis-fraction): a stand-in "
        "for the frontal and transverse rotation the simulated patient does not model. "
        "While moving, real feet turn 0.3-0.9 times as much about their larger other axis "
        "as about the sagittal one (median 0.43; docs/detection.md).",
    )
    truth: bool = Field(
        True,
        description="Offer the simulated patient's ground truth as debug frames; false "
        "behaves as a real board, whose trials have no truth to be scored on (--no-truth).",
    )
    status_period_ms: int = Field(
        100, ge=10, le=1000,
        description="Time between STATUS frames while streaming (--status-period-ms).",
    )

    @model_validator(mode="after")
    def _version_has_its_firmware(self) -> Self:
        """A version this model has a firmware of, and a charge limit only in a version
        whose INFO carries it (a board that enforced a limit it does not report would be
        refused nothing at HELLO and fault in the middle of a trial)."""
        if self.protocol_version not in REFERENCE_FIRMWARE:
            spoken = ", ".join(map(str, REFERENCE_FIRMWARE))
            raise ValueError(
                f"protocol_version {self.protocol_version}: this model has firmware of "
                f"versions {spoken} (3 is version 2 at 1 000 000 baud, the AVR firmware's)"
            )
        for name in ("max_charge_per_phase_uc", "max_duty_cycle"):
            if getattr(self, name) is not None and self.protocol_version < p.CHARGE_LIMIT_VERSION:
                raise ValueError(
                    f"{name} needs protocol_version {p.CHARGE_LIMIT_VERSION}: a board of "
                    f"version {self.protocol_version} has no such limit of its own"
                )
        return self

    @property
    def max_duty_permille(self) -> int | None:
        """The duty-cycle limit in 0.1 %, as INFO reports and the board checks it; None
        for a board of a version before 4, which has none."""
        if self.protocol_version < p.CHARGE_LIMIT_VERSION:
            return None
        duty = DEFAULT_MAX_DUTY_CYCLE if self.max_duty_cycle is None else self.max_duty_cycle
        return round(duty / p.DUTY_UNIT)

    @property
    def max_charge_cuc(self) -> int:
        """The charge-per-phase limit in 0.01 uC, as INFO reports and the board checks
        it: the one set, else the amplitude limit x the pulse width limit."""
        if self.max_charge_per_phase_uc is not None:
            return round(self.max_charge_per_phase_uc / p.CHARGE_UNIT_UC)
        product = self.max_amplitude_ma * self.max_pulse_width_us * 1e-3 / p.CHARGE_UNIT_UC
        return math.ceil(product - 1e-9)  # never stricter than the two limits together

    @property
    def min_pulse_width_us(self) -> int:
        """The shortest pulse width that delivers: ``protocol.MIN_PULSE_WIDTH_US`` from
        protocol version 4 on; the reference firmware of older versions delivered any
        width as asked."""
        return p.MIN_PULSE_WIDTH_US if self.protocol_version >= p.CHARGE_LIMIT_VERSION else 1

    @model_validator(mode="after")
    def _longest_pulse_fits_shortest_period(self) -> Self:
        """docs/protocol.md: the longest pulse the limits allow ends before the next one
        at the highest frequency, so no accepted setting overlaps its own pulses."""
        longest_us = self.max_pulse_width_us * (1.0 + self.max_anodic_width_ratio) + (
            self.max_interphase_gap_us
        )
        if longest_us >= 1e6 / self.max_frequency_hz:
            raise ValueError(
                f"the longest pulse the limits allow ({longest_us:g} us: max_pulse_width_us "
                "x (1 + max_anodic_width_ratio) + max_interphase_gap_us) must be shorter "
                f"than the period at max_frequency_hz ({1e6 / self.max_frequency_hz:g} us)"
            )
        return self

    @property
    def firmware(self) -> tuple[int, int, int]:
        """The firmware version reported at HELLO."""
        if self.firmware_version is not None:
            return self.firmware_version
        return REFERENCE_FIRMWARE[self.protocol_version]

    def speaks(self, version: int) -> bool:
        """True for a protocol version this board speaks."""
        return 1 <= version <= self.protocol_version

    @property
    def gyro_lsb_rad_s(self) -> float:
        """Angular rate of one gyroscope count (as the host reads it from INFO)."""
        return p.gyro_lsb_rad_s(self.gyro_full_scale_dps)


Log = Callable[..., None]


def _no_log(event: str, **fields: Any) -> None:
    """The default log: nothing."""


def _t_us(t_s: float) -> int:
    """Board time on the wire: microseconds modulo 2**32."""
    return round(t_s * 1e6) & 0xFFFFFFFF


class Firmware:
    """Firmware model of one board; see ``docs/protocol.md`` for every rule it follows."""

    def __init__(self, settings: FirmwareSettings, limb: SimulatedLimb, log: Log = _no_log):
        if limb.channels < settings.channels:
            raise ValueError("the simulated limb has fewer channels than the board")
        self.settings = settings
        self._limb = limb
        self._log = log
        self._period_s = 1.0 / settings.sample_rate_hz
        self.session = False
        self.version = settings.protocol_version  # of the session (or the next INFO)
        self.streaming = False
        self.truth_enabled = False
        self.fault = p.FaultCode.NONE  # the last fault, reported until the next HELLO
        self.outputs = [p.ChannelSetting.off(c) for c in range(settings.channels)]
        self._on_since: list[float | None] = [None] * settings.channels
        #: Duty cycle: milliseconds on per bucket and channel, their sums, the next
        #: millisecond to count (kept across sessions: a new HELLO does not rest a muscle).
        self._duty_ms = [[0] * DUTY_BUCKETS for _ in range(settings.channels)]
        self._duty_sum_ms = [0] * settings.channels
        self._duty_next_ms = 0
        self._last_rx_s = 0.0
        #: The board's view of the host's keep-alive: the longest board time between two
        #: frames that kept the session alive while streaming (the comm timeout's margin).
        self.longest_host_silence_s = 0.0
        self._last_seq = 0
        self._tx_seq = 0
        self._walk_start_s: float | None = None
        self._next_index = 0
        #: Fault injection (``hw.emulator``): SAMPLE frames withheld, and the number
        #: the sample index restarted from 0 at (as a board whose sensor loop reset).
        self.mute_samples = False
        self._index_base = 0
        self._sent_s = [math.nan] * RTT_MEMORY
        self._answered = -1
        self.round_trips_s: list[float] = []
        self._rtt_last_s = 0.0
        self._rtt_max_s = 0.0
        self._next_status_s = 0.0
        self._events = [(t, EVENT_BY_NAME[name]) for t, name in limb.true_events()]
        self._next_event = 0
        self._truth_next = 0
        self.rx_frames = 0
        self.rx_bad = 0
        self.refused = 0

    # --- receiving --------------------------------------------------------------------

    def _kept_alive(self, now_s: float) -> None:
        """A frame that keeps the session alive arrived at board time ``now_s`` (or the
        comm timeout ended the silence)."""
        if self.session and self.streaming:
            self.longest_host_silence_s = max(self.longest_host_silence_s,
                                              now_s - self._last_rx_s)
        self._last_rx_s = now_s

    def bad_frame(self) -> None:
        """Count a frame that failed framing or CRC (never acted on, never answered)."""
        self.rx_bad += 1

    def receive(self, frame: p.Frame, now_s: float) -> list[bytes]:
        """Act on one valid frame at board time ``now_s``; return the frames to send."""
        self.rx_frames += 1
        try:
            message = p.parse(frame)
        except p.ProtocolError as err:
            return [self._ack(frame, err.code)]
        if not self._accepts(message):
            return [self._ack(frame, p.AckCode.UNKNOWN_TYPE)]
        if isinstance(message, p.Hello):
            return self._hello(frame, message, now_s)
        if isinstance(message, p.StopAll):
            self._log("stop_all", board_t_s=now_s, on=self.channels_on())
            self._all_off(now_s, "stop_all")
            if self.session and self._newer(frame.seq):
                self._last_seq = frame.seq
                self._kept_alive(now_s)
            return [self._ack(frame, p.AckCode.OK)]
        if isinstance(message, p.GetStatus):
            return [self._status(now_s)]
        if not self.session:
            return [self._ack(frame, p.AckCode.NOT_READY)]
        if not self._newer(frame.seq):
            return [self._ack(frame, p.AckCode.STALE_SEQ)]
        self._last_seq = frame.seq
        self._kept_alive(now_s)
        code = self._command(message, now_s)
        flush = []
        if isinstance(message, p.StopStream) and self.truth_enabled:
            flush = self._flush_truth()
        return [*flush, self._ack(frame, code)]

    def _command(self, message: p.Message, now_s: float) -> p.AckCode:
        if isinstance(message, p.Stim):
            self._round_trip(message.ref_sample, now_s)
            return self._stim(message, now_s)
        if isinstance(message, p.Heartbeat):
            self._round_trip(message.ref_sample, now_s)
            return p.AckCode.OK
        if isinstance(message, p.StartStream):
            if self._walk_start_s is None:
                self._walk_start_s = now_s
            self.streaming = True
            self._log("stream_start", board_t_s=now_s)
            return p.AckCode.OK
        if isinstance(message, p.StopStream):
            self.streaming = False
            self._log("stream_stop", board_t_s=now_s)
            return p.AckCode.OK
        assert isinstance(message, p.DebugTruth)
        self.truth_enabled = bool(message.enable)
        return p.AckCode.OK

    def _accepts(self, message: p.Message) -> bool:
        """Host-to-board types; DEBUG_TRUTH only on a board that offers the truth,
        STIM_SHAPED only in (or before) a session of protocol version 2."""
        if isinstance(message, p.DebugTruth):
            return self.settings.truth
        if isinstance(message, p.StimShaped):
            return self.version >= p.SHAPED_PULSES_VERSION
        return message.TYPE < 0x80

    def _newer(self, seq: int) -> bool:
        """True when ``seq`` follows the last accepted one (a window of 127 frames)."""
        return 1 <= (seq - self._last_seq) & 0xFF <= 127

    def _hello(self, frame: p.Frame, hello: p.Hello, now_s: float) -> list[bytes]:
        s = self.settings
        self._all_off(now_s, "hello")
        reported = self.fault
        self.session = self.settings.speaks(hello.protocol_version)
        self.version = hello.protocol_version if self.session else s.protocol_version
        self.streaming = False
        self.truth_enabled = False
        self.fault = p.FaultCode.NONE
        self._last_seq = frame.seq
        self._kept_alive(now_s)
        self._log("hello", board_t_s=now_s, version=hello.protocol_version,
                  session=self.session)
        info = p.Info(
            hello_seq=frame.seq,
            protocol_version=self.version,
            firmware_major=s.firmware[0],
            firmware_minor=s.firmware[1],
            firmware_patch=s.firmware[2],
            board_id=s.board_id,
            channels=s.channels,
            sample_rate_hz=s.sample_rate_hz,
            max_amplitude_10ua=round(s.max_amplitude_ma / p.AMPLITUDE_UNIT_MA),
            max_pulse_width_us=s.max_pulse_width_us,
            max_frequency_chz=round(s.max_frequency_hz / p.FREQUENCY_UNIT_HZ),
            max_on_time_ms=s.max_on_time_ms,
            comm_timeout_ms=s.comm_timeout_ms,
            gyro_full_scale_dps=s.gyro_full_scale_dps,
            accel_full_scale_g=16,
            sagittal_axis=EMULATED_SAGITTAL_AXIS
            if s.declared_sagittal_axis is None
            else s.declared_sagittal_axis,
            capabilities=p.Capability.HEEL_SWITCH
            | p.Capability.HEEL_FORCE
            | (p.Capability.DEBUG_TRUTH if s.truth else 0),
            last_fault=reported,
            max_interphase_gap_us=s.max_interphase_gap_us,
            max_anodic_ratio_x100=round(s.max_anodic_width_ratio / p.RATIO_UNIT),
            max_charge_cuc=s.max_charge_cuc if self.version >= p.CHARGE_LIMIT_VERSION else None,
            max_duty_permille=s.max_duty_permille
            if self.version >= p.CHARGE_LIMIT_VERSION
            else None,
        )
        return [self._frame(info)]

    def _stim(self, stim: p.Stim, now_s: float) -> p.AckCode:
        channels = [s.channel for s in stim.settings]
        if len(set(channels)) != len(channels) or max(channels) >= self.settings.channels:
            return self._refuse(p.AckCode.BAD_CHANNEL, stim, now_s, switch_off=False)
        code = self._over_limit(stim.settings)
        if code is not p.AckCode.OK:
            return self._refuse(code, stim, now_s, switch_off=True)
        self._set(stim.settings, now_s, "stim")
        return p.AckCode.OK

    def _over_limit(self, settings: tuple[p.ChannelSetting, ...]) -> p.AckCode:
        s = self.settings
        for setting in settings:
            if not setting.on:
                continue
            if setting.amplitude_10ua * p.AMPLITUDE_UNIT_MA > s.max_amplitude_ma + 1e-9:
                return p.AckCode.OVER_AMPLITUDE
            if setting.pulse_width_us > s.max_pulse_width_us:
                return p.AckCode.OVER_PULSE_WIDTH
            if setting.frequency_chz * p.FREQUENCY_UNIT_HZ > s.max_frequency_hz + 1e-9:
                return p.AckCode.OVER_FREQUENCY
            if setting.interphase_gap_us > s.max_interphase_gap_us:
                return p.AckCode.OVER_INTERPHASE_GAP
            ratio = setting.anodic_ratio_x100 * p.RATIO_UNIT
            if setting.anodic_ratio_x100 < p.RATIO_SYMMETRIC or (
                ratio > s.max_anodic_width_ratio + 1e-9
            ):
                return p.AckCode.BAD_WIDTH_RATIO
            # 10 uA x 1 us = 10 pC against 0.01 uC = 1000 of them: integers, as the AVR's.
            if setting.amplitude_10ua * setting.pulse_width_us > s.max_charge_cuc * 1000:
                return p.AckCode.OVER_CHARGE
        return p.AckCode.OK

    def delivers(self, setting: p.ChannelSetting) -> bool:
        """True when ``setting`` makes pulses on this board: it delivers by the protocol
        and its pulse width is at least the board's shortest (a shorter one delivers
        nothing: lengthened, it would carry more charge than asked for)."""
        return setting.delivers and setting.pulse_width_us >= self.settings.min_pulse_width_us

    def _refuse(
        self, code: p.AckCode, stim: p.Stim, now_s: float, switch_off: bool
    ) -> p.AckCode:
        self.refused += 1
        self._log("refused", board_t_s=now_s, code=code.name)
        if switch_off:
            self._set(tuple(p.ChannelSetting.off(s.channel) for s in stim.settings),
                      now_s, code.name.lower())
        return code

    # --- outputs ----------------------------------------------------------------------

    def _count_duty(self, now_s: float, before: bool = False) -> None:
        """Count every whole millisecond up to board time ``now_s`` (``before``: up to the
        one before it, as outputs change at ``now_s``) for the channels delivering (the
        outputs are as they were since the last count), emptying the buckets that fall
        out of the window: the AVR firmware's tick, caught up. (The AVR's tick of a
        millisecond comes after the frames of that millisecond: it counts a channel
        switched on in it as on.)"""
        now_ms = math.floor(now_s * 1000.0 + 1e-9) - (1 if before else 0)
        if now_ms - self._duty_next_ms > DUTY_BUCKETS * DUTY_BUCKET_MS:
            self._duty_next_ms = now_ms - DUTY_BUCKETS * DUTY_BUCKET_MS
        on = [c for c, s in enumerate(self.outputs) if self.delivers(s)]
        for ms in range(self._duty_next_ms, now_ms + 1):
            slot = ms // DUTY_BUCKET_MS % DUTY_BUCKETS
            if ms % DUTY_BUCKET_MS == 0:  # a new bucket: forget the oldest
                for c in range(self.settings.channels):
                    self._duty_sum_ms[c] -= self._duty_ms[c][slot]
                    self._duty_ms[c][slot] = 0
            for c in on:
                self._duty_ms[c][slot] += 1
                self._duty_sum_ms[c] += 1
        self._duty_next_ms = max(self._duty_next_ms, now_ms + 1)

    def _over_duty(self) -> int | None:
        """A channel delivering beyond the duty-cycle limit, or None."""
        permille = self.settings.max_duty_permille
        if permille is None:
            return None
        limit_ms = permille * p.BOARD_DUTY_WINDOW_S  # 0.1 % of 10 000 ms = 10 ms
        for channel in self.channels_on():
            if self._duty_sum_ms[channel] > limit_ms:
                return channel
        return None

    def _set(self, settings: tuple[p.ChannelSetting, ...], now_s: float, reason: str) -> None:
        self._count_duty(now_s, before=True)
        before = self.channels_on()
        for setting in settings:
            self.outputs[setting.channel] = setting
            if not self.delivers(setting):
                self._on_since[setting.channel] = None
            elif self._on_since[setting.channel] is None:
                self._on_since[setting.channel] = now_s
        self._limb.apply(now_s, [s.to_command() if self.delivers(s)
                                 else p.ChannelSetting.off(s.channel).to_command()
                                 for s in settings])
        self._log_change(before, now_s, reason)

    def _all_off(self, now_s: float, reason: str) -> None:
        self._count_duty(now_s, before=True)
        before = self.channels_on()
        self.outputs = [p.ChannelSetting.off(c) for c in range(self.settings.channels)]
        self._on_since = [None] * self.settings.channels
        self._limb.stop_all()
        self._log_change(before, now_s, reason)

    def channels_on(self) -> list[int]:
        """Channels delivering pulses now."""
        return [s.channel for s in self.outputs if self.delivers(s)]

    def _log_change(self, before: list[int], now_s: float, reason: str) -> None:
        after = self.channels_on()
        if after != before:
            # The pulse shape of each channel on: [interphase gap us, anodic width ratio].
            shapes = {c: [self.outputs[c].interphase_gap_us,
                          self.outputs[c].anodic_ratio_x100 * p.RATIO_UNIT] for c in after}
            self._log("outputs", board_t_s=now_s, on=after, reason=reason, shapes=shapes)

    def _fault(self, code: p.FaultCode, channel: int, now_s: float) -> list[bytes]:
        self._all_off(now_s, code.name.lower())
        self.fault = code
        self.session = False
        self.streaming = False
        self._log("fault", board_t_s=now_s, code=code.name)
        return [self._frame(p.Fault(code, channel, _t_us(now_s)))]

    def stop(self, now_s: float) -> None:
        """Power off: every output off."""
        self._all_off(now_s, "power_off")

    def restart_index(self) -> None:
        """Number the next sample 0 again (fault injection: a board whose sensor loop
        restarted while the host's session went on)."""
        self._index_base = self._next_index

    @property
    def walk_start_s(self) -> float | None:
        """Board time of the first START_STREAM (the walk's time zero), or None."""
        return self._walk_start_s

    # --- time -------------------------------------------------------------------------

    def poll(self, now_s: float) -> list[bytes]:
        """Run the timers and every sample tick due at board time ``now_s``."""
        out: list[bytes] = []
        timeout_s = self.settings.comm_timeout_ms / 1000.0
        if self.session and now_s - self._last_rx_s > timeout_s + TIME_ROUNDING_S:
            self._kept_alive(now_s)  # the silence that ran the timeout out is the longest
            out += self._fault(p.FaultCode.COMM_TIMEOUT, p.BROADCAST_CHANNEL, now_s)
        limit_s = self.settings.max_on_time_ms / 1000.0
        for channel, since in enumerate(self._on_since):
            if since is not None and now_s - since > limit_s + TIME_ROUNDING_S:
                out += self._fault(p.FaultCode.ON_TIME, channel, now_s)
                break
        self._count_duty(now_s)
        over = self._over_duty()
        if over is not None:
            out += self._fault(p.FaultCode.DUTY, over, now_s)
        while self._walk_start_s is not None and now_s >= self.next_tick_s():
            out += self._tick(now_s)
        if self.streaming and now_s >= self._next_status_s:
            self._next_status_s = now_s + self.settings.status_period_ms / 1000.0
            out.append(self._status(now_s))
        return out

    def next_tick_s(self) -> float:
        """Board time of the next sample (infinite before the first START_STREAM)."""
        if self._walk_start_s is None:
            return math.inf
        return self._walk_start_s + self._next_index * self._period_s

    def _tick(self, now_s: float) -> list[bytes]:
        k = self._next_index
        self._next_index = k + 1
        sample = self._limb.read()
        if sample is None:
            self._walk_start_s = None
            if self.session:
                return self._fault(p.FaultCode.SENSOR, p.BROADCAST_CHANNEL, now_s)
            return []
        out: list[bytes] = []
        if self.streaming and not self.mute_samples:
            self._sent_s[k % RTT_MEMORY] = now_s
            t_us = self._walk_t_us(k * self._period_s)
            out.append(self._frame(self._sample_frame(k - self._index_base, t_us, sample)))
        events = self._due_events(k)
        if not (self.streaming and self.truth_enabled):
            self._truth_next = k + 1
            return out
        out += [self._frame(p.TruthEvent(e, self._walk_t_us(t))) for t, e in events]
        if k + 1 - self._truth_next >= p.TruthSamples.MAX_ROWS:
            out.append(self._frame(self._truth_rows()))
        return out

    def _walk_t_us(self, walk_t_s: float) -> int:
        """Board clock on the wire at ``walk_t_s`` into the walk: whole microseconds from
        a walk start rounded once, so that samples and events keep their exact spacing."""
        assert self._walk_start_s is not None
        return (round(self._walk_start_s * 1e6) + round(walk_t_s * 1e6)) & 0xFFFFFFFF

    def _sample_frame(self, k: int, t_us: int, sample: Sample) -> p.SampleFrame:
        lsb = self.settings.gyro_lsb_rad_s
        flags = p.heel_flags(sample.heel_switch)  # a lost one (NaN) is HEEL_LOST
        gyro = [0, 0, 0]
        if math.isfinite(sample.gyro_rad_s):
            counts = sample.gyro_rad_s / lsb
            other = counts * self.settings.cross_axis_fraction
            gyro = [p.fixed(c, -32768, 32767) for c in (other, -other, counts)]
            flags |= p.SampleFlag.GYRO_SAGITTAL_VALID | p.SampleFlag.GYRO_OTHER_VALID
        force = p.FORCE_ABSENT
        if math.isfinite(sample.heel_force_n):
            force = p.fixed(sample.heel_force_n / p.FORCE_UNIT_N, 0, p.FORCE_ABSENT - 1)
        return p.SampleFrame(k, t_us, gyro[0], gyro[1], gyro[2], 0, 0, 0, force, flags)

    def _due_events(self, k: int) -> list[tuple[float, Event]]:
        """True events (walk time, code) at or before sample ``k`` not yet passed."""
        walk_t_s = k * self._period_s
        start = self._next_event
        while self._next_event < len(self._events) and (
            self._events[self._next_event][0] <= walk_t_s
        ):
            self._next_event += 1
        return self._events[start : self._next_event]

    def _flush_truth(self) -> list[bytes]:
        """The truth rows not sent yet, when the stream stops."""
        out = []
        while self._truth_next < self._next_index:
            out.append(self._frame(self._truth_rows()))
        return out

    def _truth_rows(self) -> p.TruthSamples:
        end = min(self._next_index, self._truth_next + p.TruthSamples.MAX_ROWS)
        truth = {k: v[: end - self._truth_next]
                 for k, v in self._limb.truth_since(self._truth_next).items()}
        rows = tuple(
            p.TruthRow.of(a, c, x, n)
            for a, c, x, n in zip(
                truth["ankle_angle_deg"], truth["toe_clearance_mm"], truth["ta_activation"],
                truth["pulses"], strict=True,
            )
        )
        frame = p.TruthSamples(self._truth_next, rows)
        self._truth_next += len(rows)
        return frame

    def _round_trip(self, ref_sample: int, now_s: float) -> None:
        """Time from sending sample ``ref_sample`` to the first command that answers it."""
        if ref_sample <= self._answered or ref_sample >= self._next_index:
            return
        if self._next_index - ref_sample > RTT_MEMORY:
            return
        sent = self._sent_s[ref_sample % RTT_MEMORY]
        if math.isnan(sent):
            return
        self._answered = ref_sample
        rtt = now_s - sent
        self.round_trips_s.append(rtt)
        self._rtt_last_s = rtt
        self._rtt_max_s = max(self._rtt_max_s, rtt)

    # --- frames out -------------------------------------------------------------------

    def _frame(self, message: p.Message) -> bytes:
        self._tx_seq = (self._tx_seq + 1) & 0xFF
        return message.encode(self._tx_seq)

    def _ack(self, frame: p.Frame, code: p.AckCode) -> bytes:
        return self._frame(p.Ack(frame.seq, frame.type, code))

    def _status(self, now_s: float) -> bytes:
        mask = sum(1 << c for c in self.channels_on())
        state = (p.StatusState.SESSION if self.session else 0) | (
            p.StatusState.STREAMING if self.streaming else 0
        )
        status = p.Status(
            _t_us(now_s), mask, self.fault, state, self.rx_frames & 0xFFFF,
            self.rx_bad & 0xFFFF, self.refused & 0xFFFF,
            p.fixed(self._rtt_last_s * 1e6, 0, 0xFFFF), p.fixed(self._rtt_max_s * 1e6, 0, 0xFFFF),
        )
        self._rtt_max_s = 0.0
        return self._frame(status)
