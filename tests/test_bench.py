"""``python -m controller.bench`` prints the timing figures it promises (short runs only)."""

from __future__ import annotations

import re

import pytest

from controller.bench.loop import main


def test_bench_prints_miss_rate_lateness_and_latency(capsys):
    assert main(["--duration-s", "0.3", "--rate-hz", "500", "--platform-s", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "load average" in out
    assert "samples served: " in out and "periods missed: " in out
    for label in ("lateness (us)", "sensor-to-command (us)"):
        (line,) = [row for row in out.splitlines() if row.startswith(label)]
        assert "p50" in line and "p99.9" in line and "max" in line
    assert "warm-up before the loop:" in out and "first sample: lateness" in out
    assert "platform check (timer slack" in out and "a bare spinning thread lost" in out


def test_bench_profile_names_the_loop_stages(capsys):
    assert main(["--duration-s", "0.5", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "tottime" in out
    assert "read" in out and "submit" in out


def test_bench_bad_option_exits_2(capsys):
    assert main(["--rate-hz", "5"]) == 2
    assert "loop.sample_rate_hz" in capsys.readouterr().err


def test_watchdog_bench_prints_the_shell_and_kernel_costs(capsys):
    from controller.bench.watchdog import main as watchdog_main

    assert watchdog_main(["--samples", "3000"]) == 0
    out = capsys.readouterr().out
    for label in ("Watchdog shell from Python:", "kernels from a compiled loop:"):
        (line,) = [row for row in out.splitlines() if label in row]
        assert float(line.split(":")[1].split()[0]) > 0.0


def test_phases_bench_times_every_phase_of_a_trial(capsys):
    from controller.bench.phases import PHASES
    from controller.bench.phases import main as phases_main

    assert phases_main(["--duration-s", "1", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "writer forked by the trial" in out
    for _, _, label in PHASES:
        assert any(line.endswith(f"faults  {label}") for line in out.splitlines()), label


def test_link_bench_says_what_ended_its_loop_early(monkeypatch, capsys):
    """``python -m controller.bench.link`` on a busy machine printed "10 s: 2050 of 2051
    samples answered" and nothing of why the loop had stopped after 4 s: the safety
    watchdog's heartbeat fault, which is no board fault."""
    from controller.bench import link

    class StopsAfterASecond(link.Watchdog):
        submits = 0

        def submit(self, t_s, commands):
            StopsAfterASecond.submits += 1
            if StopsAfterASecond.submits == 500:
                self.emergency_stop("test")
            return super().submit(t_s, commands)

    monkeypatch.setattr(link, "Watchdog", StopsAfterASecond)
    assert link.main(["--seconds", "3"]) == 0
    out = capsys.readouterr().out
    # The e-stop at the 500th sample, or a heartbeat fault before it when a loaded
    # machine held the loop off the CPU (a CI run at load 3: 20.2 ms > 20 ms): either
    # way the line names the fault that ended the loop.
    assert re.search(r"ended by: safety watchdog fault \((emergency_stop: e-stop \(test\)"
                     r"|heartbeat_timeout_ms: .* > 20 ms)", out), out
    # docs/protocol.md ("At the start") quotes how long the start kept the board waiting.
    (start,) = re.findall(r"last HELLO to the loop's first sample: ([0-9.]+) ms", out)
    assert 0.0 < float(start) < 1000.0, out


def test_writer_first_use_bench_runs_its_trial_and_times_the_warm_up(capsys):
    """docs/files.md quotes this benchmark's warm-up and resident sets: its trial must run.
    (Its child replaced ``LogWriter._warm_up`` with a one-argument twin, which the
    two-argument method of 36825c8 broke: every run ended in a TypeError, still exit 0.)"""
    from controller.bench.writer_first_use import main as writer_first_use

    assert writer_first_use(["--duration-s", "2", "--at-s", "1", "--rate-hz", "500"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^log writer warmed up in [0-9.]+ ms$", out, re.MULTILINE), out
    assert "exit 0; the first infinite cell at 1 s of trial" in out
    assert "Traceback" not in out


def test_kill_lock_bench_times_the_folder_lock_after_each_kill(tmp_path, capsys):
    """docs/files.md ("What survives a crash") quotes how long a killed trial's writer
    keeps its folder locked: the benchmark must kill each trial and time the lock."""
    from controller.bench.kill_lock import COMMANDS
    from controller.bench.kill_lock import main as kill_lock

    assert kill_lock(["--runs", "1", "--after-s", "0.5", "--dir", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    for options in COMMANDS:
        assert re.search(rf"^fes sim {re.escape(' '.join(options))}, SIGKILL 0.5 s after its "
                         r"first file: folder free [0-9.]+ ms after the reaping$", out,
                         re.MULTILINE), out
    assert "machine load average" in out
    assert not (tmp_path / "t").exists()


def test_disk_room_bench_counts_a_parts_folder_removed_mid_walk_as_gone(tmp_path,
                                                                          monkeypatch):
    """The trial merges its Parquet parts and removes their folder while the bench walks
    the trial's folder (a CI run of 7 Dec 2026 ended the bench there with
    FileNotFoundError): the folder is then gone, not an error."""
    import os
    import shutil

    from controller.bench.disk_room import folder_bytes

    (tmp_path / "samples.parquet").write_bytes(b"x" * 300)
    parts = tmp_path / "timing.parquet.partial"
    parts.mkdir()
    (parts / "part-0.parquet").write_bytes(b"y" * 70)
    assert folder_bytes(tmp_path) == {"folder": 370, "timing.parquet.partial": 70}
    listing = os.scandir

    def merged_as_listed(path):  # the trial removes the parts just as they are listed
        if str(path).endswith(".parquet.partial"):
            shutil.rmtree(path, ignore_errors=True)
        return listing(path)

    monkeypatch.setattr(os, "scandir", merged_as_listed)
    assert folder_bytes(tmp_path) == {"folder": 300}


def test_disk_room_bench_watches_the_parquet_parts_grow(tmp_path, capsys):
    """docs/files.md ("Room on the disk") quotes the parts' growth a second and the
    folder's peak while they are merged: ``--parts`` must print both."""
    from controller.bench.disk_room import main as disk_room

    assert disk_room(["--parts", "--duration-s", "2", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for table in ("events", "samples", "timing"):
        (line,) = [row for row in out.splitlines() if row.startswith(f"{table}.parquet")]
        assert float(line.split(", ")[1].split()[0]) > 0.0, line
    (peak, merged) = re.findall(r"^folder: ([0-9.]+) bytes a sample at its peak, ([0-9.]+) "
                                r"merged$", out, re.MULTILINE)[0]
    assert float(peak) > float(merged) > 0.0, out


@pytest.mark.slow  # its child compiles every kernel afresh (14-19 s): -m slow
def test_detector_bench_prints_what_numbas_runtime_costs_each_kernel(capsys):
    """docs/decisions.md quotes what compiling the kernels without numba's runtime saves
    per sample: ``--nrt`` must time every detector both ways. (14 s on one CPU: its child
    compiles every detector and the walk afresh.)"""
    from controller.bench.detector import DETECTORS
    from controller.bench.detector import main as detector_bench

    assert detector_bench(["--seconds", "2", "--twin-seconds", "0.2", "--repeat", "1",
                           "--nrt"]) == 0
    out = capsys.readouterr().out
    for name in DETECTORS:
        (row,) = re.findall(rf"^\| {re.escape(name)} \| (\d+) \| (\d+) \| ([+-]\d+) ns \|$",
                            out, re.MULTILINE)
        assert int(row[0]) > 0 and abs(int(row[1]) - int(row[0]) - int(row[2])) <= 1, row


@pytest.mark.slow  # its child compiles every kernel afresh (14-19 s): -m slow
def test_simulator_bench_prints_what_numbas_runtime_costs_the_patient(capsys):
    """docs/simulator.md quotes the share of the patient's time numba's runtime would
    take: ``--nrt`` must time the patient alone both ways."""
    from controller.bench.simulator import main as simulator_bench

    assert simulator_bench(["--duration-s", "5", "--loop-duration-s", "1", "--repeats", "1",
                            "--nrt"]) == 0
    out = capsys.readouterr().out
    (with_nrt, without, share) = re.findall(
        r"^  with numba's runtime on: [0-9,]+x real time \(CPU\), (\d+) ns a sample against "
        r"(\d+) ns: the runtime's share (-?\d+)%$", out, re.MULTILINE)[0]
    assert int(with_nrt) > 0 and int(without) > 0, out
    assert abs(round(100 * (1 - int(without) / int(with_nrt))) - int(share)) <= 1, out


def test_writer_first_use_bench_hands_its_options_to_the_trial(capsys):
    """docs/files.md quotes a Parquet trial's warm-up: options after ``--`` must reach
    ``fes sim`` (a wrong one fails the trial, exit 1, and says why)."""
    from controller.bench.writer_first_use import main as writer_first_use

    assert writer_first_use(["--duration-s", "2", "--at-s", "1", "--rate-hz", "500",
                             "--", "--format", "nonsense"]) == 1
    out = capsys.readouterr().out
    assert "--format" in out and "nonsense" in out, out
