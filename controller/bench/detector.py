"""Benchmark of the detectors: cost per sample against the 1 kHz loop budget, and the
speed-up of the compiled kernel over the same state machine run as plain Python.

    python -m controller.bench.detector [--seconds S] [--twin-seconds S] [--repeat N]
                                        [--nrt]

The input is the simulated ``moderate`` patient walking at 1 kHz (seed 0): shank gyro,
heel switch and heel force, so every branch of the state machines is exercised. For each
detector it prints

* the compiled kernel over the whole recording (``detect_batch``: its compiled loop
  and the set-up of its arrays), per sample;
* the loop's per-sample API (``GaitDetector.process(Sample)``, Python call overhead
  included), which is what the control loop pays, per sample, and as a fraction of the
  1 ms budget of a 1 kHz loop (target: at most 1 %);
* the pure-Python twin: the very same kernel source run by the interpreter
  (``NUMBA_DISABLE_JIT=1``, in a child process), per sample, and how many times slower
  it is than the compiled kernel (target: at least 50x). Running the same source keeps
  the twin identical to the kernel by construction; the benchmark checks that both find
  the same events.

With ``--nrt`` it also times each compiled kernel as it would be with numba's runtime
(NRT) on (``controller.bench.runtime``): what compiling the kernels without the runtime
saves per sample (its reference counting of arrays; docs/decisions.md).

Timings are the best of ``--repeat`` runs (the least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from controller.bench.runtime import with_runtime
from controller.detect.config import DetectorConfig
from controller.detect.detector import GaitDetector, detect_batch
from controller.ports import Sample

RATE_HZ = 1000.0
BUDGET_S = 1.0 / RATE_HZ
DETECTORS = {
    "gyro (shank)": DetectorConfig(),
    "gyro (foot)": DetectorConfig(placement="foot"),
    "heel switch": DetectorConfig(sensor="heel"),
    "heel force": DetectorConfig(sensor="heel", heel_input="force"),
    "fused": DetectorConfig(sensor="fused"),
}


Signals = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def walk(seconds: float) -> Signals:
    """Time, gyro, heel switch and heel force of the simulated walk."""
    from sim.limb import SimulatedLimb
    from sim.patient import load_patient

    limb = SimulatedLimb(load_patient("moderate"), RATE_HZ, seconds, 0)
    rows = []
    while (sample := limb.read()) is not None:
        rows.append((sample.t_s, sample.gyro_rad_s, sample.heel_switch, sample.heel_force_n))
    t, gyro, switch, force = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    return t, gyro, switch, force


def _heel(config: DetectorConfig, switch: np.ndarray, force: np.ndarray) -> np.ndarray:
    return switch if config.heel_input == "switch" else force


def _best(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(name: str, signals: Signals, repeat: int) -> dict[str, float]:
    """Compiled kernel and loop-API cost per sample of detector ``name`` on ``signals``
    (from ``walk``), in seconds."""
    config = DETECTORS[name]
    t, gyro, switch, force = signals
    heel = _heel(config, switch, force)
    setup = config.setup()
    detect_batch(setup, t[:100], gyro[:100], heel[:100])  # compile outside the timing
    kernel = _best(repeat, lambda: detect_batch(setup, t, gyro, heel)) / t.size
    samples = [
        Sample(float(a), float(b), int(c), float(d))
        for a, b, c, d in zip(t, gyro, switch, force, strict=True)
    ]

    def loop() -> None:
        detector = GaitDetector(setup, RATE_HZ)
        for sample in samples:
            detector.process(sample)

    return {"kernel_s": kernel, "loop_s": _best(repeat, loop) / t.size}


def twin(name: str, signals: np.ndarray) -> dict[str, object]:
    """Run ``signals`` (time, gyro, switch, force rows) through detector ``name`` in a
    child process with NUMBA_DISABLE_JIT=1: the kernel source as plain Python. Returns
    its cost per sample and the events it found."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "signals.npy"
        np.save(path, signals)
        code = (
            "import json; from controller.bench import detector as bench; "
            f"print(json.dumps(bench._twin_child({name!r}, {str(path)!r})))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
    return dict(json.loads(done.stdout))


def run_events(name: str, signals: np.ndarray) -> tuple[float, list[list[float]]]:
    """Cost per sample of one batch run, and the events as [code, known, estimated]."""
    config = DETECTORS[name]
    t, gyro, switch, force = signals
    setup = config.setup()
    start = time.perf_counter()
    _, events = detect_batch(setup, t, gyro, _heel(config, switch, force))
    per_sample = (time.perf_counter() - start) / t.size
    return per_sample, [[int(e.event), e.t_known_s, e.t_est_s] for e in events]


def _twin_child(name: str, path: str) -> dict[str, object]:
    per_sample, events = run_events(name, np.load(path))
    return {"per_sample_s": per_sample, "events": events}


def _runtime_child(seconds: float, repeat: int) -> dict[str, float]:
    """(In ``with_runtime``'s child.) Each detector's compiled kernel cost per sample."""
    signals = walk(seconds)
    return {name: measure(name, signals, repeat)["kernel_s"] for name in DETECTORS}


def render_runtime(rows: Sequence[dict[str, object]], runtime: dict[str, float]) -> str:
    """The kernels' cost without and with numba's runtime, as a Markdown table."""
    lines = ["| detector | kernel ns/sample | with numba's runtime | the runtime's cost |",
             "|---|---|---|---|"]
    for row in rows:
        without, on = float(row["kernel_s"]), runtime[str(row["name"])]  # type: ignore[arg-type]
        lines.append(f"| {row['name']} | {without * 1e9:.0f} | {on * 1e9:.0f} | "
                     f"{(on - without) * 1e9:+.0f} ns |")
    return "\n".join(lines)


def same_events(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> bool:
    """Same kinds, same times to a nanosecond."""
    return len(a) == len(b) and all(
        x[0] == y[0] and abs(x[1] - y[1]) < 1e-9 and abs(x[2] - y[2]) < 1e-9
        for x, y in zip(a, b, strict=True)
    )


def render(rows: Sequence[dict[str, object]]) -> str:
    """The results as a Markdown table."""
    head = ("| detector | kernel ns/sample | loop API us/sample | loop API % of 1 kHz budget "
            "| Python twin us/sample | kernel speed-up over twin | same events |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for row in rows:
        kernel, loop, twin_s = (float(row[k]) for k in ("kernel_s", "loop_s", "twin_s"))  # type: ignore[arg-type]
        lines.append(
            f"| {row['name']} | {kernel * 1e9:.0f} | {loop * 1e6:.2f} | "
            f"{100 * loop / BUDGET_S:.2f} % | {twin_s * 1e6:.1f} | "
            f"{twin_s / kernel:.0f}x | {'yes' if row['same'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m controller.bench.detector",
        description="Per-sample cost of each detector at 1 kHz and speed-up over the same "
        "state machine as plain Python.",
    )
    parser.add_argument("--seconds", type=float, default=60.0, metavar="S",
                        help="simulated walk timed for the compiled detectors (default 60)")
    parser.add_argument("--twin-seconds", type=float, default=5.0, metavar="S",
                        help="part of it run by the pure-Python twin (default 5)")
    parser.add_argument("--repeat", type=int, default=5, metavar="N",
                        help="timing runs; the best counts (default 5)")
    parser.add_argument("--nrt", action="store_true",
                        help="also time the compiled kernels with numba's runtime on (a "
                        "child process compiles them again)")
    args = parser.parse_args(argv)
    if not (args.seconds > 0 and args.twin_seconds > 0 and args.repeat >= 1):
        parser.error("--seconds and --twin-seconds must be positive, --repeat at least 1")
    rows: list[dict[str, object]] = []
    signals = walk(args.seconds)
    part = np.array(walk(args.twin_seconds))
    for name in DETECTORS:
        row: dict[str, object] = {"name": name, **measure(name, signals, args.repeat)}
        result = twin(name, part)
        _, compiled_events = run_events(name, part)
        row["twin_s"] = result["per_sample_s"]
        row["same"] = same_events(result["events"], compiled_events)  # type: ignore[arg-type]
        rows.append(row)
    print(f"simulated walk (moderate, seed 0) at {RATE_HZ:g} Hz, {args.seconds:g} s; "
          f"twin on the first {args.twin_seconds:g} s; best of {args.repeat}")
    print(render(rows))
    if args.nrt:
        print(f"\nwith numba's runtime (NRT) on, the same walk, best of {args.repeat}")
        runtime = with_runtime("controller.bench.detector", "_runtime_child", args.seconds,
                               args.repeat)
        print(render_runtime(rows, runtime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
