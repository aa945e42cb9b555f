"""Strict pydantic base for every config model, and user-facing error messages.

Every config model in the project derives from ``ConfigModel``: unknown keys are errors
(a typo must not silently fall back to a default) and models are immutable once built.
``describe_errors`` turns a ``ValidationError`` into one line per bad field that names
the field, the value given and the allowed range, which is what the CLI prints (as a
``ConfigError``, defined in ``controller.errors`` and re-exported here).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from controller.errors import ConfigError

__all__ = ["ConfigError", "ConfigModel", "describe_errors"]


class ConfigModel(BaseModel):
    """Base of all config models: no unknown keys, immutable, validated defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


_BOUND_WORDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _allowed(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    """The allowed range of the field at ``loc`` in ``model``, read from its metadata."""
    field = None
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return ""
        field = current.model_fields.get(str(part))
        if field is None:
            return ""
        current = field.annotation
    if field is None:
        return ""
    bounds = []
    for meta in field.metadata:
        for attr, word in _BOUND_WORDS.items():
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{word} {value}")
    return " and ".join(bounds)


def describe_errors(
    error: ValidationError, model: type[BaseModel] | None = None, where: str = ""
) -> list[str]:
    """One message per invalid field: dotted path, what was given, what is allowed.
    ``where`` is the path of ``model`` in a larger config (``detector.``), if any."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        path = where + ".".join(str(p) for p in loc) or "(top level)"
        given = item.get("input")
        kind = item["type"]
        if kind == "extra_forbidden":
            problems.append(f"{path}: unknown field (check the spelling)")
            continue
        if kind == "missing":
            problems.append(f"{path}: required field is missing")
            continue
        allowed = _allowed(model, loc)
        text = f"{path}: {item['msg'].lower()} (got {given!r})"
        if allowed and "greater" not in text and "less" not in text:
            text += f"; allowed: {allowed}"
        elif allowed:
            text += f"; allowed range: {allowed}"
        problems.append(text)
    return problems
