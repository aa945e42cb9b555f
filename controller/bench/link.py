"""Benchmark: sensor-sample-to-command round trip over a pty.

``python -m controller.bench.link`` starts ``fes board-emulator`` in its own process (as
a board is its own device), then runs the live loop against it: board driver -> gyro
detector -> scheduler -> watchdog -> board driver, answering every sample (a STIM when
the command changed, a HEARTBEAT otherwise) and publishing the status line's figures as
``fes run`` does (no sink prints them here). The emulated firmware times each answer
from the moment it wrote the sample to the moment it read the first frame answering it,
and logs the figures when it stops; this prints them. A real board adds the wire and USB
times of docs/protocol.md ("Latency budget") to these.

It also prints how long the loop's start kept the board waiting: from the last HELLO
written to the first sample the loop read (docs/protocol.md, "At the start": the board's
communication timeout runs from its HELLO, the host's watchdog from the loop's first
command). The loop is prepared as ``fes run`` prepares it (kernels warmed up, heap
frozen, the board connected by ``BoardPacedClock`` when the loop starts), so the figure
is the handshake, START_STREAM and the first sample's wait.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from controller.config import load_config
from controller.detect.config import build_detector
from controller.loop import run_loop
from controller.ports import Sample
from controller.safety import Watchdog
from controller.stim.scheduler import StimScheduler
from controller.trial.live import BoardPacedClock, LiveSource, LiveStatus, warm_up
from controller.trial.recorder import TrialRecorder
from controller.trial.session import watched_sensors
from hw import protocol
from hw.board import Board, BoardRequirements, Sent
from hw.realtime import frozen_heap


def _start_emulator(log: Path, seed: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "board-emulator", "--seed", str(seed),
         "--comm-timeout-ms", "400", "--log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


class StartTimedBoard(Board):
    """A ``Board`` that notes on ``time.monotonic`` when it last wrote a HELLO and when
    the first sample was read from it: the window in which the board's timeout runs and
    the host's watchdog is not yet armed."""

    hello_s: float | None = None
    first_sample_s: float | None = None

    def _send(self, message: protocol.Message) -> Sent | None:
        sent = super()._send(message)
        if isinstance(message, protocol.Hello):
            self.hello_s = time.monotonic()
        return sent

    def read(self) -> Sample | None:
        sample = super().read()
        if sample is not None and self.first_sample_s is None:
            self.first_sample_s = time.monotonic()
        return sample

    def hello_to_first_sample_ms(self) -> float | None:
        """Milliseconds from the last HELLO to the first sample read (None: none read)."""
        if self.hello_s is None or self.first_sample_s is None:
            return None
        return (self.first_sample_s - self.hello_s) * 1e3


def measure(seconds: float, seed: int) -> dict[str, float]:
    """Run the loop against an emulator for ``seconds``; the emulator's round-trip log."""
    config = load_config(overrides={"loop": {"duration_s": seconds}})
    rate_hz = config.loop.sample_rate_hz
    warm_up(config)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "board.jsonl"
        proc, path = _start_emulator(log, seed)
        try:
            board = StartTimedBoard(path, BoardRequirements(config.safety, rate_hz),
                                    heartbeat_s=0.0, link_timeout_s=0.3, max_backlog_s=0.3)
            detector = build_detector(config.detector, rate_hz)
            watchdog = Watchdog(board, config.safety, watched_sensors(config))
            scheduler = StimScheduler(config.stim)
            n = round(seconds * rate_hz)
            recorder = TrialRecorder(n)
            with frozen_heap():
                clock = BoardPacedClock(board.connect)  # connects when the loop is ready
                live = LiveStatus(board, watchdog, recorder, detector)
                source = LiveSource(board, watchdog, clock, live)
                outcome = run_loop(source, detector, scheduler, watchdog, clock, recorder, n)
                board.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        records = [json.loads(line) for line in log.read_text().splitlines()]
    result = next(r for r in records if r["event"] == "round_trips")
    result["samples"] = outcome.samples
    result["hello_to_first_sample_ms"] = board.hello_to_first_sample_ms()
    result["fault"] = _why_ended(board, watchdog)
    return result


def _why_ended(board: Board, watchdog: Watchdog) -> str | None:
    """What ended the loop before its length, if anything: the link or the board, else
    the safety watchdog (a heartbeat fault on a busy machine)."""
    if board.fault is not None:
        return board.fault.message
    latched = watchdog.fault
    if watchdog.latched and latched is not None:
        return f"safety watchdog fault ({latched.rule}: {latched.requested}, {latched.detail})"
    return None


def main(argv: list[str] | None = None) -> int:
    """Print median, p99 and max round trip, and how many answers missed a period."""
    parser = argparse.ArgumentParser(prog="python -m controller.bench.link", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="loop length (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="patient seed (default 0)")
    args = parser.parse_args(argv)
    r = measure(args.seconds, args.seed)
    load = os.getloadavg()[0]
    print(
        f"sensor sample -> command round trip over a pty, 500 Hz, {args.seconds:g} s: "
        f"{r['count']} of {r['samples']} samples answered"
    )
    if r["count"]:
        print(
            f"  median {r['median_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, max "
            f"{r['max_ms']:.3f} ms; later than one sample period (2 ms): "
            f"{r['over_one_period']} ({100.0 * r['over_one_period'] / r['count']:.2f} %)"
        )
    start = r["hello_to_first_sample_ms"]
    print("  last HELLO to the loop's first sample: "
          + (f"{start:.3f} ms" if start is not None else "no sample read"))
    print(f"  machine load average {load:.2f} on {os.cpu_count()} cores"
          + (f"; ended by: {r['fault']}" if r["fault"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
