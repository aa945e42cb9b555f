"""The start of a live trial: the board's timers run from HELLO, so nothing slow may come
between HELLO and the loop's first frame.

Observed once (5 Dec 2026, a first ``fes run`` in a fresh worktree under load): the trial
ended at 0 s with the board's COMM_TIMEOUT. The board's communication timeout (100 ms)
runs from its HELLO, and its stream from START_STREAM; ``fes run`` sent both, then
prepared the loop (the per-sample kernels run once, the heap collected and frozen, the
watchdog's monitor thread started) before it read the first sample and sent its first
keep-alive. A host kept off the CPU in that preparation left the board silent beyond its
timeout. Here the preparation is made slow on purpose (a stall at each of its steps, three
times the board's timeout): the board must be greeted only once the loop is ready, and the
trial must run its length against a board that keeps its 100 ms timeout.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.shared_machine import host_config, rerun_after_heartbeat_faults

import controller.loop
from controller.cli import main
from controller.safety import Watchdog
from hw.emulator import EmulatorConfig, serve_in_thread
from hw.firmware import FirmwareSettings

#: Three times the board's communication timeout (100 ms, the emulator's default, which a
#: real board keeps), and over the host's own limit on its lag behind the stream (100 ms).
STALL_S = 0.3


def stalled(function: Callable, ends: list[float]) -> Callable:
    """``function``, ``STALL_S`` late; the ``time.monotonic()`` at which each stall ended
    is appended to ``ends``."""

    def late(*args, **kwargs):
        time.sleep(STALL_S)
        ends.append(time.monotonic())
        return function(*args, **kwargs)

    return late


def stalled_context(function: Callable, ends: list[float]) -> Callable:
    """A context manager ``function`` whose entry is ``STALL_S`` late."""

    @contextlib.contextmanager
    def late(*args, **kwargs) -> Iterator:
        time.sleep(STALL_S)
        ends.append(time.monotonic())
        with function(*args, **kwargs) as value:
            yield value

    return late


#: The steps of the loop's preparation (``controller.loop.run_loop``, before its first
#: sample), each made ``STALL_S`` late: where the host spent its time, as numba loading
#: its cache, a collection of a large heap or a thread start on a loaded machine would.
STALLS: dict[str, Callable[[pytest.MonkeyPatch, list[float]], None]] = {
    "kernels-warm-up": lambda mp, ends: mp.setattr(
        controller.loop, "warm_up", stalled(controller.loop.warm_up, ends)),
    "heap-collected": lambda mp, ends: mp.setattr(
        controller.loop, "gc_paused", stalled_context(controller.loop.gc_paused, ends)),
    "watchdog-monitor-started": lambda mp, ends: mp.setattr(
        Watchdog, "monitoring", stalled_context(Watchdog.monitoring, ends)),
}


@pytest.mark.parametrize("step", list(STALLS))
def test_a_slow_start_of_the_loop_does_not_time_the_board_out(tmp_path, monkeypatch, capfd,
                                                              step):
    ends: list[float] = []
    STALLS[step](monkeypatch, ends)

    def attempt(k: int) -> tuple[int, str, tuple[Path, list[dict]]]:
        out = tmp_path / f"live{k}"
        log = io.StringIO()
        emu, finish = serve_in_thread(EmulatorConfig(board=FirmwareSettings()), log)
        code = main(["run", "--port", emu.path, "--config", host_config(tmp_path),
                     "--duration-s", "1", "--out", str(out), "--no-status"])
        finish()
        board_log = [json.loads(line) for line in log.getvalue().splitlines()]
        return code, capfd.readouterr().err, (out, board_log)

    code, err, (out, board_log) = rerun_after_heartbeat_faults(attempt)
    assert ends, "the stall was not injected"
    faults = [e["code"] for e in board_log if e["event"] == "fault"]
    hello = next(e["monotonic_s"] for e in board_log if e["event"] == "hello")
    assert code == 0, err
    assert "COMM_TIMEOUT" not in faults[:1] or _after_stream_stop(board_log), board_log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by"] == "duration"
    assert summary["duration_s"] == pytest.approx(1.0, abs=0.01)
    # The board was greeted once the loop was ready, not before its preparation.
    assert ends[-1] < hello


def _after_stream_stop(board_log: list[dict]) -> bool:
    """True when the board's first COMM_TIMEOUT came after the host stopped its stream (the
    host closed the session: the board times out once the host is gone, as it should)."""
    stop = next((e["monotonic_s"] for e in board_log if e["event"] == "stream_stop"), None)
    fault = next(e["monotonic_s"] for e in board_log if e["event"] == "fault")
    return stop is not None and fault > stop


def test_a_replay_into_the_p24_has_no_such_window(tmp_path, monkeypatch, capfd):
    """The sensorless stimulators start no timer of the host's at connection: the P24's
    low level has no keep-alive and its driver counts the host's liveness from the first
    command, and the replayed recording starts its clock at its first read. A slow start
    of the loop is then only a later start (also a check that the stall is harmless)."""
    pytest.importorskip("science_mode_4")
    from hw.p24.emulator import serve_p24_in_thread

    ends: list[float] = []
    STALLS["kernels-warm-up"](monkeypatch, ends)
    recording = tmp_path / "sim"
    assert main(["sim", "--seed", "3", "--duration-s", "2", "--out", str(recording)]) == 0

    def attempt(k: int) -> tuple[int, str, Path]:
        out = tmp_path / f"live{k}"
        emu, finish = serve_p24_in_thread()
        code = main(["run", "--sensors", f"replay:{recording / 'samples.csv'}",
                     "--stimulator", f"p24:{emu.path}", "--config", host_config(tmp_path),
                     "--out", str(out), "--no-status"])
        finish()
        return code, capfd.readouterr().err, out

    code, err, out = rerun_after_heartbeat_faults(attempt)
    assert ends, "the stall was not injected"
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by"] in ("duration", "source_ended")
    assert summary["duration_s"] == pytest.approx(2.0, abs=0.01)
    # The recording paces the loop: lateness not measured, and said so.
    timing = summary["timing"]
    assert timing["clock"] == "replay" and timing["misses"] is None
    assert set(timing["lateness_us"].values()) == {None}
    assert timing["not_measured"].startswith("the replayed recording paces the loop")
    assert timing["latency_us"]["median"] > 0.0
