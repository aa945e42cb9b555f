"""``fes run``, ``fes board-emulator`` and ``fes ports`` from the command line: exit
codes, messages, options."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import serial
from helpers.shared_machine import host_config, rerun_after_heartbeat_faults
from serial.tools.list_ports_common import ListPortInfo

from controller.cli import main
from controller.commands.common import EXIT_NO_BOARD, EXIT_NOTHING_FOUND, EXIT_REFUSED
from hw.emulator import EmulatorConfig, serve_in_thread
from hw.firmware import FirmwareSettings


def test_no_board_on_the_port_exits_9(tmp_path, capsys):
    assert main(["run", "--port", "loop://", "--out", str(tmp_path / "t")]) == 9
    err = capsys.readouterr().err
    assert "no board answered HELLO on loop://" in err and "Traceback" not in err
    assert not (tmp_path / "t").exists()


def test_a_board_with_looser_limits_is_refused_with_exit_10(tmp_path, capsys):
    emu, finish = serve_in_thread(
        EmulatorConfig(board=FirmwareSettings(max_amplitude_ma=100.0, firmware_version=(0, 9, 0)))
    )
    code = main(["run", "--port", emu.path, "--out", str(tmp_path / "t")])
    finish()
    assert code == 10
    err = capsys.readouterr().err
    assert "board max amplitude 100 is looser than safety.max_amplitude_ma 60" in err
    assert "firmware 0.9.0 is unknown" in err
    assert emu.firmware.channels_on() == []


def test_a_config_the_board_cannot_serve_is_refused(tmp_path, capsys):
    emu, finish = serve_in_thread(EmulatorConfig(board=FirmwareSettings(channels=1)))
    config = tmp_path / "c.toml"
    config.write_text("[loop]\nsample_rate_hz = 1000\n[stim.peroneal]\nchannel = 1\n")
    code = main(["run", "--port", emu.path, "--config", str(config)])
    finish()
    assert code == 10
    err = capsys.readouterr().err
    assert "board samples at 500 Hz, the trial needs loop.sample_rate_hz = 1000" in err
    assert "board has 1 channels, the trial needs 2" in err


def test_a_short_live_run_writes_the_sim_files_and_a_status_line(tmp_path, capfd):
    def attempt(k: int) -> tuple[int, str, tuple[Path, str]]:
        out = tmp_path / f"live{k}"  # one trial per folder: a retry gets its own
        emu, finish = serve_in_thread(
            EmulatorConfig(board=FirmwareSettings(comm_timeout_ms=400))
        )
        code = main(["run", "--port", emu.path, "--config", host_config(tmp_path),
                     "--duration-s", "1.5", "--out", str(out), "--link-timeout-ms", "300",
                     "--max-lag-ms", "300"])
        finish()
        captured = capfd.readouterr()
        return code, captured.err, (out, captured.out)

    code, err, (out, stdout) = rerun_after_heartbeat_faults(attempt)
    assert code == 0, err
    assert "t     1.0 s | " in err and "link ok" in err
    assert "stopped by duration" in err
    assert "trial: 1.5 s" in stdout
    # The board's identity and own limits with the trial's figures, as fes ports --probe
    # shows them (before, only in summary.json's board.info).
    assert ("board 1, firmware 1.2.0, protocol 4, 2 channels, 500 Hz, limits 60 mA / 500 us "
            "/ 60 Hz / 3000 ms on, comm timeout 400 ms") in stdout
    # The board's stream is the clock: lateness is not measured there, and not shown as 0.
    assert "timing: 2 ms period, board clock; lateness and missed periods not measured: the " \
        "board's stream paces the loop, a sample is due when it arrives;" in stdout
    assert "lateness median" not in stdout and "lateness us" not in err
    assert "lateness not measured (board clock) | latency us p99" in err
    for name in ("samples.csv", "events.csv", "summary.json", "config.json"):
        assert (out / name).exists()


def test_the_loop_settings_of_the_config_apply_to_a_live_trial(tmp_path, capfd):
    """fes run --help: the --config file overrides any subset of configs/default.toml but
    its [sim] section. [loop] cpu_index and realtime_priority (pinning the loop, SCHED_FIFO:
    what a bench on a busy machine needs) were dropped without a word."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    config = tmp_path / "pinned.toml"
    config.write_text(Path(host_config(tmp_path)).read_text() + f"[loop]\ncpu_index = {cpu}\n")

    def attempt(k: int) -> tuple[int, str, Path]:
        out = tmp_path / f"live{k}"
        emu, finish = serve_in_thread(EmulatorConfig(board=FirmwareSettings(comm_timeout_ms=400)))
        code = main(["run", "--port", emu.path, "--config", str(config), "--duration-s", "1",
                     "--out", str(out), "--link-timeout-ms", "300", "--max-lag-ms", "300",
                     "--no-status"])
        finish()
        return code, capfd.readouterr().err, out

    code, err, out = rerun_after_heartbeat_faults(attempt)
    assert code == 0, err
    assert f"real-time settings: timer slack 1 ns; pinned to CPU {cpu}" in err
    settings = json.loads((out / "summary.json").read_text())["timing"]["settings"]
    assert f"pinned to CPU {cpu}" in settings
    assert os.sched_getaffinity(0) != {cpu} or len(os.sched_getaffinity(0)) == 1  # restored


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--drop", "1.5"], "faults.drop"),
        (["--speed", "100"], "speed"),
        (["--firmware", "one"], "is not MAJOR.MINOR.PATCH"),
        (["--patient", "nobody"], "available:"),
        (["--comm-timeout-ms", "5"], "board.comm_timeout_ms"),
    ],
)
def test_bad_emulator_options_exit_2_naming_the_option(args, expected, capsys):
    assert main(["board-emulator", *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_bad_link_timeout_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--port", "loop://", "--link-timeout-ms", "0"])
    assert exit_info.value.code == 2
    assert "outside 1-10000 ms" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "board-emulator", "ports"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    parser_options = {
        "run": ["--port", "--config", "--duration-s", "--out", "--link-timeout-ms",
                "--max-lag-ms", "--no-status", "exit codes"],
        "board-emulator": ["--patient", "--seed", "--speed", "--max-amplitude-ma",
                           "--comm-timeout-ms", "--drop", "--corrupt", "--delay",
                           "--duplicate", "--stall-at-s", "--unplug-at-s", "--log", "--link"],
        "ports": ["--all", "--probe", "URL"],
    }[command]
    for option in parser_options:
        assert option in out


def test_run_help_gives_the_exit_codes_it_returns(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"{EXIT_NO_BOARD} no board answers" in out
    assert f"{EXIT_REFUSED} board refused" in out


def test_a_port_another_program_holds_is_named_busy(tmp_path, capsys):
    """A second ``fes run`` (or ``fes ports --probe``) on the port of a running trial is
    refused by the lock the first holds; it said "[Errno 11] Could not exclusively lock
    port ...: [Errno 11] Resource temporarily unavailable"."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    holder = serial.Serial(path, exclusive=True)  # as a running fes run holds it
    try:
        code = main(["run", "--port", path, "--out", str(tmp_path / "t")])
    finally:
        holder.close()
        os.close(master)
        os.close(slave)
    assert code == EXIT_NO_BOARD
    err = capsys.readouterr().err
    assert f"cannot open {path}: another program has it open" in err
    assert "Resource temporarily unavailable" not in err and "Traceback" not in err
    assert not (tmp_path / "t").exists()


def test_a_first_run_says_it_is_compiling_before_it_talks_to_the_board(monkeypatch, tmp_path,
                                                                        capsys):
    """The first ``fes run`` after an install compiles the loop's kernels before HELLO:
    20-40 s on this machine (a cold run: HELLO 22 s after start), without a word, as if
    hung. ``fes sim`` says it is compiling; so does ``fes run`` now."""
    import time

    from controller.trial import live

    warm_up = live.warm_up
    monkeypatch.setattr(live, "COMPILE_NOTICE_AFTER_S", 0.2)
    monkeypatch.setattr(live, "warm_up", lambda config: (time.sleep(0.5), warm_up(config)))
    assert main(["run", "--port", "loop://", "--out", str(tmp_path / "t")]) == EXIT_NO_BOARD
    err = capsys.readouterr().err
    assert err.startswith(live.COMPILE_NOTICE + "\ncompiled in ")
    assert "no board answered HELLO on loop://" in err


def test_fes_help_gives_the_exit_code_of_fes_ports(capsys):
    # fes --help listed 0, 2-10 and 130: fes ports' 1 (nothing found) was missing.
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"{EXIT_NOTHING_FOUND} fes ports found no port on a known USB-serial bridge" in out


def fake_port(device: str, vid: int | None, pid: int | None, description: str) -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.description = vid, pid, description
    return info


def test_ports_lists_known_bridges_first(monkeypatch, capsys):
    ports = [
        fake_port("/dev/ttyS0", None, None, "n/a"),
        fake_port("/dev/ttyUSB0", 0x0403, 0x6001, "FT232R USB UART"),
        fake_port("/dev/ttyACM0", 0x2E8A, 0x000A, "Board CDC"),
    ]
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: ports)
    assert main(["ports"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "/dev/ttyACM0  2E8A:000A  Raspberry Pi Pico (RP2040) USB CDC",
        "/dev/ttyUSB0  0403:6001  FTDI FT232R USB-UART",
    ]
    assert main(["ports", "--all"]) == 0
    assert "/dev/ttyS0  -  n/a" in capsys.readouterr().out


def test_ports_says_when_nothing_is_found(monkeypatch, capsys):
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])
    assert main(["ports"]) == 1
    assert "no serial port on a known USB-serial bridge" in capsys.readouterr().out


def test_ports_probe_identifies_the_board(monkeypatch, capsys):
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])
    emu, finish = serve_in_thread(EmulatorConfig(board=FirmwareSettings(board_id=77)))
    assert main(["ports", "--probe", emu.path, "loop://"]) == 0
    finish()
    out = capsys.readouterr().out
    assert "board 77, firmware 1.2.0, protocol 4, 2 channels, 500 Hz" in out
    assert "charge per phase up to 30 uC" in out
    assert "comm timeout 100 ms, pulse shapes up to gap 500 us / anodic ratio 10" in out
    assert "loop://\n    no board" in out
    assert "no port probed holds a board" not in out  # one of the two did


def test_ports_probe_that_finds_no_board_is_not_a_success(monkeypatch, capsys):
    """``fes ports --probe PORT && fes run --port PORT``: a probe no board answered went on
    (exit 0, as if the board were there); now exit 9, as ``fes run`` gives for no board."""
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])
    assert main(["ports", "--probe", "loop://"]) == EXIT_NO_BOARD
    out = capsys.readouterr().out
    assert "loop://\n    no board: no board answered HELLO on loop://" in out
    assert out.endswith("no port probed holds a board (1 probed)\n")


def test_an_asymmetric_pulse_is_refused_by_a_board_that_cannot_carry_it(tmp_path, capsys):
    """A version 1 board has no STIM_SHAPED: the ODFS preset's 4:1 pulse is refused at
    HELLO, naming the field, not reshaped into a symmetric one."""
    emu, finish = serve_in_thread(EmulatorConfig(board=FirmwareSettings(protocol_version=1)))
    code = main(["run", "--port", emu.path, "--stim", "odfs", "--out", str(tmp_path / "t")])
    finish()
    assert code == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "stim.peroneal.anodic_width_ratio 4: the board speaks protocol version 1" in err
    assert "(allowed: 1; a board of protocol version 2 carries the shape)" in err
    assert "Traceback" not in err
    assert "interphase_gap_us" not in err  # the preset has no gap: only the ratio is named
    assert not (tmp_path / "t").exists()
    assert emu.firmware.channels_on() == [] and emu.firmware.rx_frames >= 2


def test_a_shape_beyond_the_board_limits_is_refused_by_name(tmp_path, capsys):
    emu, finish = serve_in_thread(EmulatorConfig(
        board=FirmwareSettings(max_anodic_width_ratio=2.0, max_interphase_gap_us=20)))
    config = tmp_path / "gap.toml"
    config.write_text("[stim.peroneal]\ninterphase_gap_us = 50\n")
    code = main(["run", "--port", emu.path, "--stim", "odfs", "--config", str(config),
                 "--out", str(tmp_path / "t")])
    finish()
    assert code == EXIT_REFUSED
    err = capsys.readouterr().err
    assert ("stim.peroneal.interphase_gap_us 50 is beyond the board's max interphase gap "
            "20 us") in err
    assert ("stim.peroneal.anodic_width_ratio 4 is beyond the board's max anodic width "
            "ratio 2") in err


@pytest.mark.parametrize(("board", "expected"), [
    (FirmwareSettings(max_charge_per_phase_uc=8.0),
     "stim.peroneal: charge per phase of 35 mA x 300 us is 10.5 uC, beyond the board's max "
     "charge per phase 8 uC: lower the channel's amplitude or pulse width, or raise the "
     "board's limit (make eeprom MAX_CHARGE_PER_PHASE_UC=..., docs/hardware.md)"),
    (FirmwareSettings(max_amplitude_ma=30.0),
     "stim.peroneal.amplitude_ma 35 is beyond the board's max amplitude 30 mA"),
    (FirmwareSettings(max_frequency_hz=30.0),
     "stim.peroneal.frequency_hz 40 is beyond the board's max frequency 30 Hz"),
])
def test_settings_beyond_a_stricter_boards_limits_are_refused_at_hello(tmp_path, capsys,
                                                                     board, expected):
    """A board stricter than the trial's [safety] (its EEPROM lowered a limit) passes the
    looser-board check; a channel set beyond it was accepted, and the board refused the
    first train's peak seconds into the walk (OVER_CHARGE: exit 6 at 4.5 s against the
    AVR board with 8 uC). It is refused at HELLO now, naming the field, before any
    stimulation; the run is short enough that without the check it ends at its length."""
    emu, finish = serve_in_thread(EmulatorConfig(board=board))
    code = main(["run", "--port", emu.path, "--duration-s", "2",
                 "--out", str(tmp_path / "t")])
    finish()
    err = capsys.readouterr().err
    assert code == EXIT_REFUSED, err
    assert expected in err
    assert "Traceback" not in err
    assert not (tmp_path / "t").exists()
    assert emu.firmware.channels_on() == [] and emu.firmware.refused == 0


@pytest.mark.parametrize(("layer", "code"), [
    ('[detector]\nplacement = "foot"\n', 2),
    ('[detector]\nplacement = "foot"\nsensor = "fused"\n', 2),
    ('[detector]\nplacement = "foot"\nsensor = "heel"\n', 9),
])
def test_a_foot_gyroscope_detector_on_the_boards_own_stream_is_refused(tmp_path, capsys,
                                                                       layer, code):
    """fes run against the board emulator accepted detector.placement = "foot" while
    every board of the protocol streams a shank's gyroscope (docs/protocol.md, INFO
    sagittal_axis): the foot's detector ran on a shank's signal. A heel-only detector
    reads no gyroscope (exit 9 here: loop:// has no board behind it)."""
    config = tmp_path / "foot.toml"
    config.write_text(layer)
    assert main(["run", "--port", "loop://", "--config", str(config),
                 "--out", str(tmp_path / "t")]) == code
    err = capsys.readouterr().err
    refused = "the project's board streams the sagittal angular velocity of the shank"
    assert (refused in err) == (code == 2)
    assert not (tmp_path / "t").exists()


def test_a_foot_detector_on_a_replayed_recording_is_not_refused():
    """A replayed recording is whatever it was recorded on: a foot's, maybe."""
    from controller.config import load_config
    from controller.trial.backends import BackendSpec, check_sensors

    config = load_config(None, {"detector": {"placement": "foot"}})
    check_sensors(BackendSpec("openems", "loop://", replay=Path("walk.csv")), config)
