"""``--format parquet``: the same trial as the CSV files, typed, with units and the
config in the metadata, kill-safe in parts, and loadable in one line (docs/files.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from controller.cli import main
from controller.trial.csvtext import CsvRenderer
from controller.trial.files import column_kind, event_line, phase_names
from sim.limb import BLOCK_SAMPLES

ARGS = ("--duration-s", "12", "--seed", "4", "--stim", "peroneal_calf")


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> tuple[Path, Path]:
    """The same trial written as CSV and as Parquet."""
    root = tmp_path_factory.mktemp("formats")
    assert main(["sim", *ARGS, "--out", str(root / "csv")]) == 0
    assert main(["sim", *ARGS, "--out", str(root / "parquet"), "--format", "parquet"]) == 0
    return root / "csv", root / "parquet"


def as_csv(frame: pd.DataFrame) -> bytes:
    """A samples table rendered as ``samples.csv`` renders its numbers."""
    codes = {name: code for code, name in enumerate(phase_names())}
    values = np.empty((len(frame.columns), len(frame)))
    for i, name in enumerate(frame.columns):
        column = frame[name]
        if name == "phase":
            values[i] = [codes[p] for p in column.astype(str)]
        else:
            values[i] = column.astype("float64").to_numpy(na_value=np.nan)
    kinds = np.array([column_kind(name) for name in frame.columns])
    header = (",".join(frame.columns) + "\n").encode()
    return header + CsvRenderer(kinds, phase_names()).rows(values).tobytes()


def test_parquet_holds_the_numbers_of_the_csv(both):
    csv_dir, parquet_dir = both
    assert sorted(p.name for p in parquet_dir.iterdir()) == [
        "config.json", "events.parquet", "samples.parquet", "summary.json"
    ]
    samples = pd.read_parquet(parquet_dir / "samples.parquet")
    assert as_csv(samples) == (csv_dir / "samples.csv").read_bytes()
    events = pd.read_parquet(parquet_dir / "events.parquet")
    lines = "".join(event_line(t, s, e) for t, s, e in events.itertuples(index=False))
    assert "time_s,source,event\n" + lines == (csv_dir / "events.csv").read_text()
    csv_summary, parquet_summary = (
        json.loads((d / "summary.json").read_text()) for d in both
    )
    for summary in (csv_summary, parquet_summary):
        summary.pop("real_time_factor")
        summary["timing"].pop("warm_up_ms")
    assert csv_summary == parquet_summary


def test_parquet_columns_are_typed_with_units_and_the_config(both):
    _, parquet_dir = both
    table = pq.read_table(parquet_dir / "samples.parquet")
    schema = table.schema
    assert schema.field("gyro_rad_s").metadata == {b"unit": b"rad/s"}
    assert schema.field("calf_amplitude_ma").metadata == {b"unit": b"mA"}
    assert schema.field("heel_force_n").metadata == {b"unit": b"N"}
    assert schema.field("stim_on").metadata is None  # a flag has no unit
    config = json.loads(schema.metadata[b"fes:config"])
    assert config == json.loads((parquet_dir / "config.json").read_text())
    frame = table.to_pandas()
    assert frame["heel_switch"].dtype == np.int64
    assert frame["phase"].dtype == "category"
    assert set(frame["phase"].cat.categories) <= set(phase_names())


def test_polars_reads_the_same_trial(both):
    _, parquet_dir = both
    samples = pl.read_parquet(parquet_dir / "samples.parquet")
    assert samples.height == 12 * 500
    assert samples["time_s"].to_numpy() == pytest.approx(np.arange(6000) / 500)


def test_a_killed_parquet_trial_leaves_readable_parts(tmp_path):
    """Kill -9 mid-trial: the parts folder reads as one table, the first rows of the
    trial it would have been."""
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "sim", "--duration-s", "300", "--seed", "4",
         "--format", "parquet", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    # Killed once its first part is on disk: in the loop, whatever the load.
    deadline = time.monotonic() + 120
    while not any((out / "samples.parquet.partial").glob("part-*.parquet")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while any((out / "samples.parquet.partial").glob(".*tmp*")) or _writer_alive(proc.pid):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    if (out / "summary.json").exists():
        pytest.skip("the trial ended before the kill (a very fast machine)")
    parts = pd.read_parquet(out / "samples.parquet.partial")
    # Published every second of samples, and at the end of each block of the kernel.
    assert len(parts) > 0 and (len(parts) % 500 == 0 or len(parts) % BLOCK_SAMPLES == 0)
    assert parts["time_s"].to_numpy() == pytest.approx(np.arange(len(parts)) / 500)
    whole = tmp_path / "whole"
    assert main(["sim", "--duration-s", "300", "--seed", "4", "--out", str(whole),
                 "--format", "parquet"]) == 0
    reference = pd.read_parquet(whole / "samples.parquet").iloc[: len(parts)]
    pd.testing.assert_frame_equal(parts.reset_index(drop=True), reference)


def _writer_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def sweep_results(tmp_path: Path, seeds: int) -> pd.DataFrame:
    out = tmp_path / "sweep"
    assert main(["sweep", "--seeds", str(seeds), "--duration-s", "1", "--summaries-only",
                 "--workers", "1", "--format", "parquet", "--out", str(out)]) == 0
    return pd.read_parquet(out / "results.parquet")


def test_sweep_results_load_with_pandas(tmp_path):
    results = sweep_results(tmp_path, 20)
    assert len(results) == 20 and list(results["sim.seed"]) == list(range(20))
    assert results["strides"].dtype == np.int64
    assert results["stim.charge_uc_total"].dtype == np.float64
    csv = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert list(results.columns) == list(csv.columns)
    assert np.allclose(results["stim.charge_uc_total"], csv["stim.charge_uc_total"])


@pytest.mark.slow
def test_a_thousand_trial_sweep_loads_with_pandas(tmp_path):
    """About 40 s on a quiet 2-core machine (1 s trials, one process): slow suite."""
    results = sweep_results(tmp_path, 1000)
    assert len(results) == 1000 and results["sim.seed"].is_unique
    assert results["stopped_by"].eq("duration").all()


def test_fes_report_draws_a_parquet_trial_from_the_same_data_as_its_csv_twin(both, capsys):
    """``fes sim --format parquet`` then ``fes report`` said the folder was 'neither a
    trial folder (samples.csv, ...) nor a sweep folder' (exit 2)."""
    from controller.report.trial_data import load_trial

    csv_trial, parquet_trial = (load_trial(folder) for folder in both)
    assert [e[1:] for e in parquet_trial.events] == [e[1:] for e in csv_trial.events]
    np.testing.assert_allclose([e[0] for e in parquet_trial.events],
                               [e[0] for e in csv_trial.events], atol=1e-6)
    assert set(parquet_trial.columns) == set(csv_trial.columns)
    for name, values in csv_trial.columns.items():
        if values.dtype.kind == "f":
            np.testing.assert_allclose(parquet_trial.columns[name], values, atol=1e-6,
                                       equal_nan=True, err_msg=name)
        else:
            assert parquet_trial.columns[name].tolist() == values.tolist(), name
    assert main(["report", str(both[1])]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert {p.name for p in (both[1] / "report").glob("*.png")} == {
        "gyro-strides.png", "stim-envelope.png", "ankle-clearance.png", "distributions.png"}
