"""``ConfigError``: a user mistake, named field by field, that the CLI turns into exit 2.

It lives apart from the pydantic models (``controller.validation``, which re-exports it)
so that what every command touches before it knows which command runs (the argument
parser, ``controller.resources``, the CLI's error handling) imports no pydantic: ``fes
--help`` stays quick (tests/test_startup.py).
"""

from __future__ import annotations


class ConfigError(Exception):
    """A user mistake in a config file or on the command line; the message says which."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def render(self) -> str:
        """Multi-line text for a terminal: the source, then one bad field per line."""
        lines = [f"invalid configuration ({self.source}):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)
