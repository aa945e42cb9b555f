"""The ``fes`` command: builds the parser from ``controller.commands`` and runs one.

Exit codes: 0 success; 2 a usage or configuration error (the message names every bad
field and its allowed range); 130 interrupted by Ctrl-C (outputs off, files written);
``fes run`` adds 3-8 for board and link failures (``controller.commands.run``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from controller.commands import board_emulator, check_config, ports, run, sim
from controller.commands.common import EXIT_INTERRUPTED, EXIT_USAGE
from controller.validation import ConfigError

COMMANDS = (sim, check_config, run, board_emulator, ports)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fes`` and all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="fes",
        description="Drop-foot FES timing controller and simulator.",
        epilog="Exit codes: 0 ok, 2 bad usage or configuration, 130 interrupted; fes run "
        "adds 3-8 for board and link failures (see fes run --help).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fes`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as err:
        print(f"fes: {err.render()}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fes: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
