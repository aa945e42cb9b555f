"""What several commands share: exit codes, a checked trial config, real-time options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from controller.config import TrialConfig, load_config

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def load_checked(path: Path | None, overrides: dict[str, Any]) -> TrialConfig:
    """A validated trial config whose patient profile also loads and validates."""
    from sim.patient import load_patient

    config = load_config(path, overrides)
    load_patient(config.sim.patient)
    return config


#: Real-time options: (option dest, ``[loop]`` field).
_REALTIME_FIELDS = (
    ("cpu", "cpu_index"), ("rt_priority", "realtime_priority"), ("spin_us", "spin_us")
)


def add_realtime_options(parser: argparse.ArgumentParser) -> None:
    """``--cpu``, ``--rt-priority``, ``--spin-us``: how a wall-clock loop keeps time."""
    parser.add_argument(
        "--cpu", type=int, metavar="N",
        help="wall clock: pin the loop thread to CPU N (loop.cpu_index; -1 no pinning)",
    )
    parser.add_argument(
        "--rt-priority", type=int, metavar="P",
        help="wall clock: run the loop thread at SCHED_FIFO priority P, 1-99 "
        "(loop.realtime_priority; 0 normal); if the OS refuses, the run says so and "
        "goes on at normal priority",
    )
    parser.add_argument(
        "--spin-us", type=float, metavar="US",
        help="wall clock: busy-wait this long before each deadline instead of sleeping "
        "(loop.spin_us, default 200)",
    )


def realtime_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The real-time options given on the command line, as ``[loop]`` fields."""
    return {
        field: getattr(args, dest)
        for dest, field in _REALTIME_FIELDS
        if getattr(args, dest) is not None
    }
