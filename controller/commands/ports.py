"""``fes ports``: the serial ports of this machine, and which may hold a board."""

from __future__ import annotations

import argparse
import sys

from controller.commands.common import EXIT_NO_BOARD, EXIT_NOTHING_FOUND, EXIT_OK

NO_BOARD = "no board: "


def _probe(url: str) -> str:
    """What answers HELLO on ``url``: the board's INFO in a few words, or why not."""
    from controller.safety import SafetyLimits
    from controller.trial.summary import board_text
    from hw.board import Board, BoardError, BoardRequirements, describe_info

    board = Board(url, BoardRequirements(SafetyLimits(), 500.0),
                  on_bootloader_wait=lambda text: print(f"fes ports: {text}", file=sys.stderr,
                                                        flush=True))
    try:
        info = describe_info(board.identify())
    except BoardError as err:
        return f"{NO_BOARD}{err}"
    finally:
        board.close()
    return board_text(info)


def _run(args: argparse.Namespace) -> int:
    from hw.discovery import serial_ports

    ports = serial_ports()
    listed = ports if args.all else [port for port in ports if port.bridge is not None]
    answers = []
    for port in listed:
        what = port.bridge or port.description or "unknown device"
        line = f"{port.device}  {port.usb_id}  {what}"
        if port.serial_number:
            line += f"  (serial {port.serial_number})"
        if args.probe:
            answers.append(_probe(port.device))
            line += f"\n    {answers[-1]}"
        print(line)
    for url in args.urls:
        answers.append(_probe(url))
        print(f"{url}\n    {answers[-1]}")
    if not listed and not args.urls:
        others = len(ports) - len(listed)
        plural = "s" if others != 1 else ""
        hint = f"; {others} other serial port{plural}, see --all" if others else ""
        print(f"no serial port on a known USB-serial bridge{hint}")
        return EXIT_NOTHING_FOUND
    if answers and all(answer.startswith(NO_BOARD) for answer in answers):
        # A script's `fes ports --probe PORT && fes run --port PORT` must not go on.
        print(f"no port probed holds a board ({len(answers)} probed)")
        return EXIT_NO_BOARD
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fes ports`` to the subcommands."""
    ports = sub.add_parser(
        "ports",
        help="list serial ports that may hold a board; probe them",
        description="List the serial ports on USB-serial bridges that stimulator boards "
        "use (by USB vendor and product ID), with --all every serial port. --probe says "
        "HELLO on each and shows what the board reports; URLs given are probed too.",
        epilog="exit codes: 0 ports listed (with --probe or URLs: at least one board "
        "answered); 1 no candidate port; 2 bad usage; 9 ports probed, no board answered on "
        "any.",
    )
    ports.add_argument(
        "urls", nargs="*", metavar="URL",
        help="port URLs to probe as well (a device path, socket://HOST:PORT, ...)",
    )
    ports.add_argument("--all", action="store_true", help="list every serial port")
    ports.add_argument(
        "--probe", action="store_true",
        help="send HELLO to each listed port and show the board's answer (other devices "
        "may not like unexpected bytes: probe only ports that may hold a board)",
    )
    ports.set_defaults(handler=_run)
