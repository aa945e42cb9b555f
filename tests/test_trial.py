"""The closed loop as a whole: `fes sim` files, determinism, and what stimulation does."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from controller import sharedmem
from controller.cli import main
from controller.config import load_config
from controller.trial.simulated import run_simulated_trial


def run(tmp_path: Path, name: str, *args: str) -> dict:
    out = tmp_path / name
    assert main(["sim", "--out", str(out), *args]) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def severe(tmp_path_factory):
    """The severe foot-drop profile on a fixed seed, without and with stimulation."""
    tmp = tmp_path_factory.mktemp("severe")
    common = ("--patient", "severe", "--duration-s", "40", "--seed", "7")
    return run(tmp, "off", *common, "--no-stim"), run(tmp, "on", *common)


def test_summary_has_the_documented_figures(tmp_path):
    summary = run(tmp_path, "t", "--duration-s", "10")
    assert summary["duration_s"] == pytest.approx(10.0)
    assert summary["strides"] >= 7
    assert summary["real_time_factor"] > 1.0
    for key in ("recall", "precision", "heel_strike_error_ms", "toe_off_error_ms"):
        assert key in summary["detector"]
    for key in ("onset_error_ms", "on_time_fraction", "charge_uc_per_stride"):
        assert key in summary["stim"]
    assert set(summary["clearance"]["toe_clearance_min_mm"]) == {"median", "p5"}
    assert "toe_drag_events" in summary["clearance"]
    assert {"faults", "clamped_commands"} <= set(summary["watchdog"])


def _unstimulated_before(folder: Path, decided_s: float) -> int:
    """Counted from the files: the true swings (toe off to the next true heel strike)
    that began before ``decided_s`` with no sample of stim_on."""
    with (folder / "samples.csv").open() as handle:
        on_s = [float(r["time_s"]) for r in csv.DictReader(handle) if float(r["stim_on"])]
    with (folder / "events.csv").open() as handle:
        true = [(float(e["time_s"]), e["event"]) for e in csv.DictReader(handle)
                if e["source"] == "true"]
    strikes = [t for t, e in true if e == "heel_strike"]
    count = 0
    for toe_off in (t for t, e in true if e == "toe_off" and t < decided_s):
        end = min((t for t in strikes if t > toe_off), default=float("inf"))
        count += not any(toe_off <= t < end for t in on_s)
    return count


def test_fes_sim_says_how_many_strides_the_gyro_sign_check_left_unstimulated(tmp_path,
                                                                             capsys):
    """The gyroscope's mounting check holds the first 3-5 strides' events back
    (docs/detection.md): fes sim printed nothing of it once the sign was found right.
    Now one line says when the verdict came and how many strides went unstimulated, and
    summary.json has the count; a fused detector (whose heel sensor stimulates those
    strides) loses none and prints no line."""
    out = tmp_path / "gyro"
    assert main(["sim", "--duration-s", "20", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    mounting = json.loads((out / "summary.json").read_text())["gyro_mounting"]
    lost = mounting["strides_not_stimulated"]
    assert mounting["verdict"] == "mounted" and 3 <= lost <= 5
    assert lost == _unstimulated_before(out, mounting["decided_s"])
    assert (f"gyro: sign checked at {mounting['decided_s']:g} s; the {lost} strides before "
            "it were not stimulated") in text

    config = tmp_path / "fused.toml"
    config.write_text('[detector]\nsensor = "fused"\n')
    out = tmp_path / "fused"
    assert main(["sim", "--duration-s", "10", "--config", str(config), "--out", str(out)]) == 0
    mounting = json.loads((out / "summary.json").read_text())["gyro_mounting"]
    assert mounting["verdict"] == "mounted" and mounting["strides_not_stimulated"] == 0
    assert "gyro:" not in capsys.readouterr().out


@pytest.mark.parametrize("options", [["--no-stim"], ["--config", "training"]],
                         ids=["no-stim", "training-mode"])
def test_without_gait_triggered_stimulation_the_check_cost_no_strides(tmp_path, capsys,
                                                                     options):
    """fes sim --no-stim wrote gyro_mounting.strides_not_stimulated = 4 (10 s, seed 0):
    as if the sign check had cost four stimulated strides in a trial that stimulates
    nothing (in a sweep over stim.enabled, the no-stim rows read so); training mode, which
    ignores the gait, the same. Now null: there was no gait-triggered stimulation to lose."""
    if options[0] == "--config":
        path = tmp_path / "training.toml"
        path.write_text('[stim]\nmode = "training"\n')
        options = ["--config", str(path)]
    out = tmp_path / "t"
    assert main(["sim", "--duration-s", "10", "--out", str(out), *options]) == 0
    mounting = json.loads((out / "summary.json").read_text())["gyro_mounting"]
    assert mounting["verdict"] == "mounted" and mounting["strides_not_stimulated"] is None
    assert "not stimulated" not in capsys.readouterr().out


def test_the_gyro_line_without_truth_and_while_still_checking():
    from controller.trial.summary import _mounting_line

    mounted = {"verdict": "mounted", "decided_s": 4.35, "message": "gyroscope sign checked",
               "strides": [3, 6], "strides_not_stimulated": None}  # a board: no truth
    assert _mounting_line(mounted, stimulating=True) == (
        "gyro: sign checked at 4.35 s; nothing was stimulated on its events before that")
    assert _mounting_line(mounted, stimulating=False) is None  # --no-stim
    checking = mounted | {"verdict": "checking", "decided_s": None, "message": "checking",
                          "strides_not_stimulated": 1}
    assert _mounting_line(checking, stimulating=True) == "gyro: checking (1 stride not stimulated)"


def test_files_have_the_documented_columns(tmp_path):
    run(tmp_path, "t", "--duration-s", "5")
    with (tmp_path / "t" / "samples.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2500
    for column in ("time_s", "gyro_rad_s", "heel_switch", "phase", "stim_on", "amplitude_ma",
                   "ankle_angle_deg", "toe_clearance_mm"):
        assert column in rows[0]
    with (tmp_path / "t" / "events.csv").open() as handle:
        events = list(csv.DictReader(handle))
    assert {e["source"] for e in events} == {"true", "detected"}
    assert {"heel_strike", "toe_off"} <= {e["event"] for e in events}


def test_same_seed_same_bytes(tmp_path):
    for name in ("a", "b"):
        run(tmp_path, name, "--duration-s", "8", "--seed", "3")
    for file in ("samples.csv", "events.csv"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    a, b = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("a", "b"))
    for summary in (a, b):  # the two wall-clock figures of a virtual-clock trial
        summary.pop("real_time_factor")
        summary["timing"].pop("warm_up_ms")
    assert a == b
    assert set(a["timing"]["lateness_us"].values()) == {0.0}
    run(tmp_path, "c", "--duration-s", "8", "--seed", "4")
    assert (tmp_path / "a" / "samples.csv").read_bytes() != (
        tmp_path / "c" / "samples.csv"
    ).read_bytes()


def test_a_trial_in_memory_an_ended_trial_used_has_the_bytes_of_one_in_fresh_memory(
    tmp_path, monkeypatch
):
    """The recorder's table and the limb's truth reuse an ended trial's memory files
    (``shared_empty``): every cell is written again, none is left from the earlier
    trial (whose stimulation columns were busy; this one's stay off)."""
    loop = {"duration_s": 10.0, "sample_rate_hz": 1000.0}
    quiet = load_config(overrides={"sim": {"patient": "severe", "seed": 4}, "loop": loop,
                                   "stim": {"enabled": False}})
    busy = load_config(overrides={"sim": {"patient": "severe", "seed": 3}, "loop": loop})
    monkeypatch.setattr(sharedmem, "REUSE_MIN_BYTES", 0)  # a short trial's files too
    monkeypatch.setattr(sharedmem, "_REUSABLE", {})
    try:
        run_simulated_trial(quiet, tmp_path / "fresh")
        sharedmem.forget_reusable()
        assert run_simulated_trial(busy, tmp_path / "busy")["stim"]["trains"] > 0
        assert sharedmem._REUSABLE  # its table and truth, kept
        run_simulated_trial(quiet, tmp_path / "reused")
    finally:
        sharedmem.forget_reusable()
    for name in ("samples.csv", "events.csv"):
        reused, fresh = (tmp_path / "reused" / name), (tmp_path / "fresh" / name)
        assert reused.read_bytes() == fresh.read_bytes(), name


def test_foot_drop_without_stimulation_drags_toes(severe):
    off, _ = severe
    clearance = off["clearance"]
    assert clearance["toe_drag_events"] > clearance["swings"] / 2
    assert off["stim"]["trains"] == 0 and off["stim"]["charge_uc_total"] == 0


def test_stimulation_restores_clearance(severe):
    off, on = severe
    assert on["clearance"]["toe_drag_events"] < off["clearance"]["toe_drag_events"] / 2
    median_on = on["clearance"]["toe_clearance_min_mm"]["median"]
    median_off = off["clearance"]["toe_clearance_min_mm"]["median"]
    assert median_on > median_off + 5.0
    assert on["watchdog"]["faults"] == 0


def test_stimulation_is_timed_to_the_stride(severe):
    _, on = severe
    # The gyroscope's mounting check holds the events of the first strides back: 95 % of
    # those after its verdict (40 s trial).
    mounting = on["gyro_mounting"]
    assert mounting["verdict"] == "mounted" and mounting["decided_s"] < 8.0
    assert on["detector"]["recall"] >= 0.95 * (1.0 - mounting["decided_s"] / 40.0)
    assert on["detector"]["precision"] >= 0.95
    onset = on["stim"]["onset_error_ms"]
    assert -250.0 < onset["median"] < 50.0
    unchecked_strides = round(mounting["decided_s"] / (40.0 / on["strides"]))
    assert on["stim"]["missed_onsets"] <= 1 + unchecked_strides
    assert 0.2 < on["stim"]["on_time_fraction"] < 0.7
    assert on["stim"]["charge_uc_per_stride"] > 0


@pytest.mark.parametrize(
    ("compiled", "method", "calls", "rows"),
    [(False, "read", 1000, 999), (True, "next_block", 3, 4096)],
    ids=["python", "compiled"],
)
def test_interrupted_trial_keeps_its_files(tmp_path, monkeypatch, compiled, method, calls, rows):
    """Ctrl-C mid-trial: outputs off, the samples recorded so far are on disk (the
    compiled loop takes Ctrl-C between its blocks of 4096 samples; its warm-up asks for
    the first block too)."""
    from sim.limb import SimulatedLimb

    original = getattr(SimulatedLimb, method)
    count = {"n": 0}

    def interrupt_at_call(self):
        count["n"] += 1
        if count["n"] == calls:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(SimulatedLimb, method, interrupt_at_call)
    config = load_config(overrides={"loop": {"duration_s": 10}})
    summary = run_simulated_trial(config, tmp_path, compiled=compiled)
    assert summary["stopped_by"] == "interrupted"
    lines = (tmp_path / "samples.csv").read_text().splitlines()
    assert len(lines) == 1 + rows


def test_unsafe_request_reaches_no_output(tmp_path, monkeypatch):
    """A scheduler gone wrong is stopped by the watchdog: the limb never gets the pulse."""
    from controller.ports import StimCommand
    from controller.stim.scheduler import StimScheduler

    def runaway(self, t_s, phase, events):
        return [StimCommand(0, True, 95.0, 300.0, 40.0)]

    monkeypatch.setattr(StimScheduler, "step", runaway)
    config = load_config(overrides={"loop": {"duration_s": 2}})
    summary = run_simulated_trial(config, tmp_path, compiled=False)
    assert summary["watchdog"]["faults"] == 1
    assert summary["watchdog"]["interventions"][0]["rule"] == "max_amplitude_ma"
    assert summary["stim"]["charge_uc_total"] == 0
    with (tmp_path / "samples.csv").open() as handle:
        assert all(float(row["pulses"]) == 0 for row in csv.DictReader(handle))
