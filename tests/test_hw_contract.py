"""The contract of ``SensorSource`` and ``Stimulator``, run against every back end: the
simulated limb, the board driver talking to the board emulator over a real pty, and the
board driver talking to the AVR firmware in simavr over a pty (hw/avr; skipped, naming
the packages, where the AVR toolchain is not installed).

The loop cannot tell which back end it drives, so both must behave the same in what the
loop and a user can see: the sample grid, the walk of a seed, refusals, and stimulation
that starts and stops when commanded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from helpers.avr_support import avr_build_or_skip

from controller.ports import SensorSource, StimCommand, Stimulator
from controller.safety import SafetyLimits
from hw.avr import cosim
from hw.board import Board, BoardRequirements
from hw.emulator import EmulatorConfig, serve_in_thread
from hw.firmware import FirmwareSettings
from sim.limb import SimulatedLimb
from sim.patient import load_patient

SEED = 5
RATE_HZ = 500.0
ON = StimCommand(0, True, 35.0, 300.0, 40.0)
#: The ODFS preset's pulse (configs/stim/odfs.toml): the recovery phase 4 times as long at
#: a quarter of the current, here with a 50 us interphase gap.
SHAPED_ON = StimCommand(0, True, 35.0, 300.0, 40.0, 50.0, 4.0)


@dataclass
class Backend:
    """One back end under test, how to get its ground truth afterwards, and how finely
    its sensors report the limb's values: gyro step (rad/s) and scale error (relative),
    heel force step (N)."""

    name: str
    device: Any
    truth_after_close: Any
    gyro_step_rad_s: float = 0.0
    gyro_scale_error: float = 0.0
    force_step_n: float = 0.0

    def gyro_matches(self, exact: float, reported: float) -> bool:
        return abs(exact - reported) <= (
            self.gyro_step_rad_s / 2 + self.gyro_scale_error * abs(exact) + 1e-12
        )


def simulated() -> Iterator[Backend]:
    limb = SimulatedLimb(load_patient("moderate"), RATE_HZ, 10.0, SEED)

    def truth(samples: int) -> dict[str, np.ndarray]:
        limb.close()
        return {k: v[:samples] for k, v in limb.truth().items()}

    yield Backend("simulated limb", limb, truth)


def over_the_emulator() -> Iterator[Backend]:
    # A 400 ms board timeout: a loaded test machine may pause this process.
    emulator, finish = serve_in_thread(
        EmulatorConfig(seed=SEED, board=FirmwareSettings(comm_timeout_ms=400))
    )
    board = Board(emulator.path, BoardRequirements(SafetyLimits(), RATE_HZ))
    board.connect()

    def truth(samples: int) -> dict[str, np.ndarray]:
        board.close()
        return board.truth(samples)[0]

    try:
        yield Backend("board over the emulator", board, truth,
                      gyro_step_rad_s=math.radians(2000.0 / 32768.0), force_step_n=0.1)
    finally:
        board.close()
        finish()


def over_simavr() -> Iterator[Backend]:
    """The board driver against the AVR firmware in simavr: an MPU-6050 reports the
    gyro in steps of 1/16.4 deg/s (INFO says 32768 counts are 1998 deg/s), the heel
    force sensor's ADC in steps of 2 N. The board runs in its own process, as a real
    board does, so a loaded machine that pauses this one lets its stream run ahead: as
    in tests/test_hw_e2e.py, the driver's link timeout and backlog bound are a few
    hundred ms here (no check of this suite depends on them)."""
    build = avr_build_or_skip("firmware", "harness")
    simavr, finish = cosim.serve_in_thread(
        cosim.AvrBoardConfig(seed=SEED, board=cosim.AvrBoardSettings(comm_timeout_ms=400)),
        build=build,
    )
    board = Board(simavr.path, BoardRequirements(SafetyLimits(), RATE_HZ),
                  link_timeout_s=0.3, max_backlog_s=0.4)
    board.connect()

    def truth(samples: int) -> dict[str, np.ndarray]:
        board.close()
        return board.truth(samples)[0]

    try:
        yield Backend("board over the AVR firmware in simavr", board, truth,
                      gyro_step_rad_s=math.radians(1.0 / cosim.GYRO_COUNTS_PER_DPS),
                      gyro_scale_error=abs(1.0 - 1998.0 / 32768.0 * cosim.GYRO_COUNTS_PER_DPS),
                      force_step_n=cosim.FORCE_N_PER_COUNT)
    finally:
        board.close()
        finish()


BOARDS = [over_the_emulator, over_simavr]


@pytest.fixture(params=[simulated, *BOARDS], ids=["limb", "board", "avr"])
def backend(request) -> Iterator[Backend]:
    yield from request.param()


def read(device: SensorSource, n: int) -> list:
    samples = [device.read() for _ in range(n)]
    assert all(s is not None for s in samples)
    return samples


def test_implements_both_interfaces(backend):
    device = backend.device
    assert isinstance(device, SensorSource) and isinstance(device, Stimulator)
    assert device.channels >= 1
    assert device.sample_period_s == pytest.approx(1.0 / RATE_HZ)


def test_samples_lie_on_the_fixed_grid(backend):
    device = backend.device
    for k, sample in enumerate(read(device, 300)):
        assert sample.t_s == pytest.approx(k * device.sample_period_s, abs=1e-12)
        assert sample.heel_switch in (0, 1)
        assert math.isfinite(sample.gyro_rad_s) and math.isfinite(sample.heel_force_n)


def test_bad_commands_are_refused_before_anything_changes(backend):
    device = backend.device
    read(device, 5)
    for bad in (
        [ON, StimCommand(device.channels, True, 35.0, 300.0, 40.0)],
        [ON, StimCommand(0, True, math.nan, 300.0, 40.0)],
        [StimCommand(0, True, 35.0, -300.0, 40.0)],
        [ON, StimCommand(0, True, 35.0, 300.0, 40.0, -50.0)],  # negative interphase gap
        [StimCommand(0, True, 35.0, 300.0, 40.0, 0.0, 0.5)],  # recovery shorter than lead
        [StimCommand(0, True, 35.0, 300.0, 40.0, 0.0, math.inf)],
    ):
        with pytest.raises(ValueError):
            device.apply(0.01, bad)
    read(device, 100)
    assert np.nansum(backend.truth_after_close(105)["pulses"]) == 0


@pytest.mark.parametrize("command", [ON, SHAPED_ON], ids=["symmetric", "shaped"])
def test_stimulation_starts_when_commanded_and_stop_all_ends_it(backend, command):
    device = backend.device
    device.stop_all()  # safe before any command
    read(device, 10)
    device.apply(0.018, [command])
    read(device, 50)
    device.stop_all()
    device.stop_all()
    read(device, 60)
    pulses = backend.truth_after_close(120)["pulses"]
    delivered = np.flatnonzero(pulses > 0)
    assert delivered.size >= 3  # 40 Hz for 100 ms
    # The command follows sample 9: pulses from sample 10 on (11 or 12 over the link when
    # the machine is slow), none once stop_all has been obeyed.
    assert 10 <= delivered[0] <= 20
    assert delivered[-1] < 70
    assert device.read() is None  # closed: the stream has ended
    device.stop_all()  # and stop_all is still safe


@pytest.mark.parametrize("make_board", BOARDS, ids=["board", "avr"])
def test_the_same_seed_gives_the_same_walk_on_both(make_board):
    limb = next(simulated()).device
    board_backend = make_board()
    backend = next(board_backend)
    try:
        expected, got = read(limb, 600), read(backend.device, 600)
    finally:
        board_backend.close()
    for a, b in zip(expected, got, strict=True):
        assert a.t_s == pytest.approx(b.t_s, abs=1e-12)
        assert backend.gyro_matches(a.gyro_rad_s, b.gyro_rad_s)  # the sensor's resolution
        assert a.heel_switch == b.heel_switch
        assert abs(a.heel_force_n - b.heel_force_n) <= backend.force_step_n / 2 + 1e-9


@pytest.mark.parametrize("make_board", BOARDS, ids=["board", "avr"])
def test_a_shaped_pulse_train_is_delivered_alike_on_both(make_board):
    """The same schedule of shaped and symmetric commands gives the same pulses on both
    back ends: the shape changes the pulse, never when or how often it fires."""
    schedule = {20: [SHAPED_ON], 120: [ON], 220: [SHAPED_ON], 320: [StimCommand.off(0)]}
    pulses = []
    for make in (simulated, make_board):
        backends = make()
        backend = next(backends)
        device = backend.device
        try:
            for k in range(400):
                assert device.read() is not None
                if k in schedule:
                    device.apply(k / RATE_HZ, schedule[k])
            pulses.append(backend.truth_after_close(400)["pulses"])
        finally:
            backends.close()
    limb, board = pulses
    # Over the link a command may land a sample or two later on a loaded machine.
    assert abs(np.nansum(limb) - np.nansum(board)) <= 1
    assert np.nansum(limb) >= 23  # 0.6 s at 40 Hz: 24 pulses
    first_limb, first_board = np.flatnonzero(limb > 0)[0], np.flatnonzero(board > 0)[0]
    assert 0 <= first_board - first_limb <= 10
