"""The AVR board in simavr with the simulated patient: ``fes board-emulator --mcu avr``.

``SimavrBoard`` builds the firmware and the harness (``hw.avr.build``), starts the harness
(``simavr-board``: the firmware's .elf on a simulated ATmega2560, its host link on a pty)
and serves it the patient: at every grid point of the firmware the harness sends the
pulses its output pins delivered since the previous one and gets the patient's next
sample back (gyro counts, heel switch, force sensor counts) with that sample's ground
truth for the board's debug port. So the loop closes through the firmware's own pins:

    host --pty--> firmware (simavr) --phase lines, DAC--> harness --pulses--> limb
    host <--pty-- firmware <--I2C gyro, heel pin, ADC-- harness <--sample-- limb

The limb takes the pulses of each sample period at the start of the next one, as it
takes a command in ``fes sim`` (``sim.limb``): the pulses a host command starts within
the period after sample k reach the muscle from sample k + 1 on, as in ``fes sim``.

The harness writes the board's log (pins, frames, faults, timing figures); see
``hw/avr/harness/harness.h``.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field

from controller.events import EVENT_BY_NAME
from controller.ports import StimCommand
from controller.validation import ConfigModel
from hw import protocol as p
from hw.avr import build as avr_build
from sim.limb import SimulatedLimb
from sim.patient import load_patient

#: The firmware's fixed figures (hw/avr/firmware/board.h, limits.c).
SAMPLE_RATE_HZ = 500
CHANNELS = 2
FIRMWARE_VERSION = (2, 2, 6)
#: A host frame collected in part whose next byte has not come for this long is a loss
#: (board.h, since 2.2.6).
RX_FRAME_GAP_US = 5000
#: MPU-6050 at +-2000 deg/s: 16.4 counts per deg/s.
GYRO_COUNTS_PER_DPS = 16.4
#: Heel force sensor on the 10-bit ADC: 2 N per count.
FORCE_N_PER_COUNT = 2.0
FORCE_MAX_COUNT = 1023
#: Debug-port frame of one sample's truth row (u32 index + the TRUTH_SAMPLES row).
TRUTH_ROW = 0xC3
_EVENT_PAYLOAD = struct.Struct("<BI")
_ROW_HEADER = struct.Struct("<I")
#: The pipe protocol of hw/avr/harness/patient.c; its heel byte of a lost heel switch
#: sample (the harness pulls the board's heel fault line low: SAMPLE flag HEEL_LOST).
_REQUEST = struct.Struct("<cIdHff")
_REPLY = struct.Struct("<BBhBHH")
_HEEL_LOST = 2
#: Harness exit statuses (hw/avr/harness/main.c).
_ENDINGS = {0: "stopped", 3: "unplugged", 4: "patient_gone"}


class AvrBoardSettings(ConfigModel):
    """The board's stored configuration (its EEPROM, hw/avr/firmware/config.h): limits may
    only be lowered below the compiled ones."""

    board_id: int = Field(1, ge=0, le=2**32 - 1,
                          description="Serial number the board reports at HELLO (--board-id).")
    comm_timeout_ms: int = Field(
        100, ge=10, le=500,
        description="Silence after which the firmware switches every output off "
        "(--comm-timeout-ms).")
    max_on_time_ms: int = Field(
        3000, ge=100, le=3000,
        description="Longest continuous stimulation of a channel before the firmware faults "
        "(--max-on-time-ms).")
    max_amplitude_ma: float = Field(
        60.0, gt=0.0, le=60.0,
        description="The firmware's own amplitude limit, at most the compiled 60 mA "
        "(--max-amplitude-ma).")
    max_pulse_width_us: int = Field(
        500, ge=1, le=500,
        description="The firmware's own pulse width limit (--max-pulse-width-us).")
    max_frequency_hz: float = Field(
        60.0, gt=0.0, le=60.0,
        description="The firmware's own frequency limit (--max-frequency-hz).")
    max_interphase_gap_us: int = Field(
        500, ge=0, le=500,
        description="The firmware's own interphase gap limit (--max-interphase-gap-us).")
    max_anodic_width_ratio: float = Field(
        10.0, ge=1.0, le=10.0,
        description="The firmware's own limit of the recovery phase's width over the "
        "leading phase's (--max-anodic-width-ratio).")
    max_charge_per_phase_uc: float = Field(
        30.0, ge=p.CHARGE_UNIT_UC, le=30.0,
        description="The firmware's own limit of the charge per phase, amplitude x pulse "
        "width, in steps of 0.01 uC, at least one step, at most the compiled 30 uC "
        "(--max-charge-per-phase-uc).")
    max_duty_cycle: float = Field(
        0.8, ge=0.1, le=0.8,
        description="The firmware's own limit of the fraction of the last 10 s a channel "
        "may deliver pulses, in steps of 0.001, at most the compiled 0.8 (--max-duty-cycle).")


#: The frames a host sends, by their hw.protocol.FrameType names.
HostFrameName = Literal["HELLO", "START_STREAM", "STOP_STREAM", "STIM", "STOP_ALL",
                        "HEARTBEAT", "GET_STATUS", "STIM_SHAPED"]


class AvrBoardConfig(ConfigModel):
    """The simulated patient wearing the AVR board, and the board's configuration."""

    patient: str = Field(
        "moderate",
        description="The simulated patient wearing the board: a name from configs/patients/ "
        "or a profile path (--patient).")
    seed: int = Field(
        0, ge=0, le=2**32 - 1,
        description="Seed of the patient (--seed); the same seed as fes sim gives the same "
        "walk.")
    walk_s: float = Field(
        600.0, gt=0.0, le=86400.0,
        description="How long the patient walks after the first START_STREAM; then the "
        "IMU stops answering and the board reports a sensor fault (--walk-s).")
    speed: float = Field(
        1.0, ge=0.1, le=20.0,
        description="Board seconds per wall second (--speed), as far as the machine lets "
        "simavr keep up.")
    truth: bool = Field(
        True, description="Feed the patient's ground truth into the board's debug port "
        "(--no-truth: leave it unconnected, as on a real board).")
    unplug_at_s: float | None = Field(
        None, ge=0.0, le=86400.0,
        description="Walk time at which the pty closes as a pulled cable (--unplug-at-s).")
    rx_overrun_at_s: float | None = Field(
        None, ge=0.0, le=86400.0,
        description="Walk time from which the next host byte is lost in the chip's receiver "
        "as a data overrun loses one, DOR0 set (fault injection, --rx-overrun-at-s).")
    rx_lose_end_of: HostFrameName | None = Field(
        None,
        description="Host frame type (by name: STOP_ALL, STIM, ...) whose first frame loses "
        "its delimiter in the chip's receiver, DOR0 then set with the host's next byte "
        "(fault injection, --rx-lose-end-of with the type's number).")
    host_byte_gap_us: float = Field(
        0.0, ge=0.0, le=1e6,
        description="Idle line between two host bytes, as a USB-serial bridge that hands on "
        "a frame in pieces (--host-byte-gap-us).")
    log_pulses: bool = Field(False, description="One log line per pulse on the pins.")
    board: AvrBoardSettings = Field(
        AvrBoardSettings(),
        description="The board's stored configuration: identity, timeout, lowered limits.")


def _harness_options(config: AvrBoardConfig, stored: bool = True) -> list[str]:
    """The harness's options for ``config``; without ``stored``, none of the board's
    stored configuration (its EEPROM left as it is: erased, on a Mega from the factory)."""
    b = config.board
    options = ["--speed", f"{config.speed:g}"]
    if stored:
        options += [
            "--board-id", str(b.board_id),
            "--comm-timeout-ms", str(b.comm_timeout_ms), "--max-on-time-ms", str(b.max_on_time_ms),
            "--max-amplitude-ma", f"{b.max_amplitude_ma:g}",
            "--max-pulse-width-us", str(b.max_pulse_width_us),
            "--max-frequency-hz", f"{b.max_frequency_hz:g}",
            "--max-interphase-gap-us", str(b.max_interphase_gap_us),
            "--max-anodic-width-ratio", f"{b.max_anodic_width_ratio:g}",
            "--max-charge-per-phase-uc", f"{b.max_charge_per_phase_uc:g}",
            "--max-duty-cycle", f"{b.max_duty_cycle:g}",
        ]
    if config.unplug_at_s is not None:
        options += ["--unplug-at-s", f"{config.unplug_at_s:g}"]
    if config.rx_overrun_at_s is not None:
        options += ["--rx-overrun-at-s", f"{config.rx_overrun_at_s:g}"]
    if config.rx_lose_end_of is not None:
        options += ["--rx-lose-end-of", str(int(p.FrameType[config.rx_lose_end_of]))]
    if config.host_byte_gap_us:
        options += ["--host-byte-gap-us", f"{config.host_byte_gap_us:g}"]
    if not config.truth:
        options.append("--no-truth")
    if config.log_pulses:
        options.append("--log-pulses")
    return options


class SimavrBoard:
    """The firmware in simavr on a fresh pty, serving the simulated patient."""

    def __init__(self, config: AvrBoardConfig, log: Path | None = None,
                 build: avr_build.Build | None = None, bootloader: Path | None = None,
                 flashed: bool = True) -> None:
        """Start the harness. With ``bootloader`` (an Intel hex, such as
        ``hw.avr.build.MEGA2560_BOOTLOADER``) the chip is a Mega 2560: execution starts in
        its bootloader and each open of the pty resets it (docs/hardware.md, "Flashing
        through the bootloader"); ``flashed`` then says whether the firmware and the
        board's stored configuration are in it already (a Mega plugged in again) or its
        flash and EEPROM are erased, for ``make flash`` and ``make eeprom``."""
        self.config = config
        self.build = build or avr_build.build()
        profile = load_patient(config.patient)
        # Compile (or load from numba's cache) the limb's kernels before serving.
        SimulatedLimb(profile, SAMPLE_RATE_HZ, 1.0, config.seed).read()
        self._limb = SimulatedLimb.streaming(profile, SAMPLE_RATE_HZ, config.walk_s,
                                             config.seed, channels=CHANNELS)
        self._events = [(t, EVENT_BY_NAME[name]) for t, name in self._limb.true_events()]
        self._next_event = 0
        #: Walk time at sample 0 of the firmware's grid: 0, or later after a reset of the
        #: chip (a Mega's auto-reset when a host opens its port), whose firmware starts
        #: its grid, and the times it relays, at 0 again while the patient walks on.
        self._grid_origin_s = 0.0
        self._period_s = 1.0 / SAMPLE_RATE_HZ
        self._off = [StimCommand.off(0)]
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        command = [str(self.build.harness)]
        if bootloader is not None:
            command += ["--boot-hex", str(bootloader)]
        if bootloader is None or flashed:
            command += ["--elf", str(self.build.firmware_elf)]
        command += ["--to-patient", str(requests_w), "--from-patient", str(replies_r),
                    *_harness_options(config, stored=bootloader is None or flashed)]
        if log is not None:
            command += ["--log", str(log)]
        # The harness's messages go to a file: a pipe nobody reads could fill and stall it.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives as the board)
        self._proc = subprocess.Popen(
            command, pass_fds=(requests_w, replies_r), stdout=subprocess.PIPE,
            stderr=self._stderr, text=True,
        )
        os.close(requests_w)
        os.close(replies_r)
        self._requests, self._replies = requests_r, replies_w
        assert self._proc.stdout is not None
        self.path = self._proc.stdout.readline().strip()
        if not self.path.startswith("/dev/"):
            self.close()
            raise avr_build.BuildError(
                f"the simavr harness did not start: {self.harness_stderr.strip()}")
        self.samples = 0

    # --- serving ----------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> str:
        """Serve the patient until ``stop`` is set (``"stopped"``) or the harness ends
        (``"unplugged"`` after an unplug, once its outputs were off)."""
        stop = stop or threading.Event()
        asked_to_stop = False
        try:
            while True:
                if stop.is_set() and not asked_to_stop:
                    asked_to_stop = True
                    with contextlib.suppress(ProcessLookupError):
                        self._proc.send_signal(signal.SIGTERM)
                ready = select.select([self._requests], [], [], 0.05)[0]
                if ready:
                    request = self._read_request()
                    if request is None:
                        break  # the harness has ended
                    self._answer(request)
                elif self._proc.poll() is not None:
                    break
        finally:
            code = self._proc.wait()
            self._close_pipes()
        return _ENDINGS.get(code, f"failed (exit status {code})")

    def _read_request(self) -> bytes | None:
        data = b""
        while len(data) < _REQUEST.size:
            chunk = os.read(self._requests, _REQUEST.size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _answer(self, request: bytes) -> None:
        _, index, _, pulses, amplitude_ma, width_us = _REQUEST.unpack(request)
        if index == 0 and self.samples:
            self._grid_origin_s = self._limb.samples_read * self._period_s
        if pulses:
            # The pulses of the last period, at the start of this one: a stopped train
            # switched on fires at once, n per period at this frequency.
            rate = pulses / self._period_s * (1.0 - 1e-6)
            self._limb.apply(0.0, [StimCommand(0, True, amplitude_ma, width_us, rate)])
        else:
            self._limb.apply(0.0, self._off)
        sample = self._limb.read()
        self.samples += 1
        if sample is None:
            os.write(self._replies, _REPLY.pack(0, 0, 0, 0, 0, 0))
            return
        valid = math.isfinite(sample.gyro_rad_s)
        counts = p.fixed(math.degrees(sample.gyro_rad_s) * GYRO_COUNTS_PER_DPS, -32768,
                         32767) if valid else 0
        force = 0
        if math.isfinite(sample.heel_force_n):
            force = p.fixed(sample.heel_force_n / FORCE_N_PER_COUNT, 0, FORCE_MAX_COUNT)
        # A lost heel switch sample (NaN) is neither contact nor "no contact".
        heel = _HEEL_LOST if math.isnan(sample.heel_switch) else int(sample.heel_switch)
        truth = self._truth(index) if self.config.truth else b""
        os.write(self._replies, _REPLY.pack(1, int(valid), counts, heel, force, len(truth))
                 + truth)

    def _truth(self, index: int) -> bytes:
        """Debug-port frames of sample ``index`` of the firmware's grid: the true events up
        to its time (in us from the grid's sample 0; the firmware adds its clock), then
        its row."""
        out = b""
        origin = self._grid_origin_s
        t = origin + index * self._period_s
        while self._next_event < len(self._events) and self._events[self._next_event][0] <= t:
            when, event = self._events[self._next_event]
            self._next_event += 1
            out += p.encode_frame(
                p.FrameType.TRUTH_EVENT, 0,
                _EVENT_PAYLOAD.pack(event, round((when - origin) * 1e6) & 0xFFFFFFFF))
        # The row of the sample just read (sample ``index`` of this stream; the limb's
        # truth is a ring, ``SimulatedLimb.streaming``, and its count runs on across
        # streams while the firmware numbers each stream from 0).
        truth = self._limb.truth_since(self._limb.samples_read - 1)
        if len(truth["pulses"]):
            row = p.TruthRow.of(truth["ankle_angle_deg"][0], truth["toe_clearance_mm"][0],
                                truth["ta_activation"][0], truth["pulses"][0])
            out += p.encode_frame(TRUTH_ROW, 0, _ROW_HEADER.pack(index)
                                  + p.TruthRow.LAYOUT.pack(row.ankle_cdeg, row.clearance_dmm,
                                                           row.activation, row.pulses))
        return out

    # --- control ----------------------------------------------------------------------

    def unplug(self) -> None:
        """Pull the cable now: the harness closes the pty; the firmware runs on until its
        communication timeout has switched the outputs off."""
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signal.SIGUSR1)

    def close(self) -> None:
        """Stop the harness (its outputs go off with it) if it still runs."""
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for fd in (self._requests, self._replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._requests = self._replies = -1

    @property
    def harness_stderr(self) -> str:
        """What the harness has said on stderr."""
        self._stderr.seek(0)
        return self._stderr.read()


def serve_in_thread(config: AvrBoardConfig, log: Path | None = None,
                    build: avr_build.Build | None = None, bootloader: Path | None = None,
                    flashed: bool = True) -> tuple[SimavrBoard, Callable[..., str]]:
    """Start the board (``SimavrBoard``'s arguments) and serve its patient on a
    background thread; returns it and a function that stops it (after letting it end by
    itself for ``wait_s``, as after an unplug) and gives the reason it ended (for tests)."""
    board = SimavrBoard(config, log, build, bootloader, flashed)
    stop = threading.Event()
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(board.run(stop)),
                              name="simavr-board", daemon=True)
    thread.start()

    def finish(wait_s: float = 0.0) -> str:
        thread.join(timeout=wait_s)
        stop.set()
        thread.join(timeout=10.0)
        return result[0] if result else "running"

    return board, finish


def describe(board: SimavrBoard) -> str:
    """One line for a person: what is being simulated, and where."""
    c, b = board.config, board.config.board
    version = ".".join(map(str, FIRMWARE_VERSION))
    return (
        f"AVR board (ATmega2560 in simavr, firmware {version}, protocol "
        f"{p.PROTOCOL_VERSION}, {p.BAUD_RATE_V3} baud) on {board.path}: patient {c.patient}, "
        f"seed {c.seed}, {SAMPLE_RATE_HZ} Hz, {CHANNELS} channels, limits "
        f"{b.max_amplitude_ma:g} mA / {b.max_pulse_width_us} us / {b.max_frequency_hz:g} Hz / "
        f"{b.max_charge_per_phase_uc:g} uC / {b.max_on_time_ms} ms on / duty "
        f"{b.max_duty_cycle:g} over 10 s, comm timeout "
        f"{b.comm_timeout_ms} ms, speed {c.speed:g}x"
    )
