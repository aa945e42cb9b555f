"""``fes run``'s trial against a board emulator serving on a thread of the test, whose
simulated patient the test may change first: the Python firmware model
(``python_board_trial``) or the AVR firmware in simavr (``avr_board_trial``). A run that a
heartbeat fault ended (the machine, not the product: ``rerun_after_heartbeat_faults``)
is run again."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.commands.common import EXIT_WATCHDOG_FAULT
from controller.trial.live import LinkLimits, LiveResult, run_live_trial
from helpers.avr_support import avr_build_or_skip
from helpers.live import events
from helpers.shared_machine import rerun_after_heartbeat_faults

#: The host's link limits (ack, link timeout in s) and the board's communication
#: timeout (ms) of these trials: loose, for a shared machine.
LINK_LIMITS = LinkLimits(0.3, 0.4)
COMM_TIMEOUT_MS = 400


def _code(result: LiveResult) -> int:
    return EXIT_WATCHDOG_FAULT if result.stopped_by == "watchdog_fault" else 0


def python_board_trial(tmp_path: Path, config: Any, patient: str, seed: int,
                       prepare: Callable[[Any], None] = lambda limb: None
                       ) -> tuple[LiveResult, Path]:
    """The trial of ``config`` against the Python board emulator (speed 2) whose patient
    is ``patient`` with ``seed``, ``prepare`` called on its ``SimulatedLimb`` first; the
    result and the trial's folder."""
    from hw.emulator import EmulatorConfig, serve_in_thread
    from hw.firmware import FirmwareSettings

    def attempt(k: int) -> tuple[int, str, tuple[LiveResult, Path, list[dict]]]:
        log = io.StringIO()
        emu, finish = serve_in_thread(EmulatorConfig(
            patient=patient, seed=seed, board=FirmwareSettings(comm_timeout_ms=COMM_TIMEOUT_MS),
            speed=2.0), log)
        prepare(emu.firmware._limb)
        folder = tmp_path / f"run{k}"
        try:
            result = run_live_trial(config, emu.path, folder, None, LINK_LIMITS)
        finally:
            finish()
        board = [json.loads(line) for line in log.getvalue().splitlines()]
        return _code(result), result.message, (result, folder, board)

    _, _, (result, folder, _) = rerun_after_heartbeat_faults(attempt, lambda run: run[2])
    return result, folder


def avr_board_trial(tmp_path: Path, config: Any, patient: str, seed: int,
                    prepare: Callable[[Any], None] = lambda limb: None
                    ) -> tuple[LiveResult, Path]:
    """``python_board_trial`` with the AVR firmware in simavr (real time) as the board;
    a skip without the AVR toolchain."""
    from hw.avr import cosim

    build = avr_build_or_skip("firmware", "harness")

    def attempt(k: int) -> tuple[int, str, tuple[LiveResult, Path, Path]]:
        log = tmp_path / f"board{k}.jsonl"
        board, finish = cosim.serve_in_thread(cosim.AvrBoardConfig(
            patient=patient, seed=seed,
            board=cosim.AvrBoardSettings(comm_timeout_ms=COMM_TIMEOUT_MS)), log, build)
        prepare(board._limb)
        folder = tmp_path / f"run{k}"
        try:
            result = run_live_trial(config, board.path, folder, None, LINK_LIMITS)
        finally:
            ending = finish()
        assert ending == "stopped", board.harness_stderr
        return _code(result), result.message, (result, folder, log)

    _, _, (result, folder, _) = rerun_after_heartbeat_faults(
        attempt, lambda run: events(run[2]))
    return result, folder
