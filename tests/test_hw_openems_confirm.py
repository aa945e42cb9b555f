"""openEMSstim's connect and close confirm every channel off: they return (connect) or
say the stop was confirmed (close) only once the firmware has echoed an all-off line
intact after everything else the host sent, and send that line again when its echo
is garbled or missing (a normal event on a serial link; the line is idempotent).

Byte-exact on a scripted link (``helpers.scripted_link``: the firmware's side of the
exchange as ``aa7f198`` prints it), then against both firmware versions on a pty with
the fault injected between the firmware and the driver (``helpers.openems_links``).
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from helpers.openems_links import EchoFaultLink
from helpers.scripted_link import ScriptedLink, Step

from controller.bench.openems import harness_settings
from controller.bench.openems_harness import VERSIONS, FirmwareProcess, trains
from controller.ports import StimCommand
from controller.trial import live
from controller.trial.backends import SplitBackend
from hw.board import BoardError
from hw.openems import OpenEmsStim
from hw.openems.driver import ECHO_TIMEOUT_S, OFF_CONFIRM_S, OFF_RESENDS
from hw.openems.firmware import ECHO_PREFIX, FIRMWARES, Command
from hw.transport import Transport

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


def firmware_and_link(program, tmp_path) -> tuple[FirmwareProcess, EchoFaultLink]:
    firmware = FirmwareProcess(program, tmp_path)
    return firmware, EchoFaultLink(Transport(firmware.path, baudrate=19200))


def stop_lines_read(firmware: FirmwareProcess, version: str) -> list[float]:
    """When the firmware read each all-off line (its serial log)."""
    text = FIRMWARES[version].stop_text
    return [r.t_s for r in firmware.serial() if r.kind == "rx_line" and r.text == text]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_garbled_all_off_echo_at_connect_on_the_firmware(openems_programs, tmp_path,
                                                            version):
    """The firmware's first echo of the all-off line reaches the driver with a byte
    changed: connect sends it again and returns once that one's echo came; the trial
    then runs without a fault (it used to fail on the garbled echo, exit 5)."""
    firmware, link = firmware_and_link(openems_programs[version], tmp_path)
    stim = OpenEmsStim(link, SETTINGS)
    link.garble(FIRMWARES[version].stop_text, 1)
    try:
        stim.connect()
        returned = time.monotonic()
        start = time.monotonic()
        while time.monotonic() - start < 0.3:
            stim.apply(time.monotonic() - start, [ON])
            time.sleep(0.002)
        stim.stop_all()
        time.sleep(0.2)
    finally:
        stim.close()
        link.close()
        firmware.stop()
    read = stop_lines_read(firmware, version)
    assert len(read) >= 2 and read[1] < returned, (read, returned)  # the resend's echo first
    assert stim.fault is None, stim.fault
    assert stim.link_counters()["all_off_resends_at_connect"] == 1
    assert stim.stop_confirmed
    assert trains(firmware.timeline(), 0), "the trial did not start"


@pytest.mark.parametrize("version", VERSIONS)
def test_a_garbled_all_off_echo_at_close_on_the_firmware(openems_programs, tmp_path,
                                                          version):
    """Channel 0 on; close()'s all-off echo garbled once: sent again, stop confirmed,
    and the channel did go to no output on its first all-off line."""
    firmware, link = firmware_and_link(openems_programs[version], tmp_path)
    stim = OpenEmsStim(link, SETTINGS)
    try:
        stim.connect()
        start = time.monotonic()
        while time.monotonic() - start < 0.3:
            stim.apply(time.monotonic() - start, [ON])
            time.sleep(0.002)
        link.garble(FIRMWARES[version].stop_text, 1)
        closed = time.monotonic()
        stim.close()
    finally:
        link.close()
        firmware.stop()
    assert stim.stop_confirmed and stim.fault is None, stim.fault
    assert stim.link_counters()["all_off_resends_at_close"] == 1
    assert len([t for t in stop_lines_read(firmware, version) if t > closed]) == 2
    (train,) = [t for t in trains(firmware.timeline(), 0) if t.on_s > start]
    assert train.zero_s is not None and closed < train.zero_s < closed + 0.3


@pytest.mark.parametrize("version", VERSIONS)
def test_a_lost_all_off_echo_at_close_on_the_firmware(openems_programs, tmp_path, version):
    """close()'s all-off echo lost once (dropped on the way back): sent again after the
    echo timeout, stop confirmed."""
    firmware, link = firmware_and_link(openems_programs[version], tmp_path)
    stim = OpenEmsStim(link, SETTINGS)
    try:
        stim.connect()
        link.drop(FIRMWARES[version].stop_text, 1)
        closed = time.monotonic()
        stim.close()
        took = time.monotonic() - closed
    finally:
        link.close()
        firmware.stop()
    assert stim.stop_confirmed and stim.fault is None, stim.fault
    assert stim.link_counters()["all_off_resends_at_close"] == 1
    assert ECHO_TIMEOUT_S < took < OFF_CONFIRM_S
    assert len([t for t in stop_lines_read(firmware, version) if t > closed]) == 2


@pytest.mark.parametrize("version", VERSIONS)
def test_a_board_whose_all_off_echoes_never_come_is_refused_in_bounded_time(
        openems_programs, tmp_path, version):
    firmware, link = firmware_and_link(openems_programs[version], tmp_path)
    stim = OpenEmsStim(link, SETTINGS)
    link.drop(FIRMWARES[version].stop_text, OFF_RESENDS + 10)
    start = time.monotonic()
    try:
        with pytest.raises(BoardError, match="did not confirm every channel off") as err:
            stim.connect()
        took = time.monotonic() - start
    finally:
        link.close()
        firmware.stop()
    assert err.value.kind == "no_board"
    assert took < OFF_CONFIRM_S + 1.0  # the probe's wait for quiet, then the resends
    assert len(stop_lines_read(firmware, version)) == OFF_RESENDS + 1


@pytest.mark.parametrize("version", VERSIONS)
def test_a_garbled_routine_echo_on_the_firmware_is_a_fault(openems_programs, tmp_path,
                                                            version):
    """The start's echo garbled on the way back: a link fault (the trial would end,
    exit 5); close still confirms every channel off with its own all-off line."""
    firmware, link = firmware_and_link(openems_programs[version], tmp_path)
    stim = OpenEmsStim(link, SETTINGS)
    try:
        stim.connect()
        link.garble(FIRMWARES[version].command(Command(0, intensity=1)).text[:3], 1)
        start = time.monotonic()
        while time.monotonic() - start < 0.3:
            stim.apply(time.monotonic() - start, [ON])
            time.sleep(0.002)
        stim.close()
    finally:
        link.close()
        firmware.stop()
    a_link_fault_and_still_confirmed_off(stim)


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
