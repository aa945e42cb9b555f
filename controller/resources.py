"""Finding and reading the shipped TOML files in ``configs/``.

``configs/`` is installed as package data (a data-only package), so the
same lookup works from a checkout, an editable install and a wheel. A name such as
``severe`` is looked up in ``configs/<kind>/severe.toml``; anything that looks like a path
(contains a slash or ends in ``.toml``) is read as a file instead.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from controller.errors import ConfigError


def configs_root() -> Path:
    """The directory holding the shipped configs."""
    return Path(str(resources.files("configs")))


def available(kind: str) -> list[str]:
    """Names of the shipped configs of ``kind`` (e.g. ``patients``), sorted."""
    folder = configs_root() / kind
    return sorted(p.stem for p in folder.glob("*.toml"))


def resolve(kind: str, name_or_path: str) -> Path:
    """Path of a shipped config by name, or of a user file by path."""
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(name_or_path, ["file not found"])
        return path
    path = configs_root() / kind / f"{name_or_path}.toml"
    if not path.is_file():
        names = ", ".join(available(kind)) or "none"
        raise ConfigError(
            f"{kind} {name_or_path!r}", [f"no such {kind} config; available: {names}"]
        )
    return path


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning syntax errors into a ``ConfigError`` with the line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read: {exc.strerror}"]) from None
