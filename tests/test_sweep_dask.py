"""`fes sweep --scheduler` on a Dask cluster gives the local executor's results, trial for
trial. The cluster runs in this process (threads), the same code path as a remote one."""

from __future__ import annotations

import csv
from pathlib import Path

from distributed import LocalCluster

from controller.cli import main
from controller.sweep.store import SweepStore
from controller.sweep.table import WALL_CLOCK_FIGURES

SWEEP = ["sweep", "--grid", "stim.peroneal.amplitude_ma=20,35", "--patients", "mild,severe",
         "--duration-s", "4"]


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as handle:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK_FIGURES}
                for r in csv.DictReader(handle)]


def test_dask_cluster_matches_local_processes_trial_for_trial(tmp_path, capsys, monkeypatch):
    from_bytes: list[str] = []  # trials whose files came back as bytes (a Dask worker's)
    commit = SweepStore.commit

    def counted(self, key, files):
        from_bytes.append(key)
        commit(self, key, files)

    monkeypatch.setattr(SweepStore, "commit", counted)
    with LocalCluster(
        processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        dask_out = tmp_path / "dask"
        assert main([*SWEEP, "--scheduler", cluster.scheduler_address,
                     "--out", str(dask_out)]) == 0
    assert "on Dask cluster at" in capsys.readouterr().out
    assert len(from_bytes) == 4  # not written into the sweep folder by the workers
    local_out = tmp_path / "local"
    assert main([*SWEEP, "--workers", "2", "--out", str(local_out)]) == 0
    assert len(from_bytes) == 4  # local workers wrote theirs in place
    dask_rows, local_rows = rows(dask_out), rows(local_out)
    assert len(dask_rows) == 4
    for on_dask, on_local in zip(dask_rows, local_rows, strict=True):
        assert on_dask == on_local
        for name in ("samples.csv", "events.csv", "config.json"):
            assert (dask_out / on_dask["dir"] / name).read_bytes() == (
                local_out / on_local["dir"] / name
            ).read_bytes()
