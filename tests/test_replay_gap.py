"""A replayed recording whose heel switch cells are empty for a while in stance.

The replay played an empty heel switch cell as 0 (``np.nan_to_num``): "no contact", a
heel off in the middle of stance, from which the heel and fused detectors entered
pre-swing and stimulation started (at 2.602 s in the gap of 2.58-2.66 s below). An empty
cell is a lost sample of that sensor, as an empty gyroscope cell is: the sample reaches
the loop with a NaN heel switch, the detector holds its phase (as ``fes detect`` reads
the cell), the watchdog counts no valid sensor sample, ``samples.csv`` keeps the cell
empty, and a gap beyond ``safety.sensor_timeout_ms`` ends the trial in the watchdog's
sensor timeout (named in the summary), as a live sensor that lost those samples would.

The trial's detected events are ``fes detect``'s on the same file, event for event, with
the gyroscope's mounting check off in the trial (``fes detect`` checks the sign over the
whole file and reports every stride; a trial with the check holds the gyroscope's
events of its first three strides, so the fused detector's first toe offs and mid
swings differ), and up to its end (a sensor timeout ends
the trial; ``fes detect`` reads on).

The watchdog's valid sample follows the sensors the detector reads
(docs/safety.md): the heel and fused detectors read the switch, so its gap ends their
trial; the gyroscope detector does not, and walks on through the same gap with the
trains it has with the cells full (before: a sensor timeout 30 ms into the gap, no train
after it). A recording with a heel sensor and no gyroscope (a heel switch, or a force
sensor as in gaitpdb) plays through with the heel detector (before: a sensor timeout at
32 ms, no train); with the gyroscope detector, which reads what the file lacks, it still
ends in the sensor timeout.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from helpers.live import QuietStimulator
from helpers.shared_machine import RUNS, SHARED_MACHINE_LIMITS

from controller.cli import main
from controller.config import load_config
from controller.trial import live
from controller.trial.backends import BackendSpec, SplitBackend
from controller.trial.recording import load_recording
from controller.trial.simulated import run_simulated_trial
from controller.trial.summary import render_text
from hw.replay import ReplaySource

SPEED = 20.0
#: The simulated walk's third stance lasts 2.222-2.764 s; the train of the swing before
#: it has ramped down by 2.44 s, and ``stim.min_off_ms`` (100 ms) later a trigger counts.
LONG_GAP_S = (2.58, 2.66)  # 80 ms: beyond the 30 ms sensor timeout
SHORT_GAP_S = (3.80, 3.81)  # 10 ms (5 samples) in the stance of 3.450-3.994 s
DURATION_S = 8.0


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Path:
    """A simulated walk of 8 s at 500 Hz with its heel switch (fes sim --seed 3)."""
    folder = tmp_path_factory.mktemp("walk")
    run_simulated_trial(load_config(None, {"loop": {"duration_s": DURATION_S},
                                           "sim": {"seed": 3}}), folder / "sim")
    return folder / "sim" / "samples.csv"


def gapped(walk: Path, path: Path, gap_s: tuple[float, float]) -> Path:
    """``walk``'s time, gyroscope and heel switch, the switch's cells empty in ``gap_s``
    (all of them in stance: contact)."""
    with walk.open() as src, path.open("w") as out:
        out.write("time_s,gyro_rad_s,heel_switch\n")
        for row in csv.DictReader(src):
            heel = row["heel_switch"]
            if gap_s[0] - 1e-9 <= float(row["time_s"]) < gap_s[1] - 1e-9:
                assert heel == "1"
                heel = ""
            out.write(f"{row['time_s']},{row['gyro_rad_s']},{heel}\n")
    return path


def replay(monkeypatch, walk: Path, out: Path, gap_s: tuple[float, float], sensor: str
           ) -> tuple[Path, live.LiveResult, Path]:
    """``fes run --sensors replay:`` of ``walk`` with its heel cells empty in ``gap_s``,
    with detector ``sensor``, against a test stimulator, ``SPEED`` times faster than
    real time: the recording, the trial and its folder."""
    recording = gapped(walk, out / "gap.csv", gap_s)
    return (recording, *replay_file(monkeypatch, recording, out, {"sensor": sensor}))


def replay_file(monkeypatch, recording: Path, out: Path, detector: dict[str, str]
                ) -> tuple[live.LiveResult, Path]:
    """``fes run --sensors replay:RECORDING`` with ``detector`` (the ``[detector]``
    fields), as ``replay``: the trial and its folder. A run that a loaded machine kept
    off the CPU past a wall-clock timeout (any fault but the sensor timeout) is run
    again."""

    def open_backend(spec: BackendSpec) -> SplitBackend:
        rec = load_recording(recording)
        source = ReplaySource(rec.t_s, rec.period_s, rec.gyro_rad_s, rec.heel_switch,
                              rec.heel_force_n, clock=lambda: time.monotonic() * SPEED,
                              sleep=lambda s: time.sleep(s / SPEED))
        return SplitBackend(source, QuietStimulator())

    monkeypatch.setattr(live, "open_backend", open_backend)
    # No mounting check: fes detect checks the gyroscope's sign over the whole file and
    # reports every stride; a trial holds the gyroscope's events of its first strides.
    unchecked = {"shank": {"mount_check_strides": 0}}
    config = load_config(None, {"loop": {"duration_s": DURATION_S},
                                "safety": SHARED_MACHINE_LIMITS,
                                "detector": detector | {"gyro": unchecked}})
    for k in range(RUNS):
        folder = out / f"run{k}"
        result = live.run_live_trial(config, BackendSpec("openemsstim", "test", recording),
                                     folder)
        rules = {i["rule"] for i in result.summary["watchdog"]["interventions"]}
        if result.stopped_by != "watchdog_fault" or "sensor_timeout_ms" in rules:
            break
    return result, folder


def columns_of(walk: Path, path: Path, columns: tuple[str, ...]) -> Path:
    """``walk``'s time and ``columns`` only (a recording of fewer sensors)."""
    with walk.open() as src, path.open("w") as out:
        out.write(",".join(("time_s", *columns)) + "\n")
        for row in csv.DictReader(src):
            out.write(",".join(row[c] for c in ("time_s", *columns)) + "\n")
    return path


def rows_of(result_dir: Path) -> list[dict[str, str]]:
    with (result_dir / "samples.csv").open() as handle:
        return list(csv.DictReader(handle))


def replayed_events(result_dir: Path) -> list[str]:
    """The detected events of a trial as ``fes detect`` writes them (time_s,event)."""
    with (result_dir / "events.csv").open() as handle:
        return [f"{r['time_s']},{r['event']}" for r in csv.DictReader(handle)
                if r["source"] == "detected"]


def detected_events(tmp_path: Path, recording: Path, sensor: str) -> list[str]:
    out = tmp_path / f"detect_{sensor}.csv"
    assert main(["detect", "--input", str(recording), "--output", str(out),
                 "--sensor", sensor]) == 0
    return out.read_text().splitlines()[1:]


def stim_starts(rows: list[dict[str, str]]) -> list[float]:
    return [float(rows[k]["time_s"]) for k in range(1, len(rows))
            if rows[k]["stim_on"] == "1" and rows[k - 1]["stim_on"] == "0"]


@pytest.mark.parametrize("sensor", ["heel", "fused"])
def test_a_heel_gap_in_stance_starts_no_stimulation_and_ends_in_the_sensor_timeout(
        tmp_path, monkeypatch, walk, sensor):
    recording, result, folder = replay(monkeypatch, walk, tmp_path, LONG_GAP_S, sensor)
    rows = rows_of(folder)
    # Before: no fault, a train started at 2.602 s, samples.csv said heel_switch 0.
    assert result.stopped_by == "watchdog_fault", result.message
    assert "sensor_timeout_ms: no valid sensor sample" in result.message
    fault = result.summary["watchdog"]["interventions"][0]
    assert fault["rule"] == "sensor_timeout_ms" and fault["requested"] == "no valid sensor sample"
    assert LONG_GAP_S[0] + 0.020 <= fault["t_s"] <= LONG_GAP_S[0] + 0.040
    assert all(float(r["time_s"]) < LONG_GAP_S[0] + 0.040 for r in rows)
    in_gap = [r for r in rows if float(r["time_s"]) >= LONG_GAP_S[0] - 1e-9]
    assert in_gap and all(r["heel_switch"] == "" for r in in_gap)
    assert all(r["stim_on"] == "0" for r in in_gap)
    assert all(t < LONG_GAP_S[0] for t in stim_starts(rows))
    # Counted and said, as lost gyroscope samples are.
    assert result.summary["lost_samples"] == {"gyro_rad_s": 0, "heel_switch": len(in_gap)}
    assert (f"lost samples (no reading, empty in samples.csv): gyroscope 0, heel switch "
            f"{len(in_gap)}") in render_text(result.summary)
    # Up to the fault, the trial's events are fes detect's on the same file.
    offline = [e for e in detected_events(tmp_path, recording, sensor)
               if float(e.split(",")[0]) < LONG_GAP_S[0]]
    assert replayed_events(folder) == offline


@pytest.mark.parametrize("sensor", ["heel", "fused"])
def test_a_short_heel_gap_is_played_as_missing_with_fes_detect_s_events(
        tmp_path, monkeypatch, walk, sensor):
    recording, result, folder = replay(monkeypatch, walk, tmp_path, SHORT_GAP_S, sensor)
    assert result.stopped_by == "duration", result.message
    assert result.summary["watchdog"]["faults"] == 0
    rows = rows_of(folder)
    empty = [float(r["time_s"]) for r in rows if r["heel_switch"] == ""]
    assert empty == pytest.approx([3.800, 3.802, 3.804, 3.806, 3.808])  # was 0, 0, ...
    assert not any(SHORT_GAP_S[0] <= t < 3.994 for t in stim_starts(rows))
    assert replayed_events(folder) == detected_events(tmp_path, recording, sensor)


def test_a_heel_gap_in_stance_leaves_a_gyroscope_trial_walking_with_the_same_trains(
        tmp_path, monkeypatch, walk):
    """The gyroscope detector does not read the heel switch: its lost cells are no
    reason to stop (before: sensor timeout at 2.608 s, 2 trains instead of 7)."""
    recording, result, folder = replay(monkeypatch, walk, tmp_path, LONG_GAP_S, "gyro")
    assert result.stopped_by == "duration", result.message
    assert result.summary["watchdog"]["faults"] == 0
    assert result.summary["watchdog"]["interventions"] == []
    rows = rows_of(folder)
    in_gap = [r for r in rows if LONG_GAP_S[0] - 1e-9 <= float(r["time_s"]) < LONG_GAP_S[1] - 1e-9]
    assert len(in_gap) == 40 and all(r["heel_switch"] == "" for r in in_gap)
    assert result.summary["lost_samples"] == {"gyro_rad_s": 0, "heel_switch": 40}
    full = columns_of(walk, tmp_path / "full.csv", ("gyro_rad_s", "heel_switch"))
    full_result, full_folder = replay_file(monkeypatch, full, tmp_path / "full",
                                           {"sensor": "gyro"})
    assert full_result.stopped_by == "duration", full_result.message
    starts = stim_starts(rows)
    assert starts == stim_starts(rows_of(full_folder)) and len(starts) == 7
    assert replayed_events(folder) == replayed_events(full_folder)
    assert replayed_events(folder) == detected_events(tmp_path, recording, "gyro")


@pytest.mark.parametrize(("columns", "detector"), [
    (("heel_switch",), {"sensor": "heel"}),
    (("heel_force_n",), {"sensor": "heel", "heel_input": "force"}),
])
def test_a_recording_without_a_gyroscope_plays_through_with_the_heel_detector(
        tmp_path, monkeypatch, walk, columns, detector):
    """A heel sensor and no gyroscope (a heel-only recording, a gaitpdb-style force
    recording): every sample's gyroscope is NaN, which the heel detector never reads
    (before: sensor timeout at 32 ms, no train)."""
    recording = columns_of(walk, tmp_path / "heel_only.csv", columns)
    result, folder = replay_file(monkeypatch, recording, tmp_path, detector)
    assert result.stopped_by == "duration", result.message
    assert result.summary["watchdog"]["faults"] == 0
    starts = stim_starts(rows_of(folder))
    assert len(starts) == 7, starts
    both = columns_of(walk, tmp_path / "both.csv", ("gyro_rad_s", *columns))
    _, both_folder = replay_file(monkeypatch, both, tmp_path / "both", detector)
    assert starts == stim_starts(rows_of(both_folder))


def test_a_recording_without_a_gyroscope_still_ends_a_gyroscope_trial(
        tmp_path, monkeypatch, walk):
    """Never weakened: the sensor the detector reads is lost at every sample."""
    recording = columns_of(walk, tmp_path / "heel_only.csv", ("heel_switch",))
    result, folder = replay_file(monkeypatch, recording, tmp_path, {"sensor": "gyro"})
    assert result.stopped_by == "watchdog_fault", result.message
    assert result.summary["watchdog"]["interventions"][0]["rule"] == "sensor_timeout_ms"
    assert all(r["stim_on"] == "0" for r in rows_of(folder))
