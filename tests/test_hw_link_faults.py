"""A failing board, as ``fes run`` meets it over a real pty with ``fes board-emulator``:
what the trial reports must be what happened (issue 13 items 1, 5 and 6).

The host's wall-clock fault timeouts are at their 30 ms maximum and the board's own
timeout at 400 ms (``shared_machine``): a loaded CI machine must not add faults of its
own to the one under test."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import select
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.live import Process, _no_process_outlives_its_test, emulator, events, summary
from helpers.shared_machine import (
    board_was_starved,
    emulator_silence_explains,
    host_config,
    late_product,
)

from controller.ports import StimCommand
from controller.safety import SafetyLimits
from hw import protocol as p
from hw.board import LISTEN_STEP_S, Board, BoardRequirements, check_board
from hw.emulator import BoardEmulator, EmulatorConfig, LinkFaults, serve_in_thread
from hw.firmware import FirmwareSettings
from hw.runqueue import machine_delay_within

__all__ = ["_no_process_outlives_its_test"]  # the autouse fixture: no process outlives a test

REQUIRE = BoardRequirements(SafetyLimits(), 500.0)


def live_run(tmp_path, path: str, duration_s: float) -> Process:
    """``fes run`` against the board at ``path``, writing into ``tmp_path/live``."""
    return Process("run", "--port", path, "--config", host_config(tmp_path),
                   "--duration-s", str(duration_s), "--out", str(tmp_path / "live"),
                   "--no-status", "--link-timeout-ms", f"{LINK_TIMEOUT_MS:g}",
                   "--max-lag-ms", "400")


#: Runs of ``run_into_the_fault`` in all. A run that the machine ended before the fault
#: says nothing about the fault; on this 2-core machine with two busy loops beside the
#: other agents (load 3.0-4.7, 6 Dec 2026) about half the runs of a 2 s walk ended so
#: (a heartbeat fault of 30-32 ms: the loop's thread off the CPU), and three runs were
#: not enough in 5 of 20 tests. Only a run that went wrong is repeated.
FAULT_RUNS = 5
#: The host's link timeout in these runs (``--link-timeout-ms``), and the silence the
#: host may take for it: the driver counts its own pauses only up to ``LISTEN_STEP_S``
#: each (hw.board), so shorter delays in reading the port add to the board's silence.
LINK_TIMEOUT_MS = 100.0
LINK_SILENCE_MS = LINK_TIMEOUT_MS - LISTEN_STEP_S * 1e3


def stretched_stall(log: Path) -> str:
    """Text when the emulator's stall, shorter than ``LINK_SILENCE_MS`` in board time,
    lasted at least that long in wall time: the emulator's process was kept off the CPU
    in it (board time pauses then, ``paused`` events), so the host met a silence long
    enough to be a lost link, and rightly said so (exit 5, not the watchdog's 7:
    reproduced by stopping the emulator 80 ms as its 50 ms stall began, ``no frame from
    the board for 103 ms``). A real board is never descheduled. Empty otherwise."""
    stall = {e["event"]: e for e in events(log) if e["event"] in ("stall", "stall_end")}
    if len(stall) < 2:
        return ""
    board_ms = (stall["stall_end"]["board_t_s"] - stall["stall"]["board_t_s"]) * 1e3
    wall_ms = (stall["stall_end"]["monotonic_s"] - stall["stall"]["monotonic_s"]) * 1e3
    if board_ms < LINK_SILENCE_MS <= wall_ms:
        return (f"the emulator's {board_ms:.0f} ms stall lasted {wall_ms:.0f} ms: its "
                "process was off the CPU")
    return ""


def run_into_the_fault(
    tmp_path: Path, fault_at_s: float, *emulator_args: str
) -> tuple[Process, int, Path, Path]:
    """``fes run`` for 20 s against an emulator that injects a fault ``fault_at_s`` into
    the walk; returns the run, its exit code, the emulator's log and the trial folder.

    A run that a loaded machine ended before the fault (another job kept ``fes run``
    off the CPU beyond the watchdog's 30 ms: exit 7, rightly; or kept the emulator from
    sending, its ``paused`` gaps filling the silence of a link timeout: exit 5,
    ``emulator_silence_explains``), or one whose short stall the emulator's own process
    stretched into a lost link (``stretched_stall``), is run again, at most
    ``FAULT_RUNS`` times in all: these tests are about the fault, not the machine's
    punctuality. Any other ending is the test's to judge."""
    why = ""
    for attempt in range(FAULT_RUNS):
        folder = tmp_path / f"attempt{attempt}"
        folder.mkdir()
        emu, path, log = emulator(folder, "--comm-timeout-ms", "400", *emulator_args)
        run = live_run(folder, path, 20.0)
        code = run.wait(timeout_s=40.0)
        emu.stop()
        out = folder / "live"
        early = code in (5, 7) and summary(out)["duration_s"] < fault_at_s - 0.01
        why = stretched_stall(log)
        if early and code == 7:
            why = "ended before the fault"
        elif early:  # the link timeout, before the fault: only on the machine's evidence
            why = emulator_silence_explains(out, events(log), LINK_TIMEOUT_MS / 1e3)
        if not why:
            return run, code, log, out
        print(f"run {attempt + 1} of {FAULT_RUNS}: {why}; {run.stderr()}")  # if it fails
    raise AssertionError(f"the machine spoilt all {FAULT_RUNS} runs ({why}):\n{run.stderr()}")


@pytest.mark.parametrize(
    ("board_s", "wall_s", "stretched"),
    [(0.05, 0.121, True), (0.05, 0.079, False), (30.0, 30.2, False)],
    ids=["50ms-stall-121ms-on-the-wall", "50ms-stall-79ms-on-the-wall", "30s-stall"],
)
def test_only_a_short_stall_the_emulator_stretched_is_run_again(tmp_path, board_s, wall_s,
                                                                stretched):
    """The 121 ms is what the emulator logged when stopped (SIGSTOP) 80 ms as its 50 ms
    stall began; 79 ms stays under ``LINK_SILENCE_MS``: such a run is judged."""
    log = tmp_path / "board.jsonl"
    log.write_text("\n".join(json.dumps(e) for e in (
        {"event": "stall", "monotonic_s": 100.0, "board_t_s": 2.0},
        {"event": "paused", "monotonic_s": 100.0 + wall_s, "board_t_s": 2.0},
        {"event": "stall_end", "monotonic_s": 100.0 + wall_s, "board_t_s": 2.0 + board_s},
    )) + "\n")
    assert bool(stretched_stall(log)) is stretched


def test_stop_all_after_an_unplug_is_never_confirmed_by_an_old_ack(tmp_path):
    """The issue's repro (unplugged at 9 s rather than 3: this board's longer timeout
    means fewer keep-alive frames, and the first strides have no train while the gyro's
    sign is checked; the host had sent 343 frames by 8 s and 431 by 9 s, 789 by the 14 s
    this test waited until 7 Dec 2026): after 256 frames every sequence number
    had been acknowledged once, and the STOP_ALL sent after the unplug matched the ACK
    of the frame that had its number 256 frames earlier: ``outputs_off_confirmed:
    true`` from a board that never received it."""
    run, code, log, out = run_into_the_fault(tmp_path, 9.0, "--unplug-at-s", "9")
    assert code == 5, run.stderr()  # link lost
    board = summary(out)["board"]
    assert board["link"]["frames_out"] > 256  # every sequence number in use before
    unplug = next(e for e in events(log) if e["event"] == "unplug")
    assert not [e for e in events(log) if e["event"] == "stop_all"
                and e["monotonic_s"] > unplug["monotonic_s"]]  # the board got none
    assert board["outputs_off_confirmed"] is False
    assert "outputs off not confirmed" in board["ending"]
    assert "outputs off not confirmed" in run.stderr()


def fault_report_delay_s(run: Process, log, event: str) -> float:
    """Seconds from the emulator's ``event`` to ``fes run`` reporting its link fault."""
    began = next(e for e in events(log) if e["event"] == event)["monotonic_s"]
    return next(t for t, line in run.lines if "link fault" in line) - began


@pytest.mark.parametrize(
    ("fault", "event", "message"),
    [
        (("--samples-stop-at-s", "2", "--status-period-ms", "20"), "samples_stop",
         "no new sample from the board for 1"),
        (("--index-restart-at-s", "2"), "index_restart", "did the board restart?"),
    ],
    ids=["samples-stop-status-every-20ms", "index-restart"],
)
def test_a_board_that_stops_streaming_samples_ends_the_run_as_link_lost(
    tmp_path, fault, event, message
):
    """Item 5: a board that keeps sending valid frames (STATUS every 20 ms, ACKs) but no
    new sample hung ``fes run`` for ever (or, after an index restart, for as long as it
    had streamed): it must end within the link timeout (100 ms) with exit 5."""
    run, code, log, out = run_into_the_fault(tmp_path, 2.0, *fault)
    assert code == 5, run.stderr()
    assert message in run.stderr()
    assert fault_report_delay_s(run, log, event) < 0.1 + 0.1
    result = summary(out)
    assert result["stopped_by"] == "link_lost"
    assert result["duration_s"] == pytest.approx(2.0, abs=0.2)


@pytest.mark.parametrize(
    ("fault", "event"),
    [(("--stall-at-s", "2", "--stall-s", "30"), "stall"), (("--garbage-at-s", "2"), None)],
    ids=["stalled", "sending-garbage"],
)
def test_a_silent_board_exits_5_link_lost_not_7_watchdog(tmp_path, fault, event):
    """Item 6: the watchdog's heartbeat rule (the loop, waiting for the next sample,
    sends no command) latches 20-30 ms into the silence, the driver's link timeout at
    100 ms; the report must name the first cause, the link, not the last symptom."""
    run, code, log, out = run_into_the_fault(tmp_path, 2.0, *fault)
    assert code == 5, run.stderr()
    assert "stopped by link_lost: link lost: no frame from the board" in run.stderr()
    result = summary(out)
    assert result["stopped_by"] == "link_lost"
    assert result["duration_s"] == pytest.approx(2.0, abs=0.2)
    if event is not None:
        assert fault_report_delay_s(run, log, event) < 0.1 + 0.1


def test_a_host_that_loses_the_boards_bytes_is_not_taken_for_a_starved_machine(
    tmp_path, monkeypatch
):
    """``fes run`` whose reader loses every byte it reads for 150 ms, 2 s into the run
    (``late_product("board")``): a silence of the host's own making ends the run by the
    link timeout (exit 5) while the emulator sent on time, so its log has no gap that
    fills the silence, and the run is judged, not run again
    (``emulator_silence_explains``)."""
    for name, value in late_product("board", 0.15).items():
        monkeypatch.setenv(name, value)
    run, code, log, out = run_into_the_fault(tmp_path, 2.0)
    assert code == 5, run.stderr()
    assert "link lost: no frame from the board" in run.stderr()
    assert emulator_silence_explains(out, events(log), LINK_TIMEOUT_MS / 1e3) == ""


def test_an_emulator_held_through_a_link_timeout_is_the_machines_doing(tmp_path):
    """The other side of the rule: ``fes board-emulator`` stopped (SIGSTOP, as a loaded
    machine keeps it off the CPU) for 250 ms mid-walk; ``fes run`` rightly declares the
    link lost (exit 5), and the emulator's ``paused`` gap fills the silence: such a run
    is the machine's, run again (``emulator_silence_explains``)."""
    for attempt in range(FAULT_RUNS):
        folder = tmp_path / f"attempt{attempt}"
        folder.mkdir()
        emu, path, log = emulator(folder, "--comm-timeout-ms", "400")
        run = live_run(folder, path, 6.0)
        deadline = time.monotonic() + 30.0
        while not (log.exists() and any(e["event"] == "stream_start" for e in events(log))):
            assert time.monotonic() < deadline and run.proc.poll() is None, run.stderr()
            time.sleep(0.05)
        time.sleep(1.0)
        os.kill(emu.proc.pid, signal.SIGSTOP)
        time.sleep(0.25)
        os.kill(emu.proc.pid, signal.SIGCONT)
        code = run.wait(timeout_s=40.0)
        emu.stop()
        if code != 7:  # 7: the machine ended it before the hold (the watchdog's 30 ms)
            break
        print(f"run {attempt + 1} of {FAULT_RUNS}: {run.stderr()}")
    assert code == 5, run.stderr()
    assert "link lost: no frame from the board" in run.stderr()
    why = emulator_silence_explains(folder / "live", events(log), LINK_TIMEOUT_MS / 1e3)
    assert "the link's silence" in why and "delayed by the machine" in why, why


def test_a_board_silent_for_a_moment_is_named_with_the_watchdogs_figure(tmp_path):
    """A board silent for 50 ms, longer than the watchdog's wall-clock timeouts (30 ms
    here) and shorter than the link timeout (100 ms), ends the run by the watchdog, and
    the report shows the silence against its limit: the figure that tells a silent board
    (just over the limit) from a host that was off the CPU (far over it; docs/protocol.md,
    "On a busy host"). The loop waits for the board's samples, so the rule that trips is
    the loop's heartbeat or the board's acknowledgement, whichever age crossed first."""
    run, code, _, out = run_into_the_fault(tmp_path, 2.0, "--stall-at-s", "2", "--stall-s",
                                           "0.05")
    assert code == 7, run.stderr()
    assert re.search(
        r"stopped by watchdog_fault: safety watchdog fault \((heartbeat_timeout_ms: no "
        r"command from the loop|ack_timeout_ms: no acknowledgement from the stimulator), "
        r"\d+\.\d ms > 30 ms \(wall clock\)", run.stderr()), run.stderr()
    assert summary(out)["duration_s"] == pytest.approx(2.0, abs=0.2)


def connected_board(
    faults: LinkFaults, link_timeout_s: float = 0.15
) -> tuple[Board, BoardEmulator, Callable[[], str]]:
    """A driver connected to an emulator on a thread, 100 samples read, then ``faults``.
    The host's link timeout (150 ms unless given) is inside the board's own (500 ms)."""
    emu, finish = serve_in_thread(EmulatorConfig(board=FirmwareSettings(comm_timeout_ms=500)))
    board = Board(emu.path, BoardRequirements(SafetyLimits(), 500.0),
                  link_timeout_s=link_timeout_s, max_backlog_s=1.0)
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
    """Every frame to the board is lost for the first 120 ms of the close (the STOP_ALL
    and its first two resends), then the link heals: a later resend is acknowledged.
    (Random losses, drop=0.6, lost all three resends of a 150 ms link timeout about one
    run in five.) The link timeout, 450 ms, leaves the healing thread 330 ms of slack."""
    board, emu, finish = connected_board(LinkFaults(drop=1.0, direction="rx"),
                                         link_timeout_s=0.45)
    heal = threading.Timer(0.12, lambda: setattr(emu, "config", emu.config.model_copy(
        update={"faults": LinkFaults()})))
    heal.start()
    board.close()
    heal.join()
    finish()
    assert board.stop_confirmed
    assert board.stop_attempts >= 3
    assert emu.firmware.channels_on() == []


# ---- what a board announces, and what it may send ------------------------------------


def info(**changes) -> p.Info:
    """The INFO of the reference firmware, with ``changes``."""
    base = p.Info(hello_seq=1, protocol_version=2, firmware_major=1, firmware_minor=1,
                  firmware_patch=0, board_id=1, channels=2, sample_rate_hz=500,
                  max_amplitude_10ua=6000, max_pulse_width_us=500, max_frequency_chz=6000,
                  max_on_time_ms=3000, comm_timeout_ms=100, gyro_full_scale_dps=2000,
                  accel_full_scale_g=16, sagittal_axis=2, capabilities=3, last_fault=0,
                  max_interphase_gap_us=500, max_anodic_ratio_x100=1000)
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"comm_timeout_ms": 0}, "board communication timeout 0 ms: it would never switch"),
        ({"gyro_full_scale_dps": 0}, "gyroscope full scale 0 deg/s"),
        ({"sagittal_axis": 3}, "sagittal axis 3 is not x, y or z"),
        ({"sagittal_axis": 0x83}, "sagittal axis 3 is not x, y or z"),
        ({"protocol_version": 4, "firmware_minor": 2, "max_charge_cuc": 0,
          "max_duty_permille": 800}, "board max charge per phase 0 uC: it would refuse"),
        ({"protocol_version": 4, "firmware_minor": 2, "max_charge_cuc": 3000,
          "max_duty_permille": 0}, "board max duty cycle 0: it would fault"),
    ],
)
def test_a_board_announcing_what_cannot_work_is_refused_by_name(changes, expected):
    assert check_board(info(), REQUIRE) == []
    problems = check_board(info(**changes), REQUIRE)
    assert any(expected in problem for problem in problems), problems


def test_the_emulator_keeps_a_bounded_receive_buffer_on_bytes_without_a_delimiter():
    """Item 10: bytes that never end a frame grew the emulator's buffer without bound."""
    emu, finish = serve_in_thread(EmulatorConfig())
    fd = os.open(emu.path, os.O_RDWR | os.O_NOCTTY)
    try:
        for _ in range(200):  # 2 MB, no zero byte
            os.write(fd, b"\x01" * 10_000)
            assert len(emu._rx_partial) <= p.MAX_ENCODED_BYTES + 1
        os.write(fd, p.DELIMITER + p.Hello().encode(7))  # the line then works again
        answer = b""
        deadline = time.monotonic() + 5.0
        while p.DELIMITER not in answer and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                answer += os.read(fd, 4096)
        frames = p.FrameDecoder().feed(answer)
        assert any(isinstance(p.parse(f), p.Info) for f in frames)
        assert emu.firmware.rx_bad >= 1
    finally:
        os.close(fd)
        finish()


def test_a_failure_after_hello_still_stops_the_outputs_and_the_stream(tmp_path, monkeypatch):
    """Whatever fails once the board streams (here the loop, as a full disk would fail
    it), fes run sends STOP_ALL and STOP_STREAM before the error reaches the user."""
    import controller.trial.live as live
    from controller.config import load_config

    def failing_loop(parts, n_samples):
        parts.clock.start()  # the loop is ready: the board is connected and streams
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(live, "run_parts", failing_loop)
    log = io.StringIO()
    emu, finish = serve_in_thread(EmulatorConfig(board=FirmwareSettings(comm_timeout_ms=400)),
                                  log)
    config = load_config(None, {"loop": {"duration_s": 2.0}})
    with pytest.raises(OSError, match="No space left"):
        live.run_live_trial(config, emu.path, tmp_path / "live", None,
                            live.LinkLimits(0.3, 0.4))
    finish()
    board_events = [json.loads(line)["event"] for line in log.getvalue().splitlines()]
    started = board_events.index("stream_start")
    assert "stop_all" in board_events[started:] and "stream_stop" in board_events[started:]


def test_a_channel_named_twice_in_one_apply_gets_its_last_setting():
    """A STIM may name a channel once (the board refuses the frame otherwise); the
    driver sends the last of the settings it was given for it. (It sent the first and
    the last in turns: the channel flickered on and off at every sample.)"""
    log = io.StringIO()
    emu, finish = serve_in_thread(EmulatorConfig(board=FirmwareSettings(comm_timeout_ms=500)),
                                  log)
    board = Board(emu.path, REQUIRE, link_timeout_s=0.15, max_backlog_s=1.0)
    board.connect()
    for _ in range(50):
        board.apply(board.read().t_s, [StimCommand(0, True, 35.0, 300.0, 40.0),
                                       StimCommand.off(0), StimCommand(1, True, 20.0, 200.0, 40.0)])
    board.close()
    finish()
    assert board.fault is None and emu.firmware.refused == 0
    switched = [json.loads(line) for line in log.getvalue().splitlines()]
    assert not [e for e in switched if e["event"] == "outputs" and 0 in e["on"]]
    assert [e for e in switched if e["event"] == "outputs" and e["on"] == [1]]


def test_an_emulator_held_off_the_cpu_logs_how_late_it_ran(monkeypatch):
    """A loaded machine can keep the emulator from running; its board time then pauses
    (it does not jump over its firmware's timers), and its log says how late it ran: a
    host's watchdog that saw the stream fall silent meanwhile was not at fault, which the
    live tests read (``helpers.shared_machine.board_was_starved``). A step of its normal
    size logs nothing."""
    log = io.StringIO()
    wall = [time.monotonic()]  # the emulator's clock from here: before its first reading
    emu = BoardEmulator(EmulatorConfig(speed=2.0), log)
    monkeypatch.setattr("hw.emulator.time.monotonic", lambda: wall[0])
    try:
        start = emu.board_time_s()
        wall[0] += 0.001  # on time: 2 ms of board time
        assert emu.board_time_s() == pytest.approx(start + 0.002)
        wall[0] += 0.050  # 50 ms off the CPU: board time advances 10 ms only
        assert emu.board_time_s() == pytest.approx(start + 0.002 + 0.010)
    finally:
        emu.close()
    paused = [e for e in map(json.loads, log.getvalue().splitlines()) if e["event"] == "paused"]
    assert [(e["late_ms"], e["paused_ms"]) for e in paused] == [
        pytest.approx((50.0, 45.0), abs=1e-6)]


def test_a_select_the_kernel_held_is_a_pause_of_the_emulators_clock(monkeypatch):
    """A ``select`` the kernel's tty worker kept 300 ms past its timeout (docs/hardware.md,
    "Bytes late on a loaded machine") lengthens the emulator's clock step as a wait for a
    CPU does, so its ``paused`` event shows it (no ``held`` event is needed here, unlike
    the P24 emulator's run-queue count): the reruns' ``board_was_starved`` sees it."""
    log = io.StringIO()
    wall = [time.monotonic()]
    emu = BoardEmulator(EmulatorConfig(), log)
    monkeypatch.setattr("hw.emulator.time.monotonic", lambda: wall[0])

    def held_select(readable, writable, errors, timeout):
        wall[0] += timeout + 0.3
        return [], [], []

    monkeypatch.setattr("hw.emulator.select.select", held_select)
    try:
        emu.board_time_s()
        emu._serve_once()
    finally:
        emu.close()
    events = list(map(json.loads, log.getvalue().splitlines()))
    [paused] = [e for e in events if e["event"] == "paused" and e["late_ms"] >= 300.0]
    assert board_was_starved([{"event": "stream_start"}, *events])  # were it streaming
    # the gap's two readings: what a link timeout's rerun counts (machine_delay_within)
    assert paused["monotonic_s"] - paused["since_s"] == pytest.approx(paused["late_ms"] / 1e3)
    assert machine_delay_within(events, paused["since_s"], paused["monotonic_s"]) == (
        pytest.approx(paused["paused_ms"] / 1e3))
