"""``fes report`` of a long trial: samples.csv read column-wise in blocks (a 3,000 s trial
at 1 kHz took 4.7 GB and 63 s; docs/cli.md), the same figures as before, a bounded
number of lines drawn, spikes still visible, and progress on a terminal only."""

from __future__ import annotations

import csv
import io
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from controller import progress as progress_module
from controller.cli import main
from controller.report import trial_data, trial_figures
from controller.report.trial_data import CYCLE_POINTS, FIGURE_COLUMNS, load_trial
from controller.report.trial_figures import TRIAL_FIGURES, drawn_strides


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def minute(tmp_path_factory) -> Path:
    """A minute at 500 Hz: about 50 strides, 30,000 rows."""
    out = tmp_path_factory.mktemp("minute") / "t"
    assert main(["sim", "--duration-s", "60", "--out", str(out)]) == 0
    return out


def _copy(trial: Path, folder: Path) -> Path:
    folder.mkdir()
    for path in trial.iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
    return folder


def _by_csv_module(path: Path) -> dict[str, np.ndarray]:
    """What the report read before: every cell through the csv module and ``float``."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, rows = rows[0], rows[1:]
    return {name: np.array([float(r[i]) if r[i] else np.nan for r in rows])
            for i, name in enumerate(header) if name in FIGURE_COLUMNS}


def test_samples_are_read_as_the_csv_module_reads_them(minute, tmp_path, monkeypatch):
    """Small blocks (so rows straddle them), then a file with what the fast path leaves
    to the csv module: an empty cell (NaN), a quoted cell, Windows line ends."""
    monkeypatch.setattr(trial_data, "READ_BLOCK_BYTES", 4096)
    read = load_trial(minute).columns
    expected = _by_csv_module(minute / "samples.csv")
    assert set(read) == set(FIGURE_COLUMNS) == set(expected)
    for name in FIGURE_COLUMNS:
        np.testing.assert_array_equal(read[name], expected[name], err_msg=name)
    odd = _copy(minute, tmp_path / "odd")
    lines = (odd / "samples.csv").read_text().splitlines()
    header = lines[0].split(",")
    gyro = header.index("gyro_rad_s")
    cells = lines[5000].split(",")
    cells[gyro] = ""
    lines[5000] = ",".join(cells)
    cells = lines[9000].split(",")
    cells[gyro] = f'"{cells[gyro]}"'
    lines[9000] = ",".join(cells)
    (odd / "samples.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    read = load_trial(odd).columns
    expected = _by_csv_module(odd / "samples.csv")
    assert np.isnan(read["gyro_rad_s"][4999]) and np.isfinite(read["gyro_rad_s"][8999])
    for name in FIGURE_COLUMNS:
        np.testing.assert_array_equal(read[name], expected[name], err_msg=name)


def test_a_cell_that_is_not_a_number_is_named_by_its_line(minute, tmp_path, capsys):
    folder = _copy(minute, tmp_path / "t")
    lines = (folder / "samples.csv").read_text().splitlines()
    cells = lines[123].split(",")
    cells[1] = "fast"
    lines[123] = ",".join(cells)
    (folder / "samples.csv").write_text("\n".join(lines) + "\n")
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "samples.csv: line 124: 'fast' is not a number" in err


def test_samples_without_rows_are_named_not_a_traceback(minute, tmp_path, capsys):
    """A trial killed before its first row was written: 'ValueError: array of sample
    points is empty' from np.interp before."""
    folder = _copy(minute, tmp_path / "t")
    header = (folder / "samples.csv").read_text().splitlines()[0]
    (folder / "samples.csv").write_text(header + "\n")
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "samples: no rows after the header" in err


def test_reading_holds_less_than_the_file_in_memory(minute, monkeypatch):
    """Every cell as a Python string, as the report read before, held over ten times
    the file's size (3,000 s at 1 kHz: 4.7 GB for 443 MB); the columns the figures
    draw, as numbers, are 0.38 of it, and one block of text is held at a time."""
    monkeypatch.setattr(trial_data, "READ_BLOCK_BYTES", 1 << 16)
    size = (minute / "samples.csv").stat().st_size
    tracemalloc.start()
    try:
        load_trial(minute)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.9 * size, f"{peak / size:.2f} x the file"


def _figures(folder: Path, monkeypatch: pytest.MonkeyPatch, max_lines: int) -> dict[str, object]:
    """The trial's figures (matplotlib ``Figure``s by file name), drawn with at most
    ``max_lines`` strides as lines, not saved."""
    monkeypatch.setattr(trial_figures, "MAX_STRIDE_LINES", max_lines)
    drawn: dict[str, object] = {}

    def keep(figure: object, path: Path) -> Path:
        drawn[path.name] = figure
        return path

    monkeypatch.setattr(trial_figures, "save", keep)
    data = load_trial(folder)
    for name, _, draw in TRIAL_FIGURES:
        draw(data, folder / name)
    return drawn


def _mean_lines(figure) -> list[tuple[str, np.ndarray]]:
    return [(line.get_label(), np.asarray(line.get_ydata())) for ax in figure.axes
            for line in ax.get_lines() if line.get_label().startswith("mean of")]


def _texts(figure) -> list[str]:
    """Titles, axis labels and legend entries other than the range's."""
    texts = []
    for ax in figure.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [label for label in ax.get_legend_handles_labels()[1]
                  if not label.startswith("range of all")]
    return texts


def test_a_long_trial_draws_some_strides_with_the_same_figures(minute, monkeypatch):
    """Past ``MAX_STRIDE_LINES`` strides: the same titles, labels, means and counts as
    every stride drawn; fewer lines; every stride inside the shaded range."""
    every = _figures(minute, monkeypatch, 10_000)
    some = _figures(minute, monkeypatch, 10)
    strides = load_trial(minute).strides
    assert strides > 40
    for name in every:
        assert _texts(some[name]) == _texts(every[name]), name
        for (label, mean), (label_all, mean_all) in zip(
                _mean_lines(some[name]), _mean_lines(every[name]), strict=True):
            assert label == label_all == f"mean of {strides} strides"
            np.testing.assert_array_equal(mean, mean_all)
    activation_all = every["stim-envelope.png"].axes[1]
    activation = some["stim-envelope.png"].axes[1]
    lines = [ln for ln in activation.get_lines() if not ln.get_label().startswith("mean")]
    assert len(lines) < strides // 2 and len(activation_all.get_lines()) == strides + 1
    gyro_all, gyro = every["gyro-strides.png"].axes[0], some["gyro-strides.png"].axes[0]
    band = gyro.collections[0].get_paths()[0].vertices[:, 1]
    every_y = np.concatenate([ln.get_ydata() for ln in gyro_all.get_lines()])
    assert band.min() <= every_y.min() and every_y.max() <= band.max()


def test_the_lines_drawn_are_bounded_however_many_strides():
    strides = np.random.default_rng(0).normal(size=(50_000, CYCLE_POINTS))
    drawn = drawn_strides(strides)
    assert len(drawn) <= trial_figures.MAX_STRIDE_LINES + 2 * CYCLE_POINTS
    assert {int(strides[:, 7].argmax()), int(strides[:, 90].argmin())} <= set(drawn.tolist())


def test_a_spike_of_one_sample_shows_in_a_long_trials_gyro_figure(minute, tmp_path,
                                                                   monkeypatch):
    """The stride lines are the signal interpolated at 201 points of the cycle and can
    step over a spike of one sample; the shaded range takes every sample."""
    folder = _copy(minute, tmp_path / "spike")
    lines = (folder / "samples.csv").read_text().splitlines()
    gyro = lines[0].split(",").index("gyro_rad_s")
    cells = lines[12_001].split(",")
    cells[gyro] = "42.000000"
    lines[12_001] = ",".join(cells)
    (folder / "samples.csv").write_text("\n".join(lines) + "\n")
    figure = _figures(folder, monkeypatch, 10)["gyro-strides.png"]
    band = figure.axes[0].collections[0]
    assert band.get_paths()[0].vertices[:, 1].max() == 42.0


def test_the_report_of_a_long_trial_says_what_it_draws(minute, tmp_path, monkeypatch):
    monkeypatch.setattr(trial_figures, "MAX_STRIDE_LINES", 10)
    assert main(["report", str(minute), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert "With more than 10 strides, one stride in 5 and the outermost" in text
    assert "means, counts and histograms are of all strides" in text


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "pipe"])
def test_progress_goes_to_a_terminal_on_stderr_never_to_stdout(minute, tmp_path, monkeypatch,
                                                                capsys, terminal):
    """On a terminal, once the work has taken ``AFTER_S`` (0 here): what is read and what
    is drawn. Not a terminal: nothing more than before."""
    monkeypatch.setattr(progress_module, "AFTER_S", 0.0)
    stderr = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    assert main(["report", str(minute), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("report: ") and len(out.splitlines()) == 1
    if terminal:
        shown = stderr.getvalue()
        assert "reading samples.csv" in shown and "drawing figures" in shown
        assert "4/4" in shown.rsplit("\r", 1)[-1]
    else:
        assert stderr.getvalue() == ""
