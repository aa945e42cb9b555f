"""A failing board, as ``fes run`` meets it over a real pty with ``fes board-emulator``:
what the trial reports must be what happened (issue 13 items 1, 5 and 6).

The host's wall-clock fault timeouts are at their 30 ms maximum and the board's own
timeout at 400 ms (``shared_machine``): a loaded CI machine must not add faults of its
own to the one under test."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from helpers.live import Process, _no_process_outlives_its_test, emulator, events, summary
from helpers.shared_machine import host_config

from controller.safety import SafetyLimits
from hw.board import Board, BoardRequirements
from hw.emulator import BoardEmulator, EmulatorConfig, LinkFaults, serve_in_thread
from hw.firmware import FirmwareSettings

__all__ = ["_no_process_outlives_its_test"]  # the autouse fixture: no process outlives a test


def live_run(tmp_path, path: str, duration_s: float) -> Process:
    """``fes run`` against the board at ``path``, writing into ``tmp_path/live``."""
    return Process("run", "--port", path, "--config", host_config(tmp_path),
                   "--duration-s", str(duration_s), "--out", str(tmp_path / "live"),
                   "--no-status", "--link-timeout-ms", "100", "--max-lag-ms", "400")


def test_stop_all_after_an_unplug_is_never_confirmed_by_an_old_ack(tmp_path):
    """The issue's repro (unplugged at 5 s rather than 3: this board's longer timeout
    means fewer keep-alive frames): after 256 frames every sequence number had been acknowledged
    once, and the STOP_ALL sent after the unplug matched the ACK of the frame that had
    its number 256 frames earlier: ``outputs_off_confirmed: true`` from a board that
    never received it."""
    emu, path, log = emulator(tmp_path, "--unplug-at-s", "5", "--comm-timeout-ms", "400")
    run = live_run(tmp_path, path, 8.0)
    assert run.wait() == 5, run.stderr()  # link lost
    assert emu.wait(10.0) == 0
    board = summary(tmp_path / "live")["board"]
    assert board["link"]["frames_out"] > 256  # every sequence number in use before
    unplug = next(e for e in events(log) if e["event"] == "unplug")
    assert not [e for e in events(log) if e["event"] == "stop_all"
                and e["monotonic_s"] > unplug["monotonic_s"]]  # the board got none
    assert board["outputs_off_confirmed"] is False
    assert "outputs off not confirmed" in board["ending"]
    assert "outputs off not confirmed" in run.stderr()


def connected_board(faults: LinkFaults) -> tuple[Board, BoardEmulator, Callable[[], str]]:
    """A driver connected to an emulator on a thread, 100 samples read, then ``faults``.
    The host's link timeout (150 ms) is well inside the board's own (500 ms)."""
    emu, finish = serve_in_thread(EmulatorConfig(board=FirmwareSettings(comm_timeout_ms=500)))
    board = Board(emu.path, BoardRequirements(SafetyLimits(), 500.0), link_timeout_s=0.15,
                  max_backlog_s=1.0)
    board.connect()
    for _ in range(100):
        assert board.read() is not None
    emu.config = emu.config.model_copy(update={"faults": faults})  # from now on
    return board, emu, finish


def test_an_unanswered_stop_all_is_resent_until_the_link_is_declared_lost():
    board, _, finish = connected_board(LinkFaults(drop=1.0, direction="rx"))
    started = time.monotonic()
    board.close()
    finish()
    assert not board.stop_confirmed
    assert board.stop_attempts >= 3  # resent every 50 ms for the 150 ms link timeout
    assert board.fault is not None and board.fault.kind == "link"
    # Declared by close or by the reader thread, whichever looked first.
    assert re.search("STOP_ALL unanswered|a command is .* without answer", board.fault.message)
    assert time.monotonic() - started < 0.15 + 0.3


def test_a_stop_all_lost_on_the_way_is_resent_until_acknowledged():
    board, emu, finish = connected_board(LinkFaults(drop=0.6, direction="rx"))
    board.close()
    finish()
    assert board.stop_confirmed
    assert emu.firmware.channels_on() == []
