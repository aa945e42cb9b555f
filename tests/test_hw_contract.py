"""The contract of ``SensorSource`` and ``Stimulator``, run against both back ends: the
simulated limb, and the board driver talking to the board emulator over a real pty.

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

from controller.ports import SensorSource, StimCommand, Stimulator
from controller.safety import SafetyLimits
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
    """One back end under test, and how to get its ground truth afterwards."""

    name: str
    device: Any
    truth_after_close: Any


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
        yield Backend("board over the emulator", board, truth)
    finally:
        board.close()
        finish()


@pytest.fixture(params=[simulated, over_the_emulator], ids=["limb", "board"])
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


def test_the_same_seed_gives_the_same_walk_on_both():
    limb = next(simulated()).device
    board_backend = over_the_emulator()
    board = next(board_backend).device
    try:
        expected, got = read(limb, 600), read(board, 600)
    finally:
        board_backend.close()
    lsb = math.radians(2000.0 / 32768.0)
    for a, b in zip(expected, got, strict=True):
        assert a.t_s == pytest.approx(b.t_s, abs=1e-12)
        assert abs(a.gyro_rad_s - b.gyro_rad_s) <= lsb / 2 + 1e-12  # wire quantisation
        assert a.heel_switch == b.heel_switch
        assert abs(a.heel_force_n - b.heel_force_n) <= 0.05 + 1e-9


def test_a_shaped_pulse_train_is_delivered_alike_on_both():
    """The same schedule of shaped and symmetric commands gives the same pulses on both
    back ends: the shape changes the pulse, never when or how often it fires."""
    schedule = {20: [SHAPED_ON], 120: [ON], 220: [SHAPED_ON], 320: [StimCommand.off(0)]}
    pulses = []
    for make in (simulated, over_the_emulator):
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
