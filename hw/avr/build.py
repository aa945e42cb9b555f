"""Building the AVR board from source: the firmware, its simavr harness, the core tests.

Everything is built by ``hw/avr/Makefile`` into a build directory, never into the source
tree: ``$FES_AVR_BUILD_DIR`` if set, else ``build/avr`` at the top of a checkout, else
the user's cache. Builds are incremental (make) and serialised by a lock file, so tests
and commands running at once share one build.

The toolchain comes from Debian packages (``gcc-avr avr-libc simavr libsimavr-dev``);
``missing`` names what is absent, so that the tests and the CLI can say so instead of
failing obscurely. ``make flash`` and ``make eeprom`` need avrdude as well; the tests of
them (tests/test_avr_flash.py) run Arduino's own Mega 2560 bootloader, read from the
installed ``arduino-core-avr`` package (``flash_missing`` names what they lack).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
#: What the build needs, and the Debian package that provides it.
TOOLS = {"make": "make", "cc": "gcc", "avr-gcc": "gcc-avr", "avr-objcopy": "binutils-avr",
         "avr-size": "binutils-avr"}
FILES = {
    Path("/usr/lib/avr/include/avr/io.h"): "avr-libc",
    Path("/usr/include/simavr/sim_avr.h"): "libsimavr-dev",
}
LIBRARY = "libsimavr.so"
LIBRARY_PACKAGE = "libsimavr-dev"
INSTALL_HINT = "apt-get install gcc-avr avr-libc avrdude simavr libsimavr-dev arduino-core-avr"
#: Arduino's STK500v2 bootloader of the Mega 2560 (GPL-2), as Debian's arduino-core-avr
#: installs it: the one a Mega leaves the factory with, which ``make flash`` talks to.
MEGA2560_BOOTLOADER = Path(
    "/usr/share/arduino/hardware/arduino/avr/bootloaders/stk500v2/stk500boot_v2_mega2560.hex"
)


class BuildError(RuntimeError):
    """The toolchain is missing, or the build failed (with make's output)."""


@dataclass(frozen=True, slots=True)
class Build:
    """Paths of what was built."""

    directory: Path

    @property
    def firmware_elf(self) -> Path:
        """The firmware as simavr loads it (and avr-size measures it)."""
        return self.directory / "firmware.elf"

    @property
    def firmware_hex(self) -> Path:
        """The firmware as avrdude flashes it."""
        return self.directory / "firmware.hex"

    @property
    def harness(self) -> Path:
        """The simavr harness (``simavr-board``)."""
        return self.directory / "simavr-board"

    @property
    def core_test(self) -> Path:
        """The host test program of the firmware's portable core."""
        return self.directory / "core-test"

    @property
    def core_library(self) -> Path:
        """The portable core as a shared library, for the Python parity tests."""
        return self.directory / "libfwcore.so"


def _library_present() -> bool:
    for directory in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib",
                      "/usr/local/lib"):
        if (Path(directory) / LIBRARY).exists():
            return True
    return False


def missing() -> str | None:
    """None when the toolchain is complete, else what is missing and how to install it."""
    absent = sorted({f"{tool} ({package})" for tool, package in TOOLS.items()
                     if shutil.which(tool) is None})
    absent += sorted(f"{path} ({package})" for path, package in FILES.items()
                     if not path.exists())
    if not _library_present():
        absent.append(f"{LIBRARY} ({LIBRARY_PACKAGE})")
    if not absent:
        return None
    return f"the AVR toolchain is incomplete: missing {', '.join(absent)}; {INSTALL_HINT}"


def flash_missing() -> str | None:
    """None when ``make flash`` can be run against the Mega's own bootloader in simavr
    (avrdude and the bootloader present, the toolchain complete), else what is missing."""
    reason = missing()
    if reason is not None:
        return reason
    absent = [f"{name} ({package})" for name, package, present in (
        ("avrdude", "avrdude", shutil.which("avrdude") is not None),
        (str(MEGA2560_BOOTLOADER), "arduino-core-avr", MEGA2560_BOOTLOADER.exists()),
    ) if not present]
    if not absent:
        return None
    return f"flashing through the Mega's bootloader needs {', '.join(absent)}; {INSTALL_HINT}"


def default_directory() -> Path:
    """Where builds go (see the module docstring)."""
    configured = os.environ.get("FES_AVR_BUILD_DIR")
    if configured:
        return Path(configured)
    top = SOURCE_DIR.parent.parent
    if (top / "pyproject.toml").exists():
        return top / "build" / "avr"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "fes-timing" / "avr"


def variant_directory(name: str) -> Path:
    """Where a test variant of the firmware (``build``'s ``avr_defines``) named ``name``
    is built: beside the default build, never in it (make does not see changed flags)."""
    return default_directory().parent / f"{default_directory().name}-{name}"


def build(targets: tuple[str, ...] = ("firmware", "harness"),
          directory: Path | None = None,
          avr_defines: dict[str, int] | None = None) -> Build:
    """Run make for ``targets`` (Makefile targets) and return the paths. ``avr_defines``
    (a test variant: macros the firmware reads, such as ``PULSE_TEST_ARM_DELAY_CYCLES``)
    need a ``directory`` of their own (``variant_directory``)."""
    reason = missing()
    if reason is not None:
        raise BuildError(reason)
    if avr_defines and directory is None:
        raise BuildError("a firmware variant (avr_defines) needs a build directory of its own")
    directory = directory or default_directory()
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            ["make", "--no-print-directory", "-C", str(SOURCE_DIR), f"BUILD={directory}",
             *targets,
             *([f"AVR_EXTRA_CFLAGS={' '.join(f'-D{k}={v}' for k, v in avr_defines.items())}"]
               if avr_defines else [])],
            capture_output=True, text=True, check=False,
        )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise BuildError(f"building the AVR board failed (make {' '.join(targets)}):\n{tail}")
    return Build(directory)
