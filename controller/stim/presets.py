"""Stimulation presets: the settings of a clinical device, by name, as a config layer.

A preset is a TOML file in ``configs/stim/`` holding a subset of the ``[stim]`` section
(without the ``stim.`` prefix), with the parameter ranges of the device it imitates in
its comments. ``stim.preset = "odfs"`` in a config, or ``fes sim --stim odfs``, applies
it between ``configs/default.toml`` and the user's own file, so anything the user sets
still wins. A value with a ``/`` or ending in ``.toml`` is read as a file path.
"""

from __future__ import annotations

from typing import Any

from controller.resources import load_toml, resolve
from controller.validation import ConfigError


def preset_layer(name: object) -> tuple[str, dict[str, Any]] | None:
    """``(label, stim settings)`` of the preset ``name``; None when no preset is named.

    A name that is not a string is left for validation to report.
    """
    if not isinstance(name, str) or not name:
        return None
    path = resolve("stim", name)
    data = load_toml(path)
    if "preset" in data:
        raise ConfigError(str(path), ["preset: a preset cannot name another preset"])
    return f"stim preset {name}", data
