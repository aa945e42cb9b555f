"""openEMSstim on its own firmware when the host misbehaves: the Nano's reset at port
opening, a host killed with SIGKILL, a host stalled for longer than the on-time; and a
link that holds bytes back, so the firmware runs behind the driver's forecast.

The host is a separate process (``HOST`` below: the driver holding channel 0 at a
constant amplitude, a command every 2 ms, as the loop does), so it can be killed or
stopped like a real one; the firmware's timeline is the ground truth.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from helpers.live import Process, _no_process_outlives_its_test
from helpers.shared_machine import host_config, rerun_after_heartbeat_faults

from controller.bench.openems import harness_settings
from controller.bench.openems_harness import (
    VERSIONS,
    FirmwareProcess,
    SerialRow,
    connected_at_zero,
    trains,
)
from controller.bench.openems_walk import settings_file
from controller.cli import main
from controller.ports import StimCommand
from hw.board import BoardError
from hw.openems import OpenEmsStim
from hw.openems.firmware import ECHO_PREFIX, FIRMWARES
from hw.openems.intensity import wiper
from hw.transport import Transport

__all__ = ["_no_process_outlives_its_test"]  # the autouse fixture: no process outlives a test

SETTINGS = harness_settings()
#: A unit whose lowest output fits the default rise rule from off (2 mA x 300 us = 0.6 uC).
LOW_FLOOR = harness_settings(output_at_lowest_ma=2.0)
HOLD_S = SETTINGS.hold_ms / 1000.0
T = TypeVar("T")
ON = StimCommand(0, True, 35.0, SETTINGS.pulse_width_us, SETTINGS.frequency_hz)

#: The host: connects, prints READY, holds channel 0 on for ``seconds``, prints the
#: driver's fault and counters as JSON, closes.
HOST = """
import json, sys, time
from controller.bench.openems import harness_settings
from controller.bench.openems_walk import settings_file
from controller.cli import main
from controller.ports import StimCommand
from hw.openems import OpenEmsStim
path, seconds = sys.argv[1], float(sys.argv[2])
stim = OpenEmsStim(path, harness_settings())
stim.connect()
print("READY", flush=True)
on = StimCommand(0, True, 35.0, 300.0, 40.0)
start = time.monotonic()
k = 0
while time.monotonic() - start < seconds:
    stim.apply(k * 0.002, [on])
    k += 1
    time.sleep(max(0.0, start + k * 0.002 - time.monotonic()))
fault = None if stim.fault is None else [stim.fault.kind, stim.fault.message]
print(json.dumps({"fault": fault, "stats": stim.stats.as_dict()}), flush=True)
stim.close()
"""


def start_host(path: str, seconds: float) -> subprocess.Popen[str]:
    host = subprocess.Popen([sys.executable, "-c", HOST, path, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert host.stdout is not None and host.stdout.readline().strip() == "READY"
    return host


def on_both(scenario: Callable[[FirmwareProcess], T], programs, tmp_path) -> dict[str, T]:
    """Run ``scenario`` against each firmware version at once; its result and the
    firmware (stopped) by version."""
    def run(version: str) -> T:
        firmware = FirmwareProcess(programs[version], tmp_path / version)
        try:
            return scenario(firmware)
        finally:
            firmware.stop()

    with ThreadPoolExecutor(len(VERSIONS)) as pool:
        running = {v: pool.submit(run, v) for v in VERSIONS}
        return {v: future.result() for v, future in running.items()}


def test_a_host_killed_leaves_the_pads_open_within_the_on_time(openems_programs, tmp_path):
    def kill(firmware: FirmwareProcess) -> tuple[float, FirmwareProcess]:
        host = start_host(firmware.path, 30.0)
        time.sleep(0.25 + HOLD_S)  # on, and renewed at least once
        host.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        host.wait()
        time.sleep(HOLD_S + 0.2)
        return killed, firmware

    for killed, firmware in on_both(kill, openems_programs, tmp_path).values():
        last = trains(firmware.timeline(), 0)[-1]
        assert last.on_s < killed - HOLD_S  # the train had been renewed before the kill
        assert last.open_s is not None
        assert last.open_s - killed <= HOLD_S + 0.050, last


def test_a_stalled_host_sends_the_whole_command_again_and_reports_it(openems_programs,
                                                                     tmp_path):
    """Stopped (SIGSTOP) for hold_ms + 300 ms: the board ends the channel by itself; the
    host, resumed, starts it again at its intensity (never connected at no output) and
    reports the stimulation that was not delivered."""
    def stall(firmware: FirmwareProcess) -> tuple[float, float, str, FirmwareProcess]:
        host = start_host(firmware.path, 1.5 + HOLD_S)
        time.sleep(0.3)
        host.send_signal(signal.SIGSTOP)
        stalled = time.monotonic()
        time.sleep(HOLD_S + 0.3)
        host.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        out, _ = host.communicate(timeout=10.0)
        return stalled, resumed, out, firmware

    full = wiper(SETTINGS.calibration.intensity(35.0))
    for stalled, resumed, out, firmware in on_both(stall, openems_programs,
                                                   tmp_path).values():
        report = json.loads(out.strip().splitlines()[-1])
        assert report["fault"][0] == "host" and "not delivered" in report["fault"][1]
        changes = firmware.timeline()
        assert connected_at_zero(changes, 0) == []
        before = [t for t in trains(changes, 0) if t.on_s < stalled]
        after = [t for t in trains(changes, 0) if t.on_s > resumed]
        assert before[-1].zero_s < stalled + HOLD_S + 0.01  # its own on-time ended it
        assert after and after[0].wipers == (full,) and after[0].on_s < resumed + 0.25


def test_the_nano_reset_at_port_opening_is_waited_for(openems_programs, tmp_path):
    """``--real-boot``: opening the port resets the board and its setup takes about 11 s.
    The driver waits for it (both versions) and nothing stimulates before connect
    returns; with a shorter boot_timeout_s it fails naming the reset."""
    results: dict[str, object] = {}
    firmwares = {
        name: FirmwareProcess(openems_programs[version], tmp_path / name, real_boot=True)
        for name, version in (("head", "head"), ("aa7f198", "aa7f198"), ("short", "head"))
    }

    def connect(name: str) -> None:
        timeout = 3.0 if name == "short" else SETTINGS.boot_timeout_s
        stim = OpenEmsStim(firmwares[name].path, harness_settings(boot_timeout_s=timeout))
        start = time.monotonic()
        try:
            stim.connect()
            connected = time.monotonic()
            while time.monotonic() - connected < 0.3:
                stim.apply(time.monotonic() - connected, [ON])
                time.sleep(0.002)
            results[name] = (start, connected, stim.firmware.name if stim.firmware else None)
        except BoardError as err:
            results[name] = err
        finally:
            stim.close()

    threads = [threading.Thread(target=connect, args=(name,)) for name in firmwares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in firmwares.values():
        process.stop()
    short = results["short"]
    assert isinstance(short, BoardError) and short.kind == "no_board"
    assert "Nano resets when its port opens" in str(short)
    for version in VERSIONS:
        start, connected, name = results[version]  # type: ignore[misc]
        assert name == version and connected - start > 10.0  # setup() took its 11 s
        changes = firmwares[version].timeline()
        first = trains(changes, 0)[0]
        # nothing before connect; on once the connection's all-off line is done
        assert connected < first.on_s < connected + 0.25
        assert not [r for r in firmwares[version].serial() if r.kind in ("rx_lost", "crash")]



class HoldingLink:
    """A serial link that holds back what is written while ``hold`` runs, then delivers
    it at once: a USB bridge that stalls now and then, so the firmware reads the lines
    later than the driver's budget forecasts (whole writes, so no line is cut)."""

    def __init__(self, link: Transport) -> None:
        self._link = link
        self._lock = threading.Lock()
        self._held: list[bytes] | None = None

    def read(self) -> bytes:
        return self._link.read()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._held is None:
                self._link.write(data)
            else:
                self._held.append(data)

    def close(self) -> None:
        self._link.close()

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._held = []
        time.sleep(seconds)
        with self._lock:
            held, self._held = self._held, None
            self._link.write(b"".join(held))


def most_lines_waiting(rows: list[SerialRow]) -> int:
    """The most lines the host had written that the firmware had not read yet, from
    its serial log (a write is logged as the firmware takes its bytes in)."""
    written = read = most = 0
    for row in rows:
        if row.kind == "host_bytes":
            written += row.text.count("\\n")  # the log escapes a newline
            most = max(most, written - read)
        elif row.kind == "rx_line":
            read += 1
    return most


class SlowReaderLink:
    """A serial link whose reader, once ``slow`` is set, gets what has arrived up to the
    first byte of the next echo and then waits 0.4 s (the driver's reader thread kept
    off the CPU between its read and its look at the clock, as on a loaded machine);
    the rest waits for its next read."""

    def __init__(self, link: Transport) -> None:
        self._link = link
        self._rest = b""
        self.slow = threading.Event()

    def read(self) -> bytes:
        data, self._rest = self._rest + self._link.read(), b""
        at = data.find(ECHO_PREFIX.encode("ascii")[:1]) if self.slow.is_set() else -1
        if at >= 0:
            self.slow.clear()
            data, self._rest = data[:at + 1], data[at + 1:]
            time.sleep(0.4)
        return data

    def write(self, data: bytes) -> None:
        self._link.write(data)

    def close(self) -> None:
        self._link.close()


class SlowWriterLink:
    """A serial link whose next write, once ``slow`` is set, starts 0.4 s late (the
    driver's writing thread kept off the CPU between booking a line and writing it)."""

    def __init__(self, link: Transport) -> None:
        self._link = link
        self.slow = threading.Event()

    def read(self) -> bytes:
        return self._link.read()

    def write(self, data: bytes) -> None:
        if self.slow.is_set():
            self.slow.clear()
            time.sleep(0.4)
        self._link.write(data)

    def close(self) -> None:
        self._link.close()


def a_start_through(slow_link: type[SlowReaderLink | SlowWriterLink], program, tmp_path
                    ) -> OpenEmsStim:
    """One start sent through ``slow_link`` (made slow once connected) to the firmware;
    the driver, closed 0.8 s later."""
    firmware = FirmwareProcess(program, tmp_path)
    link = slow_link(Transport(firmware.path, baudrate=19200))
    stim = OpenEmsStim(link, SETTINGS)
    try:
        stim.connect()
        link.slow.set()
        stim.apply(0.0, [StimCommand(0, True, 30.0, SETTINGS.pulse_width_us,
                                     SETTINGS.frequency_hz)])
        time.sleep(0.8)
        assert not link.slow.is_set()  # the slow read or write happened
    finally:
        stim.close()
        link.close()
        firmware.stop()
    return stim


def test_an_echo_already_in_the_port_is_not_taken_for_a_lost_link(openems_programs,
                                                                   tmp_path):
    """The firmware echoes a start at once, but the driver's reader gets only its first
    byte before waiting 0.4 s for a CPU, past the echo's 300 ms timeout: the echo was in
    the port all along, so no link fault (it was declared, exit 5, when the echoes were
    checked as of after the read)."""
    stim = a_start_through(SlowReaderLink, openems_programs["aa7f198"], tmp_path)
    assert stim.fault is None, stim.fault
    assert stim.stats.echoes == stim.stats.lines, stim.stats


def test_a_line_written_late_by_the_host_is_not_taken_for_a_lost_link(openems_programs,
                                                                      tmp_path):
    """The driver books a start, then its writing thread waits 0.4 s before the bytes
    reach the port: the firmware echoes it at once, 0.4 s after the booking, past the
    echo's 300 ms timeout counted from there; the delay was the host's, so no link
    fault (it was declared, exit 5, when the echo was due from the booking)."""
    stim = a_start_through(SlowWriterLink, openems_programs["aa7f198"], tmp_path)
    assert stim.fault is None, stim.fault
    assert stim.stats.echoes == stim.stats.lines, stim.stats


def test_a_firmware_behind_the_forecast_gets_one_routine_line_at_a_time(openems_programs,
                                                                         tmp_path):
    """The link holds the host's bytes back three times for 200 ms while both channels
    rise steadily, so the driver always has a step to send: it sends the next routine
    line only once the firmware has echoed the last, so nothing queues behind the held
    line, no byte is lost, no line garbled, and a stop_all just after a hold waits
    behind one line at most."""
    def rise(firmware: FirmwareProcess) -> tuple[OpenEmsStim, float, FirmwareProcess]:
        link = HoldingLink(Transport(firmware.path, baudrate=19200))
        stim = OpenEmsStim(link, SETTINGS)
        stim.connect()
        done = threading.Event()

        def holds() -> None:
            for _ in range(3):
                time.sleep(0.3)
                link.hold(0.2)
            done.set()

        holder = threading.Thread(target=holds)
        try:
            start = time.monotonic()
            holder.start()
            while not done.is_set():
                t = time.monotonic() - start
                amplitude = min(50.0, 14.0 + 12.0 * t)
                stim.apply(t, [StimCommand(ch, True, amplitude, SETTINGS.pulse_width_us,
                                           SETTINGS.frequency_hz) for ch in (0, 1)])
                time.sleep(0.002)
            stopped = time.monotonic()
            stim.stop_all()
            time.sleep(0.4)
        finally:
            holder.join()
            stim.close()
            link.close()
        return stim, stopped, firmware

    results = on_both(rise, openems_programs, tmp_path)
    for version, (stim, stopped, firmware) in results.items():
        rows = firmware.serial()
        assert not [r for r in rows if r.kind in ("rx_lost", "crash")], version
        assert stim.fault is None, (version, stim.fault)
        assert stim.stats.steps >= 3, (version, stim.stats)  # it had steps to send
        # one routine line waiting to be read, and an off or the stop behind it at most
        assert most_lines_waiting(rows) <= 2, version
        read = [r for r in rows if r.kind == "rx_line" and r.t_s >= stopped]
        stop_text = FIRMWARES[version].stop().text
        behind = next(i for i, r in enumerate(read) if r.text == stop_text)
        assert behind <= 1, (version, read[:behind + 1])


def test_a_board_unplugged_mid_trial_is_not_said_to_switch_off_by_a_communication_timeout(
        openems_programs, tmp_path):
    """``fes run --stimulator openemsstim:`` with the board gone mid-walk (its pty closed):
    link lost (exit 5), outputs off not confirmed, and the ending names what does switch
    openEMSstim off, each channel's on-time (hold_ms). It said "the board's own
    communication timeout switches its outputs off", which openEMSstim does not have:
    the project's board's 100 ms, not the up to hold_ms of stimulation this board gives.
    Nor does it have a STOP_ALL: the ending named one as sent and not acknowledged."""
    # The walk is fes sim's, 500 samples/s: one command may rise 0.7 uC (350 uC/s x
    # 2 ms), so the unit's lowest output must be below 2.33 mA at 300 us or no train
    # could start (refused at start: tests/test_onset_step.py).
    assert main(["sim", "--seed", "3", "--duration-s", "12", "--out",
                 str(tmp_path / "walk")]) == 0
    walk = tmp_path / "walk" / "samples.csv"

    def attempt(k: int) -> tuple[int, str, Path]:
        folder = tmp_path / f"attempt{k}"
        firmware = FirmwareProcess(openems_programs["aa7f198"], folder)
        out = folder / "out"
        try:
            run = Process("run", "--no-status", "--sensors", f"replay:{walk}",
                          "--stimulator", f"openemsstim:{firmware.path}",
                          "--stimulator-settings", str(settings_file(LOW_FLOOR, folder)),
                          "--config", host_config(tmp_path), "--out", str(out))
            deadline = time.monotonic() + 30.0
            while not [r for r in firmware.serial() if r.kind == "rx_line"]:
                assert time.monotonic() < deadline and run.proc.poll() is None, run.stderr()
                time.sleep(0.05)
            time.sleep(1.5)  # connected, the walk under way
        finally:
            firmware.stop()  # the pty closes: unplugged
        return run.wait(), run.stderr(), out

    code, err, out = rerun_after_heartbeat_faults(attempt)
    assert code == 5, err
    ending = json.loads((out / "summary.json").read_text())["board"]
    assert ending["outputs_off_confirmed"] is False
    assert "communication timeout" not in ending["ending"].replace("has no communication "
                                                                   "timeout", "")
    assert f"hold_ms, {SETTINGS.hold_ms} ms from its last command" in ending["ending"]
    assert "hold_ms" in err
    # What was sent and not echoed is named as openEMSstim has it: no STOP_ALL there.
    assert "the all-off line sent but not acknowledged" in ending["ending"]
    assert "STOP_ALL" not in ending["ending"]
