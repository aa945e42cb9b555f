"""``fes report``: PNG figures and a short report.md for a trial or a sweep folder."""

from __future__ import annotations

import argparse
import sys

from controller.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    input_path,
    output_path,
)


def _run(args: argparse.Namespace) -> int:
    from controller.outputs import output_folder, writing
    from controller.report.canvas import matplotlib_module
    from controller.report.document import REPORT_FOLDER, check_folder, make_report

    over = [k.strip() for k in args.over.split(",")] if args.over else None
    check_folder(args.folder)  # before DIR/report is made: DIR may be a typo or a file
    matplotlib_module()  # likewise: without matplotlib nothing is made
    out = output_folder(args.out or args.folder / REPORT_FOLDER)
    with writing(out):
        report = make_report(args.folder, out, args.objective, over)
    print(f"report: {report.path} ({len(report.figures)} figures)")
    if report.note is not None:
        print(f"fes report: note: {report.note}", file=sys.stderr)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fes report`` to the subcommands."""
    report = sub.add_parser(
        "report",
        help="figures (PNG) and report.md for a trial or a sweep folder",
        description="Draw the figures of a trial folder (fes sim) or a sweep folder "
        "(fes sweep) as PNG files with matplotlib and write a short report.md linking "
        "them. A trial: stride-normalised shank gyro with detected and true events, "
        "stimulation envelope against gait phase, ankle angle and toe clearance per "
        "stride, clearance and onset-error distributions. A sweep: the objective over one "
        "or two swept parameters (line or heat map), the spread over its trials, the best "
        "settings and the figures of the best setting's first trial. Needs matplotlib "
        "(pip install 'fes-timing[report]').",
        epilog=f"exit codes: {EXIT_OK} report written (a sweep that did not finish: with a "
        f"note on standard error); {EXIT_USAGE} bad usage, a folder that is neither a "
        "trial's nor a sweep's (a killed trial, without summary.json, included), a trial "
        f"on a real board, or an output that cannot be written; {EXIT_INTERRUPTED} "
        "interrupted.",
    )
    report.add_argument("folder", type=input_path, metavar="DIR", help="a trial or a sweep folder")
    report.add_argument(
        "--out", type=output_path, metavar="DIR", help="where to write (default DIR/report)"
    )
    report.add_argument(
        "--objective", metavar="NAME,...",
        help="for a sweep: figures to rank and plot (max:NAME to maximise, abs:NAME to "
        "rank closest to zero first); default: the objective the sweep was run with",
    )
    report.add_argument(
        "--over", metavar="KEY[,KEY]",
        help="for a sweep: the one or two swept parameters to plot the objective over "
        "(default: the first two that vary)",
    )
    report.set_defaults(handler=_run)
