"""Shared by the tests of the AVR board (tests/test_avr_*.py): the build, once per
session, and the rule for a missing toolchain.

Without avr-gcc, avr-libc and simavr the tests skip, naming what is missing and the
packages to install. CI installs them (.ci/run) and sets ``FES_REQUIRE_AVR=1``, which
turns that skip into a failure, so the firmware's tests cannot silently stop running.
"""

from __future__ import annotations

import functools
import os

import pytest

from hw.avr import build as avr_build


@functools.cache
def _built(targets: tuple[str, ...]) -> avr_build.Build:
    return avr_build.build(targets)


def skip_unless_present(reason: str | None) -> None:
    """Nothing when ``reason`` is None; else a skip naming it, a failure under
    ``FES_REQUIRE_AVR=1``."""
    if reason is not None:
        if os.environ.get("FES_REQUIRE_AVR") == "1":
            pytest.fail(f"FES_REQUIRE_AVR=1 but {reason}")
        pytest.skip(reason)


def avr_build_or_skip(*targets: str) -> avr_build.Build:
    """The build of ``targets`` (Makefile targets), made once per test session; a skip
    (a failure under ``FES_REQUIRE_AVR=1``) when the toolchain is missing."""
    skip_unless_present(avr_build.missing())
    return _built(tuple(sorted(targets)))


@functools.cache
def _variant(name: str, defines: tuple[tuple[str, int], ...]) -> avr_build.Build:
    return avr_build.build(("firmware", "harness"), avr_build.variant_directory(name),
                           dict(defines))


def avr_variant_or_skip(name: str, **defines: int) -> avr_build.Build:
    """The firmware built with ``defines`` (test hooks the shipped build leaves at 0) and
    its harness, in a directory of their own named ``name``; skips as
    ``avr_build_or_skip``."""
    skip_unless_present(avr_build.missing())
    return _variant(name, tuple(sorted(defines.items())))
