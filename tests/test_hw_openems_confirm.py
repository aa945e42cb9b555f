"""openEMSstim's connect and close confirm every channel off: they return (connect) or
say the stop was confirmed (close) only once the firmware has echoed an all-off line
intact after everything else the host sent, and send that line again when its echo
is garbled or missing (a normal event on a serial link; the line is idempotent).

Byte-exact on a scripted link (``helpers.scripted_link``: the firmware's side of the
exchange as ``aa7f198`` prints it), then against both firmware versions on a pty with
the fault injected between the firmware and the driver (``helpers.openems_links``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.live import Process, _no_process_outlives_its_test
from helpers.openems_links import EchoFaultLink, EchoFaultPty
from helpers.scripted_link import ScriptedLink, Step
from helpers.shared_machine import host_config, rerun_openems_runs_spoiled_by_the_machine

from controller.bench.openems import harness_settings
from controller.bench.openems_harness import VERSIONS, FirmwareProcess, LoggedLink, trains
from controller.bench.openems_walk import settings_file
from controller.cli import main
from controller.ports import StimCommand
from controller.trial import live
from controller.trial.backends import SplitBackend
from hw.board import BoardError
from hw.openems import OpenEmsStim
from hw.openems.driver import ECHO_TIMEOUT_S, OFF_CONFIRM_S, OFF_RESENDS
from hw.openems.firmware import ECHO_PREFIX, FIRMWARES, Command

__all__ = ["_no_process_outlives_its_test"]  # the autouse fixture: no process outlives a test

SETTINGS = harness_settings()
FIRMWARE = FIRMWARES["aa7f198"]
ON = StimCommand(0, True, 35.0, SETTINGS.pulse_width_us, SETTINGS.frequency_hz)
OFF = b"G\n"


def printed(*lines: str) -> bytes:
    """What the firmware prints: each line ended by ``println``'s CR LF."""
    return b"".join(line.encode("ascii") + b"\r\n" for line in lines)


def echo_of(text: str) -> bytes:
    """``aa7f198``'s prints for a plain line it read (the echo first)."""
    return printed(ECHO_PREFIX + text, "\tCommand NON HEX:", text)


#: Connecting: the probe, the reply by which the driver recognises ``aa7f198``.
PROBE: Step = (b"?\n", echo_of("?") + printed("Unknown command: ?"))
#: The all-off line echoed intact.
OFF_ECHOED: Step = (OFF, echo_of("G"))
#: The all-off line the firmware read as ``F`` (a bit flipped on the way in): its echo
#: and its complaint about the line.
OFF_GARBLED: Step = (OFF, echo_of("F") + printed("Unknown command: F"))
#: The all-off line, no echo (lost on the way in or out).
OFF_SILENT: Step = (OFF, b"")


def start_line() -> bytes:
    """The line that starts channel 0 at ``ON``: its onset intensity, with its on-time."""
    stim = OpenEmsStim(ScriptedLink([]), SETTINGS)
    line = FIRMWARE.command(Command(0, intensity=stim.intensity(ON),
                                    on_time_ms=SETTINGS.hold_ms))
    return line.text.encode("ascii") + b"\n"


def connected(script: list[Step]) -> tuple[OpenEmsStim, ScriptedLink]:
    link = ScriptedLink(script)
    stim = OpenEmsStim(link, SETTINGS)
    stim.connect()
    return stim, link


# --- byte-exact, on a scripted link -------------------------------------------------------


def test_connect_returns_only_once_the_all_off_line_is_echoed():
    """The firmware echoes the all-off line 0.2 s after it was written (within the
    echo timeout): connect returns after that echo, not at once."""
    link = ScriptedLink([PROBE, OFF_SILENT, OFF_ECHOED])
    stim = OpenEmsStim(link, SETTINGS)
    echoed: list[float] = []

    def late_echo() -> None:
        while OFF not in link.written:
            time.sleep(0.001)
        time.sleep(0.2)
        echoed.append(time.monotonic())
        link.device_sends(echo_of("G"))

    thread = threading.Thread(target=late_echo)
    thread.start()
    try:
        stim.connect()
        returned = time.monotonic()
    finally:
        thread.join()
        stim.close()
    assert echoed and returned >= echoed[0], "connect returned before the echo"
    assert stim.fault is None, stim.fault
    assert stim.link_counters()["all_off_resends_at_connect"] == 0


def test_a_garbled_all_off_echo_at_connect_is_resent_once():
    stim, link = connected([PROBE, OFF_GARBLED, OFF_ECHOED, OFF_ECHOED])
    stim.close()
    link.assert_done()
    assert link.written == [b"?\n", OFF, OFF, OFF]
    counters = stim.link_counters()
    assert stim.fault is None, stim.fault
    assert counters["all_off_resends_at_connect"] == 1
    assert counters["all_off_resends_at_close"] == 0
    assert counters["garbled_echoes"] == 1 and stim.stop_confirmed


@pytest.mark.parametrize("fault", [OFF_GARBLED, OFF_SILENT], ids=["garbled", "missing"])
def test_one_bad_all_off_echo_at_close_still_ends_confirmed_after_one_resend(fault):
    """It ended with stop_confirmed False and the user told the off was not confirmed."""
    stim, link = connected([PROBE, OFF_ECHOED, fault, OFF_ECHOED])
    stim.close()
    link.assert_done()
    assert stim.stop_confirmed and stim.fault is None, stim.fault
    assert stim.link_counters()["all_off_resends_at_close"] == 1


def test_a_board_that_never_echoes_the_all_off_line_is_named_in_bounded_time():
    link = ScriptedLink([PROBE] + [OFF_SILENT] * (OFF_RESENDS + 1))
    stim = OpenEmsStim(link, SETTINGS)
    start = time.monotonic()
    with pytest.raises(BoardError) as err:
        stim.connect()
    took = time.monotonic() - start
    link.assert_done()  # the all-off line sent OFF_RESENDS + 1 times, nothing more
    assert err.value.kind == "no_board"
    assert "did not confirm every channel off" in str(err.value)
    assert f"the all-off line ('G') was not echoed intact ({OFF_RESENDS + 1} sent" in str(
        err.value)
    assert took < OFF_CONFIRM_S + 0.5 and took > (OFF_RESENDS + 1) * ECHO_TIMEOUT_S


def test_a_close_whose_every_all_off_echo_is_garbled_is_not_confirmed():
    stim, link = connected([PROBE, OFF_ECHOED] + [OFF_GARBLED] * (OFF_RESENDS + 1))
    stim.close()
    link.assert_done()
    assert not stim.stop_confirmed
    assert stim.link_counters()["all_off_resends_at_close"] == OFF_RESENDS


def a_link_fault_and_still_confirmed_off(stim: OpenEmsStim) -> None:
    """A garbled routine echo stays the trial's link fault; close's all-off line, echoed
    intact after it at the first try, confirms every channel off."""
    assert stim.fault is not None and stim.fault.kind == "link", stim.fault
    assert "where the host sent" in stim.fault.message
    assert "bytes were lost or changed" in stim.fault.message
    assert stim.stop_confirmed
    assert stim.link_counters()["all_off_resends_at_close"] == 0


def test_a_garbled_routine_echo_during_the_trial_is_still_a_fault():
    """A start echoed garbled: the driver cannot know what the board did with it, so
    the trial ends on a link fault; the close's all-off line, echoed intact after it,
    still confirms every channel off."""
    start = start_line()
    garbled = start.replace(b"T", b"X").decode("ascii").strip()
    stim, link = connected([PROBE, OFF_ECHOED, (start, echo_of(garbled)), OFF_ECHOED])
    stim.apply(0.0, [ON])
    assert link.wait_done(1.0) or stim.fault is not None
    deadline = time.monotonic() + 1.0
    while stim.fault is None and time.monotonic() < deadline:
        time.sleep(0.005)
    stim.close()
    link.assert_done()
    a_link_fault_and_still_confirmed_off(stim)


def test_a_garbled_echo_of_the_trials_own_stop_is_its_fault_not_a_close_resend():
    """A stop_all during the trial whose echo comes garbled while close() waits for its
    own all-off line: the trial's link fault (the close's line is the one resent on a
    bad echo, not the trial's), and the close's line, echoed intact, confirms."""
    start = start_line()
    stim, link = connected([PROBE, OFF_ECHOED, (start, echo_of(start.decode().strip())),
                            OFF_SILENT, OFF_SILENT])
    stim.apply(0.0, [ON])
    deadline = time.monotonic() + 1.0
    while stim.link_counters()["echoes"] < 2 and time.monotonic() < deadline:
        time.sleep(0.002)  # the connect's all-off line and the start echoed
    stim.stop_all()

    def late_echoes() -> None:
        while len(link.written) < 5:  # the close's all-off line written
            time.sleep(0.001)
        link.device_sends(echo_of("F") + echo_of("G"))

    thread = threading.Thread(target=late_echoes)
    thread.start()
    stim.close()
    thread.join()
    link.assert_done()
    assert stim.fault is not None and "where the host sent 'G'" in stim.fault.message
    assert stim.stop_confirmed
    assert stim.link_counters()["all_off_resends_at_close"] == 0


# --- on the firmware, a fault injected on the way back ------------------------------------


@dataclass
class Run:
    """One run against a firmware version: the driver (closed), when its calls
    returned (``times``), the firmware's logs."""

    version: str
    stim: OpenEmsStim
    times: dict[str, float]
    firmware: FirmwareProcess
    error: BoardError | None = None

    def stop_lines_read(self) -> list[float]:
        """When the firmware read each all-off line (its serial log)."""
        text = FIRMWARES[self.version].stop_text
        return [r.t_s for r in self.firmware.serial()
                if r.kind == "rx_line" and r.text == text]


def on_firmware(programs: dict[str, Path], version: str, folder: Path,
                scenario: Callable[[OpenEmsStim, EchoFaultLink, dict[str, float]], None]
                ) -> Run:
    """``scenario(stim, link, times)`` against the firmware ``version``, through a link
    that damages echoes as the scenario asks; rerun when the machine spoiled the run
    (``rerun_openems_runs_spoiled_by_the_machine``: a line the firmware's process read
    in two pieces, bytes held 300 ms or more)."""
    def attempt(k: int) -> Run:
        firmware = FirmwareProcess(programs[version], folder / str(k))
        link = EchoFaultLink(LoggedLink(firmware))
        stim = OpenEmsStim(link, SETTINGS)
        times: dict[str, float] = {}
        error = None
        try:
            scenario(stim, link, times)
        except BoardError as err:
            error = err
        finally:
            stim.close()
            link.close()
            firmware.stop()
        return Run(version, stim, times, firmware, error)

    return rerun_openems_runs_spoiled_by_the_machine(attempt, lambda k: folder / str(k))


def hold_channel_0(stim: OpenEmsStim, seconds: float = 0.3) -> float:
    """Channel 0 on at ``ON`` for ``seconds``, a command every 2 ms; when it began."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        stim.apply(time.monotonic() - start, [ON])
        time.sleep(0.002)
    return start


@pytest.mark.parametrize("version", VERSIONS)
def test_a_garbled_all_off_echo_at_connect_on_the_firmware(openems_programs, tmp_path,
                                                            version):
    """The firmware's first echo of the all-off line reaches the driver with a byte
    changed: connect sends it again and returns once that one's echo came; the trial
    then runs without a fault (it used to fail on the garbled echo, exit 5)."""
    def scenario(stim: OpenEmsStim, link: EchoFaultLink, times: dict[str, float]) -> None:
        link.garble(FIRMWARES[version].stop_text, 1)
        stim.connect()
        times["connected"] = time.monotonic()
        times["start"] = hold_channel_0(stim)
        stim.stop_all()
        time.sleep(0.2)

    run = on_firmware(openems_programs, version, tmp_path, scenario)
    read = run.stop_lines_read()
    assert len(read) >= 2 and read[1] < run.times["connected"], (read, run.times)
    assert run.stim.fault is None, run.stim.fault
    assert run.stim.link_counters()["all_off_resends_at_connect"] == 1
    assert run.stim.stop_confirmed
    assert [t for t in trains(run.firmware.timeline(), 0) if t.on_s > run.times["start"]]


@pytest.mark.parametrize("fault", ["garble", "drop"])
@pytest.mark.parametrize("version", VERSIONS)
def test_one_bad_all_off_echo_at_close_on_the_firmware(openems_programs, tmp_path, version,
                                                        fault):
    """Channel 0 on; close()'s all-off echo garbled or dropped once on its way back:
    sent again, stop confirmed, and the channel did go to no output on the first all-off
    line (the firmware read it intact)."""
    def scenario(stim: OpenEmsStim, link: EchoFaultLink, times: dict[str, float]) -> None:
        stim.connect()
        times["start"] = hold_channel_0(stim)
        getattr(link, fault)(FIRMWARES[version].stop_text, 1)
        times["closed"] = time.monotonic()
        stim.close()
        times["took"] = time.monotonic() - times["closed"]

    run = on_firmware(openems_programs, version, tmp_path, scenario)
    closed = run.times["closed"]
    assert run.stim.stop_confirmed and run.stim.fault is None, run.stim.fault
    assert run.stim.link_counters()["all_off_resends_at_close"] == 1
    assert len([t for t in run.stop_lines_read() if t > closed]) == 2
    (train,) = [t for t in trains(run.firmware.timeline(), 0) if t.on_s > run.times["start"]]
    assert train.zero_s is not None and closed < train.zero_s < closed + 0.3
    if fault == "drop":  # the resend waited for the echo timeout
        assert ECHO_TIMEOUT_S < run.times["took"] < OFF_CONFIRM_S


@pytest.mark.parametrize("version", VERSIONS)
def test_a_board_whose_all_off_echoes_never_come_is_refused_in_bounded_time(
        openems_programs, tmp_path, version):
    def scenario(stim: OpenEmsStim, link: EchoFaultLink, times: dict[str, float]) -> None:
        link.drop(FIRMWARES[version].stop_text, OFF_RESENDS + 10)
        times["start"] = time.monotonic()
        try:
            stim.connect()
        finally:
            times["took"] = time.monotonic() - times["start"]

    run = on_firmware(openems_programs, version, tmp_path, scenario)
    assert run.error is not None and run.error.kind == "no_board"
    assert "did not confirm every channel off" in str(run.error)
    assert run.times["took"] < OFF_CONFIRM_S + 1.0  # the probe's wait for quiet, then this
    assert len(run.stop_lines_read()) == OFF_RESENDS + 1


@pytest.mark.parametrize("version", VERSIONS)
def test_a_garbled_routine_echo_on_the_firmware_is_a_fault(openems_programs, tmp_path,
                                                            version):
    """The start's echo garbled on the way back: a link fault (the trial would end,
    exit 5); close still confirms every channel off with its own all-off line."""
    def scenario(stim: OpenEmsStim, link: EchoFaultLink, times: dict[str, float]) -> None:
        stim.connect()
        link.garble(FIRMWARES[version].command(Command(0, intensity=1)).text[:3], 1)
        hold_channel_0(stim)

    run = on_firmware(openems_programs, version, tmp_path, scenario)
    a_link_fault_and_still_confirmed_off(run.stim)


def test_fes_runs_ending_says_the_all_off_line_was_sent_again():
    """The line ``fes run`` ends with (and ``summary.json``'s ``board.ending``) names
    the resend; the counters are in ``board.link``."""
    stim, link = connected([PROBE, OFF_ECHOED, OFF_GARBLED, OFF_ECHOED])
    stim.close()
    link.assert_done()
    board = SplitBackend(SimpleNamespace(), stim)  # type: ignore[arg-type]
    outcome = SimpleNamespace(stopped_by="duration")
    watchdog = SimpleNamespace(fault=None, fault_monotonic_s=None)
    stopped_by, message = live._why_stopped(outcome, board, watchdog)  # type: ignore[arg-type]
    assert stopped_by == "duration"
    assert message == ("outputs off (the board acknowledged the all-off line; sent 2 "
                       "times, 1 echo garbled or missing before it)")
    assert board.stats.as_dict()["all_off_resends_at_close"] == 1


# --- fes run, through a pty that damages the firmware's echoes ---------------------------


def fes_run_through(programs: dict[str, Path], version: str, tmp_path: Path, fault: str,
                    count: int) -> tuple[int, str, Path]:
    """``fes run`` replaying a 4 s walk of ``fes sim`` into firmware ``version`` (each
    names its all-off line differently: ``G``, ``Connection End``) through an
    ``EchoFaultPty`` whose first ``count`` all-off echoes are damaged (``fault``: garble
    or drop); its exit code, stderr and output folder."""
    assert main(["sim", "--seed", "3", "--duration-s", "4", "--out",
                 str(tmp_path / "walk")]) == 0
    firmware = FirmwareProcess(programs[version], tmp_path / "firmware")
    pty = EchoFaultPty(firmware.path)
    getattr(pty.link, fault)(FIRMWARES[version].stop_text, count)
    out = tmp_path / "out"
    # The unit's lowest output must fit the rise rule at 500 samples/s
    # (tests/test_onset_step.py): 2 mA x 300 us.
    settings = settings_file(harness_settings(output_at_lowest_ma=2.0), tmp_path)
    try:
        run = Process("run", "--no-status", "--sensors",
                      f"replay:{tmp_path / 'walk' / 'samples.csv'}",
                      "--stimulator", f"openemsstim:{pty.path}",
                      "--stimulator-settings", str(settings),
                      "--config", host_config(tmp_path), "--out", str(out))
        code = run.wait(120.0)
    finally:
        pty.close()
        firmware.stop()
    return code, run.stderr(), out


@pytest.mark.parametrize("version", VERSIONS)
def test_fes_run_after_a_garbled_all_off_echo_at_connect_runs_its_trial(openems_programs,
                                                                        tmp_path, version):
    code, err, out = fes_run_through(openems_programs, version, tmp_path, "garble", 1)
    board = json.loads((out / "summary.json").read_text())["board"]
    assert code == 0, err
    assert ("fes run: every channel off confirmed at connect, the all-off line sent 2 "
            "times, 1 echo garbled or missing before it") in err
    assert board["fault"] is None and board["outputs_off_confirmed"] is True
    assert board["link"]["all_off_resends_at_connect"] == 1
    assert board["link"]["all_off_resends_at_close"] == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_fes_run_refuses_a_board_that_never_confirms_every_channel_off(openems_programs,
                                                                       tmp_path, version):
    """Exit 9, as for a board that does not answer, naming the all-off line."""
    code, err, _ = fes_run_through(openems_programs, version, tmp_path, "drop", 100)
    assert code == 9, err
    assert ("the board answered but did not confirm every channel off: the all-off line "
            f"('{FIRMWARES[version].stop_text}') was not echoed intact ({OFF_RESENDS + 1} "
            "sent; the last: no echo") in err
    assert "Traceback" not in err
