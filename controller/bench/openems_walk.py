"""A recorded walk through ``fes run`` into openEMSstim's own firmware, train by train.

For each firmware version: start the firmware on its pty, run
``fes run --sensors replay:WALK --stimulator openemsstim:PTY`` as its own process, then
set each train the trial commanded (``samples.csv``: the delivered amplitude, mapped
through the unit's calibration, on the host's monotonic clock from the replay's start and
the loop's latency in ``timing.csv``) beside each train in the firmware's timeline:
onset (command to output on), offset (command to no output), the wipers it went
through; and the firmware's own log: bytes lost, garbled lines, a crash::

    python -m controller.bench.openems_walk \\
        ../shared/data/voisard_ipol_healthy_foot_imu/13-1_lf.txt \\
        --config trial.toml --build /tmp/openems-build

(``trial.toml``: ``[detector] placement = "foot"`` for a foot IMU, and ``[safety]
max_charge_rise_uc_per_s = 400``: the example unit's lowest output, 3.87 uC, is a step
from off that fes run refuses under the default 350 uC/s at 100 samples/s.) Both
versions run at once, each with its own firmware.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from controller.bench.openems import harness_settings
from controller.bench.openems_harness import (
    VERSIONS,
    FirmwareProcess,
    HarnessUnavailable,
    SerialRow,
    Train,
    build_for_bench,
    connected_at_zero,
    trains,
)
from hw.openems import OpenEmsSettings
from hw.runqueue import run_watched


@dataclass(frozen=True, slots=True)
class Commanded:
    """A train the trial commanded: start and end on the host's monotonic clock, and
    its highest intensity."""

    start_s: float
    end_s: float
    intensity: int


@dataclass(frozen=True)
class WalkRun:
    """One version's walk: ``fes run``'s exit code and stderr, its summary, the trains
    commanded and delivered, the firmware's log, and both processes' waits for a CPU."""

    version: str
    code: int
    stderr: str
    summary: dict
    commanded: list[Commanded]
    delivered: list[Train]
    lost_bytes: int
    crashed: bool
    garbled_lines: int
    connected_at_zero: list[float]
    #: The firmware process's waits for a CPU (``FirmwareProcess.waits``) and
    #: ``fes run``'s threads' (``hw.runqueue.WaitWatch``).
    waits: list[dict]
    #: The firmware's serial log.
    serial: list[SerialRow]

    def latencies_ms(self) -> tuple[list[float], list[float]]:
        """Onset and offset of each delivered train after its command (ms), in order."""
        pairs = list(zip(self.commanded, self.delivered, strict=False))
        return ([1000.0 * (d.on_s - c.start_s) for c, d in pairs],
                [1000.0 * (d.zero_s - c.end_s) for c, d in pairs])


def settings_file(settings: OpenEmsSettings, folder: Path) -> Path:
    """``settings`` as a TOML file for ``fes run --stimulator-settings``."""
    path = folder / "openemsstim.toml"
    lines = [f"{name} = {json.dumps(value)}" for name, value in settings.model_dump().items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def commanded_trains(out: Path, settings: OpenEmsSettings) -> list[Commanded]:
    """The trains in a trial's ``samples.csv``: where the delivered amplitude maps to an
    intensity above 0, dated on the host's monotonic clock (the replay's start from the
    summary, plus the sample's time and the loop's latency to the stimulator)."""
    summary = json.loads((out / "summary.json").read_text())
    start = summary["board"]["link"]["replay_start_monotonic_s"]
    with (out / "samples.csv").open() as s, (out / "timing.csv").open() as t:
        rows = list(zip(csv.DictReader(s), csv.DictReader(t), strict=True))
    cal = settings.calibration
    found: list[Commanded] = []
    since, peak = None, 0
    for sample, timing in rows:
        at = start + float(sample["time_s"]) + float(timing["latency_us"]) / 1e6
        intensity = cal.intensity(float(sample["amplitude_ma"]))
        if intensity and since is None:
            since, peak = at, intensity
        elif intensity:
            peak = max(peak, intensity)
        elif since is not None:
            found.append(Commanded(since, at, peak))
            since = None
    return found


def replay_walk(
    program: Path, workdir: Path, walk: Path, config: Path | None,
    settings: OpenEmsSettings, extra: Sequence[str] = (),
) -> WalkRun:
    """Run the walk through ``fes run`` into ``program``'s firmware and compare."""
    workdir.mkdir(parents=True, exist_ok=True)
    firmware = FirmwareProcess(program, workdir)
    out = workdir / "out"
    command = [sys.executable, "-m", "controller.cli", "run", "--no-status",
               "--sensors", f"replay:{walk}", "--stimulator", f"openemsstim:{firmware.path}",
               "--stimulator-settings", str(settings_file(settings, workdir)),
               "--out", str(out), *extra]
    if config is not None:
        command += ["--config", str(config)]
    try:
        code, stderr, host_waits = run_watched(command, 600.0)
    finally:
        crashed = firmware.returncode not in (None, 0)
        firmware.stop()
    serial = firmware.serial()
    changes = firmware.timeline()
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json"
                                                                 ).is_file() else {}
    commanded = commanded_trains(out, settings) if summary else []
    first = commanded[0].start_s - 0.1 if commanded else 0.0
    return WalkRun(
        version=program.name.removeprefix("openems_fw_"),
        code=code,
        stderr=stderr,
        summary=summary,
        commanded=commanded,
        delivered=[t for t in trains(changes, 0) if t.on_s > first],
        lost_bytes=sum(1 for r in serial if r.kind == "rx_lost"),
        crashed=crashed or any(r.kind == "crash" for r in serial),
        garbled_lines=sum(1 for r in serial if r.kind == "rx_line_timeout"),
        connected_at_zero=connected_at_zero(changes, 0),
        waits=firmware.waits() + host_waits,
        serial=serial,
    )


def replay_both(
    programs: dict[str, Path], workdir: Path, walk: Path, config: Path | None,
    settings: OpenEmsSettings,
) -> dict[str, WalkRun]:
    """``replay_walk`` on every version at once."""
    with ThreadPoolExecutor(len(programs)) as pool:
        running = {v: pool.submit(replay_walk, p, workdir / v, walk, config, settings)
                   for v, p in programs.items()}
        return {v: future.result() for v, future in running.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.openems_walk", description=__doc__.split("\n\n")[0])
    parser.add_argument("walk", type=Path, help="the recording (as fes run --sensors replay:)")
    parser.add_argument("--config", type=Path, help="trial config for fes run")
    parser.add_argument("--build", type=Path, help="build directory (default: a temporary one)")
    parser.add_argument("--versions", nargs="+", choices=VERSIONS, default=list(VERSIONS))
    args = parser.parse_args(argv)
    try:
        workdir, programs = build_for_bench("openems-walk-", args.build)
    except HarnessUnavailable as err:
        print(f"openEMSstim walk: {err}")
        return 2
    runs = replay_both({v: programs[v] for v in args.versions}, workdir, args.walk,
                       args.config, harness_settings())
    for version, run in runs.items():
        onsets, offsets = run.latencies_ms()
        print(f"{version}: fes run exit {run.code}, {len(run.commanded)} trains commanded, "
              f"{len(run.delivered)} delivered; bytes lost {run.lost_bytes}, garbled lines "
              f"{run.garbled_lines}, crashed {run.crashed}; connected at no output "
              f"{len(run.connected_at_zero)} times")
        said = [line for line in run.stderr.splitlines() if line and not line.startswith("t ")]
        if run.code != 0 and said:
            print(f"  fes run said: {said[-1]}")
        for name, values in (("onset", onsets), ("offset", offsets)):
            if values:
                print(f"  {name:>6} ms: median {statistics.median(values):6.1f}  min "
                      f"{min(values):6.1f}  max {max(values):6.1f}")
        print(f"  link: {run.summary.get('board', {}).get('link')}")
    print(f"firmware logs and trial files: {workdir}/<version>/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
