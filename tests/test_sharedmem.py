"""Shared arrays mapped ahead of a trial's loop (``controller.sharedmem.map_in_background``)."""

from __future__ import annotations

import os
import resource

import numpy as np
import pytest

from controller import sharedmem


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split(".")
    return (int(release[0]), int(release[1].split("-")[0])) >= (major, minor)


def test_mapping_in_the_background_keeps_the_numbers_of_fresh_and_reused_memory(monkeypatch):
    monkeypatch.setattr(sharedmem, "_REUSABLE", {})
    fresh = sharedmem.shared_empty(200_000)
    sharedmem.map_in_background([fresh])()
    assert not fresh.any()  # a new memory file holds zeros
    fresh[:] = np.arange(fresh.size)
    del fresh  # its file is kept for the next array of its length
    reused = sharedmem.shared_empty(200_000)
    sharedmem.map_in_background([reused.reshape(1000, 200)])()
    try:
        assert np.array_equal(reused, np.arange(reused.size))
    finally:
        del reused
        sharedmem.forget_reusable()


@pytest.mark.skipif(not _kernel_at_least(5, 14), reason="MADV_POPULATE_WRITE is Linux 5.14+")
def test_once_mapped_a_trial_writes_its_rows_without_page_faults():
    rows = sharedmem.shared_zeros(1_000_000)  # 8 MB: about 2,000 pages
    sharedmem.map_in_background([rows])()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rows[::512] = 1.0  # one write in every page
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 20


def test_only_whole_shared_arrays_are_mapped():
    rows = sharedmem.shared_zeros(4096)
    with pytest.raises(ValueError):
        sharedmem.map_in_background([rows[1:]])


def test_rows_in_reused_memory_are_mapped_without_a_thread(monkeypatch):
    monkeypatch.setattr(sharedmem, "_REUSABLE", {})
    first = sharedmem.shared_empty(200_000)
    first[:] = 7.0
    del first  # its file is kept, and mapped whole by the next array of its length
    reused = sharedmem.shared_empty(200_000).reshape(1000, 200)
    fresh = sharedmem.shared_empty(200_000)

    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a thread was started for memory mapped already")

    try:
        with monkeypatch.context() as patched:
            patched.setattr(sharedmem.threading, "Thread", no_thread)
            sharedmem.map_in_background([reused])()  # nothing to map: no thread
            with pytest.raises(AssertionError):
                sharedmem.map_in_background([reused, fresh])  # the fresh one still is
        sharedmem.map_in_background([reused, fresh])()
        assert (reused == 7.0).all() and not fresh.any()
    finally:
        del reused, fresh
        sharedmem.forget_reusable()
