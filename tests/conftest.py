"""Shared fixtures.

openEMSstim: the board's own upstream firmware (both versions), built once per session
from ``../shared/boards/openemsstim`` (read-only: it is built under the session's
temporary directory, cached between sessions) and run on a pty. Tests that need it skip
with the reason when the folder, ``make`` or ``g++`` is missing.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.bench.openems import Floors, harness_settings, measure_floors
from controller.bench.openems_harness import (
    VERSIONS,
    FirmwareProcess,
    HarnessUnavailable,
    build,
    find_folder,
)
from hw.openems import OpenEmsStim


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


@pytest.fixture(params=VERSIONS)
def openems(request, openems_programs, tmp_path) -> Iterator[OpenEmsBench]:
    """The openEMSstim driver connected to the real firmware (each version); afterwards
    the firmware must have lost no byte and not crashed."""
    firmware = FirmwareProcess(openems_programs[request.param], tmp_path)
    stim = OpenEmsStim(firmware.path, harness_settings())
    try:
        stim.connect()
        yield OpenEmsBench(request.param, firmware, stim)
    finally:
        stim.close()
        code = firmware.stop()
    serial = firmware.serial()
    assert not [r for r in serial if r.kind in ("rx_lost", "crash")], "bytes lost or crash"
    assert code == 0
