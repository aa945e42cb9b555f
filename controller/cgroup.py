"""What this process's control group allows: CPUs (a CFS quota) and memory, in cgroup v2
and v1.

A container or a CI pod is often limited by its control group, not by what the machine
shows: ``docker --cpus 2`` or a Kubernetes CPU limit on a 64-core node leaves
``os.sched_getaffinity`` at 64 CPUs, and a v1 memory limit is in ``memory.limit_in_bytes``,
not v2's ``memory.max``. ``fes sweep`` starts one worker per usable CPU
(``usable_cpus``: 64 processes of some 150 MB each in a 2-CPU pod before), and a trial
is checked against the memory it may use (``memory_room``, ``controller.trial.memory``;
only v2 was read before). Standard library only.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
#: Which groups this process is in.
PROC_CGROUP = Path("/proc/self/cgroup")
#: v1 reports "no limit" as a huge page-aligned number.
_NO_LIMIT_V1 = 2**62


def _own_paths(root: Path | None = None) -> dict[str, Path]:
    """The folder of this process's control group per v1 controller (``memory``,
    ``cpu``), and ``""`` for v2, from ``/proc/self/cgroup``."""
    root = root or ROOT
    found: dict[str, Path] = {}
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        relative = parts[2].lstrip("/")
        if parts[1] == "":
            found[""] = root / relative
        for controller in parts[1].split(","):
            if controller:
                folder = root / controller / relative
                # In a container (v1) the group's own folder is mounted as the root and
                # /proc/self/cgroup names it by the host's path.
                found[controller] = folder if folder.is_dir() else root / controller
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_quota(root: Path | None = None) -> float | None:
    """The CPUs the group's CFS quota allows (``2.5``), or None without a quota."""
    paths = _own_paths(root)
    if "" in paths and (text := _read(paths[""] / "cpu.max")) is not None:
        quota, _, period = text.partition(" ")
        if quota != "max" and period:
            return _ratio(quota, period)
    if "cpu" in paths:
        quota_us = _read(paths["cpu"] / "cpu.cfs_quota_us")
        period_us = _read(paths["cpu"] / "cpu.cfs_period_us")
        if quota_us is not None and period_us is not None and quota_us != "-1":
            return _ratio(quota_us, period_us)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        value = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def usable_cpus(root: Path | None = None) -> int:
    """The CPUs this process may use: its affinity, bounded by its group's CPU quota
    (rounded up), at least 1."""
    cpus = len(os.sched_getaffinity(0))
    quota = cpu_quota(root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def memory_room(root: Path | None = None) -> int | None:
    """The group's memory limit minus its usage (v2 ``memory.max`` and
    ``memory.current``, v1 ``memory.limit_in_bytes`` and ``memory.usage_in_bytes``), or
    None without a limit."""
    paths = _own_paths(root)
    for key, limit_name, usage_name in (("", "memory.max", "memory.current"),
                                        ("memory", "memory.limit_in_bytes",
                                         "memory.usage_in_bytes")):
        if key not in paths:
            continue
        limit = _read(paths[key] / limit_name)
        usage = _read(paths[key] / usage_name)
        if limit is None or usage is None or limit == "max":
            continue
        try:
            limit_bytes, usage_bytes = int(limit), int(usage)
        except ValueError:
            continue
        if limit_bytes >= _NO_LIMIT_V1:
            continue
        return limit_bytes - usage_bytes
    return None
