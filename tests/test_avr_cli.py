"""``fes board-emulator --mcu avr`` from the command line: what it refuses and how."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from controller.cli import main
from hw.avr import build as avr_build
from hw.avr.cosim import FIRMWARE_VERSION


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rate-hz", "1000"], "--rate-hz: not an option of the AVR firmware"),
        (["--protocol-version", "1"], "--protocol-version: not an option of the AVR firmware"),
        (["--drop", "0.1"], "--drop: not an option of the AVR firmware"),
        (["--comm-timeout-ms", "600"], "board.comm_timeout_ms"),
        (["--max-amplitude-ma", "80"], "board.max_amplitude_ma"),
        (["--max-charge-per-phase-uc", "40"],
         "board.max_charge_per_phase_uc: input should be less than or equal to 30"),
        # lround(0.4) = 0 steps: the harness refused it without naming the field
        (["--max-charge-per-phase-uc", "0.004"],
         "board.max_charge_per_phase_uc: input should be greater than or equal to 0.01"),
        (["--max-duty-cycle", "0.9"],
         "board.max_duty_cycle: input should be less than or equal to 0.8"),
        (["--speed", "50"], "speed"),
    ],
)
def test_options_the_firmware_fixes_or_bounds_exit_2_naming_them(args, expected, capsys):
    assert main(["board-emulator", "--mcu", "avr", *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_the_refusal_names_the_firmware_version_the_board_reports(capsys):
    # It said 2.0.0 after the firmware had become 2.0.1 (what INFO and fes ports --probe say).
    assert main(["board-emulator", "--mcu", "avr", "--rate-hz", "250"]) == 2
    err = capsys.readouterr().err
    assert f"firmware {'.'.join(map(str, FIRMWARE_VERSION))};" in err


def test_a_missing_toolchain_exits_2_naming_the_packages(monkeypatch, capsys):
    monkeypatch.setattr(avr_build, "missing", lambda: "the AVR toolchain is incomplete: "
                        "missing avr-gcc (gcc-avr); apt-get install gcc-avr avr-libc")
    assert main(["board-emulator", "--mcu", "avr"]) == 2
    err = capsys.readouterr().err
    assert "missing avr-gcc (gcc-avr)" in err and "Traceback" not in err


def test_help_explains_the_choice_of_firmware(capsys):
    with pytest.raises(SystemExit):
        main(["board-emulator", "--help"])
    out = capsys.readouterr().out
    assert "--mcu {python,avr}" in out and "simavr" in out


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["flash", "eeprom"])
def test_make_flash_to_a_port_that_does_not_exist_fails_at_once_naming_it(target, tmp_path):
    """docs/hardware.md's ``make -C hw/avr flash PORT=/dev/ttyACM0`` with no board plugged in
    (or a wrong PORT): avrdude 7.1 waited on the missing device for ever (5 min and more
    here); the Makefile says so before building or starting avrdude."""
    makefile_dir = Path(__file__).resolve().parents[1] / "hw" / "avr"
    port = "/dev/fes-test-no-such-port"
    result = subprocess.run(
        ["make", "-C", str(makefile_dir), target, f"PORT={port}", f"BUILD={tmp_path}",
         "BOARD_ID=7"],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode != 0
    assert f"no {port}: is the board plugged in?" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing built, avrdude never started


EEPROM_LIMITS = {"MAX_PULSE_WIDTH_US": "300", "MAX_FREQUENCY_HZ": "45",
                 "MAX_INTERPHASE_GAP_US": "100", "MAX_ANODIC_WIDTH_RATIO": "4"}


@pytest.mark.skipif(avr_build.missing() is not None, reason="needs the AVR toolchain and simavr")
def test_make_eeprom_stores_every_limit_the_docs_name(tmp_path):
    """docs/hardware.md: ``make eeprom`` stores limits lower than the compiled ones,
    pulse width, frequency, gap and anodic ratio among them. The Makefile passed only
    BOARD_ID, COMM_TIMEOUT_MS, MAX_ON_TIME_MS and MAX_AMPLITUDE_MA on: MAX_PULSE_WIDTH_US=300
    was dropped without a word, and the board kept 500 us."""
    makefile_dir = Path(__file__).resolve().parents[1] / "hw" / "avr"
    build = tmp_path / "build"
    result = subprocess.run(
        ["make", "-C", str(makefile_dir), "eeprom", "PORT=/dev/null", "AVRDUDE=true",
         f"BUILD={build}", *(f"{k}={v}" for k, v in EEPROM_LIMITS.items())],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    expected = tmp_path / "expected.hex"
    options = [x for k, v in EEPROM_LIMITS.items() for x in (f"--{k.lower().replace('_', '-')}", v)]
    subprocess.run([str(build / "simavr-board"), "--eeprom-hex", str(expected), *options],
                   check=True, timeout=30)
    default = tmp_path / "default.hex"
    subprocess.run([str(build / "simavr-board"), "--eeprom-hex", str(default)],
                   check=True, timeout=30)
    stored = (build / "eeprom.hex").read_text()
    assert stored == expected.read_text() != default.read_text()
