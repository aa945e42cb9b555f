"""Shared fixtures: one per back end, run through the contract suites.

``tests/test_contract_stimulator.py`` runs on every fixture registered as a stimulator,
``tests/test_contract_sensors.py`` on every one registered as a sensor source, and
compares each of those with the simulated limb sample for sample (as python-can's
back2back tests and pyserial's loop:// suite run one suite on every implementation). A
new back end joins by adding one fixture here:

    @backend(stimulator=True, sensors=False)
    def mydevice_backend() -> Iterator[Backend]:
        emulator, finish = serve_mydevice_in_thread()   # its emulator, or a scripted Link
        device = MyDevice(emulator.path)
        try:
            yield Backend("MyDevice on its emulator", device, emulator.channels_on,
                          shapes=False)
        finally:
            device.close()
            finish()

``Backend`` (``tests/helpers/backends.py``) says how to see, on the device's side, which
outputs deliver pulses, whether it delivers pulse shapes, and its ground truth if any.

openEMSstim: the board's own upstream firmware (both versions), built once per session
from ``../shared/boards/openemsstim`` (read-only: it is built under the session's
temporary directory, cached between sessions) and run on a pty. Tests that need it skip
with the reason when the folder, ``make`` or ``g++`` is missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.avr_support import avr_build_or_skip
from helpers.backends import Backend, PulseLog
from helpers.first_run import FirstRun
from helpers.first_run import first_run as run_first

from controller.bench.openems import Floors, harness_settings, measure_floors
from controller.bench.openems_harness import (
    VERSIONS,
    FirmwareProcess,
    HarnessUnavailable,
    build,
    find_folder,
)
from controller.safety import SafetyLimits
from hw.avr import cosim
from hw.board import MAX_BOARD_COMM_TIMEOUT_MS, Board, BoardRequirements
from hw.emulator import EmulatorConfig, serve_in_thread
from hw.firmware import FirmwareSettings
from hw.openems import OpenEmsStim
from sim.limb import SimulatedLimb
from sim.patient import load_patient

#: The walk every sensor back end plays: the same seed and rate on the limb and the board.
# A test run started in the background of a shell without job control (``cmd &`` in a
# script, ``nohup ... &``) inherits SIGINT ignored (POSIX), and so would every command a
# test starts: the tests that send SIGINT to a trial (Ctrl-C at start-up, a killed
# paced trial) then saw it ignored (exit 0, "stopped_by: duration"; two failures of a
# fresh-clone CI run on 7 Dec 2026). Python's own handler here makes the children start
# with SIGINT at its default, as a terminal's would.
# Likewise SIGHUP under ``nohup``: fes keeps an inherited ignored signal ignored
# (controller.interrupts.caught), so a trial whose terminal hangs up
# (tests/test_hw_e2e.py) would run on. A handler of our own (reset to the default in a
# command the test execs) keeps the test run itself alive after its terminal closes.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
    signal.signal(signal.SIGHUP, lambda signum, frame: None)

SEED = 5
RATE_HZ = 500.0

STIMULATOR_BACKENDS: list[str] = []
SENSOR_BACKENDS: list[str] = []


def backend(*, stimulator: bool, sensors: bool) -> Callable[[Callable[..., Any]], Any]:
    """Make a back-end fixture and enter it in the contract suites it belongs to."""

    def register(function: Callable[..., Any]) -> Any:
        if stimulator:
            STIMULATOR_BACKENDS.append(function.__name__)
        if sensors:
            SENSOR_BACKENDS.append(function.__name__)
        return pytest.fixture(function)

    return register


@pytest.fixture(scope="session")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """The first ``fes sim`` after an install, once per session (``helpers.first_run``):
    read by tests/test_first_run.py and tests/test_numba_fallback.py."""
    return run_first(tmp_path_factory.mktemp("first-run"))


@pytest.fixture(scope="session")
def openems_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The firmware programs by version, built once (``make`` rebuilds only what changed;
    a lock keeps two sessions from building into the same folder at once)."""
    cache = tmp_path_factory.getbasetemp().parent / "openems-build"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return build(find_folder(Path(__file__).resolve().parent), cache)
        except HarnessUnavailable as err:
            pytest.skip(f"openEMSstim firmware unavailable: {err}")


@pytest.fixture(scope="session")
def openems_floors(openems_programs, tmp_path_factory) -> dict[str, Floors]:
    """The firmware's own floors per version (``controller.bench.openems``), measured
    once per session, both versions at once (3 runs each)."""
    workdir = tmp_path_factory.mktemp("openems-floors")
    with ThreadPoolExecutor(len(VERSIONS)) as pool:
        measured = {v: pool.submit(measure_floors, openems_programs[v], workdir / v, 3)
                    for v in VERSIONS}
        return {v: future.result() for v, future in measured.items()}


@dataclass
class OpenEmsBench:
    """One firmware version running on its pty, and the driver connected to it."""

    version: str
    firmware: FirmwareProcess
    stim: OpenEmsStim


@contextlib.contextmanager
def openems_connected(program: Path, workdir: Path, version: str) -> Iterator[OpenEmsBench]:
    """The driver connected to one firmware version on its pty; afterwards the firmware
    must have lost no byte and not crashed."""
    firmware = FirmwareProcess(program, workdir)
    stim = OpenEmsStim(firmware.path, harness_settings())
    try:
        stim.connect()
        yield OpenEmsBench(version, firmware, stim)
    finally:
        stim.close()
        code = firmware.stop()
    serial = firmware.serial()
    assert not [r for r in serial if r.kind in ("rx_lost", "crash")], "bytes lost or crash"
    assert code == 0


@pytest.fixture(params=VERSIONS)
def openems(request, openems_programs, tmp_path) -> Iterator[OpenEmsBench]:
    """The openEMSstim driver connected to the real firmware (each version)."""
    with openems_connected(openems_programs[request.param], tmp_path, request.param) as bench:
        yield bench


def simulated_limb() -> Backend:
    """The simulated patient (10 s of the moderate profile's walk, two channels)."""
    limb = SimulatedLimb(load_patient("moderate"), RATE_HZ, 10.0, SEED)

    def truth(samples: int) -> dict[str, np.ndarray]:
        limb.close()
        return {k: v[:samples] for k, v in limb.truth().items()}

    def outputs_on() -> list[int]:
        return [c.channel for c in limb.commands if c.delivers]

    return Backend("simulated limb", limb, outputs_on, shapes=True,
                   truth_after_close=truth, rate_hz=RATE_HZ)


def board_over_the_emulator() -> Iterator[Backend]:
    """The board driver connected to the Python board emulator over a real pty (its
    communication timeout the longest the host accepts: a loaded test machine may pause
    this process)."""
    settings = FirmwareSettings(comm_timeout_ms=MAX_BOARD_COMM_TIMEOUT_MS)
    emulator, finish = serve_in_thread(EmulatorConfig(seed=SEED, board=settings))
    board = Board(emulator.path, BoardRequirements(SafetyLimits(), RATE_HZ))
    board.connect()

    def truth(samples: int) -> dict[str, np.ndarray]:
        board.close()
        return board.truth(samples)[0]

    try:
        yield Backend("board over the emulator", board, emulator.firmware.channels_on,
                      shapes=True, truth_after_close=truth, rate_hz=RATE_HZ,
                      gyro_step_rad_s=math.radians(2000.0 / 32768.0), force_step_n=0.1)
    finally:
        board.close()
        finish()


@backend(stimulator=True, sensors=True)
def limb_backend() -> Backend:
    return simulated_limb()


@backend(stimulator=True, sensors=True)
def board_backend() -> Iterator[Backend]:
    yield from board_over_the_emulator()


@backend(stimulator=True, sensors=True)
def avr_backend(tmp_path: Path) -> Iterator[Backend]:
    """The board driver against the AVR firmware in simavr (skipped, naming the packages,
    where the AVR toolchain is missing). An MPU-6050 reports the gyro in steps of 1/16.4
    deg/s (INFO says 32768 counts are 1998 deg/s), the heel force sensor's ADC in steps
    of 2 N. The board runs in its own process, as a real board does, so a loaded machine
    that pauses this one lets its stream run ahead: as in tests/test_hw_e2e.py, the
    driver's link timeout and backlog bound are a few hundred ms here. Its outputs are
    seen on the simulated pins: the channels whose phase lines the harness logged a pulse
    on within the last 50 ms (a 40 Hz train pulses every 25 ms)."""
    build = avr_build_or_skip("firmware", "harness")
    log = tmp_path / "avr-board.jsonl"
    simavr, finish = cosim.serve_in_thread(
        cosim.AvrBoardConfig(seed=SEED, log_pulses=True,
                             board=cosim.AvrBoardSettings(comm_timeout_ms=400)),
        log=log, build=build,
    )
    board = Board(simavr.path, BoardRequirements(SafetyLimits(), RATE_HZ),
                  link_timeout_s=0.3, max_backlog_s=0.4)
    board.connect()

    def truth(samples: int) -> dict[str, np.ndarray]:
        board.close()
        return board.truth(samples)[0]

    try:
        yield Backend("board over the AVR firmware in simavr", board,
                      PulseLog(log, within_s=0.05).channels_on,
                      shapes=True, truth_after_close=truth, rate_hz=RATE_HZ,
                      gyro_step_rad_s=math.radians(1.0 / cosim.GYRO_COUNTS_PER_DPS),
                      gyro_scale_error=abs(1.0 - 1998.0 / 32768.0 * cosim.GYRO_COUNTS_PER_DPS),
                      force_step_n=cosim.FORCE_N_PER_COUNT)
    finally:
        board.close()
        finish()


def openems_backend(version: str) -> Callable[..., Iterator[Backend]]:
    """The back end of one openEMSstim firmware version (see ``openems``); it refuses
    pulse shapes (the TENS unit makes the pulse)."""

    def fixture(openems_programs: dict[str, Path], tmp_path: Path) -> Iterator[Backend]:
        with openems_connected(openems_programs[version], tmp_path, version) as bench:
            yield Backend(f"openEMSstim on its firmware {version}", bench.stim,
                          bench.firmware.stimulating, shapes=False)

    fixture.__name__ = f"openems_{version}_backend"
    return fixture


openems_head_backend = backend(stimulator=True, sensors=False)(openems_backend("head"))
openems_aa7f198_backend = backend(stimulator=True, sensors=False)(openems_backend("aa7f198"))


@backend(stimulator=True, sensors=False)
def p24_backend() -> Iterator[Backend]:
    """The P24 driver (``hw.p24``, low level through the unmodified ``science_mode_4``
    library) against the emulated P24 on a pty (skipped where the ``sciencemode`` extra
    is not installed). Its outputs are seen as the emulator's channels that fired a
    pulse within the last 50 ms (a 40 Hz train pulses every 25 ms); a loaded machine
    may pause this process, so its keep-alive is the 2 s the tests elsewhere use."""
    pytest.importorskip("science_mode_4", reason="the sciencemode extra is not installed")
    from hw.p24.driver import P24Stimulator
    from hw.p24.emulator import serve_p24_in_thread

    emulator, finish = serve_p24_in_thread()
    device = P24Stimulator(emulator.path, BoardRequirements(SafetyLimits(), RATE_HZ),
                           liveness_s=2.0)
    try:
        device.connect()
        yield Backend("P24 on its emulator", device,
                      lambda: emulator.device.pulsing(time.monotonic(), 0.05), shapes=True)
    finally:
        device.close()
        finish()


@pytest.fixture(params=STIMULATOR_BACKENDS)
def stimulator(request: pytest.FixtureRequest) -> Backend:
    """Each back end that implements ``Stimulator``, in turn."""
    return request.getfixturevalue(request.param)


@pytest.fixture(params=SENSOR_BACKENDS)
def sensor_source(request: pytest.FixtureRequest) -> Backend:
    """Each back end that implements ``SensorSource``, in turn."""
    return request.getfixturevalue(request.param)


@pytest.fixture(params=[name for name in SENSOR_BACKENDS if name != "limb_backend"])
def other_source(request: pytest.FixtureRequest) -> Backend:
    """Each sensor source but the simulated limb, to compare with the limb."""
    return request.getfixturevalue(request.param)
