"""A config written out as commented TOML: every field with its value, range and meaning.

``configs/default.toml`` is this text for the default ``TrialConfig`` (``fes check-config
--explain`` prints it, and a test fails when the shipped file differs), so the file that
documents every field and the models that define them cannot disagree. Each table starts
with the description of the field that holds it; each key with its own description and
its allowed values, read from the field's bounds or choices.
"""

from __future__ import annotations

import json
import math
import textwrap
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

#: Width of the comment lines.
WIDTH = 88

_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
_NO_BREAK = "\u00a0"


def explain(model: BaseModel, header: str) -> str:
    """``model`` as TOML, led by ``header`` (a paragraph, wrapped into comment lines)."""
    lines = _comment(header)
    _table(model, "", lines)
    return "\n".join(lines) + "\n"


def allowed(field: FieldInfo) -> str:
    """The values ``field`` accepts, e.g. ``>= 100.0, <= 2000.0`` or ``gyro | heel``."""
    annotation = field.annotation
    if typing.get_origin(annotation) is Literal:
        return " | ".join(str(choice) for choice in typing.get_args(annotation))
    bounds = _bounds(field.metadata)
    if bounds:
        return bounds
    items = _item_bounds(annotation)
    return f"each {items}" if items else ""


def _item_bounds(annotation: Any) -> str:
    """Bounds of the items of a list or tuple (optional or not), from their annotation."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _bounds(meta for info in args[1:] for meta in getattr(info, "metadata", []))
    for arg in args:
        if found := _item_bounds(arg):
            return found
    return ""


def _bounds(metadata: typing.Iterable[Any]) -> str:
    words = []
    for meta in metadata:
        for attr, word in _BOUNDS:
            value = getattr(meta, attr, None)
            if value is not None:
                words.append(f"{word} {value}")
    return ", ".join(words)


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH - 2, initial_indent="# ", subsequent_indent="# ",
                         break_on_hyphens=False)


def _table(model: BaseModel, path: str, lines: list[str]) -> None:
    """The keys of ``model`` under ``[path]``, then its sub-tables."""
    tables: list[tuple[str, FieldInfo, Any]] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel) or _is_model_dict(field):
            tables.append((name, field, value))
            continue
        about = field.description or ""
        if limits := allowed(field):  # kept on one line: no-break spaces through the wrap
            about += " (" + limits.replace(" ", _NO_BREAK) + ")"
        lines += [line.replace(_NO_BREAK, " ") for line in _comment(about.strip())]
        lines.append(f"{name} = {_value(value)}" if value is not None else f"# {name} unset")
    for name, field, value in tables:
        sub = f"{path}.{name}" if path else name
        lines += ["", *_comment(field.description or "")]
        if isinstance(value, BaseModel):
            lines.append(f"[{sub}]")
            _table(value, sub, lines)
        elif not value:
            lines.append(f"[{sub}]")
        else:
            for key, item in value.items():
                lines.append(f"[{sub}.{key}]")
                _table(item, f"{sub}.{key}", lines)


def _is_model_dict(field: FieldInfo) -> bool:
    """True for a ``dict[str, SomeModel]`` field: a table of tables."""
    if typing.get_origin(field.annotation) is not dict:
        return False
    item = typing.get_args(field.annotation)[1]
    return isinstance(item, type) and issubclass(item, BaseModel)


def _value(value: Any) -> str:
    """A TOML literal that reads back as ``value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"no TOML literal for {value!r}")
