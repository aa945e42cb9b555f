"""What ``unused_settings`` calls unread is unread: a trial with every such setting
changed writes the same samples and events as the trial without the changes.

``fes sweep`` refuses a swept key no trial reads, and ``fes sim``, ``run``, ``detect`` and
``check-config`` note a tuned setting the trial does not read (``controller.config.
unused_settings``). Those rules are written by hand beside the code that reads the
settings; a rule that called a read setting unread would refuse a researcher's sound
sweep and tell them their tuning changed nothing when it did. This runs the trial to see.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from controller.config import leaves, load_config, unused_by, unused_settings
from controller.errors import ConfigError
from controller.trial.simulated import run_simulated_trial

#: Trials whose unread settings differ: the default (shank gyro, pre-swing trigger), a
#: heel switch alone, the fused detector, stimulation off, the training mode, and a
#: preset whose channel starts at the predicted toe off and adds a calf channel, disabled.
BASES: dict[str, dict[str, Any]] = {
    "default": {},
    "heel": {"detector": {"sensor": "heel"}},
    "fused": {"detector": {"sensor": "fused"}},
    "stim-off": {"stim": {"enabled": False}},
    "training": {"stim": {"mode": "training"}},
    "predicted": {"stim": {"preset": "l300"}},
    "calf-off": {"stim": {"preset": "peroneal_calf", "channels": {"calf": {"enabled": False}}}},
}

DURATION_S = 12.0


def _set(table: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(table)
    *parents, last = path.split(".")
    at = out
    for name in parents:
        at = at.setdefault(name, {})
    at[last] = value
    return out


def _candidates(value: Any, strings: set[str]) -> list[Any]:
    """Other values of ``value``'s kind to try, nearest first."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, value * 2, 0]
    if isinstance(value, float):
        return ([value * 1.1, value * 0.9, value + 1.0, value - 1.0] if value
                else [0.1, 1.0, 10.0])
    if isinstance(value, str):
        return sorted(strings - {value})
    return []


def _changed_unread(base: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``base`` with every unread leaf it can change changed (each change kept only when
    the config stays valid and reads what it read), and the leaves changed."""
    config = load_config(overrides=base)
    unused = unused_settings(config)
    values = leaves(config.model_dump(mode="json"))
    strings = {v for v in values.values() if isinstance(v, str) and v}
    overrides = copy.deepcopy(base)
    changed: list[str] = []
    for path, value in values.items():
        if unused_by(unused, path) is None:
            continue
        for candidate in _candidates(value, strings):
            trial = _set(overrides, path, candidate)
            try:
                if unused_settings(load_config(overrides=trial)) != unused:
                    continue
            except ConfigError:
                continue
            overrides = trial
            changed.append(f"{path}={candidate!r}")
            break
    return overrides, changed


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("samples.csv", "events.csv")}


@pytest.mark.parametrize("name", BASES)
def test_settings_called_unread_change_nothing_in_the_trial(name, tmp_path):
    base = _set(BASES[name], "loop.duration_s", DURATION_S)
    changed_overrides, changed = _changed_unread(base)
    assert len(changed) >= 5, changed  # the check has something to check
    plain = run_simulated_trial(load_config(overrides=base), tmp_path / "plain")
    other = run_simulated_trial(load_config(overrides=changed_overrides), tmp_path / "changed")
    assert _files(tmp_path / "changed") == _files(tmp_path / "plain"), changed
    for block in ("detector", "stim", "clearance"):
        assert other.get(block) == plain.get(block), (block, changed)
