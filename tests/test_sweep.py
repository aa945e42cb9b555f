"""`fes sweep` in this process: the table, the ranking, resuming, and what it refuses."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.cli import main
from controller.outputs import OutputError
from controller.sweep.plan import SweepSpec, build_plan, parse_grid
from controller.sweep.ranking import Term, parse_objective
from controller.sweep.run import run_sweep
from controller.sweep.store import SweepStore
from controller.sweep.table import WALL_CLOCK_FIGURES
from controller.sweep.worker import TrialFailure
from controller.trial.figures import flatten

AMPLITUDES = (15.0, 22.0, 30.0)
SWEEP = ["sweep", "--grid", "stim.peroneal.amplitude_ma=15,22,30", "--seeds", "2",
         "--duration-s", "6", "--workers", "1"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def without_wall_clock(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK_FIGURES} for row in rows]


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "s"
    assert main([*SWEEP, "--out", str(out)]) == 0
    return out


def test_table_has_a_row_per_trial_with_parameters_and_every_figure(swept):
    rows = read_csv(swept / "results.csv")
    assert [r["trial"] for r in rows] == [str(i) for i in range(6)]
    assert [float(r["stim.peroneal.amplitude_ma"]) for r in rows] == [
        a for a in AMPLITUDES for _ in range(2)
    ]
    assert [r["sim.seed"] for r in rows] == ["0", "1"] * 3
    for row in rows:
        summary = json.loads((swept / row["dir"] / "summary.json").read_text())
        for name, value in flatten(summary).items():
            expected = "" if value is None else value
            if isinstance(value, float):
                assert float(row[name]) == value, name
            else:
                assert row[name] == str(expected), name
        config = json.loads((swept / row["dir"] / "config.json").read_text())
        assert config["stim"]["peroneal"]["amplitude_ma"] == float(
            row["stim.peroneal.amplitude_ma"]
        )
        assert config["loop"]["duration_s"] == 6.0


def test_ranking_puts_fewest_drags_then_least_charge_first(swept):
    rows = read_csv(swept / "results.csv")
    ranking = read_csv(swept / "ranking.csv")
    assert len(ranking) == len(AMPLITUDES)
    keys = []
    for setting in ranking:
        members = [r for r in rows if r["trial"] in setting["trials"].split()]
        assert {r["stim.peroneal.amplitude_ma"] for r in members} == {
            setting["stim.peroneal.amplitude_ma"]
        }
        drags = [float(r["clearance.toe_drag_events"]) for r in members]
        charge = [float(r["stim.charge_uc_per_stride"]) for r in members]
        mean_drags = float(setting["mean(clearance.toe_drag_events)"])
        assert mean_drags == pytest.approx(sum(drags) / 2)
        assert float(setting["worst(clearance.toe_drag_events)"]) == max(drags)
        mean_charge = float(setting["mean(stim.charge_uc_per_stride)"])
        assert mean_charge == pytest.approx(sum(charge) / 2, abs=1e-3)
        keys.append((mean_drags, mean_charge))
    assert keys == sorted(keys)
    assert float(ranking[0]["stim.peroneal.amplitude_ma"]) == 30.0  # the one that lifts the foot
    assert keys[0][0] < keys[-1][0]


def test_maximised_objective_reverses_the_order(swept, tmp_path, capsys):
    copy = tmp_path / "s"
    shutil.copytree(swept, copy)
    assert main([*SWEEP, "--out", str(copy), "--objective", "max:stim.charge_uc_per_stride"]) == 0
    ranking = read_csv(copy / "ranking.csv")
    assert float(ranking[0]["stim.peroneal.amplitude_ma"]) == 30.0
    assert float(ranking[-1]["stim.peroneal.amplitude_ma"]) == 15.0
    assert "0 trials run now, 6 from an earlier run" in capsys.readouterr().out


def test_dry_run_validates_and_counts_finished_trials(swept, capsys):
    assert main([*SWEEP, "--out", str(swept), "--dry-run"]) == 0
    assert "6 of 6 trials already finished" in capsys.readouterr().out


def test_same_sweep_same_table(swept, tmp_path):
    again = tmp_path / "again"
    assert main([*SWEEP, "--out", str(again)]) == 0
    assert without_wall_clock(read_csv(again / "results.csv")) == without_wall_clock(
        read_csv(swept / "results.csv")
    )
    assert (again / "ranking.csv").read_bytes() == (swept / "ranking.csv").read_bytes()


def test_resume_runs_only_missing_trials_and_ignores_half_written_ones(swept, tmp_path, capsys):
    copy = tmp_path / "s"
    shutil.copytree(swept, copy)
    rows = read_csv(copy / "results.csv")
    gone = [rows[1]["dir"], rows[4]["dir"]]
    for folder in gone:
        shutil.rmtree(copy / folder)
    partial = copy / "trials" / f".partial-{Path(gone[0]).name}"
    partial.mkdir()
    (partial / "summary.json").write_text('{"strides": 1')  # killed mid-write
    capsys.readouterr()
    assert main([*SWEEP, "--out", str(copy)]) == 0
    assert "2 trials run now, 4 from an earlier run" in capsys.readouterr().out
    assert not partial.exists()
    assert without_wall_clock(read_csv(copy / "results.csv")) == without_wall_clock(rows)


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b""
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("killed", [False, True])
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_sweep_refuses_a_trial_folder_and_writes_nothing_there(tmp_path, capsys, killed,
                                                                 dry_run):
    """``fes sim --duration-s 2 --out T; fes sweep ... --out T`` wrote results.csv,
    ranking.csv, sweep.json and trials/ beside the trial's samples.csv and summary.json:
    one folder, two layouts. A trial's files (also those of a killed trial, without
    summary.json) now make ``--out`` a usage error, before the sweep writes anything."""
    trial = tmp_path / "t"
    assert main(["sim", "--duration-s", "2", "--out", str(trial)]) == 0
    if killed:
        (trial / "summary.json").unlink()
    before = _listing(trial)
    capsys.readouterr()
    assert main([*SWEEP, "--out", str(trial), *(["--dry-run"] if dry_run else [])]) == 2
    err = capsys.readouterr().err
    assert "(--out)" in err and f"{trial} holds a trial's files (config.json" in err
    assert "samples.csv" in err and ("summary.json" in err) is not killed
    assert _listing(trial) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_trial_refuses_a_sweep_folder_even_with_overwrite(swept, tmp_path, capsys,
                                                             overwrite):
    """``fes sim --out S --overwrite`` into a sweep folder removed no file of the sweep
    (none is a trial's) and wrote the trial's files beside results.csv and trials/;
    without --overwrite it was refused with advice to add --overwrite. Both are now
    refused naming the sweep's files; ``fes run`` alike."""
    copy = tmp_path / "s"
    shutil.copytree(swept, copy)
    before = _listing(copy)
    flag = ["--overwrite"] if overwrite else []
    assert main(["sim", "--duration-s", "2", "--out", str(copy), *flag]) == 2
    err = capsys.readouterr().err
    assert "(--out)" in err and f"{copy} is a sweep folder (fes sweep wrote sweep.json" in err
    assert "--overwrite to replace" not in err
    walk = tmp_path / "walk.csv"
    walk.write_text("time_s,gyro_rad_s\n" + "".join(f"{k / 100},0\n" for k in range(50)))
    assert main(["run", "--sensors", f"replay:{walk}", "--stimulator",
                 "openemsstim:/dev/nonexistent", "--out", str(copy), *flag]) == 2
    assert f"{copy} is a sweep folder" in capsys.readouterr().err
    assert _listing(copy) == before


def test_bad_key_exits_2_before_any_trial_runs(tmp_path, capsys):
    out = tmp_path / "bad"
    code = main(["sweep", "--grid", "stim.peroneal.amplitude=30,35", "--grid",
                 "stim.peroneal.pulse_width_us=300,2000", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "stim.peroneal.amplitude: unknown field" in err
    assert "stim.peroneal.pulse_width_us" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--grid", "loop.duration_s"], "expected KEY=V1,V2"),
        (["--seeds", "0"], "--seeds: must be >= 1"),
        (["--workers", "0"], "(--workers):\n  - --workers: at most"),
        (["--workers", "2", "--scheduler", "tcp://localhost:8786"], "a Dask cluster has its own"),
        (["--objective", "a,,b"], "expected NAME"),
        (["--require", "clearance.toe_drag_events<<2"], "< needs a number"),
        (["--require", "toe drags<=2"], "expected FIGURE OP VALUE"),
    ],
)
def test_bad_options_exit_2(tmp_path, capsys, args, expected):
    assert main(["sweep", "--out", str(tmp_path / "x"), *args]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_unknown_objective_figure_stops_the_sweep_with_exit_2(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["sweep", "--grid", "stim.peroneal.amplitude_ma=25,30,35", "--duration-s", "2",
            "--workers", "1", "--out", str(out), "--objective", "clearance.toe_drags"]
    assert main(args) == 2
    assert "clearance.toe_drags: no such figure" in capsys.readouterr().err
    assert not out.exists()  # before any trial (it stopped at the first summary)


def test_sweep_require_exits_3_naming_trials(swept, tmp_path, capsys):
    copy = tmp_path / "s"
    shutil.copytree(swept, copy)
    capsys.readouterr()
    assert main([*SWEEP, "--out", str(copy), "--require", "clearance.toe_drag_events<=0"]) == 3
    err = capsys.readouterr().err
    drags = [r for r in read_csv(copy / "results.csv") if r["clearance.toe_drag_events"] != "0"]
    assert drags
    for row in drags:
        assert f"trial {row['trial']}: clearance.toe_drag_events<=0 failed" in err


def test_summaries_only_keeps_two_files(tmp_path):
    out = tmp_path / "s"
    args = ["sweep", "--grid", "stim.peroneal.amplitude_ma=25,30", "--duration-s", "2",
            "--workers", "1", "--out", str(out), "--summaries-only"]
    assert main(args) == 0
    for folder in (out / "trials").iterdir():
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "summary.json"]


def test_failed_trials_are_reported_and_not_kept(tmp_path):
    plan = build_plan(SweepSpec(grid=(parse_grid("stim.peroneal.amplitude_ma=25,30"),)))

    def broken(tasks, under_way=None):
        for index, _ in enumerate(tasks):
            yield index, TrialFailure("Traceback ...\nRuntimeError: boom\n")

    outcome = run_sweep(plan, tmp_path, broken, parse_objective("strides"), stream=io.StringIO())
    assert sorted(outcome.failed) == [0, 1] and outcome.ran == 0
    assert list((tmp_path / "trials").iterdir()) == []
    assert "RuntimeError: boom" in (tmp_path / "failures.txt").read_text()


def test_a_folder_is_written_by_one_sweep_at_a_time(tmp_path):
    plan = build_plan(SweepSpec())
    with SweepStore(tmp_path).locked(), pytest.raises(OutputError, match="another fes sweep"):
        run_sweep(plan, tmp_path, lambda tasks: iter(()), (Term("strides"),))


def test_a_folder_another_sweep_writes_is_an_output_not_a_configuration(tmp_path, capsys):
    """The second sweep into a folder is refused (exit 2) as an output that cannot be
    used now, as a trial folder's lock says, not as an invalid configuration."""
    out = tmp_path / "sweep"
    with SweepStore(out).locked():
        code = main(["sweep", "--duration-s", "1", "--workers", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"fes: cannot write {out}: another fes sweep is writing this folder" in err
    assert "invalid configuration" not in err and "choose another --out" in err
    assert not (out / "results.csv").exists()


def test_help_explains_every_sweep_option(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    for option in ("--config", "--grid", "--random", "--samples", "--sample-seed", "--patients",
                   "--seeds", "--duration-s", "--workers", "--scheduler", "--out", "--objective",
                   "--require", "--summaries-only", "--dry-run", "Exit codes"):
        assert option in out
    assert "abs:NAME (closest to zero first" in " ".join(out.split())


def test_ranking_by_a_signed_error_is_pointed_out(tmp_path, capsys):
    """--objective stim.onset_error_ms.median (median of onset minus true toe off, -125 ms
    on the moderate walker) ranked the earliest onset first, the most charge, not the
    onset closest to toe off; nothing said the figure is signed."""
    args = ["sweep", "--grid", "stim.peroneal.amplitude_ma=30,35", "--duration-s", "2",
            "--dry-run", "--out", str(tmp_path / "s")]
    assert main([*args, "--objective", "stim.onset_error_ms.median"]) == 0
    assert ("note: stim.onset_error_ms.median is a signed error (negative = early): the "
            "earliest setting ranks first, not the one closest to the truth; write "
            "abs:stim.onset_error_ms.median to rank the closest first, or "
            "stim.onset_error_ms.p95 (of the absolute error) to rank by the spread's size") in (
        capsys.readouterr().err)
    for objective in ("stim.onset_error_ms.p95", "abs:stim.onset_error_ms.median"):
        assert main([*args, "--objective", objective]) == 0
        assert "signed" not in capsys.readouterr().err


def test_abs_objective_ranks_a_signed_error_closest_to_zero_first(swept, tmp_path, capsys):
    """There was no way to rank by the size of a signed error: --objective
    stim.onset_error_ms.median ranks the earliest onset first. abs:NAME ranks the
    absolute value, and ranking.csv's columns say so."""
    copy = tmp_path / "s"
    shutil.copytree(swept, copy)
    name = "stim.onset_error_ms.median"
    assert main([*SWEEP, "--out", str(copy), "--objective", f"abs:{name}"]) == 0
    out = capsys.readouterr().out
    assert f"best settings by abs:{name} (mean over seeds)" in out
    rows = read_csv(copy / "results.csv")
    ranking = read_csv(copy / "ranking.csv")
    sizes = []
    for setting in ranking:
        signed = [float(r[name]) for r in rows if r["trial"] in setting["trials"].split()]
        size = [abs(v) for v in signed]
        assert float(setting[f"mean(abs:{name})"]) == pytest.approx(sum(size) / len(size))
        assert float(setting[f"worst(abs:{name})"]) == pytest.approx(max(size))
        sizes.append(sum(size) / len(size))
    assert sizes == sorted(sizes)
    signed_means = [sum(float(r[name]) for r in rows if r["trial"] in s["trials"].split()) / 2
                    for s in ranking]
    assert any(v < 0 for v in signed_means)  # the ranked figure was signed to begin with


@pytest.mark.parametrize("objective", ["min:strides", "max:abs:stim.onset_error_ms.median",
                                       "abs:", "strides,Abs:strides"])
def test_an_objective_of_another_form_exits_2_naming_the_forms(tmp_path, capsys, objective):
    assert main(["sweep", "--out", str(tmp_path / "x"), "--objective", objective]) == 2
    err = capsys.readouterr().err
    assert ("each written NAME (lowest first), max:NAME (highest first) or abs:NAME "
            "(closest to zero first, for a signed error)") in err
    assert not (tmp_path / "x").exists()


def test_minimising_a_figure_where_higher_is_better_is_pointed_out(tmp_path, capsys):
    """--objective detector.recall ranked the setting with the lowest recall first (each
    term is minimised unless written max:), and the report titled it 'lower is better'."""
    args = ["sweep", "--grid", "stim.peroneal.amplitude_ma=30,35", "--duration-s", "2",
            "--dry-run", "--out", str(tmp_path / "s")]
    assert main([*args, "--objective", "detector.recall,clearance.toe_clearance_min_mm.p5"]) == 0
    err = capsys.readouterr().err
    for name in ("detector.recall", "clearance.toe_clearance_min_mm.p5"):
        assert (f"note: {name} is minimised: its lowest (worst) setting ranks first; write "
                f"max:{name} to rank the highest first") in err
    assert main([*args, "--objective", "max:detector.recall"]) == 0
    assert "minimised" not in capsys.readouterr().err


def test_a_sweep_cut_short_says_so_where_its_tables_are_read(tmp_path, capsys, monkeypatch):
    """An interrupted sweep (a CI job's timeout) printed "one row per trial" and "best
    settings" of the trials that finished, and ``fes report`` of its folder reported
    "1 trials over ..." as if that were the sweep: nothing said the tables were partial.
    Now its printout, ``report.md`` and the report's standard error say how many of the
    plan's trials finished."""
    from controller.sweep import executors

    whole = executors.run_serial

    def cut_after_one(tasks, *, under_way=None):
        results = whole(tasks, under_way=under_way)
        yield next(results)
        results.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "run_serial", cut_after_one)
    out = tmp_path / "s"
    assert main(["sweep", "--grid", "stim.peroneal.amplitude_ma=25,30", "--duration-s", "2",
                 "--workers", "1", "--out", str(out)]) == 130
    printed = capsys.readouterr().out
    assert "(one row per finished trial: 1 of 2, the sweep is not complete)" in printed
    assert "(mean over seeds; of the 1 finished trials only):" in printed
    assert main(["report", str(out)]) == 0
    err = capsys.readouterr().err
    assert "fes report: note: 1 of the sweep's 2 trials finished" in err
    assert "**Not complete**: 1 of the sweep's 2 trials finished" in (
        out / "report" / "report.md").read_text()
    monkeypatch.setattr(executors, "run_serial", whole)  # run again: complete, no note
    assert main(["sweep", "--grid", "stim.peroneal.amplitude_ma=25,30", "--duration-s", "2",
                 "--workers", "1", "--out", str(out)]) == 0
    assert "(one row per trial)" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    assert "note" not in capsys.readouterr().err
    assert "Not complete" not in (out / "report" / "report.md").read_text()


@given(text=st.text(alphabet=" \t,", max_size=4))
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_patients_that_name_no_patient_are_refused(tmp_path, capsys, text):
    """``--patients "$PATIENTS"`` with the CI variable unset (``--patients ""``) ran the
    config's patient as if the option were not given; blanks named "patient ''"."""
    out = tmp_path / "x"
    assert main(["sweep", "--patients", text, "--duration-s", "1", "--out", str(out)]) == 2
    assert f"--patients {text!r}: no patient named" in capsys.readouterr().err
    assert not out.exists()
