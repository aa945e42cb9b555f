"""``make -C hw/avr flash`` and ``make eeprom`` as a user runs them: real avrdude against
Arduino's own STK500v2 bootloader of the Mega 2560 (Debian's arduino-core-avr, read from
the installed package), on a simulated ATmega2560 (the harness's ``--boot-hex``: the
bootloader in the boot section, execution starting there, application flash erased,
each open of the pty a reset as the Mega's DTR auto-reset).

What is checked is what a user would notice: the firmware that was flashed answers HELLO
with the version the source says; the configuration ``make eeprom`` stored is what the
firmware reads after a reset; a damaged or cut-short image makes make exit non-zero with
the old firmware still running; a port where no bootloader answers ends in a clear error
in bounded time.

The board resets whenever a host opens its port, and Arduino's bootloader then listens
for 0.83 s of board time; a byte in that window keeps it listening until it has heard
nothing for some seconds (docs/hardware.md, "Flashing through the bootloader"). So the
HELLO here waits in silence until the harness's log says execution left the bootloader
for the application: board time, which a loaded machine does not stretch.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import serial
from helpers.avr_support import avr_build_or_skip, skip_unless_present

from hw import protocol as p
from hw.avr import build as avr_build
from hw.avr.cosim import FIRMWARE_VERSION

MAKEFILE_DIR = avr_build.SOURCE_DIR
#: Wall time allowed for the bootloader to hand over (0.83 s of board time after a reset,
#: some seconds after a byte it caught), a loaded machine included.
HANDOVER_WAIT_S = 30.0
#: avrdude's own attempts at a port where nothing answers take 30 s here.
NO_BOOTLOADER_BOUND_S = 90.0


@dataclass
class FlashBoard:
    """The simulated Mega behind its pty, and the build directory make flashes from."""

    process: subprocess.Popen[str]
    port: str
    log: Path
    build: Path

    def events(self, name: str) -> list[dict[str, Any]]:
        """The harness log's events called ``name`` so far."""
        lines = self.log.read_text().splitlines()
        return [e for e in map(json.loads, lines) if e["event"] == name]

    def next_event(self, name: str, seen: int) -> dict[str, Any] | None:
        """The first event called ``name`` after the ``seen`` there were; None when none
        comes within HANDOVER_WAIT_S."""
        deadline = time.monotonic() + HANDOVER_WAIT_S
        while time.monotonic() < deadline:
            events = self.events(name)
            if len(events) > seen:
                return events[seen]
            time.sleep(0.05)
        return None


    def wait_port_closed(self) -> None:
        """Until the harness has seen the last host close the port (a "port_closed" for
        every "port_opened"): an open before then, within the pacing step of the close,
        would go unseen and reset nothing, as avrdude's close and a HELLO's open right
        after make did on a loaded machine."""
        deadline = time.monotonic() + HANDOVER_WAIT_S
        while len(self.events("port_closed")) < len(self.events("port_opened")):
            assert time.monotonic() < deadline, "the harness never saw the port closed"
            time.sleep(0.01)


def _copy_build(built: Path, to: Path, names: tuple[str, ...]) -> Path:
    """The built files into another BUILD, their times kept so that make builds nothing."""
    to.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(built / name, to / name)
    return to


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlashBoard]:
    skip_unless_present(avr_build.flash_missing())
    built = avr_build_or_skip("firmware", "harness").directory
    build = _copy_build(built, tmp_path_factory.mktemp("avrflash") / "build",
                        ("firmware.elf", "firmware.hex", "simavr-board"))
    log = build.parent / "harness.jsonl"
    process = subprocess.Popen(
        [str(build / "simavr-board"), "--boot-hex", str(avr_build.MEGA2560_BOOTLOADER),
         "--log", str(log)],
        stdout=subprocess.PIPE, stderr=(build.parent / "harness.err").open("w"), text=True,
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    assert port.startswith("/dev/"), f"the harness printed no pty: {port!r}"
    yield FlashBoard(process, port, log, build)
    process.terminate()
    process.wait(timeout=10)


def _make_command(target: str, port: str, build: Path, *settings: str) -> list[str]:
    return ["make", "--no-print-directory", "-C", str(MAKEFILE_DIR), target, f"PORT={port}",
            f"BUILD={build}", *settings]


def _make(target: str, port: str, build: Path, *settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_make_command(target, port, build, *settings), capture_output=True,
                          text=True, timeout=NO_BOOTLOADER_BOUND_S, check=False)


@dataclass
class SilentPortFlash:
    """``make flash`` at a pty where nothing answers, running since ``started_s``;
    ``ended_s`` holds when it exited."""

    process: subprocess.Popen[str]
    started_s: float
    waiter: threading.Thread
    ended_s: list[float]


@pytest.fixture(scope="module", autouse=True)
def silent_port_flash(board: FlashBoard,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[SilentPortFlash]:
    """``make flash`` at a pty where no bootloader answers, started with the module's first
    test: avrdude's own attempts there are 30 s of waiting (six stk500v2 receive timeouts
    of 5 s, avrdude 7.1), which the module's other tests run beside instead of before
    (its last test judges it). The pty and the build are its own: nothing else touches
    them, and it touches nothing of theirs."""
    build = _copy_build(board.build, tmp_path_factory.mktemp("silent") / "build",
                        ("firmware.elf", "firmware.hex"))
    master, slave = pty.openpty()
    started_s = time.monotonic()
    process = subprocess.Popen(_make_command("flash", os.ttyname(slave), build),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    ended_s: list[float] = []

    def reap() -> None:
        process.wait()
        ended_s.append(time.monotonic())

    waiter = threading.Thread(target=reap, daemon=True)
    waiter.start()
    try:
        yield SilentPortFlash(process, started_s, waiter, ended_s)
    finally:
        if process.poll() is None:  # its test was not run, or failed before the end
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        os.close(master)
        os.close(slave)


def _hello_round(link: serial.Serial, decoder: p.FrameDecoder, first_seq: int) -> p.Info | None:
    for seq in range(first_seq, first_seq + 3):
        link.write(p.Hello(p.PROTOCOL_VERSION).encode(seq))
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            for frame in decoder.feed(link.read(4096)):
                message = p.parse(frame)
                if isinstance(message, p.Info):
                    return message
    return None


def _hello(board: FlashBoard) -> p.Info | None:
    """Open the port (the board resets), stay silent until the bootloader has handed over
    to the application, say HELLO; the board's INFO or None."""
    board.wait_port_closed()
    seen = len(board.events("application"))
    with serial.Serial(board.port, p.BAUD_RATE_V3, timeout=0.01) as link:
        if board.next_event("application", seen) is None:
            return None
        return _hello_round(link, p.FrameDecoder(), 1)


def _window_s(board: FlashBoard) -> float:
    """Board time from the latest reset to the application that followed it."""
    reset = board.events("reset")[-1]["board_t_s"]
    started = [e["board_t_s"] for e in board.events("application") if e["board_t_s"] > reset]
    return float(started[0] - reset)


def test_an_erased_board_answers_no_hello(board: FlashBoard) -> None:
    # The bootloader jumps to an erased application all the same; execution slides
    # through the erased flash (0xFFFF) back into the bootloader: nothing answers, and
    # whatever answers HELLO later is what make flash wrote.
    seen = len(board.events("bootloader"))
    with serial.Serial(board.port, p.BAUD_RATE_V3, timeout=0.01) as link:
        back = board.next_event("bootloader", seen)
        assert back is not None
        assert _hello_round(link, p.FrameDecoder(), 1) is None


def test_make_flash_writes_the_firmware_that_then_answers_hello(board: FlashBoard) -> None:
    result = _make("flash", board.port, board.build)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bytes of flash verified" in result.stderr
    info = _hello(board)
    assert info is not None, "the flashed firmware did not answer HELLO"
    assert info.firmware == FIRMWARE_VERSION
    assert (info.protocol_version, info.board_id) == (p.PROTOCOL_VERSION, 1)
    # Arduino's bootloader listens 0.83 s after a reset (its BLINK_LED_WHILE_WAITING
    # timeout, "about 1 second" in its source), then starts the firmware.
    assert 0.5 < _window_s(board) < 1.2


def test_make_eeprom_stores_what_the_firmware_reads_after_a_reset(board: FlashBoard) -> None:
    resets = len(board.events("reset"))
    result = _make("eeprom", board.port, board.build, "BOARD_ID=7", "COMM_TIMEOUT_MS=250")
    # Before the fix avrdude's verify failed on a correct write (the bootloader reads
    # EEPROM byte 2A for A): make exited 2 after "verification mismatch".
    assert result.returncode == 0, result.stderr[-2000:]
    assert "27 bytes of eeprom written" in result.stderr
    info = _hello(board)
    assert len(board.events("reset")) >= resets + 2  # avrdude's open, then HELLO's
    assert info is not None, "the firmware did not answer HELLO after make eeprom"
    assert (info.board_id, info.comm_timeout_ms) == (7, 250)
    assert info.firmware == FIRMWARE_VERSION


def test_fes_ports_finds_the_board_its_open_reset_into_the_bootloader(
        board: FlashBoard) -> None:
    # fes ports opens the port (a Mega resets) and says HELLO at once, into the
    # bootloader, which would then start the firmware only 5 s after the last byte it
    # heard. fes signs on to it at 115 200 baud and tells it to leave programming mode
    # (hw.stk500v2): the firmware starts at once. Before, fes stayed silent for 6 s
    # (hw.board.BOOTLOADER_QUIET_S) and the firmware answered 7.2 s after the reset;
    # before that, it gave up after 0.9 s: no board, exit 9.
    fes = [sys.executable, "-m", "controller.cli"]
    version = ".".join(map(str, FIRMWARE_VERSION))
    seen = len(board.events("application"))
    probed = subprocess.run([*fes, "ports", board.port], capture_output=True, text=True,
                            timeout=60, check=False)
    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert f"board 7, firmware {version}" in probed.stdout
    assert ("an STK500v2 bootloader (AVRISP_2) answered at 115200 baud (an Arduino Mega "
            "resets when its port is opened) and was told to start the firmware") in probed.stderr
    handed_over = board.next_event("application", seen)
    assert handed_over is not None
    reset = board.events("reset")[-1]["board_t_s"]
    hellos = [e["board_t_s"] for e in board.events("hello") if e["board_t_s"] > reset]
    # The first HELLO was caught: left alone, the bootloader would have listened 5 s more.
    assert hellos[0] < handed_over["board_t_s"] < hellos[0] + 2.0
    # The last HELLO is the one the firmware answered (fes ports stops at its INFO), in
    # board time from the reset: 0.36 s measured, 7.2 s with the silence.
    assert hellos[-1] - reset < 2.0
    # Held open by a process of its own from before, the port opens without a reset:
    # the firmware answers the first HELLO, and hears nothing meant for a bootloader.
    seen = len(board.events("application"))
    held = os.open(board.port, os.O_RDWR | os.O_NOCTTY)
    try:
        assert board.next_event("application", seen) is not None
        resets = len(board.events("reset"))
        probed = subprocess.run([*fes, "ports", board.port], capture_output=True, text=True,
                                timeout=60, check=False)
    finally:
        os.close(held)
    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert f"board 7, firmware {version}" in probed.stdout
    assert len(board.events("reset")) == resets
    assert "bootloader" not in probed.stderr


def test_a_hex_cut_short_is_refused_before_avrdude_runs(board: FlashBoard,
                                                        tmp_path: Path) -> None:
    build = _copy_build(board.build, tmp_path / "build", ("firmware.elf", "firmware.hex"))
    hex_file = build / "firmware.hex"
    lines = hex_file.read_bytes().splitlines(keepends=True)
    hex_file.write_bytes(b"".join(lines[: len(lines) // 3]))  # whole records, no EOF
    opened = len(board.events("port_opened"))
    result = _make("flash", board.port, build)
    # avrdude 7.1 flashed such a file and exited 0 (4 800 of 11 048 bytes), the rest of
    # flash left as the old firmware's.
    assert result.returncode != 0
    assert "firmware.hex is cut short" in result.stderr
    assert len(board.events("port_opened")) == opened, "avrdude ran"
    info = _hello(board)
    assert info is not None and info.firmware == FIRMWARE_VERSION
    assert info.board_id == 7  # the EEPROM of the test before, untouched


def test_a_damaged_hex_is_refused_and_the_old_firmware_runs(board: FlashBoard,
                                                            tmp_path: Path) -> None:
    build = _copy_build(board.build, tmp_path / "build", ("firmware.elf", "firmware.hex"))
    hex_file = build / "firmware.hex"
    lines = hex_file.read_bytes().splitlines(keepends=True)
    record = bytearray(lines[4])
    record[13] = ord("1") if record[13] != ord("1") else ord("2")  # a data digit, sum kept
    lines[4] = bytes(record)
    hex_file.write_bytes(b"".join(lines))
    result = _make("flash", board.port, build)
    assert result.returncode != 0
    assert "checksum mismatch at line 5" in result.stderr
    info = _hello(board)
    assert info is not None and info.firmware == FIRMWARE_VERSION


def test_a_port_where_no_bootloader_answers_fails_in_bounded_time(
        silent_port_flash: SilentPortFlash) -> None:
    flash = silent_port_flash
    _, stderr = flash.process.communicate(timeout=NO_BOOTLOADER_BOUND_S)
    flash.waiter.join()
    took = flash.ended_s[0] - flash.started_s
    assert flash.process.returncode != 0
    assert "unable to open programmer wiring" in stderr
    assert took < NO_BOOTLOADER_BOUND_S
