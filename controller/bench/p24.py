"""Benchmark: the P24 driver's layers, command to emulated pulse, and what each costs the loop.

``python -m controller.bench.p24 [--seconds S] [--variants ...]`` starts ``fes
board-emulator --device p24`` in its own process (a device is its own machine), then
runs a 500 Hz loop on the wall clock for S seconds that commands trains as a drop-foot
schedule does (35 mA, 300 us, 40 Hz; 60 ms ramp up, 100 ms ramp down, 250-350 ms on,
200-300 ms off, onsets at random phases), one variant at a time:

- ``none``: no device, the loop alone (its own lateness on this machine);
- ``loop-asyncio``: the library's asyncio mid-level API called on the loop's thread, as
  a straightforward script would (``run_until_complete(update(...))`` on every change,
  ``get_current_data`` as keep-alive);
- ``mid`` / ``low``: ``hw.p24.driver.P24Stimulator`` on the mid or the low level (its
  I/O thread does the library's work; the loop only calls ``apply``).

It prints, per variant: the command-to-pulse latency of every train onset (from the
``apply`` that switched the channel on to the first pulse in the emulator's log, both on
``time.monotonic``), the end of each train (mid: the device's train end after the off
command; low: pulses the device fired after the off command), the pulse intervals, the
loop's lateness (how late each iteration woke, against its 2 ms period), what ``apply``
cost the loop's thread, and the process's CPU time. Load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from controller.ports import StimCommand
from hw.p24.driver import P24Stimulator
from hw.p24.library import sm

RATE_HZ = 500.0
AMPLITUDE_MA = 35.0
WIDTH_US = 300.0
FREQUENCY_HZ = 40.0
RAMP_UP_S = 0.060
RAMP_DOWN_S = 0.100
VARIANTS = ("none", "loop-asyncio", "mid", "low")


@dataclass
class Figures:
    """What one variant measured."""

    variant: str
    onsets_ms: list[float] = field(default_factory=list)
    train_ends_ms: list[float] = field(default_factory=list)
    late_pulses: int = 0
    intervals_ms: list[float] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)
    apply_us: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    missed_onsets: int = 0


def schedule(seconds: float, seed: int) -> list[tuple[int, int]]:
    """(first sample on, first sample off after the ramp down) of every train."""
    rng = random.Random(seed)
    trains: list[tuple[int, int]] = []
    k = round(0.3 * RATE_HZ)
    end = round(seconds * RATE_HZ)
    while True:
        on = round(rng.uniform(0.25, 0.35) * RATE_HZ)
        off = k + on + round(RAMP_DOWN_S * RATE_HZ)
        if off + round(0.1 * RATE_HZ) > end:
            return trains
        trains.append((k, off))
        k = off + round(rng.uniform(0.2, 0.3) * RATE_HZ)


def command_at(k: int, train: tuple[int, int]) -> StimCommand:
    """The command of sample ``k`` within ``train`` (or off outside it)."""
    start, stop = train
    if not start <= k < stop:
        return StimCommand.off(0)
    t = (k - start + 1) / RATE_HZ
    level = min(1.0, t / RAMP_UP_S, (stop - k) / (RAMP_DOWN_S * RATE_HZ))
    return StimCommand(0, True, AMPLITUDE_MA * level, WIDTH_US, FREQUENCY_HZ)


def start_emulator(log: Path) -> tuple[subprocess.Popen[str], str]:
    """``fes board-emulator --device p24`` in its own process, and its pty path."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "board-emulator", "--device", "p24",
         "--log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


class LoopAsyncio:
    """The library's asyncio mid-level API on the calling (loop) thread."""

    def __init__(self, path: str) -> None:
        self._aio = asyncio.new_event_loop()
        self._connection = sm.SerialPortConnection(path)
        self._connection.open()
        self._device = sm.DeviceP24(self._connection)
        self._aio.run_until_complete(self._device.initialize())
        self._mid = self._device.get_layer_mid_level()
        self._aio.run_until_complete(self._mid.init(True))
        self._last: StimCommand | None = None
        self._last_poll = time.monotonic()

    def apply(self, t_s: float, commands: Sequence[StimCommand]) -> None:
        command = commands[0]
        if command != self._last:
            self._last = command
            config = None
            if command.delivers:
                points = [sm.ChannelPoint(round(command.pulse_width_us), command.amplitude_ma),
                          sm.ChannelPoint(round(command.pulse_width_us), -command.amplitude_ma)]
                config = sm.MidLevelChannelConfiguration(
                    True, 0, math.ceil(1000.0 / command.frequency_hz), points)
            self._aio.run_until_complete(self._mid.update([config]))
            self._last_poll = time.monotonic()
        elif time.monotonic() - self._last_poll > 0.25:
            self._aio.run_until_complete(self._mid.get_current_data())
            self._last_poll = time.monotonic()

    def close(self) -> None:
        self._aio.run_until_complete(self._mid.stop())
        self._connection.close()
        self._aio.close()


def _no_device(t_s: float, commands: Sequence[StimCommand]) -> None:
    """The ``none`` variant's stimulator: takes every command, does nothing."""


def run_variant(variant: str, seconds: float, seed: int, workdir: Path) -> Figures:
    """Run the loop against one variant and measure it."""
    figures = Figures(variant)
    log = workdir / f"{variant}.jsonl"
    proc: subprocess.Popen[str] | None = None
    device: LoopAsyncio | P24Stimulator | None = None
    apply: Callable[[float, Sequence[StimCommand]], None] = _no_device
    if variant != "none":
        proc, path = start_emulator(log)
        if variant == "loop-asyncio":
            device = LoopAsyncio(path)
        else:
            device = P24Stimulator(path, layer="mid" if variant == "mid" else "low")
            device.connect()
        apply = device.apply
    trains = schedule(seconds, seed)
    if not trains:
        raise ValueError(f"{seconds:g} s holds no train: run for 2 s or more")
    onsets, offsets = [], []
    period = 1.0 / RATE_HZ
    n = round(seconds * RATE_HZ)
    index = 0  # the train under way or next
    cpu0, t0 = time.process_time(), time.monotonic()
    for k in range(n):
        due = t0 + k * period
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        woke = time.monotonic()
        figures.lateness_ms.append((woke - due) * 1e3)
        if k == trains[index][0]:
            onsets.append(woke)
        if k == trains[index][1]:
            offsets.append(woke)
            index = min(index + 1, len(trains) - 1)
        command = command_at(k, trains[index])
        started = time.perf_counter()
        apply(k * period, [command])
        figures.apply_us.append((time.perf_counter() - started) * 1e6)
    figures.cpu_s = time.process_time() - cpu0
    figures.wall_s = time.monotonic() - t0
    if device is not None:
        device.close()
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=10)
        _score(figures, log, onsets, offsets)
    return figures


def _score(figures: Figures, log: Path, onsets: list[float], offsets: list[float]) -> None:
    events = [json.loads(line) for line in log.read_text().splitlines()]
    pulses = np.array([e["monotonic_s"] for e in events if e["event"] == "pulse"])
    ends = np.array([e["monotonic_s"] for e in events if e["event"] == "train_end"])
    for on, off in zip(onsets, offsets, strict=False):
        train = pulses[(pulses >= on) & (pulses < off + 0.1)]
        if train.size == 0:
            figures.missed_onsets += 1
            continue
        figures.onsets_ms.append((train[0] - on) * 1e3)
        figures.intervals_ms += list(np.diff(train[train < off]) * 1e3)
        figures.late_pulses += int((train > off).sum())
        after = ends[(ends >= off) & (ends < off + 0.1)]
        if after.size:
            figures.train_ends_ms.append((after[0] - off) * 1e3)


def _stats(values: Sequence[float]) -> str:
    if not values:
        return "-"
    a = np.asarray(values)
    return (f"p50 {np.percentile(a, 50):.2f} p99 {np.percentile(a, 99):.2f} "
            f"max {a.max():.2f} (n {a.size})")


def report(figures: Figures) -> str:
    """The figures of one variant, a few lines for a person."""
    f = figures
    lines = [f"== {f.variant}"]
    if f.variant != "none":
        lines += [
            f"  onset, command -> first pulse (ms): {_stats(f.onsets_ms)}"
            + (f"; {f.missed_onsets} trains without a pulse" if f.missed_onsets else ""),
            f"  off command -> train end (ms): {_stats(f.train_ends_ms)}; pulses after "
            f"the off command: {f.late_pulses}",
            f"  pulse interval (ms, 25 asked): {_stats(f.intervals_ms)}",
        ]
    overruns = sum(1 for x in f.lateness_ms if x > 1000.0 / RATE_HZ)
    lines += [
        f"  loop lateness (ms): {_stats(f.lateness_ms)}; late by more than a period: "
        f"{overruns}",
        f"  apply on the loop thread (us): {_stats(f.apply_us)}",
        f"  CPU: {100.0 * f.cpu_s / f.wall_s:.1f} % of one core (this process)",
    ]
    return "\n".join(lines)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.bench.p24",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of each variant's run (default 60)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="which to run (default all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train schedule")
    args = parser.parse_args(argv)
    print(f"load average before: {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            print(report(run_variant(variant, args.seconds, args.seed, Path(tmp))), flush=True)
    print(f"load average after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
