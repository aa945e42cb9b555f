"""``fes check-config``: validate a trial config and the patient profile it names, or
print a config with every field explained (``--explain``, which writes
``configs/default.toml``)."""

from __future__ import annotations

import argparse
import sys

from controller.commands.common import EXIT_OK, EXIT_USAGE, input_path, load_checked

#: The paragraph that heads ``configs/default.toml``.
DEFAULT_HEADER = (
    "Default trial configuration: every field with its default value, its allowed range "
    "and what it does. Generated from the config models by `fes check-config --explain "
    "> configs/default.toml`; tests/test_config_fields.py fails when this file and the "
    "models disagree, so edit the models (their Field descriptions and bounds), not this "
    "file. A stimulation preset (stim.preset, or --stim) overrides these defaults, a "
    "--config file overrides any subset of both, and command-line options override all "
    "three. Units are in every field name. `fes check-config FILE` validates a file and "
    "names every bad field with its allowed range."
)


def default_toml() -> str:
    """The text of ``configs/default.toml``: the default config, every field explained."""
    from controller.config import TrialConfig
    from controller.explain import explain

    return explain(TrialConfig(), DEFAULT_HEADER)


def _run(args: argparse.Namespace) -> int:
    if args.file is None:
        if not args.explain:
            print("fes check-config: give a FILE to validate, or --explain", file=sys.stderr)
            return EXIT_USAGE
        print(default_toml(), end="")
        return EXIT_OK
    config = load_checked(args.file, {})
    if args.explain:
        from controller.explain import explain

        header = (
            f"The configuration of {args.file} (over configs/default.toml and the preset it "
            "names, validated): every field with its value, its allowed range and what it "
            "does."
        )
        print(explain(config, header), end="")
        return EXIT_OK
    print(
        f"{args.file}: valid (patient {config.sim.patient}, "
        f"{config.loop.sample_rate_hz:g} Hz, {config.loop.duration_s:g} s)"
    )
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fes check-config`` to the subcommands."""
    check = sub.add_parser(
        "check-config",
        help="validate a trial config and its patient profile, or explain every field",
        description="Validate a trial config (merged over configs/default.toml) and the "
        "patient profile it names; every bad field is listed with its allowed range. "
        "With --explain, print the config as TOML instead, every field with its value, "
        "allowed range and meaning (without FILE: the defaults, which is "
        "configs/default.toml).",
        epilog="exit codes: 0 valid (notes on standard error name settings the trial "
        "would not read); 2 invalid (every bad field named with its allowed range), "
        "unreadable, or no FILE without --explain; 130 interrupted.",
    )
    check.add_argument(
        "file", type=input_path, metavar="FILE", nargs="?", help="TOML config to validate"
    )
    check.add_argument(
        "--explain", action="store_true",
        help="print the config (FILE's, or the defaults) as commented TOML: every field "
        "with its value, allowed range and meaning",
    )
    check.set_defaults(handler=_run)
