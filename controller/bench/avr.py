"""The AVR board's budgets, measured from the build (``python -m controller.bench.avr``).

- Flash and RAM: ``avr-size`` of the firmware (.elf) as built from source; RAM is the
  static part (.data + .bss), the rest of the 8 KB is the stack's.
- Cycles: a closed-loop ``fes run`` against the firmware in simavr, with the heaviest
  traffic the host sends (the ODFS preset: STIM_SHAPED at every sample of its ramps) and
  the ground-truth relay on. The firmware raises a timing pin while it builds a SAMPLE
  frame, while it handles a host frame and while its pulse-engine interrupt runs; the
  harness counts the cycles each stays high (hw/avr/harness/outputs.c), as a scope on
  those pins would on the real board. The worst case of each is printed against the
  32 000 cycles of a sample period at 500 Hz, with the share of cycles the core was awake.
- The host link: the harness brings the host's bytes at the chip's byte time into the
  chip's two-byte receive buffer (hw/avr/harness/rxline.c); printed are the bytes lost to
  it (a real board's data overruns) and the longest a byte waited there before the
  firmware read it, against the 20.5 us after which a byte following back to back is lost,
  with the functions the firmware was in when that byte arrived and when it was read.

The cycles are simulated cycles: they do not depend on the machine's load; the load
average is printed for the wall-clock figures of the run itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from controller.bench import LOOSE_TIMEOUTS_TOML
from controller.cli import main as fes
from hw.avr import build as avr_build
from hw.avr import cosim

FLASH_BYTES = 256 * 1024
RAM_BYTES = 8 * 1024
#: How long the oldest of two unread bytes may wait in the ATmega2560's receive FIFO while
#: bytes follow back to back at 1 Mbaud: the third completes in the shift register 2 byte
#: times after it and is lost at the next start bit, half a bit later (10 us a byte).
RX_WAIT_LIMIT_US = 2 * 10.0 + 0.5


def memory(elf: Path) -> tuple[int, int]:
    """Flash (.text + .data) and static RAM (.data + .bss) of the firmware, bytes."""
    out = subprocess.run(["avr-size", "-A", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    sizes = {m.group(1): int(m.group(2))
             for m in re.finditer(r"^(\.\w+)\s+(\d+)", out, flags=re.M)}
    data, text, bss = sizes.get(".data", 0), sizes.get(".text", 0), sizes.get(".bss", 0)
    return text + data, data + bss


def function_at(elf: Path, pc: int) -> str:
    """The firmware's function at byte address ``pc`` (avr-addr2line), "?" if unknown."""
    out = subprocess.run(["avr-addr2line", "-f", "-e", str(elf), hex(pc)], capture_output=True,
                         text=True, check=False).stdout.split("\n")
    return out[0].strip() or "?"


def closed_loop(seconds: float, seed: int, truth: bool = True) -> list[dict]:
    """Run ``fes run --stim odfs`` against the firmware; the board's log events. A run
    that the host's own watchdog ended (exit 7: a loaded machine kept ``fes run`` off the
    CPU) is run again, at most twice, so that the figures cover a whole run."""
    for _ in range(3):
        with tempfile.TemporaryDirectory() as folder:
            log, config = Path(folder) / "board.jsonl", Path(folder) / "host.toml"
            config.write_text(LOOSE_TIMEOUTS_TOML)
            board, finish = cosim.serve_in_thread(
                cosim.AvrBoardConfig(seed=seed, truth=truth,
                                     board=cosim.AvrBoardSettings(comm_timeout_ms=400)), log)
            try:
                code = fes(["run", "--port", board.path, "--config", str(config), "--stim",
                            "odfs", "--duration-s", f"{seconds:g}", "--out",
                            str(Path(folder) / "trial"), "--no-status", "--link-timeout-ms",
                            "300", "--max-lag-ms", "400"])
            finally:
                finish()
            events = [json.loads(line) for line in log.read_text().splitlines()]
        if code == 0:
            return events
        print(f"(fes run ended with exit status {code}; running it again)", file=sys.stderr)
    print("(the figures cover the last run until it ended)", file=sys.stderr)
    return events


def report(events: list[dict], title: str, elf: Path) -> None:
    """The cycle figures of one closed-loop run."""
    timing = next(e for e in events if e["event"] == "timing")
    pulses = next(e for e in events if e["event"] == "pulses")
    period = timing["cycles_per_sample_period"]
    print(f"{title}; {period} cycles per sample period")
    for name, what in (("sample_path", "sample path (reading to SAMPLE queued)"),
                       ("frame_path", "frame path (host frame to answer queued)"),
                       ("pulse_isr", "pulse engine interrupt (others held off)")):
        worst, mean = timing[f"{name}_max_cycles"], timing[f"{name}_mean_cycles"]
        print(f"  {what}: worst {worst} cycles ({worst / 16:.0f} us, "
              f"{100 * worst / period:.1f} % of the period), mean {mean:.0f}, "
              f"{timing[f'{name}_count']} times")
    print(f"  core awake {100 * timing['cpu_busy_fraction']:.1f} % of the cycles; "
          f"{pulses['channel_0']} pulses, largest net charge {pulses['max_abs_net_charge_nc']} "
          f"nC, output-stage rule breaches {pulses['violations']}")
    counters = next(e for e in events if e["event"] == "counters")
    print(f"  host bytes lost to the receive buffer {counters['rx_overruns']} (of "
          f"{counters['rx_frames']} frames taken, {counters['rx_bad_frames']} damaged); longest "
          f"wait in it {counters['rx_wait_max_us']:.1f} us of {RX_WAIT_LIMIT_US} us (it "
          f"arrived in {function_at(elf, counters['rx_wait_max_pc'])}, was read in "
          f"{function_at(elf, counters['rx_wait_max_read_pc'])})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.avr",
        description="Flash, RAM and worst-case cycles of the AVR board's firmware, measured "
        "from its build and from closed-loop runs in simavr (as a real board: no truth "
        "relay; then as the simulation runs it, relaying the patient's ground truth).")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each closed-loop run (default 10)")
    parser.add_argument("--seed", type=int, default=3, help="patient seed (default 3)")
    args = parser.parse_args(argv)
    build = avr_build.build()
    flash, ram = memory(build.firmware_elf)
    runs = [(truth, closed_loop(args.seconds, args.seed, truth)) for truth in (False, True)]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"AVR board: ATmega2560 at 16 MHz, {cosim.SAMPLE_RATE_HZ} Hz, 1 000 000 baud; load "
          f"average {load}")
    print(f"flash: {flash} of {FLASH_BYTES} bytes ({100 * flash / FLASH_BYTES:.1f} %)")
    print(f"RAM: {ram} of {RAM_BYTES} bytes static ({100 * ram / RAM_BYTES:.1f} %), "
          f"{RAM_BYTES - ram} for the stack")
    for truth, events in runs:
        what = "with the simulator's truth relayed" if truth else "as a real board (no truth)"
        report(events, f"{args.seconds:g} s of fes run --stim odfs (seed {args.seed}) {what}",
               build.firmware_elf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
