"""Small tmpfs file systems for the tests of outputs that cannot be written
(``tests/test_outputs.py``) and of trials too large for their disk
(``tests/test_disk_room.py``): root only, skipped elsewhere."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` (made) with ``options`` (``size=64k``, ``ro``), for
    the block; the test is skipped where it cannot be mounted."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        _unmount(path)


def _unmount(path: Path) -> None:
    """Unmount ``path``, waiting up to 2 s while a process still holds a file there
    (``umount``: busy), then detached (``umount -l``): no mount outlives the tests, even
    one whose test failed."""
    deadline = time.monotonic() + 2.0
    while subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            subprocess.run(["umount", "-l", str(path)], check=False)
            return
        time.sleep(0.02)
