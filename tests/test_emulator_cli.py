"""``fes board-emulator`` as a user starts it: its ``--link`` never touches a file it did
not create (issue 13 item 8)."""

from __future__ import annotations

import os
import subprocess

import pytest
from helpers.live import Process, _no_process_outlives_its_test

__all__ = ["_no_process_outlives_its_test"]  # the autouse fixture: no process outlives a test


def ended(proc: Process, timeout_s: float = 60.0) -> int:
    """The exit code, or that of SIGTERM once ``timeout_s`` has passed."""
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return proc.stop()


@pytest.mark.parametrize("kind", ["file", "symlink", "folder"])
def test_link_onto_an_existing_path_is_refused_and_the_path_kept(tmp_path, kind):
    precious = tmp_path / "thesis.tex"
    if kind == "file":
        precious.write_text("three years of work")
    elif kind == "symlink":
        (tmp_path / "target").write_text("three years of work")
        precious.symlink_to(tmp_path / "target")
    else:
        precious.mkdir()
    proc = Process("board-emulator", "--link", str(precious))
    assert ended(proc) == 2
    assert f"--link {precious}: already exists" in proc.stderr()
    assert "Traceback" not in proc.stderr()
    if kind == "folder":
        assert precious.is_dir()
    else:
        assert precious.read_text() == "three years of work"
        assert precious.is_symlink() == (kind == "symlink")


def test_link_is_removed_on_exit_only_while_it_is_still_the_emulators(tmp_path):
    link = tmp_path / "board"
    proc = Process("board-emulator", "--link", str(link))
    pty = proc.first_stdout_line()
    assert os.readlink(link) == pty
    link.unlink()
    link.write_text("the user's file, made while the emulator ran")
    assert proc.stop() == 0
    assert link.read_text() == "the user's file, made while the emulator ran"

    proc = Process("board-emulator", "--link", str(link.with_name("board2")))
    proc.first_stdout_line()
    assert proc.stop() == 0
    assert not link.with_name("board2").exists()  # its own link, removed
