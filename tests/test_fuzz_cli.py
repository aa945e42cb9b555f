"""Fuzzing the command line: generated argument lists for every ``fes`` subcommand, run in
this process (``controller.cli.main``, stderr captured).

Each subcommand's options get values from pools of good, borderline and bad ones
(numbers beyond their ranges, nan, words where numbers go, paths that are missing, files
that are not what they should be), in any order, repeated, with stray tokens. What is
kept out: runs that would last (long trials, an emulator serving for ever: its serving
loop returns at once here, after its options and pty were set up), unwritable output
folders (issue 13 item 9's output part, the ``trialio`` branch's) and ports that would
wait seconds for a board. Properties: the exit code is one ``fes`` documents, and no
traceback is printed. The default run is a fixed (derandomized) sample of 120 command
lines, about 20 s; ``-m slow`` draws 10,000 afresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from helpers.fuzzing import check_outcome, fes, scratch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.resources import available
from hw.emulator import BoardEmulator

NUMBERS = st.sampled_from(["0", "1", "-1", "0.5", "1e9", "-1e9", "nan", "inf", "-inf", "abc",
                           "", "1,5", "0x10", "1e-320", "99999999999999999999", "2000",
                           "100", "500", "3"])
NAMES = st.sampled_from([*available("patients"), *available("stim"), "nobody", "", "..",
                         "a" * 300, "/nonexistent/x.toml", "x.toml", "-", "--"])
#: Trial lengths that end quickly, and some that are refused.
SHORT = st.sampled_from(["0.3", "0.5", "1", "0", "-1", "nan", "inf", "1e9", "86401", "x"])
PORTS = st.sampled_from(["/dev/nonexistent-fes", "socket://127.0.0.1:1", "", "COM3",
                         "rfc2217://", "socket://", "/dev/null", "/tmp", "/proc/self/status"])
#: Counts of a sweep: small ones that run at once, and refused ones.
COUNTS = st.sampled_from(["0", "1", "2", "-1", "x", "nan", "1e9", "1000000000", ""])
SCHEDULERS = st.sampled_from(["garbage", "tcp://", "http://x", "a:b", "tcp://host:port", ""])
GRIDS = st.sampled_from([
    "stim.peroneal.amplitude_ma=30,35", "stim.peroneal.amplitude_ma=30,30", "sim.patient=mild",
    "sim.patient=nobody", "sim.seed=1,2", "loop.duration_s=0.3", "no.such.key=1",
    "stim.peroneal.amplitude_ma", "=1", "a..b=1", "safety.max_amplitude_ma=999",
    "stim.peroneal.ramp_up_ms=0,50",
])
RANDOMS = st.sampled_from([
    "stim.peroneal.amplitude_ma=20:30", "detector.gyro.shank.peak_average_strides=2:5",
    "stim.peroneal.amplitude_ma=30:20", "x=1:2", "stim.peroneal.amplitude_ma=a:b", "k",
])
REQUIRES = st.sampled_from(["clearance.toe_drag_events<=2", "stopped_by==duration",
                            "no.such.figure>1", "strides>=1000", "garbage", "stim.trains>"])
OBJECTIVES = st.sampled_from(["clearance.toe_drag_events", "max:strides", "nope", "", ","])
JUNK = st.sampled_from(["--", "-x", "--bogus", "extra", "--out", "=", "-", "--help"])


def options(table: dict[str, st.SearchStrategy[str] | None]) -> st.SearchStrategy[list[str]]:
    """Some of the options of ``table`` (None: a flag), any order, maybe repeated."""
    if not table:
        return st.just([])
    item = st.sampled_from(sorted(table)).flatmap(
        lambda opt: st.just([opt]) if table[opt] is None
        else table[opt].map(lambda value: [opt, value]))  # type: ignore[union-attr]
    return st.lists(item, max_size=6).map(lambda items: [t for it in items for t in it])


@st.composite
def argv(draw: st.DrawFn, files: dict[str, str]) -> list[str]:
    """One ``fes`` command line; ``files`` are paths the pools may name."""
    file = st.sampled_from(sorted(files.values()))
    tables: dict[str, dict[str, st.SearchStrategy[str] | None]] = {
        "sim": {"--config": file, "--patient": NAMES, "--duration-s": SHORT,
                "--seed": NUMBERS, "--rate-hz": NUMBERS, "--stim": NAMES, "--no-stim": None,
                "--realtime": None,
                "--cpu": NUMBERS, "--rt-priority": NUMBERS, "--spin-us": NUMBERS,
                "--require": REQUIRES},
        "run": {"--port": PORTS, "--config": file, "--stim": NAMES, "--duration-s": SHORT,
                "--link-timeout-ms": NUMBERS, "--max-lag-ms": NUMBERS, "--no-status": None},
        "board-emulator": {
            "--patient": NAMES, "--seed": NUMBERS, "--walk-s": NUMBERS, "--speed": NUMBERS,
            "--channels": NUMBERS, "--rate-hz": NUMBERS, "--max-amplitude-ma": NUMBERS,
            "--max-pulse-width-us": NUMBERS, "--max-frequency-hz": NUMBERS,
            "--max-on-time-ms": NUMBERS, "--comm-timeout-ms": NUMBERS,
            "--max-interphase-gap-us": NUMBERS, "--max-anodic-width-ratio": NUMBERS,
            "--protocol-version": NUMBERS, "--firmware": st.sampled_from(
                ["1.1.0", "1.0.0", "x", "1.2", "256.0.0", ""]),
            "--board-id": NUMBERS, "--status-period-ms": NUMBERS, "--no-truth": None,
            "--drop": NUMBERS, "--corrupt": NUMBERS, "--duplicate": NUMBERS,
            "--delay": NUMBERS, "--delay-ms": NUMBERS,
            "--fault-direction": st.sampled_from(["tx", "rx", "both", "up"]),
            "--stall-at-s": NUMBERS, "--stall-s": NUMBERS, "--unplug-at-s": NUMBERS,
            "--samples-stop-at-s": NUMBERS, "--index-restart-at-s": NUMBERS,
            "--garbage-at-s": NUMBERS, "--log": st.just(files["log"]),
            "--link": st.sampled_from([files["trial"], files["fresh link"]]),
        },
        "ports": {"--all": None, "--probe": None},
        "sweep": {"--config": file, "--grid": GRIDS, "--random": RANDOMS, "--samples": COUNTS,
                  "--sample-seed": NUMBERS, "--patients": st.sampled_from(
                      ["mild,severe", "nobody", "", "mild,mild", ","]),
                  "--seeds": COUNTS, "--duration-s": SHORT, "--workers": COUNTS,
                  "--scheduler": SCHEDULERS, "--objective": OBJECTIVES,
                  "--require": REQUIRES, "--summaries-only": None, "--dry-run": None},
        "report": {"--objective": OBJECTIVES, "--over": st.sampled_from(
            ["sim.seed", "a,b,c", "", "stim.peroneal.amplitude_ma"])},
        "detect": {"--input": file, "--config": file, "--sensor": st.sampled_from(
                       ["gyro", "heel", "fused", "x"]),
                   "--placement": st.sampled_from(["shank", "foot", "hand"]),
                   "--rate-hz": NUMBERS, "--gyro-column": st.sampled_from(
                       ["gyro_rad_s", "time_s", "", "nope"]),
                   "--gyro-units": st.sampled_from(["rad/s", "deg/s", "rpm"]),
                   "--invert": None, "--heel-column": st.sampled_from(
                       ["heel_switch", "heel_force_n", "nope"]),
                   "--heel-threshold-n": NUMBERS, "--truth": file,
                   "--tolerance-ms": NUMBERS},
        "check-config": {},
    }
    command = draw(st.sampled_from(sorted(tables)))
    args = [command, *draw(options(tables[command]))]
    if command == "ports" and "--probe" in args:
        args = [a for a in args if a != "--all"]  # never HELLO every port of the machine
        args += draw(st.lists(PORTS.filter(lambda p: not p.startswith("socket://127")),
                              max_size=2))
    if command == "check-config":
        args += draw(st.lists(file, max_size=2))
    if command == "report":
        args.append(draw(st.sampled_from([files["trial dir"], files["empty dir"],
                                          files["missing"], files["config"]])))
    if command == "detect" and draw(st.booleans()):
        args += ["--output", files["output"]]
    if command == "sweep" and "--workers" not in args and "--scheduler" not in args:
        args += ["--workers", "1"]  # not a process per CPU for every generated sweep
    if command in ("sim", "run", "sweep", "report"):
        args += ["--out", files["out"]]
    if draw(st.integers(0, 5)) == 0:
        args.insert(draw(st.integers(0, len(args))), draw(JUNK))
    return args


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Iterator[dict[str, str]]:
    """Paths the generated command lines name: good and bad inputs, fresh outputs."""
    root = tmp_path_factory.mktemp("cli")
    trial = root / "trial"
    code, err = fes(["sim", "--duration-s", "2", "--out", str(trial)], root)
    assert code == 0, err
    config = root / "config.toml"
    config.write_text("[loop]\nduration_s = 0.5\n")
    (root / "bad.toml").write_bytes(b"\xff[loop")
    (root / "empty").mkdir()
    yield {
        "trial": str(trial / "samples.csv"), "trial dir": str(trial), "config": str(config),
        "bad": str(root / "bad.toml"), "empty dir": str(root / "empty"),
        "missing": str(root / "missing"), "events": str(trial / "events.csv"),
        "log": str(root / "board.jsonl"), "fresh link": str(root / "link"),
        "output": str(root / "events-out.csv"), "out": str(root / "out"),
        "dev": "/dev/zero",
    }


def check_command_line(root: Path, args: list[str]) -> int:
    with scratch(root, "cwd") as cwd, mock.patch.object(BoardEmulator, "run",
                                                        lambda self, stop=None: "stopped"):
        code, err = fes(args, cwd)
    check_outcome(code, err)
    return code


def test_every_subcommand_takes_any_command_line(files):
    root = Path(files["out"]).parent
    codes: list[int] = []

    @settings(max_examples=120, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(argv(files))
    def run(args):
        codes.append(check_command_line(root, args))

    run()
    assert {0, 2} <= set(codes)


@pytest.mark.slow
def test_10000_command_lines(files):
    root = Path(files["out"]).parent
    codes: list[int] = []

    @settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(argv(files))
    def run(args):
        codes.append(check_command_line(root, args))

    run()
    print(f"\ncli fuzz: cases tried {len(codes)}, exit codes "
          f"{ {c: codes.count(c) for c in sorted(set(codes))} }, failures 0")
    assert len(codes) >= 10_000
