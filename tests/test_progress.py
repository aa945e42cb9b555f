"""The sweep's progress (tqdm): redrawn in place on a terminal, sparse whole lines in a
log, and a time left from this run's pace."""

from __future__ import annotations

import io
import itertools
import re

import pytest

from controller import progress as shared
from controller.progress import LOG_EVERY_S, LOG_STEPS, format_duration


def Progress(total, already_done, stream, **options):  # the sweep's
    return shared.Progress(total, already_done, stream, desc="sweep", unit="trial",
                           **options)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _counts(text: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"\| *(\d+)/\d+ \[", text)]


def test_time_left_is_this_runs_pace_times_the_trials_to_run():
    clock = Clock()
    progress = Progress(10, 4, io.StringIO(), clock=clock)
    clock.now += 6.0
    progress.advance()
    progress.advance()  # two trials in 6 s: 3 s each, 4 to go (the 4 reused do not count)
    line = progress.line()
    assert "6/10" in line and "[00:06<00:12" in line and "3.00s/trial" in line


def test_a_log_gets_a_line_per_tenth_and_no_carriage_returns():
    clock, log = Clock(), io.StringIO()
    progress = Progress(200, 0, log, clock=clock)
    progress.show()
    for _ in range(200):
        clock.now += 1.0  # a tenth (20 trials) every 20 s, sooner than LOG_EVERY_S
        progress.advance()
    progress.finish()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert _counts(text) == [0, *range(20, 201, 20)]
    assert len(text.splitlines()) == LOG_STEPS + 1


def test_a_slow_sweep_logs_at_least_every_log_every_s():
    clock, log = Clock(), io.StringIO()
    progress = Progress(100, 0, log, clock=clock)
    progress.show()
    for _ in range(100):
        clock.now += 12.0  # a tenth every 120 s: the clock rule fills the gaps
        progress.advance()
    progress.finish()
    counts = _counts(log.getvalue())
    assert counts == sorted(set(counts)) and counts[-1] == 100
    gaps_s = [12.0 * (b - a) for a, b in itertools.pairwise(counts)]
    assert max(gaps_s) <= LOG_EVERY_S + 12.0
    assert len(counts) <= 100 * 12.0 / LOG_EVERY_S + LOG_STEPS + 2


def test_the_end_of_an_interrupted_sweep_is_logged_once():
    clock, log = Clock(), io.StringIO()
    progress = Progress(100, 40, log, clock=clock)
    progress.show()
    clock.now += 1.0
    progress.advance(failed=True)
    progress.finish()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2
    assert "40/100" in lines[0] and "41/100" in lines[1] and "1 failed" in lines[1]


def test_a_terminal_gets_one_line_redrawn_in_place():
    clock, screen = Clock(), Terminal()
    progress = Progress(5, 0, screen, clock=clock)
    progress.show()
    for _ in range(5):
        clock.now += 1.0
        progress.advance()
    progress.finish()
    text = screen.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") >= 2
    assert "5/5" in text.rsplit("\r", 1)[-1]


def test_durations_read_as_words():
    assert format_duration(42) == "42 s"
    assert format_duration(125) == "2 min 05 s" and format_duration(7260) == "2 h 01 min"


# Long work of the other commands: ``controller.progress.progress`` on stderr, on a
# terminal only (after ``AFTER_S``, 0 here), never on stdout.


@pytest.fixture
def at_once(monkeypatch):
    monkeypatch.setattr(shared, "AFTER_S", 0.0)


def _run(monkeypatch, capsys, terminal: bool, argv: list[str]) -> tuple[str, str]:
    from controller.cli import main

    stderr = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    assert main(argv) == 0
    return capsys.readouterr().out, stderr.getvalue()


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_fes_sim_shows_the_samples_done_on_a_terminal(tmp_path, monkeypatch, capsys, at_once,
                                                      terminal):
    out, err = _run(monkeypatch, capsys, terminal,
                    ["sim", "--duration-s", "4", "--out", str(tmp_path / "t")])
    assert out.startswith("trial: 4 s") and "%|" not in out and "\r" not in out
    bars = [part for part in err.split("\r") if part.startswith("trial:")]
    if terminal:
        assert bars and "100%" in bars[-1] and "2.00k/2.00k" in bars[-1]
    else:
        assert not bars and "%|" not in err


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_fes_detect_shows_the_bytes_read_on_a_terminal(tmp_path, monkeypatch, capsys, at_once,
                                                       terminal):
    from controller.cli import main

    assert main(["sim", "--duration-s", "4", "--out", str(tmp_path / "t")]) == 0
    capsys.readouterr()
    samples = tmp_path / "t" / "samples.csv"
    out, err = _run(monkeypatch, capsys, terminal, [
        "detect", "--input", str(samples), "--output", str(tmp_path / "events.csv")])
    assert "events" in out and "%|" not in out
    if terminal:
        assert "reading samples.csv: 100%" in err.rsplit("\r", 1)[-1]
    else:
        assert "%|" not in err


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_evaluate_shows_the_recordings_read_on_a_terminal(monkeypatch, capsys, at_once,
                                                          terminal):
    from pathlib import Path

    from controller.detect import evaluate

    stderr = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    folder = Path(__file__).parent / "data" / "voisard"
    assert evaluate.main(["--voisard", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| dataset") and "%|" not in out
    if terminal:
        assert "reading Voisard trials: 100%" in stderr.getvalue().rsplit("\r", 1)[-1]
    else:
        assert stderr.getvalue() == ""


# Within a sweep's trials: the work under way moves a terminal's line
# (``controller.sweep.underway``), not a log's.


def test_work_under_way_moves_a_terminals_line_between_finished_trials():
    clock, screen = Clock(), Terminal()
    progress = Progress(2, 0, screen, clock=clock)
    clock.now += 1.0
    progress.under_way(0.456)
    assert "0.45/2" in screen.getvalue().rsplit("\r", 1)[-1]
    progress.under_way(0.0, redraw=False)  # the trial's result came: counted whole
    progress.advance()
    assert re.search(r"\| 1/2 \[", screen.getvalue().rsplit("\r", 1)[-1])
    assert progress.done == 1


def test_work_under_way_is_not_logged():
    clock, log = Clock(), io.StringIO()
    progress = Progress(2, 0, log, clock=clock)
    progress.show()
    clock.now += 40.0
    progress.under_way(0.7)
    progress.finish()
    assert _counts(log.getvalue()) == [0]


def test_fes_sweep_of_one_long_trial_moves_within_it(tmp_path, monkeypatch, capsys, at_once):
    from controller.sweep import underway

    monkeypatch.setattr(underway, "TICK_S", 0.0)
    out, err = _run(monkeypatch, capsys, True, [
        "sweep", "--duration-s", "120", "--workers", "1", "--summaries-only",
        "--out", str(tmp_path / "sweep")])
    assert "%|" not in out and "\r" not in out
    lines = [part for part in err.split("\r") if part.startswith("sweep:")]
    within = [float(m.group(1)) for line in lines
              if (m := re.search(r"\| *(0\.\d+)/1 \[", line))]
    assert within and within == sorted(within)  # the trial's samples, as they run
    assert re.search(r"\| 1/1 \[", lines[-1])


def test_worker_processes_report_their_trials_to_the_sweep():
    from controller.config import load_config
    from controller.sweep.executors import run_processes
    from controller.sweep.underway import UNFINISHED, UnderWay
    from controller.sweep.worker import FileOptions

    config = load_config(None, {"loop": {"duration_s": 30}}).model_dump()
    progress = Progress(1, 0, io.StringIO())
    under_way = UnderWay(1, progress)
    results = list(run_processes([(config, FileOptions(summaries_only=True))], 1,
                                 under_way=under_way))
    assert [index for index, _ in results] == [0]
    assert under_way.shares[0] == UNFINISHED  # written by the worker, read here
    assert under_way.finished(0) == 0.0


# Long work other than a sweep, in a log (a CI job's): nothing while it is quick, whole
# lines once it has taken LOG_EVERY_S (a day-long fes sim took 32 s without a word).


def test_long_work_in_a_log_gets_lines_once_it_has_taken_log_every_s():
    clock, log = Clock(), io.StringIO()
    quick = shared.Progress(100, 0, log, desc="trial", unit="sample", clock=clock,
                            log_after_s=LOG_EVERY_S)
    for _ in range(100):
        clock.now += 0.2  # 20 s in all
        quick.advance()
    quick.finish()
    assert log.getvalue() == ""
    slow = shared.Progress(100, 0, log, desc="trial", unit="sample", clock=clock,
                           log_after_s=LOG_EVERY_S)
    started = clock.now
    times = []
    for _ in range(100):
        clock.now += 2.0  # 200 s in all
        before = log.getvalue().count("\n")
        slow.advance()
        if log.getvalue().count("\n") > before:
            times.append(clock.now - started)
    slow.finish()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    counts = _counts(text)
    assert counts == sorted(set(counts)) and counts[-1] == 100
    assert times[0] >= LOG_EVERY_S
    assert max(b - a for a, b in itertools.pairwise(times)) <= LOG_EVERY_S


def test_fes_sim_in_a_log_prints_whole_lines_once_it_has_taken_long(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setattr(shared, "LOG_EVERY_S", 0.0)  # "long" from the start
    out, err = _run(monkeypatch, capsys, False,
                    ["sim", "--duration-s", "4", "--out", str(tmp_path / "t")])
    assert "%|" not in out and "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("trial:")]
    assert lines and "100%" in lines[-1] and "2.00k/2.00k" in lines[-1]
