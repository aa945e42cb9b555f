"""openEMSstim's off and stop latency: the firmware's own floor and the driver's, per version.

The *floor* is what the firmware itself needs to read one line and act on it, with
nothing else to do: the host writes the line to an idle board and the harness timeline
says when the wiper reached no output. Three floors per version:

- ``off``: the all-off line with one channel on (the driver's off when no other
  channel stays on);
- ``off_t0``: ``C0T0G`` with channel 1 on as well (the driver's off of one channel
  while the other stays on: the firmware ends the on-time after its prints);
- ``stop``: the all-off line with both channels on, until both are at no output (the
  firmware switches the channels off one after the other, 50 ms each).

The *driver's* figures come from trains driven through ``OpenEmsStim`` as the loop
drives it (a command every 2 ms: ramp up 60 ms, hold, ramp down 100 ms, off), the hold
of random length so that the off falls anywhere relative to the driver's renewals:
``off`` is from the ``apply`` whose intensity is 0 to no output, ``stop`` from
``stop_all`` with both channels held to both at no output. The issue's bounds: off
within 10 ms of its floor, stop within 20 ms of its floor. ``pads_open`` is the
firmware's further wait before it opens the pads (50 ms)::

    python -m controller.bench.openems --build /tmp/openems-build --trains 20
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import serial

from controller.bench.openems_harness import (
    VERSIONS,
    FirmwareProcess,
    HarnessUnavailable,
    Train,
    build_for_bench,
    trains,
)
from controller.ports import StimCommand
from hw.openems.driver import OpenEmsStim
from hw.openems.firmware import BYTE_S, FIRMWARES, Command
from hw.openems.settings import OpenEmsSettings, load_settings

#: Settings for the firmware's host build: no USB bridge between host and board.
HARNESS_LATENCY_MS = 0.0
RATE_HZ = 500.0
_PERIOD_S = 1.0 / RATE_HZ


def harness_settings(**changes: object) -> OpenEmsSettings:
    """The shipped example settings, with no USB latency (a pty)."""
    return load_settings().model_copy(update={"usb_latency_ms": HARNESS_LATENCY_MS, **changes})


@dataclass(frozen=True, slots=True)
class Floors:
    """The firmware's own times (ms) per run: line written to output on (``onset``: a
    start without an on-time, as the driver sends once the firmware keeps its hold;
    ``onset_t``: with one, as the first start after connecting) or to no output (the
    others)."""

    onset_ms: list[float]
    onset_t_ms: list[float]
    off_ms: list[float]
    off_t0_ms: list[float]
    stop_ms: list[float]
    pads_open_ms: list[float]


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
    finally:
        process.stop()
    changes = process.timeline()
    by_channel = {ch: trains(changes, ch) for ch in (0, 1)}
    floors: dict[str, list[float]] = {k: [] for k in ("onset", "onset_t", "off", "off_t0",
                                                      "stop", "pads_open")}
    for kind, t_write in writes:
        if kind.startswith("onset"):
            first = _starting_after(by_channel[0], t_write)
            floors[kind].append(1000.0 * (first.on_s - t_write))
            continue
        channels = (0, 1) if kind == "stop" else (0,)
        ends = [_ending_after(by_channel[ch], t_write) for ch in channels]
        floors[kind].append(1000.0 * (max(e.zero_s for e in ends) - t_write))
        floors["pads_open"] += [1000.0 * (e.open_s - e.zero_s) for e in ends if e.open_s]
    return Floors(floors["onset"], floors["onset_t"], floors["off"], floors["off_t0"],
                  floors["stop"], floors["pads_open"])


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
    """The driver's times (ms): off and stop latency, onset latency; faults seen."""

    off_ms: list[float]
    stop_ms: list[float]
    onset_ms: list[float]
    #: How long each off and stop line waited in the firmware's receive ring behind the
    #: line being handled (ms): from its last byte's arrival to the firmware reading it.
    off_wait_ms: list[float]
    stop_wait_ms: list[float]
    lost_bytes: int
    crashed: bool
    fault: str | None
    stats: dict[str, object]


def _amplitude(t_s: float, hold_s: float, full_ma: float) -> float:
    """A train: 60 ms ramp up, hold, 100 ms ramp down."""
    if t_s < 0.06:
        return full_ma * t_s / 0.06
    if t_s < 0.06 + hold_s:
        return full_ma
    return max(0.0, full_ma * (1.0 - (t_s - 0.06 - hold_s) / 0.1))


def drive_trains(
    program: Path,
    workdir: Path,
    n_trains: int,
    settings: OpenEmsSettings,
    seed: int = 0,
    hold_s: tuple[float, float] = (0.2, 0.9),
) -> DriverFigures:
    """Drive ``n_trains`` ramped trains on channel 0, then as many stops with both
    channels held, each train and hold lasting ``hold_s`` (uniform), through the driver;
    measure against the timeline."""
    rng = random.Random(seed)
    process = FirmwareProcess(program, workdir / "driver")
    stim = OpenEmsStim(process.path, settings)
    full = 35.0
    lowest = settings.output_at_lowest_ma
    offs: list[float] = []
    onsets: list[float] = []
    stops: list[float] = []
    try:
        stim.connect()
        time.sleep(0.2)  # the all-off line of the connection
        for _ in range(n_trains):
            held_s = rng.uniform(*hold_s)
            start = time.monotonic()
            k, off_at, on_at = 0, None, None
            while True:
                t = k * _PERIOD_S
                a = _amplitude(t, held_s, full)
                time.sleep(max(0.0, start + t - time.monotonic()))
                now = time.monotonic()
                stim.apply(t, [StimCommand(0, a > 0.0, a, 300.0, 40.0)])
                if on_at is None and a >= lowest:
                    on_at = now
                if on_at is not None and a < lowest:
                    off_at = now
                    break
                k += 1
            onsets.append(on_at)  # type: ignore[arg-type]
            offs.append(off_at)
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
        crashed = process.returncode not in (None, 0)
        process.stop()
    changes = process.timeline()
    serial = process.serial()
    lost = sum(1 for r in serial if r.kind == "rx_lost")
    ch0, ch1 = trains(changes, 0), trains(changes, 1)
    stop_line = FIRMWARES[program.name.removeprefix("openems_fw_")].stop()
    read = [r.t_s for r in serial if r.kind == "rx_line" and r.text == stop_line.text]

    def waited_ms(t_s: float) -> float:
        arrived = t_s + settings.usb_latency_ms / 1000.0 + stop_line.rx_bytes * BYTE_S
        return max(0.0, 1000.0 * (next(r for r in read if r >= t_s) - arrived))

    try:
        figures = DriverFigures(
            off_ms=[1000.0 * (_ending_after(ch0, t).zero_s - t) for t in offs],
            stop_ms=[1000.0 * (max(_ending_after(ch0, t).zero_s, _ending_after(ch1, t).zero_s) - t)
                     for t in stops],
            onset_ms=[1000.0 * (_starting_after(ch0, t).on_s - t) for t in onsets],
            off_wait_ms=[waited_ms(t) for t in offs],
            stop_wait_ms=[waited_ms(t) for t in stops],
            lost_bytes=lost,
            crashed=crashed,
            fault=None if stim.fault is None else stim.fault.message,
            stats=stim.stats.as_dict(),
        )
    except RuntimeError as err:
        raise RuntimeError(f"{err}; the firmware's logs: {workdir / 'driver'}") from None
    return figures


def _line(name: str, values: Sequence[float]) -> str:
    if not values:
        return f"  {name:>10}: none"
    return (f"  {name:>10}: median {statistics.median(values):6.1f}  "
            f"max {max(values):6.1f}  (n={len(values)})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.openems", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--build", type=Path, help="build directory (default: a temporary one)")
    parser.add_argument("--runs", type=int, default=10, help="floor measurements per kind")
    parser.add_argument("--trains", type=int, default=20, help="driven trains (and stops)")
    parser.add_argument("--hold-ms", type=int, help="the driver's hold_ms (default: settings)")
    parser.add_argument("--versions", nargs="+", choices=VERSIONS, default=list(VERSIONS))
    args = parser.parse_args(argv)
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
        print(_line("pads_open", floors.pads_open_ms))
        print(f"{version}: driver (ms, apply/stop_all to no output)")
        print(_line("onset", driven.onset_ms))
        print(_line("off", driven.off_ms))
        print(_line("stop", driven.stop_ms))
        print(f"{version}: waits behind a line being handled (ms, of the off/stop line)")
        print(_line("off", driven.off_wait_ms))
        print(_line("stop", driven.stop_wait_ms))
        late = sum(w > 1.0 for w in driven.stop_wait_ms)
        print(f"  stops that waited more than 1 ms: {late} of {len(driven.stop_wait_ms)}")
        print(f"  bytes lost {driven.lost_bytes}, crashed {driven.crashed}, "
              f"fault {driven.fault}, {driven.stats}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
