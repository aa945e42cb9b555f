"""``fes check-config``: validate a trial config and the patient profile it names."""

from __future__ import annotations

import argparse
from pathlib import Path

from controller.commands.common import EXIT_OK, load_checked


def _run(args: argparse.Namespace) -> int:
    config = load_checked(args.file, {})
    print(
        f"{args.file}: valid (patient {config.sim.patient}, "
        f"{config.loop.sample_rate_hz:g} Hz, {config.loop.duration_s:g} s)"
    )
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fes check-config`` to the subcommands."""
    check = sub.add_parser(
        "check-config",
        help="validate a trial config and its patient profile",
        description="Validate a trial config (merged over configs/default.toml) and the "
        "patient profile it names; every bad field is listed with its allowed range.",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="TOML config to validate")
    check.set_defaults(handler=_run)
