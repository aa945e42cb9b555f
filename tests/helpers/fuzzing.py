"""Shared by the fuzz tests (tests/test_fuzz_*.py): running ``fes`` in this process, the
exit codes it may return, and writing generated values as TOML."""

from __future__ import annotations

import contextlib
import io
import math
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from hypothesis import strategies as st

from controller.cli import main
from controller.commands import common

T = TypeVar("T")

#: Every exit code ``fes`` documents (controller.commands.common, README, fes --help).
DOCUMENTED_EXITS = frozenset(
    getattr(common, name) for name in dir(common) if name.startswith("EXIT_")
)


def fes(argv: Sequence[str], cwd: Path) -> tuple[int, str]:
    """Run ``fes argv`` in this process, in folder ``cwd``: exit code and stderr.

    argparse's exits (bad usage, ``--help``) count as exit codes. Whatever else escapes
    ``main`` is a failure of the command: the property tests let it propagate."""
    err = io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, err.getvalue()


def check_outcome(code: int, stderr: str, allowed: frozenset[int] = DOCUMENTED_EXITS) -> None:
    """The properties every run must have: a documented exit code, no traceback."""
    assert "Traceback" not in stderr, stderr
    assert code in allowed, (code, stderr)


# ---- TOML ---------------------------------------------------------------------------


def toml_value(value: object) -> str:
    """``value`` as a TOML value (inline tables and arrays for nested data)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_document(data: dict[str, object]) -> str:
    """A TOML document: the scalars of each table under its ``[dotted.header]``."""
    lines: list[str] = []

    def table(node: dict[str, object], path: list[str]) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in node.items() if isinstance(v, dict)}
        if path and (scalars or not tables):
            lines.append("[" + ".".join(toml_string(p) for p in path) + "]")
        lines.extend(f"{toml_string(k)} = {toml_value(v)}" for k, v in scalars.items())
        for key, sub in tables.items():
            table(sub, [*path, key])  # type: ignore[arg-type]

    table(data, [])
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def scratch(root: Path, name: str) -> Iterator[Path]:
    """A fresh, empty folder under ``root`` for one generated case."""
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """Draw from each strategy with its weight. (``st.one_of(a, a, b)`` does not weight:
    hypothesis collapses the repeated ``a``, so it draws ``a`` and ``b`` half and half.)"""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(
        lambda chosen: chosen)
