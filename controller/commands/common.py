"""What several subcommands share: exit codes and loading a checked trial config."""

from __future__ import annotations

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
