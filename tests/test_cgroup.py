"""The CPUs and memory a container's control group allows (``controller.cgroup``), in
cgroup v2 and v1: a CI pod or ``docker --cpus 2`` on a large machine."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller import cgroup


def _groups(monkeypatch, tmp_path: Path, proc: str, files: dict[str, str]) -> Path:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "proc").write_text(proc)
    monkeypatch.setattr(cgroup, "PROC_CGROUP", tmp_path / "proc")
    monkeypatch.setattr(cgroup, "ROOT", root)
    return root


def test_v2_quota_and_memory(monkeypatch, tmp_path):
    root = _groups(monkeypatch, tmp_path, "0::/ci/job\n", {
        "ci/job/cpu.max": "150000 100000\n", "ci/job/memory.max": "1073741824\n",
        "ci/job/memory.current": "73741824\n"})
    assert cgroup.cpu_quota(root) == 1.5
    assert cgroup.memory_room(root) == 1_000_000_000
    assert cgroup.usable_cpus(root) == min(2, len(os.sched_getaffinity(0)))


def test_v2_without_limits(monkeypatch, tmp_path):
    root = _groups(monkeypatch, tmp_path, "0::/\n", {
        "cpu.max": "max 100000\n", "memory.max": "max\n", "memory.current": "5\n"})
    assert cgroup.cpu_quota(root) is None and cgroup.memory_room(root) is None
    assert cgroup.usable_cpus(root) == len(os.sched_getaffinity(0))


def test_v1_in_a_container_reads_its_own_root(monkeypatch, tmp_path):
    """Docker on cgroup v1: /proc/self/cgroup names the host's path, the container sees
    its own group at the controller's root. The memory limit was not read at all."""
    root = _groups(monkeypatch, tmp_path, "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"
                   "0::/\n", {
                       "memory/memory.limit_in_bytes": "2147483648\n",
                       "memory/memory.usage_in_bytes": "147483648\n",
                       "cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert cgroup.memory_room(root) == 2_000_000_000
    assert cgroup.cpu_quota(root) == 0.5 and cgroup.usable_cpus(root) == 1


def test_v1_unlimited(monkeypatch, tmp_path):
    root = _groups(monkeypatch, tmp_path, "5:memory:/\n4:cpu,cpuacct:/\n", {
        "memory/memory.limit_in_bytes": "9223372036854771712\n",
        "memory/memory.usage_in_bytes": "1000\n",
        "cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert cgroup.memory_room(root) is None and cgroup.cpu_quota(root) is None


@given(quota=st.integers(1, 10**7), period=st.integers(1000, 10**6))
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_usable_cpus_is_the_affinity_bounded_by_the_quota(monkeypatch, tmp_path, quota, period):
    root = _groups(monkeypatch, tmp_path, "0::/\n", {"cpu.max": f"{quota} {period}\n"})
    expected = max(1, min(len(os.sched_getaffinity(0)), math.ceil(quota / period)))
    assert cgroup.usable_cpus(root) == expected


def test_a_sweep_starts_one_worker_per_cpu_of_its_quota(monkeypatch, tmp_path, capsys):
    """A sweep in a pod limited to one CPU on a bigger machine started a worker per CPU
    the machine shows (a 2-CPU quota on a 64-core node: 64 processes of some 150 MB)."""
    from controller.cli import main

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to tell the quota from the affinity")
    _groups(monkeypatch, tmp_path, "0::/\n", {"cpu.max": "100000 100000\n"})
    assert main(["sweep", "--grid", "stim.peroneal.amplitude_ma=25,30", "--duration-s", "1",
                 "--dry-run", "--out", str(tmp_path / "s")]) == 0
    assert "on 1 process(es)" in capsys.readouterr().out


def test_a_trial_is_checked_against_a_v1_memory_limit(monkeypatch, tmp_path):
    from controller.trial import memory

    _groups(monkeypatch, tmp_path, "5:memory:/docker/abc\n", {
        "memory/memory.limit_in_bytes": str(300 * 2**20), "memory/memory.usage_in_bytes": "0"})
    room, limit = memory.room_bytes()  # type: ignore[misc]
    assert limit == "its cgroup's memory limit" and room <= 300 * 2**20


def test_a_first_run_in_a_one_cpu_quota_compiles_in_one_process(monkeypatch, tmp_path):
    """A first ``fes sim`` forked its compile helper on a machine of two CPUs whose
    control group allows one: two processes sharing one CPU's quota."""
    from controller.trial import compile_ahead

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    _groups(monkeypatch, tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert compile_ahead.spare_cpu()
    _groups(monkeypatch, tmp_path, "0::/\n", {"cpu.max": "100000 100000\n"})
    assert not compile_ahead.spare_cpu()
