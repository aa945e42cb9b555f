"""The board emulator: the firmware model (``hw.firmware``) on a real pseudo-terminal.

``fes board-emulator`` opens a pty with ``os.openpty``, prints the device path of its
slave side and then behaves as a board on a USB serial port: the host opens that path
with pyserial like any serial device. The emulator paces the firmware in board time
(``--speed`` times wall time, 1 by default; every time option is in board time), moves
its frames over the pty and injects the link faults a bench engineer meets: frames
dropped, corrupted, delayed or duplicated (each with a probability, in either
direction), a stall (the firmware stops talking but its safety timers still run) and an
unplug (the pty is closed; the firmware runs on until its communication timeout has
switched the outputs off).

Everything the board does is logged, one JSON object per line, to ``--log FILE``, each
stamped with ``time.monotonic()`` (system-wide on Linux, so a test can compare it with
another process) and with the board time. On exit the log gets the round-trip times
the firmware measured (sensor sample sent to the first command that answers it).
"""

from __future__ import annotations

import heapq
import json
import math
import random
import select
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

import numpy as np
from pydantic import Field

from controller.validation import ConfigModel
from hw import protocol as p
from hw.firmware import Firmware, FirmwareSettings
from hw.pty import DevicePty
from sim.limb import SimulatedLimb
from sim.patient import load_patient

#: The emulator wakes at least this often (board time / speed) to run the firmware.
MAX_SLEEP_S = 0.001
#: Largest step of the board clock between two wake-ups. A firmware is never
#: descheduled; the emulator's process can be (a loaded machine), and then board time
#: pauses instead of jumping, so that the emulator's own hiccups do not trip its timers.
MAX_CLOCK_STEP_S = 0.01
#: Pauses of board time from this long (wall time) on are logged (``paused``).
PAUSE_LOG_S = 0.001
#: Bytes the emulator queues for a host that does not read before dropping frames.
TX_BUFFER_LIMIT = 65536


class LinkFaults(ConfigModel):
    """Faults injected on the link and in the board's stream; probabilities per frame,
    times in board seconds into the walk."""

    drop: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Probability that a frame is lost on the link (--drop), to test "
        "resends and the host's link-loss detection.",
    )
    corrupt: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Probability that a frame has one bit flipped (--corrupt), which its "
        "CRC must reject at the other end.",
    )
    duplicate: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Probability that a frame is sent twice (--duplicate), which the "
        "sequence numbers must catch.",
    )
    delay: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Probability that a frame is held back for delay_ms (--delay), so "
        "frames arrive late and out of order.",
    )
    delay_ms: float = Field(
        20.0, ge=0.0, le=5000.0,
        description="How long a delayed frame is held back, in board time (--delay-ms).",
    )
    direction: Literal["tx", "rx", "both"] = Field(
        "both",
        description="Which frames the faults hit: those the board sends (tx), those it "
        "receives (rx) or both (--fault-direction).",
    )
    stall_at_s: float | None = Field(
        None, ge=0.0, le=86400.0,
        description="Board time into the walk at which the firmware stops talking for "
        "stall_s while its safety timers run on (--stall-at-s; unset: never).",
    )
    stall_s: float = Field(
        0.5, gt=0.0, le=3600.0,
        description="How long a stall lasts, in board time (--stall-s); the firmware's "
        "safety timers keep running through it.",
    )
    unplug_at_s: float | None = Field(
        None, ge=0.0, le=86400.0,
        description="Board time into the walk at which the pty is closed, as a pulled "
        "cable; the firmware runs on until its communication timeout switches the "
        "outputs off (--unplug-at-s; unset: never).",
    )
    samples_stop_at_s: float | None = Field(
        None, ge=0.0, le=86400.0,
        description="Board time into the walk at which the board stops sending SAMPLE "
        "frames while it still answers commands and sends STATUS (--samples-stop-at-s; "
        "unset: never).",
    )
    index_restart_at_s: float | None = Field(
        None, ge=0.0, le=86400.0,
        description="Board time into the walk at which the board numbers its samples from "
        "0 again, as a sensor loop that restarted, while the session goes on "
        "(--index-restart-at-s; unset: never).",
    )
    garbage_at_s: float | None = Field(
        None, ge=0.0, le=86400.0,
        description="Board time into the walk from which everything the board sends is "
        "noise: random bytes in place of each frame, as a wrong baud rate or a broken "
        "ground (--garbage-at-s; unset: never).",
    )


class EmulatorConfig(ConfigModel):
    """What the emulator emulates: the patient, the board and the link."""

    patient: str = Field(
        "moderate",
        description="The simulated patient wearing the board: a name from "
        "configs/patients/ or a profile path (--patient).",
    )
    seed: int = Field(
        0, ge=0, le=2**32 - 1,
        description="Seed of the patient and of the injected faults (--seed); the same "
        "seed as fes sim gives the same walk.",
    )
    walk_s: float = Field(
        600.0, gt=0.0, le=86400.0,
        description="How long the patient walks after the first START_STREAM; then the "
        "board reports a sensor fault (--walk-s).",
    )
    speed: float = Field(
        1.0, ge=0.1, le=20.0,
        description="Board seconds per wall second (--speed): above 1 the emulated board "
        "runs faster than real time, which shortens tests.",
    )
    board: FirmwareSettings = Field(
        FirmwareSettings(),
        description="The emulated board's own settings: identity, rate and the limits "
        "its firmware enforces.",
    )
    faults: LinkFaults = Field(
        LinkFaults(),
        description="Faults injected on the link between the emulated board and the host.",
    )


class BoardEmulator:
    """One emulated board on a fresh pty; ``run`` serves it until stopped or unplugged."""

    def __init__(self, config: EmulatorConfig, log: TextIO | None = None) -> None:
        self.config = config
        board = config.board
        profile = load_patient(config.patient)
        rate_hz = float(board.sample_rate_hz)
        # Compile (or load from numba's cache) the limb kernels before serving, so that
        # the first sample is on time.
        SimulatedLimb(profile, rate_hz, 1.0, config.seed).read()
        limb = SimulatedLimb.streaming(profile, rate_hz, config.walk_s, config.seed,
                                       channels=board.channels)
        self._log_file = log
        self._log_lock = threading.Lock()
        self.firmware = Firmware(board, limb, self.log)
        self._pty = DevicePty()
        self.path = self._pty.path
        self._decoder = p.FrameDecoder()
        self._rx_partial = bytearray()
        self._rx_overflow = False
        self._tx = bytearray()
        self._delayed: list[tuple[float, int, str, bytes]] = []
        self._rng = random.Random(config.seed ^ 0x5EED)
        self._wall_s = time.monotonic()
        self._board_s = 0.0
        self._plugged = True
        self._unplug_requested = threading.Event()
        self._stalled = False
        self._index_restarted = False
        self.tx_dropped_overflow = 0

    # --- time and log -----------------------------------------------------------------

    def board_time_s(self) -> float:
        """Seconds of board time since the emulator started (``speed`` times wall time,
        but never more than ``MAX_CLOCK_STEP_S`` ahead of the previous reading).

        A longer step means this process was off the CPU (a loaded machine): board time
        pauses, and the log says so (``paused``: ``paused_ms`` of wall time lost, from
        ``PAUSE_LOG_S`` on, and ``late_ms``, how late the board's schedule was when it ran
        again: the host's view of the stream was silent that long; ``since_s`` and
        ``monotonic_s``, the two readings). A real board is never descheduled: the log
        lets a test tell a starved emulator from a host that missed frames. Only the
        machine makes such a gap: the serving loop waits nowhere but in a ``select`` of at
        most ``MAX_SLEEP_S`` and its pty is non-blocking, so a host that is late, or reads
        nothing, cannot hold it; a wait for a CPU, or the kernel holding the ``select``
        for its tty worker (docs/hardware.md, "Bytes late on a loaded machine"), can."""
        wall = time.monotonic()
        since, self._wall_s = self._wall_s, wall
        gap_s = wall - since
        self._board_s += min(gap_s * self.config.speed, MAX_CLOCK_STEP_S)
        paused_s = gap_s - MAX_CLOCK_STEP_S / self.config.speed
        if paused_s >= PAUSE_LOG_S:
            self.log("paused", board_t_s=self._board_s, paused_ms=round(paused_s * 1e3, 3),
                     late_ms=round(gap_s * 1e3, 3), since_s=since, monotonic_s=wall)
        return self._board_s

    def walk_time_s(self) -> float | None:
        """Board seconds since the first START_STREAM, or None before it."""
        start = self.firmware.walk_start_s
        return None if start is None else self.board_time_s() - start

    def log(self, event: str, **fields: Any) -> None:
        """Append one event to the JSON-lines log (thread-safe; no-op without a log)."""
        if self._log_file is None:
            return
        record = {"event": event, "monotonic_s": time.monotonic(), **fields}
        with self._log_lock:
            self._log_file.write(json.dumps(record) + "\n")
            self._log_file.flush()

    # --- serving ----------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> str:
        """Serve the board until ``stop`` is set (``"stopped"``) or after an unplug
        once the firmware has switched its outputs off (``"unplugged"``)."""
        stop = stop or threading.Event()
        self.log("ready", path=self.path, board_t_s=self.board_time_s())
        try:
            while not stop.is_set():
                if not self._plugged and not self.firmware.channels_on():
                    return "unplugged"
                self._serve_once()
            return "stopped"
        finally:
            fw = self.firmware
            self.log("counters", rx_frames=fw.rx_frames, rx_bad_frames=fw.rx_bad,
                     refused=fw.refused, tx_dropped_host_not_reading=self.tx_dropped_overflow,
                     longest_host_silence_ms=round(fw.longest_host_silence_s * 1e3, 3))
            self._log_round_trips()
            self.close()

    def _serve_once(self) -> None:
        now = self.board_time_s()
        wake = min(now + MAX_SLEEP_S * self.config.speed, self.firmware.next_tick_s())
        if self._delayed:
            wake = min(wake, self._delayed[0][0])
        sleep_s = max(0.0, wake - now)
        if self._plugged:
            readable, _, _ = select.select([self._pty.master], [], [],
                                           sleep_s / self.config.speed)
            if readable:
                self._read()
        else:
            time.sleep(sleep_s / self.config.speed)
        self._scheduled_faults()
        now = self.board_time_s()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, direction, raw = heapq.heappop(self._delayed)
            self._deliver(direction, raw)
        self._send(self.firmware.poll(self.board_time_s()))
        self._flush()

    def _read(self) -> None:
        data = self._pty.read()
        if self._stalled:
            return  # a stalled firmware loses what arrives
        self._rx_partial += data
        *frames, rest = bytes(self._rx_partial).split(p.DELIMITER)
        self._rx_partial = bytearray(rest)
        if frames and self._rx_overflow:  # the end of a run too long to be a frame
            frames[0] = b""
            self._rx_overflow = False
            self.firmware.bad_frame()
        for raw in frames:
            if raw:
                self._inject("rx", raw + p.DELIMITER)
        if len(self._rx_partial) > p.MAX_ENCODED_BYTES:
            # No frame is this long: drop it up to the next delimiter, so the buffer
            # stays bounded however long the bytes without a delimiter go on.
            self._rx_partial.clear()
            self._rx_overflow = True

    def _send(self, frames: list[bytes]) -> None:
        noise = self._due(self.config.faults.garbage_at_s)
        for frame in frames:
            if noise:
                frame = self._rng.randbytes(len(frame))
            if not self._stalled:
                self._inject("tx", frame)

    def _due(self, at_s: float | None) -> bool:
        """True once the walk is ``at_s`` board seconds old (never for None)."""
        walk = self.walk_time_s()
        return at_s is not None and walk is not None and walk >= at_s

    def _inject(self, direction: str, raw: bytes) -> None:
        """Pass one raw frame through the configured link faults, then deliver it."""
        f = self.config.faults
        if f.direction not in ("both", direction):
            self._deliver(direction, raw)
            return
        rng = self._rng
        if rng.random() < f.drop:
            return
        if rng.random() < f.corrupt:
            raw = _flip_bit(raw, rng)
        copies = 2 if rng.random() < f.duplicate else 1
        for _ in range(copies):
            if rng.random() < f.delay:
                release = self.board_time_s() + f.delay_ms / 1000.0
                heapq.heappush(self._delayed, (release, rng.getrandbits(32), direction, raw))
            else:
                self._deliver(direction, raw)

    def _deliver(self, direction: str, raw: bytes) -> None:
        if direction == "tx":
            if len(self._tx) + len(raw) > TX_BUFFER_LIMIT:
                self.tx_dropped_overflow += 1
                return
            self._tx += raw
            return
        bad_before = self._decoder.bad_frames
        frames = self._decoder.feed(raw)
        for _ in range(self._decoder.bad_frames - bad_before):
            self.firmware.bad_frame()
        for frame in frames:
            self._send(self.firmware.receive(frame, self.board_time_s()))

    def _flush(self) -> None:
        if self._plugged:
            self._pty.send(self._tx)

    def _scheduled_faults(self) -> None:
        f = self.config.faults
        walk = self.walk_time_s()
        if walk is None:
            walk = -math.inf
        if f.stall_at_s is not None:
            stalled = f.stall_at_s <= walk < f.stall_at_s + f.stall_s
            if stalled != self._stalled:
                self._stalled = stalled
                self.log("stall" if stalled else "stall_end", board_t_s=self.board_time_s(),
                         on=self.firmware.channels_on())
        mute = self._due(f.samples_stop_at_s)
        if mute != self.firmware.mute_samples:
            self.firmware.mute_samples = mute
            self.log("samples_stop", board_t_s=self.board_time_s(),
                     on=self.firmware.channels_on())
        if self._due(f.index_restart_at_s) and not self._index_restarted:
            self._index_restarted = True
            self.firmware.restart_index()
            self.log("index_restart", board_t_s=self.board_time_s(),
                     on=self.firmware.channels_on())
        due = f.unplug_at_s is not None and walk >= f.unplug_at_s
        if self._plugged and (due or self._unplug_requested.is_set()):
            self._unplug()

    def unplug(self) -> None:
        """Ask the serving thread to unplug now (thread-safe)."""
        self._unplug_requested.set()

    def _unplug(self) -> None:
        """Close the pty as a pulled USB cable would; the firmware runs on."""
        self.log("unplug", board_t_s=self.board_time_s(), on=self.firmware.channels_on())
        self._plugged = False
        self._tx.clear()
        self._pty.close()

    # --- ending -----------------------------------------------------------------------

    def _log_round_trips(self) -> None:
        rtt = np.array(self.firmware.round_trips_s) / self.config.speed * 1000.0
        if rtt.size == 0:
            self.log("round_trips", count=0)
            return
        self.log(
            "round_trips",
            count=int(rtt.size),
            median_ms=float(np.median(rtt)),
            p99_ms=float(np.percentile(rtt, 99)),
            max_ms=float(rtt.max()),
            over_one_period=int((rtt > 1000.0 / self.config.board.sample_rate_hz).sum()),
        )

    def close(self) -> None:
        """Outputs off and the pty closed (idempotent)."""
        self.firmware.stop(self.board_time_s())
        if self._plugged:
            self._plugged = False
            self._pty.close()


def _flip_bit(raw: bytes, rng: random.Random) -> bytes:
    """``raw`` with one bit flipped outside its final delimiter."""
    if len(raw) < 2:
        return raw
    data = bytearray(raw)
    data[rng.randrange(len(data) - 1)] ^= 1 << rng.randrange(8)
    return bytes(data)


def serve_in_thread(
    config: EmulatorConfig, log: TextIO | None = None
) -> tuple[BoardEmulator, Callable[[], str]]:
    """Start an emulator on a background thread; returns it and a function that stops
    it and gives the reason it ended (for tests, in one process with the host)."""
    emulator = BoardEmulator(config, log)
    stop = threading.Event()
    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(emulator.run(stop)), name="board-emulator", daemon=True
    )
    thread.start()

    def finish() -> str:
        stop.set()
        thread.join(timeout=5.0)
        return result[0] if result else "running"

    return emulator, finish


def describe(emulator: BoardEmulator) -> str:
    """One line for a person: what is being emulated, and where."""
    c = emulator.config
    b = c.board
    version = ".".join(str(v) for v in b.firmware)
    shapes = (
        f"pulse shapes up to gap {b.max_interphase_gap_us} us / anodic ratio "
        f"{b.max_anodic_width_ratio:g}"
        if b.protocol_version >= p.SHAPED_PULSES_VERSION
        else "symmetric pulses only"
    )
    permille = b.max_duty_permille
    duty = f" / duty {permille * p.DUTY_UNIT:g} over 10 s" if permille is not None else ""
    return (
        f"board emulator (firmware {version}, protocol {b.protocol_version}, {shapes}) on "
        f"{emulator.path}: patient {c.patient}, "
        f"seed {c.seed}, {b.sample_rate_hz} Hz, {b.channels} channels, limits "
        f"{b.max_amplitude_ma:g} mA / {b.max_pulse_width_us} us / {b.max_frequency_hz:g} Hz / "
        f"{b.max_charge_cuc * p.CHARGE_UNIT_UC:g} uC / {b.max_on_time_ms} ms on"
        f"{duty}, comm "
        f"timeout {b.comm_timeout_ms} ms, speed {c.speed:g}x"
    )
