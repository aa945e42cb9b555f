"""`fes report`: the expected PNG figures exist, are real pictures, and report.md links
them; for a trial and for a sweep."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from controller.cli import main

TRIAL_PNGS = {"gyro-strides.png", "stim-envelope.png", "ankle-clearance.png",
              "distributions.png"}


def check_pictures(folder: Path, expected: set[str]) -> None:
    """Exactly the expected PNGs, each a sizeable picture with something drawn on it,
    each linked from report.md, and every link pointing at one of them."""
    assert {p.name for p in folder.glob("*.png")} == expected
    for name in expected:
        path = folder / name
        assert path.stat().st_size > 20_000, name
        pixels = imread(path)
        height, width = pixels.shape[:2]
        assert width >= 600 and height >= 400, name
        inked = (pixels[..., :3] < 0.9).any(axis=-1).mean()
        assert inked > 0.03, f"{name} is nearly blank ({inked:.1%} drawn)"
    links = set(re.findall(r"!\[[^]]*\]\(([^)]+)\)", (folder / "report.md").read_text()))
    assert links == expected


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trial") / "t"
    assert main(["sim", "--patient", "severe", "--duration-s", "8", "--out", str(out)]) == 0
    return out


def test_trial_report(trial, capsys):
    assert main(["report", str(trial)]) == 0
    assert "4 figures" in capsys.readouterr().out
    check_pictures(trial / "report", TRIAL_PNGS)
    text = (trial / "report" / "report.md").read_text()
    assert "patient severe, seed 0" in text and "toe drags in" in text


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "s"
    assert main(["sweep", "--grid", "stim.peroneal.amplitude_ma=20,35",
                 "--grid", "stim.peroneal.pulse_width_us=200,300", "--patients", "mild,severe",
                 "--duration-s", "5", "--workers", "1", "--out", str(out)]) == 0
    return out


def test_sweep_report_has_the_objective_spread_and_best_trial(sweep, tmp_path):
    out = tmp_path / "r"
    assert main(["report", str(sweep), "--out", str(out)]) == 0
    objective = {"objective-clearance.toe_drag_events.png",
                 "objective-stim.charge_uc_per_stride.png"}
    check_pictures(out, objective | {"spread.png"} | {f"best-{n}" for n in TRIAL_PNGS})
    text = (out / "report.md").read_text()
    assert ("clearance.toe_drag_events over stim.peroneal.amplitude_ma and "
            "stim.peroneal.pulse_width_us") in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 8  # header and one row per setting (2 x 2 x 2 patients)


def test_sweep_report_over_one_parameter_with_another_objective(sweep, tmp_path):
    out = tmp_path / "r"
    assert main(["report", str(sweep), "--out", str(out), "--over",
                 "stim.peroneal.pulse_width_us", "--objective",
                 "max:clearance.toe_clearance_min_mm.p5"]) == 0
    check_pictures(out, {"objective-clearance.toe_clearance_min_mm.p5.png", "spread.png"}
                   | {f"best-{n}" for n in TRIAL_PNGS})
    ranked = [line for line in (out / "report.md").read_text().splitlines()
              if line.startswith("| 1 |") or line.startswith("| 8 |")]
    first, last = (float(line.split("|")[-3]) for line in ranked)  # mean p5 clearance
    assert first > last  # maximised: the highest clearance first


def test_sweep_report_says_how_to_read_an_objective_easily_misread(sweep, tmp_path):
    """fes report --objective detector.recall titled its figure 'detector.recall (lower
    is better)' and ranked the lowest recall first without a word; report.md now says
    what fes sweep's note says."""
    out = tmp_path / "r"
    assert main(["report", str(sweep), "--out", str(out), "--over",
                 "stim.peroneal.pulse_width_us", "--objective", "detector.recall"]) == 0
    assert ("Note: detector.recall is minimised: its lowest (worst) setting ranks first; "
            "write max:detector.recall to rank the highest first.") in (
        out / "report.md").read_text()


def test_sweep_report_ranks_an_abs_objective_and_says_so(sweep, tmp_path):
    """abs:NAME ranks a signed error by its size: report.md names the term as ranked, its
    table holds the absolute values, and the figure plots them."""
    out = tmp_path / "r"
    name = "stim.onset_error_ms.median"
    assert main(["report", str(sweep), "--out", str(out), "--over",
                 "stim.peroneal.pulse_width_us", "--objective", f"abs:{name}"]) == 0
    check_pictures(out, {f"objective-abs-{name}.png", "spread.png"}
                   | {f"best-{n}" for n in TRIAL_PNGS})
    text = (out / "report.md").read_text()
    assert f"Settings ranked by abs:{name} (closest to zero first)" in text
    assert f"mean(abs:{name})" in text and "signed error" not in text
    ranked = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    cells = [line.split("|")[-3].strip() for line in ranked]
    sizes = [float(c) for c in cells if c]
    assert sizes and sizes == sorted(sizes) and min(sizes) >= 0
    assert cells[: len(sizes)] == [f"{v:.6g}" for v in sizes]  # not measured: last


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--over", "loop.duration_s"], "--over"),
        (["--objective", "max:abs:x"], "abs:NAME (closest to zero first"),
        (["--objective", "clearance.drags"], "clearance.drags: no such figure"),
    ],
)
def test_bad_report_options_exit_2(sweep, tmp_path, capsys, args, expected):
    assert main(["report", str(sweep), "--out", str(tmp_path / "r"), *args]) == 2
    assert expected in capsys.readouterr().err


def test_a_folder_that_is_neither_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "neither a trial folder" in capsys.readouterr().err


def test_a_trial_folder_is_read_by_the_one_list_of_a_trial_s_files(tmp_path):
    """``controller.report.trial_data`` kept its own ``TRIAL_FILES``, a twin of
    ``controller.trial.folder``'s that had to be kept equal by hand; it now reads the
    folder's names, and still names what a folder lacks, the tables as CSV unless both
    are there in one format."""
    from controller.report import trial_data
    from controller.trial import folder
    from controller.validation import ConfigError

    assert not hasattr(trial_data, "TRIAL_FILES")
    assert trial_data.DOCUMENTS is folder.DOCUMENTS and trial_data.TABLES is folder.TABLES
    with pytest.raises(ConfigError, match=r"no samples.csv, events.csv, summary.json, "
                       r"config.json$"):
        trial_data.load_trial(tmp_path)
    for fmt in folder.TABLE_FORMATS:
        killed = tmp_path / fmt  # a trial killed before its summary
        killed.mkdir()
        for name in [f"{table}.{fmt}" for table in folder.TABLES] + ["config.json"]:
            assert name in folder.TRIAL_FILES
            (killed / name).write_text("")
        with pytest.raises(ConfigError, match=r"not a trial folder: no summary.json$"):
            trial_data.load_trial(killed)


@pytest.mark.parametrize("name", ["no-such-folder", "samples.csv"])
def test_a_mistyped_folder_or_a_file_is_named_and_nothing_is_created(tmp_path, capsys, name):
    """``fes report runs/tpyo`` made runs/tpyo/report/ before saying it was no trial
    folder; ``fes report runs/t/samples.csv`` said 'cannot write
    runs/t/samples.csv/report: Not a directory', blaming the output for the input."""
    (tmp_path / "samples.csv").write_text("time_s,gyro_rad_s\n")
    given = tmp_path / name
    assert main(["report", str(given)]) == 2
    err = capsys.readouterr().err
    assert f"({given})" in err and "neither a trial folder" in err
    assert "cannot write" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.csv"]


def test_report_without_samples_draws_the_sweep_figures_only(tmp_path):
    out = tmp_path / "s"
    assert main(["sweep", "--grid", "stim.peroneal.amplitude_ma=20,35", "--duration-s", "4",
                 "--workers", "1", "--summaries-only", "--out", str(out)]) == 0
    assert main(["report", str(out)]) == 0
    names = {p.name for p in (out / "report").glob("*.png")}
    assert names == {"objective-clearance.toe_drag_events.png",
                     "objective-stim.charge_uc_per_stride.png", "spread.png"}
    assert "kept no samples" in (out / "report" / "report.md").read_text()
    assert np.isfinite(imread(out / "report" / "spread.png")).all()



@pytest.mark.parametrize(
    ("name", "damage", "expected"),
    [
        ("samples.csv", lambda text: text[: len(text) // 2], "samples.csv: line "),
        ("samples.csv", lambda text: "", "samples.csv: empty file"),
        ("events.csv", lambda text: text.replace("heel_strike", "heel_strike,x", 1),
         "events.csv: line "),
        ("events.csv", lambda text: text.replace("time_s", "t", 1), "events.csv: no column"),
    ],
    ids=["samples-cut-mid-row", "samples-empty", "events-extra-field", "events-no-time"],
)
def test_a_damaged_trial_file_is_named_not_a_traceback(trial, tmp_path, capsys, name, damage,
                                                       expected):
    """A samples.csv cut in the middle of a row (an edited or half-copied folder) ended
    ``fes report`` in 'ValueError: zip() argument 1253 is shorter than arguments 1-1252'."""
    folder = tmp_path / "t"
    folder.mkdir()
    for path in trial.iterdir():
        if path.is_file():
            (folder / path.name).write_text(path.read_text())
    (folder / name).write_text(damage((folder / name).read_text()))
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and expected in err


def test_a_live_trial_without_ground_truth_is_refused_naming_what_is_missing(trial, tmp_path,
                                                                            capsys):
    """``fes run`` on a real board (``fes board-emulator --no-truth``) writes samples.csv
    without the simulator's truth columns and events.csv without true events; ``fes report``
    of it ended in 'KeyError: ta_activation' (exit 1). Every trial figure is drawn against
    the truth (strides from true heel strikes), so it is a usage error naming the reason."""
    truth = {"ankle_angle_deg", "toe_clearance_mm", "ta_activation", "pulses", "foot_slap",
             "forefoot_impact_rad_s", "ta_fitness", "voluntary_max_nm", "reflex_torque_nm"}
    folder = tmp_path / "live"
    folder.mkdir()
    for name in ("summary.json", "config.json"):
        (folder / name).write_text((trial / name).read_text())
    rows = (trial / "samples.csv").read_text().splitlines()
    keep = [i for i, n in enumerate(rows[0].split(",")) if n not in truth]
    (folder / "samples.csv").write_text(
        "".join(",".join(r.split(",")[i] for i in keep) + "\n" for r in rows))
    events = (trial / "events.csv").read_text().splitlines()
    (folder / "events.csv").write_text(
        "".join(e + "\n" for e in events if ",true," not in e))
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"({folder})" in err
    assert "no ground truth (ankle_angle_deg, toe_clearance_mm, ta_activation" in err
