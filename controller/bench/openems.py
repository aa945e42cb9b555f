"""openEMSstim's off and stop latency: the firmware's own floor and the driver's, per version.

The *floor* is what the firmware itself needs to read one line and act on it, with
nothing else to do: the host writes the line to an idle board and the harness timeline
says when the wiper reached no output (``Floors`` lists every kind; the main ones):

- ``off``: the all-off line with channel 0 alone on (the driver's off when no other
  channel stays on); ``off_1`` / ``off_1_t0``: channel 1 alone on, the all-off line or
  ``C1T0G`` (the driver sends the faster);
- ``off_t0``: ``C0T0G`` with channel 1 on as well (the driver's off of one channel
  while the other stays on: the firmware ends the on-time after its prints);
- ``stop``: the all-off line with both channels on, until both are at no output (the
  firmware switches the channels off one after the other, 50 ms each).

The *driver's* figures come from trains driven through ``OpenEmsStim`` as the loop
drives it (a command every 2 ms: ramp up 60 ms, hold, ramp down 100 ms, off), on
channel 0 and 1 in turn, the hold of random length: ``off`` is from the ``apply``
whose intensity is 0 to no output, ``stop`` from ``stop_all`` with both channels held
to both at no output. Then ``stop_all`` at random moments of swings on both channels
(onset to off), each stop sorted by the line the firmware was handling when it came.
The issue's bounds: off within 10 ms of its floor, stop within 20 ms of its floor.
``pads_open`` is the firmware's further wait before it opens the pads (50 ms)::

    python -m controller.bench.openems --build /tmp/openems-build --trains 20

``--train-lengths samples.csv ...`` instead says how long a trial's trains stay above
the unit's lowest output: what one on-time (``hold_ms``) must cover for no renewal.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import serial

from controller.bench.openems_harness import (
    VERSIONS,
    FirmwareProcess,
    HarnessUnavailable,
    LoggedLink,
    SerialRow,
    Train,
    build_for_bench,
    first_write_after,
    trains,
)
from controller.ports import StimCommand
from hw.openems.budget import Budget
from hw.openems.driver import OpenEmsStim
from hw.openems.firmware import BYTE_S, FIRMWARES, Command, Firmware
from hw.openems.settings import OpenEmsSettings, load_settings
from hw.runqueue import waited_within

#: Settings for the firmware's host build: no USB bridge between host and board.
HARNESS_LATENCY_MS = 0.0
RATE_HZ = 500.0
#: The issue's bounds over the firmware's floor: a single channel's off, ``stop_all``.
OFF_ALLOWANCE_MS = 10.0
STOP_ALLOWANCE_MS = 20.0
_PERIOD_S = 1.0 / RATE_HZ


def harness_settings(**changes: object) -> OpenEmsSettings:
    """The shipped example settings, with no USB latency (a pty)."""
    return load_settings().model_copy(update={"usb_latency_ms": HARNESS_LATENCY_MS, **changes})


@dataclass(frozen=True, slots=True)
class Floors:
    """The firmware's own times (ms) per run: line written to output on (``onset``: a
    start without an on-time, as the driver sends once the firmware keeps its hold;
    ``onset_t``: with one, as the first start after connecting) or to no output (the
    others; ``off_1``: the all-off line with channel 1 alone on, which switches
    channel 0 off first; ``off_1_t0``: ``C1T0G`` then). Alternatives the driver does not
    use, for comparison: ``stop_t0``, both channels on and each one's ``T0`` line written
    together; on ``head``, ``stop_keys``, its test mode's keys ``1`` and ``2`` (each
    toggles a channel: off if on, but on, with no on-time, if off), and ``off_key``, key
    ``1`` with channel 0 alone on."""

    onset_ms: list[float]
    onset_t_ms: list[float]
    off_ms: list[float]
    off_t0_ms: list[float]
    stop_ms: list[float]
    off_1_ms: list[float]
    off_1_t0_ms: list[float]
    stop_t0_ms: list[float]
    stop_keys_ms: list[float]
    off_key_ms: list[float]
    pads_open_ms: list[float]

    def off_floor_ms(self, channel: int) -> float:
        """A single channel's off with no other channel on, by the faster line."""
        if channel == 0:
            return min(self.off_ms)
        return min(min(self.off_1_ms), min(self.off_1_t0_ms))


def measure_floors(program: Path, workdir: Path, runs: int) -> Floors:
    """Write each floor's line ``runs`` times to an idle board (raw, no driver)."""
    firmware = FIRMWARES[program.name.removeprefix("openems_fw_")]
    process = FirmwareProcess(program, workdir / "floors")
    on = [firmware.command(Command(ch, 60, 3000)).text for ch in range(2)]
    stop = firmware.stop().text
    writes: list[tuple[str, float]] = []
    try:
        with serial.Serial(process.path, 19200, timeout=0.01) as port:
            def send(text: str, settle_s: float) -> float:
                port.write(text.encode("ascii") + b"\n")
                t = time.monotonic()
                time.sleep(settle_s)
                port.reset_input_buffer()
                return t
            for _ in range(runs):
                writes.append(("onset_t", send(on[0], 0.15)))
                writes.append(("off", send(stop, 0.2)))
                writes.append(("onset", send(firmware.command(Command(0, 60)).text, 0.15)))
                send(on[1], 0.15)
                writes.append(("off_t0", send(firmware.command(Command(0, on_time_ms=0)).text,
                                              0.15)))
                send(stop, 0.2)
                send(on[0], 0.15)
                send(on[1], 0.15)
                writes.append(("stop", send(stop, 0.2)))
                send(on[1], 0.15)
                writes.append(("off_1", send(stop, 0.2)))
                send(on[1], 0.15)
                writes.append(("off_1_t0", send(firmware.command(Command(1, on_time_ms=0)).text,
                                                0.15)))
                # stop_all as two lines, each channel's T0, written together
                send(on[0], 0.15)
                send(on[1], 0.15)
                writes.append(("stop_t0", send("\n".join(
                    firmware.command(Command(ch, on_time_ms=0)).text for ch in (0, 1)), 0.35)))
                if firmware.name == "head":  # its test mode's keys toggle a channel
                    send(on[0], 0.15)
                    send(on[1], 0.15)
                    writes.append(("stop_keys", send("1\n2", 0.25)))
                    send(on[0], 0.15)
                    writes.append(("off_key", send("1", 0.15)))
    finally:
        process.stop()
    changes = process.timeline()
    by_channel = {ch: trains(changes, ch) for ch in (0, 1)}
    floors: dict[str, list[float]] = {k: [] for k in (
        "onset", "onset_t", "off", "off_t0", "stop", "off_1", "off_1_t0", "stop_t0",
        "stop_keys", "off_key", "pads_open")}
    for kind, t_write in writes:
        if kind.startswith("onset"):
            first = _starting_after(by_channel[0], t_write)
            floors[kind].append(1000.0 * (first.on_s - t_write))
            continue
        channels = {"off_1": (1,), "off_1_t0": (1,)}.get(
            kind, (0, 1) if kind.startswith("stop") else (0,))
        ends = [_ending_after(by_channel[ch], t_write) for ch in channels]
        floors[kind].append(1000.0 * (max(e.zero_s for e in ends) - t_write))
        floors["pads_open"] += [1000.0 * (e.open_s - e.zero_s) for e in ends if e.open_s]
    return Floors(**{f"{kind}_ms": values for kind, values in floors.items()})


def _starting_after(channel_trains: Sequence[Train], t_s: float) -> Train:
    """The first train of a channel that starts at or after ``t_s`` (``RuntimeError``
    when none does)."""
    for train in channel_trains:
        if train.on_s >= t_s:
            return train
    raise RuntimeError(f"no train started after {t_s:.6f} (monotonic)")


def _ending_after(channel_trains: Sequence[Train], t_s: float) -> Train:
    """The first train of a channel that ends (no output) at or after ``t_s``; a
    ``RuntimeError`` naming the time when there is none (the channel was not on)."""
    for train in channel_trains:
        if train.zero_s >= t_s:
            return train
    raise RuntimeError(f"no train on at {t_s:.6f} (monotonic); last: {channel_trains[-2:]}")


@dataclass(frozen=True, slots=True)
class DriverFigures:
    """The driver's times (ms): off (of the channel in ``off_channels``, the same
    order) and stop latency, onset latency; faults seen."""

    off_ms: list[float]
    off_channels: list[int]
    stop_ms: list[float]
    onset_ms: list[float]
    #: How long each off and stop line waited in the firmware's receive ring behind the
    #: line being handled (ms): from its last byte's arrival to the firmware reading it.
    off_wait_ms: list[float]
    stop_wait_ms: list[float]
    #: How long the machine delayed each off (stop) between its command and the outputs'
    #: zero (ms): the line's bytes held from the driver's write to their arrival at the
    #: firmware (the pty's tty worker, the firmware waiting for a CPU:
    #: ``bytes_held_by_the_machine``), then the firmware's waits for a CPU until the zero
    #: (``hw.runqueue.waited_within``: the kernel's count, never overstated). A USB link
    #: to a Nano holds no bytes and a Nano is never descheduled: these are the machine's,
    #: not the driver's; the driver's own lateness before its write still counts.
    off_machine_ms: list[float]
    stop_machine_ms: list[float]
    lost_bytes: int
    crashed: bool
    fault: str | None
    stats: dict[str, object]

    def offs(self, channel: int) -> list[float]:
        """The off latencies of ``channel``'s trains."""
        return [ms for ms, ch in zip(self.off_ms, self.off_channels, strict=True)
                if ch == channel]

    def machine_offs(self, channel: int) -> list[tuple[float, float]]:
        """Each off latency of ``channel``'s trains with the firmware's wait for a CPU
        within it (``off_machine_ms``)."""
        return [(ms, machine) for ms, machine, ch in zip(
            self.off_ms, self.off_machine_ms, self.off_channels, strict=True) if ch == channel]


def _amplitude(t_s: float, hold_s: float, full_ma: float) -> float:
    """A train: 60 ms ramp up, hold, 100 ms ramp down."""
    if t_s < 0.06:
        return full_ma * t_s / 0.06
    if t_s < 0.06 + hold_s:
        return full_ma
    return max(0.0, full_ma * (1.0 - (t_s - 0.06 - hold_s) / 0.1))


def machine_delays_ms(spans: Sequence[tuple[float, float]], rows: Sequence[SerialRow],
                      writes: Sequence[dict], waits: Sequence[dict]) -> list[float]:
    """Per span (a command at ``t``, the outputs' zero after it; monotonic s), how long
    (ms) the machine held the line's bytes on their way to the firmware (the driver's
    first write returning after ``t``, from its return to its first byte's arrival:
    ``bytes_held_by_the_machine``) and kept the firmware's process off the CPU from then
    to the zero (its ``paused`` ``waits``, ``hw.runqueue.waited_within``). The driver's
    own delay before that write is not the machine's and is not counted."""
    delays = []
    for t, zero in spans:
        write = first_write_after(rows, writes, t)
        arrived = t if write is None or write[1] > zero else write[1]
        held = 0.0 if write is None or write[1] > zero else max(0.0, write[1] - write[0])
        delays.append(1000.0 * (held + waited_within(waits, arrived, zero)))
    return delays


def drive_trains(
    program: Path,
    workdir: Path,
    n_trains: int,
    settings: OpenEmsSettings,
    seed: int = 0,
    hold_s: tuple[float, float] = (0.2, 0.9),
) -> DriverFigures:
    """Drive ``n_trains`` ramped trains, on channel 0 and channel 1 in turn, then as many
    stops with both channels held, each train and hold lasting ``hold_s`` (uniform),
    through the driver; measure against the timeline."""
    rng = random.Random(seed)
    version = program.name.removeprefix("openems_fw_")
    process = FirmwareProcess(program, workdir / "driver")
    link = LoggedLink(process)
    stim = OpenEmsStim(link, settings)
    full = 35.0
    lowest = settings.output_at_lowest_ma
    offs: list[tuple[int, float]] = []
    onsets: list[tuple[int, float]] = []
    stops: list[float] = []
    try:
        stim.connect()
        time.sleep(0.2)  # the all-off line of the connection
        for i in range(n_trains):
            channel = i % 2
            held_s = rng.uniform(*hold_s)
            start = time.monotonic()
            k, off_at, on_at = 0, None, None
            while True:
                t = k * _PERIOD_S
                a = _amplitude(t, held_s, full)
                time.sleep(max(0.0, start + t - time.monotonic()))
                now = time.monotonic()
                stim.apply(t, [StimCommand(channel, a > 0.0, a, 300.0, 40.0)])
                if on_at is None and a >= lowest:
                    on_at = now
                if on_at is not None and a < lowest:
                    off_at = now
                    break
                k += 1
            onsets.append((channel, on_at))  # type: ignore[arg-type]
            offs.append((channel, off_at))
            time.sleep(rng.uniform(0.3, 0.5))
        for _ in range(n_trains):
            start = time.monotonic()
            held_s = rng.uniform(*hold_s)
            k = 0
            while k * _PERIOD_S < held_s:
                time.sleep(max(0.0, start + k * _PERIOD_S - time.monotonic()))
                stim.apply(k * _PERIOD_S, [StimCommand(ch, True, full, 300.0, 40.0)
                                           for ch in (0, 1)])
                k += 1
            stops.append(time.monotonic())
            stim.stop_all()
            time.sleep(rng.uniform(0.3, 0.5))
    finally:
        stim.close()
        link.close()
        crashed = process.returncode not in (None, 0)
        process.stop()
    changes = process.timeline()
    serial_rows = process.serial()
    lost = sum(1 for r in serial_rows if r.kind == "rx_lost")
    by_channel = [trains(changes, 0), trains(changes, 1)]
    kinds = line_kinds(serial_rows, FIRMWARES[version].stop().text)

    def waited_ms(t_s: float, stop: bool) -> float:
        """How long the off or stop line written at ``t_s`` waited behind another."""
        wanted = ("stop",) if stop else ("stop", "off")
        t_read, text = next((r, x) for r, x, kind in kinds if r >= t_s and kind in wanted)
        arrived = t_s + settings.usb_latency_ms / 1000.0 + (len(text) + 1) * BYTE_S
        return max(0.0, 1000.0 * (t_read - arrived))

    waits = process.waits()
    writes = ([json.loads(line) for line in link.path.read_text().splitlines() if line]
              if link.path.is_file() else [])

    def machine_ms(spans: list[tuple[float, float]]) -> list[float]:
        return machine_delays_ms(spans, serial_rows, writes, waits)

    try:
        off_spans = [(t, _ending_after(by_channel[ch], t).zero_s) for ch, t in offs]
        stop_spans = [(t, max(_ending_after(by_channel[0], t).zero_s,
                              _ending_after(by_channel[1], t).zero_s)) for t in stops]
        figures = DriverFigures(
            off_ms=[1000.0 * (zero - t) for t, zero in off_spans],
            off_channels=[ch for ch, _ in offs],
            stop_ms=[1000.0 * (zero - t) for t, zero in stop_spans],
            onset_ms=[1000.0 * (_starting_after(by_channel[ch], t).on_s - t)
                      for ch, t in onsets],
            off_wait_ms=[waited_ms(t, stop=False) for _, t in offs],
            stop_wait_ms=[waited_ms(t, stop=True) for t in stops],
            off_machine_ms=machine_ms(off_spans),
            stop_machine_ms=machine_ms(stop_spans),
            lost_bytes=lost,
            crashed=crashed,
            fault=None if stim.fault is None else stim.fault.message,
            stats=stim.stats.as_dict(),
        )
    except RuntimeError as err:
        fault = None if stim.fault is None else stim.fault.message
        raise RuntimeError(f"{err}; the driver's fault: {fault}; the firmware's logs: "
                           f"{workdir / 'driver'}") from None
    return figures


#: A protocol command as the firmware reads it (after unwrapping on ``head``).
_COMMAND = re.compile(r"C(\d+)(?:I(\d+))?(?:T(\d+))?G$")


def _unwrapped(text: str) -> str:
    """The command a line carries: ``head``'s ``WV,<handle>,<hex>.`` decoded."""
    if text.startswith("WV,") and text.endswith("."):
        return bytes.fromhex(text[text.rindex(",") + 1:-1]).decode("ascii", "replace")
    return text


def line_kinds(rows: Sequence[SerialRow], stop_text: str) -> list[tuple[float, str, str]]:
    """Each line the firmware read (``rx_line``): when, its text and what it was to the
    channels: ``start`` (a channel that was off), ``step`` (a new intensity),
    ``renewal`` (the same intensity again), ``off`` (``T0``), ``stop`` (the all-off
    line) or ``other`` (the probe)."""
    kinds: list[tuple[float, str, str]] = []
    level: dict[int, int | None] = {}  # channel -> intensity, absent when off
    for row in rows:
        if row.kind != "rx_line":
            continue
        match = _COMMAND.match(_unwrapped(row.text))
        if row.text == stop_text:
            kind = "stop"
            level.clear()
        elif match is None:
            kind = "other"
        else:
            channel = int(match[1])
            intensity = None if match[2] is None else int(match[2])
            if match[3] == "0":
                kind = "off"
                level.pop(channel, None)
            elif channel not in level:
                kind = "start"
                level[channel] = intensity
            elif intensity is None or intensity == level[channel]:
                kind = "renewal"
            else:
                kind = "step"
                level[channel] = intensity
        kinds.append((row.t_s, row.text, kind))
    return kinds


@dataclass(frozen=True, slots=True)
class SwingStop:
    """One ``stop_all`` at a random moment of a swing with both channels commanded on:
    its latency (``stop_all`` to no channel stimulating; None when no channel had come
    on), how long its line waited behind the line the firmware was handling, and that
    line's kind (``line_kinds``; None when it did not wait more than 1 ms)."""

    latency_ms: float | None
    wait_ms: float
    behind: str | None
    #: How long the firmware needs for the line it waited behind, from that line's
    #: first byte (ms, modelled): a wait longer than this was the machine's stall.
    behind_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class SwingStops:
    """``stop_in_swings``' stops and what the firmware logged."""

    stops: list[SwingStop]
    #: Lines the firmware read during the swings (first command above the lowest output
    #: to ``stop_all``), per swing, by kind.
    lines_per_swing: dict[str, float]
    #: The share of the swings' time the firmware spent on those lines: from a line's
    #: first byte to the end of its handling as ``hw.openems.budget`` models it.
    busy_fraction: float
    #: The longest handling of a line of each kind among them (ms, modelled).
    longest_ms: dict[str, float]
    lost_bytes: int
    crashed: bool
    fault: str | None
    stats: dict[str, object]


def _busy_s(firmware: Firmware, text: str) -> float:
    """How long the firmware is busy with a command line from its first byte
    (``hw.openems.budget``), 0 for other lines."""
    match = _COMMAND.match(_unwrapped(text))
    if match is None:
        return 0.0
    command = Command(int(match[1]), None if match[2] is None else int(match[2]),
                      None if match[3] is None else int(match[3]))
    return Budget().plan(firmware.command(command), 0.0).idle_s


def stop_in_swings(
    program: Path,
    workdir: Path,
    n_stops: int,
    settings: OpenEmsSettings,
    seed: int = 0,
    hold_s: tuple[float, float] = (0.3, 0.6),
) -> SwingStops:
    """Drive ``n_stops`` swings on both channels at once (ramp up 60 ms, a hold of
    ``hold_s`` (uniform), ramp down 100 ms, a command every 2 ms) and end each with
    ``stop_all`` at a moment drawn uniformly from the stretch in which both channels
    are commanded above the unit's lowest output (onset to off); measure each stop
    against the timeline and the firmware's serial log."""
    rng = random.Random(seed)
    firmware = FIRMWARES[program.name.removeprefix("openems_fw_")]
    process = FirmwareProcess(program, workdir / "swing-stops")
    link = LoggedLink(process)
    stim = OpenEmsStim(link, settings)
    full = 35.0
    stop_times: list[float] = []
    swings: list[tuple[float, float]] = []  # first command above the lowest, stop_all
    try:
        stim.connect()
        time.sleep(0.2)  # the all-off line of the connection
        for _ in range(n_stops):
            held_s = rng.uniform(*hold_s)
            on = [k * _PERIOD_S for k in range(int((0.16 + held_s) / _PERIOD_S) + 1)
                  if _amplitude(k * _PERIOD_S, held_s, full) >= settings.output_at_lowest_ma]
            stop_at = rng.uniform(on[0], on[-1])  # from the first command above the lowest
            start = time.monotonic()
            k = 0
            while k * _PERIOD_S <= stop_at:
                t = k * _PERIOD_S
                a = _amplitude(t, held_s, full)
                time.sleep(max(0.0, start + t - time.monotonic()))
                stim.apply(t, [StimCommand(ch, a > 0.0, a, 300.0, 40.0) for ch in (0, 1)])
                k += 1
            time.sleep(max(0.0, start + stop_at - time.monotonic()))
            stop_times.append(time.monotonic())
            stim.stop_all()
            swings.append((start + on[0], stop_times[-1]))
            time.sleep(rng.uniform(0.3, 0.5))
    finally:
        stim.close()
        link.close()
        crashed = process.returncode not in (None, 0)
        process.stop()
    serial_rows = process.serial()
    by_channel = [trains(process.timeline(), ch) for ch in (0, 1)]
    stop_line = firmware.stop()
    kinds = line_kinds(serial_rows, stop_line.text)
    stops = []
    for t_s in stop_times:
        read = next((i for i, (r, _, kind) in enumerate(kinds)
                     if t_s <= r < t_s + 1.0 and kind == "stop"), None)
        if read is None:
            fault = None if stim.fault is None else stim.fault.message
            raise RuntimeError(f"stop_all at {t_s:.6f} (monotonic) sent no all-off line; "
                               f"the driver's fault: {fault}; the firmware's logs: "
                               f"{workdir / 'swing-stops'}")
        read_s = kinds[read][0]
        arrived = t_s + settings.usb_latency_ms / 1000.0 + stop_line.rx_bytes * BYTE_S
        wait_ms = max(0.0, 1000.0 * (read_s - arrived))
        zeros = [tr.zero_s for ch in by_channel for tr in ch
                 if tr.on_s <= read_s and tr.zero_s >= t_s]
        waited = wait_ms > 1.0
        stops.append(SwingStop(
            latency_ms=1000.0 * (max(zeros) - t_s) if zeros else None,
            wait_ms=wait_ms,
            behind=kinds[read - 1][2] if waited else None,
            behind_ms=1000.0 * _busy_s(firmware, kinds[read - 1][1]) if waited else 0.0,
        ))
    counts: dict[str, int] = {}
    longest: dict[str, float] = {}
    busy = 0.0
    for read_s, text, kind in kinds:
        first_byte = read_s - (len(text) + 1) * BYTE_S  # with its newline
        for begin, end in swings:
            if begin <= first_byte < end and kind != "stop":
                counts[kind] = counts.get(kind, 0) + 1
                handling_s = _busy_s(firmware, text)
                longest[kind] = max(longest.get(kind, 0.0), 1000.0 * handling_s)
                busy += min(first_byte + handling_s, end) - first_byte
    return SwingStops(
        stops=stops,
        lines_per_swing={kind: n / len(swings) for kind, n in sorted(counts.items())},
        busy_fraction=busy / sum(end - begin for begin, end in swings),
        longest_ms=longest,
        lost_bytes=sum(1 for r in serial_rows if r.kind == "rx_lost"),
        crashed=crashed,
        fault=None if stim.fault is None else stim.fault.message,
        stats=stim.stats.as_dict(),
    )


def _line(name: str, values: Sequence[float], p95: bool = False) -> str:
    if not values:
        return f"  {name:>10}: none"
    tail = f"p95 {statistics.quantiles(values, n=20)[-1]:6.1f}  " if p95 and len(values) > 1 else ""
    return (f"  {name:>10}: median {statistics.median(values):6.1f}  {tail}"
            f"max {max(values):6.1f}  (n={len(values)})")


def _print_swing_stops(version: str, floors: Floors, swung: SwingStops) -> None:
    bound = min(floors.stop_ms) + STOP_ALLOWANCE_MS
    latencies = [s.latency_ms for s in swung.stops if s.latency_ms is not None]
    print(f"{version}: stop_all at random moments of swings on both channels (ms, to no "
          f"output; bound: lowest stop floor + {STOP_ALLOWANCE_MS:g} = {bound:.1f})")
    print(_line("stop", latencies, p95=True))
    over = [s for s in swung.stops if s.latency_ms is not None and s.latency_ms > bound]
    print(f"  over the bound: {len(over)} of {len(latencies)}"
          + (f" (behind: {', '.join(sorted(str(s.behind) for s in over))})" if over else ""))
    for kind in ("start", "step", "renewal", "off", "stop"):
        waits = [s.wait_ms for s in swung.stops if s.behind == kind]
        if waits:
            print(_line(f"behind {kind}", waits))
    idle = [s.latency_ms for s in swung.stops if s.behind is None and s.latency_ms is not None]
    print(_line("idle", idle))
    stalled = [s for s in swung.stops if s.behind is not None and s.wait_ms > s.behind_ms]
    print(f"  waits longer than the line they waited behind takes the firmware (the "
          f"machine stalled): {len(stalled)}")
    per_swing = ", ".join(f"{k} {n:.2f} (up to {swung.longest_ms[k]:.0f} ms each)"
                          for k, n in swung.lines_per_swing.items())
    print(f"  lines per swing: {per_swing}; firmware busy with them "
          f"{100.0 * swung.busy_fraction:.0f} % of the swings' time")
    print(f"  bytes lost {swung.lost_bytes}, crashed {swung.crashed}, fault {swung.fault}, "
          f"{swung.stats}")


def train_lengths_ms(samples_csv: Path, lowest_ma: float) -> list[float]:
    """How long each train of a trial's ``samples.csv`` (``fes sim`` or ``fes run``)
    stays at or above ``lowest_ma`` (ms): what one on-time must cover for the driver to
    send no renewal (the unit's lowest output is where the driver's start and off go)."""
    lengths: list[float] = []
    began: float | None = None
    with samples_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            t_s = float(row["time_s"])
            on = row["stim_on"] == "1" and float(row["amplitude_ma"]) >= lowest_ma
            if on and began is None:
                began = t_s
            elif not on and began is not None:
                lengths.append(1000.0 * (t_s - began))
                began = None
    return lengths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.openems", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--build", type=Path, help="build directory (default: a temporary one)")
    parser.add_argument("--runs", type=int, default=10, help="floor measurements per kind")
    parser.add_argument("--trains", type=int, default=20, help="driven trains (and stops)")
    parser.add_argument("--hold-ms", type=int, help="the driver's hold_ms (default: settings)")
    parser.add_argument("--swing-stops", type=int, default=40,
                        help="stops at random moments of swings on both channels (0: none)")
    parser.add_argument("--versions", nargs="+", choices=VERSIONS, default=list(VERSIONS))
    parser.add_argument("--train-lengths", type=Path, nargs="+", metavar="SAMPLES_CSV",
                        help="instead: how long the trains of these samples.csv files stay "
                        "at or above the unit's lowest output (the on-time that needs no "
                        "renewal)")
    args = parser.parse_args(argv)
    if args.train_lengths:
        lowest = harness_settings().output_at_lowest_ma
        unread = 0
        for path in args.train_lengths:
            try:
                lengths = train_lengths_ms(path, lowest)
            except (OSError, KeyError, ValueError) as err:
                # a glob of the docs' command that matched nothing comes as itself
                why = f"no column {err}" if isinstance(err, KeyError) else (
                    getattr(err, "strerror", None) or str(err))
                print(f"{path}: cannot read it as a trial's samples.csv ({why})",
                      file=sys.stderr)
                unread += 1
                continue
            print(f"{path}: trains at or above {lowest:g} mA (ms)")
            print(_line("length", lengths))
        return 2 if unread else 0
    try:
        workdir, programs = build_for_bench("openems-bench-", args.build)
    except HarnessUnavailable as err:
        print(f"openEMSstim bench: {err}")
        return 2
    changes = {} if args.hold_ms is None else {"hold_ms": args.hold_ms}
    settings = harness_settings(**changes)
    print(f"hold_ms {settings.hold_ms}")
    for version in args.versions:
        floors = measure_floors(programs[version], workdir / version, args.runs)
        driven = drive_trains(programs[version], workdir / version, args.trains, settings)
        print(f"{version}: firmware floor (ms, line written to output on / no output)")
        print(_line("onset", floors.onset_ms))
        print(_line("onset_t", floors.onset_t_ms))
        print(_line("off", floors.off_ms))
        print(_line("off_t0", floors.off_t0_ms))
        print(_line("stop", floors.stop_ms))
        print(_line("off_1", floors.off_1_ms))
        print(_line("off_1_t0", floors.off_1_t0_ms))
        print(_line("stop_t0", floors.stop_t0_ms))
        if floors.stop_keys_ms:
            print(_line("stop_keys", floors.stop_keys_ms))
            print(_line("off_key", floors.off_key_ms))
        print(_line("pads_open", floors.pads_open_ms))
        print(f"{version}: driver (ms, apply/stop_all to no output)")
        print(_line("onset", driven.onset_ms))
        for channel in (0, 1):
            offs = driven.offs(channel)
            bound = floors.off_floor_ms(channel) + OFF_ALLOWANCE_MS
            print(_line(f"off ch{channel}", offs)
                  + f"  over {bound:.1f}: {sum(ms > bound for ms in offs)}")
        bound = min(floors.stop_ms) + STOP_ALLOWANCE_MS
        print(_line("stop", driven.stop_ms)
              + f"  over {bound:.1f}: {sum(ms > bound for ms in driven.stop_ms)}")
        print(f"{version}: waits behind a line being handled (ms, of the off/stop line)")
        print(_line("off", driven.off_wait_ms))
        print(_line("stop", driven.stop_wait_ms))
        late = sum(w > 1.0 for w in driven.stop_wait_ms)
        print(f"  stops that waited more than 1 ms: {late} of {len(driven.stop_wait_ms)}")
        print(f"  bytes lost {driven.lost_bytes}, crashed {driven.crashed}, "
              f"fault {driven.fault}, {driven.stats}")
        if args.swing_stops:
            swung = stop_in_swings(programs[version], workdir / version, args.swing_stops,
                                   settings)
            _print_swing_stops(version, floors, swung)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
