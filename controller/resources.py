"""Finding and reading the shipped TOML files in ``configs/``.

``configs/`` is installed as package data (a data-only package), so the
same lookup works from a checkout, an editable install and a wheel. A name such as
``severe`` is looked up in ``configs/<kind>/severe.toml``; anything that looks like a path
(contains a slash or ends in ``.toml``) is read as a file instead.
"""

from __future__ import annotations

import functools
import os
import re
import stat
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


#: The longest name a file may have on the file systems the project runs on.
MAX_NAME_BYTES = 255
#: A config is a few kB of TOML: anything this large is not one.
MAX_CONFIG_BYTES = 1 << 20


def resolve(kind: str, name_or_path: str) -> Path:
    """Path of a shipped config by name, or of a user file by path."""
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        if not _is_file(path, name_or_path):
            raise ConfigError(name_or_path, [
                "not a regular file" if path.exists() else "file not found"])
        return path
    label = f"{kind} {_shown(name_or_path)}"
    if len(f"{name_or_path}.toml".encode()) > MAX_NAME_BYTES:
        raise ConfigError(label, [
            f"a name has at most {MAX_NAME_BYTES - 5} bytes (its file, NAME.toml, at most "
            f"{MAX_NAME_BYTES}); this one has {len(name_or_path.encode())}"])
    path = configs_root() / kind / f"{name_or_path}.toml"
    if not _is_file(path, label):
        names = ", ".join(available(kind)) or "none"
        raise ConfigError(label, [f"no such {kind} config; available: {names}"])
    return path


def _shown(text: str) -> str:
    """``text`` quoted, cut to 60 characters: a message names the input, not all of it."""
    return repr(text if len(text) <= 60 else f"{text[:57]}...")


def _is_file(path: Path, label: str) -> bool:
    """Whether ``path`` is a file; a path the system cannot even look up (a name
    longer than 255 bytes) is a ``ConfigError`` naming it."""
    try:
        return path.is_file()
    except OSError as err:
        raise ConfigError(_shown(label), [f"cannot look it up: {err.strerror} (a file "
                                          f"name has at most {MAX_NAME_BYTES} bytes)"]) from None


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a file that cannot be one (not a regular file, over
    ``MAX_CONFIG_BYTES``, not UTF-8, not TOML, numbers or nesting beyond what the parser
    takes) is a ``ConfigError`` naming the file and the problem."""
    source = str(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device: never opened
            raise ConfigError(source, ["not a regular file"])
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read: {exc.strerror}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        size = path.stat().st_size
        raise ConfigError(source, [f"{size} bytes; a config is at most {MAX_CONFIG_BYTES}"])
    try:
        text = data.decode("utf-8-sig")  # a byte order mark (some editors write one) dropped
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); TOML "
            "files are UTF-8"]) from None
    try:
        return _copied(_parsed(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError(source, ["not valid TOML: nested too deeply"]) from None
    except ValueError as exc:  # an integer beyond Python's digit limit for str -> int
        digits = re.search(r"value has (\d+) digits", str(exc))
        what = f"an integer of {digits.group(1)} digits" if digits else str(exc)
        raise ConfigError(source, [f"not valid TOML: {what}"]) from None


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> dict[str, Any]:
    """``text`` parsed as TOML, once per process for the same text (a sweep or a
    benchmark reads the same few files for every trial: parsing ``default.toml`` alone
    takes about 1 ms); callers get a copy (``_copied``)."""
    return tomllib.loads(text)


def forget_parsed() -> None:
    """Parse every TOML file anew from now on (a benchmark's first trial, as in a
    one-trial command)."""
    _parsed.cache_clear()


def _copied(value: Any) -> Any:
    """A copy of parsed TOML that shares no table or array with ``value``."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


def default_config_path() -> Path:
    """The shipped ``configs/default.toml``: every field of a trial with its default."""
    return configs_root() / "default.toml"


def config_layers(
    path: Path | None, overrides: dict[str, Any] | None
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """The shipped defaults, the layers over them (the file at ``path``, then
    ``overrides`` from the command line) and what to call the result in a message."""
    default = load_toml(default_config_path())
    layers: list[dict[str, Any]] = []
    source = "configs/default.toml"
    if path is not None:
        layers.append(load_toml(path))
        source = str(path)
    if overrides:
        layers.append(overrides)
        source += " + command line"
    return default, layers, source


def merge_tables(
    base: dict[str, Any], override: dict[str, Any], where: str = ""
) -> dict[str, Any]:
    """Deep merge of nested dicts; values of ``override`` win. A table of ``override``
    over a value of ``base`` that is not one (``loop = 5`` in a file, ``[loop]`` from an
    option) is a ``ValueError`` naming it: the bad value must not vanish under it."""
    merged = dict(base)
    for key, value in override.items():
        path = f"{where}{key}"
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_tables(merged[key], value, f"{path}.")
        elif isinstance(value, dict) and key in merged:
            raise ValueError(f"{path}: {merged[key]!r} is not a table of fields")
        else:
            merged[key] = value
    return merged


def merge_all(data: dict[str, Any], layers: list[dict[str, Any]]) -> dict[str, Any]:
    """``data`` with each of ``layers`` merged over it in turn (``merge_tables``)."""
    for layer in layers:
        data = merge_tables(data, layer)
    return data
