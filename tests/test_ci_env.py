"""``fes`` as a CI job runs it: a read-only checkout and home, no terminal, a tight
``ulimit -v``, two jobs at once (docs/research.md, "Checks for CI")."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from controller import numba_cache
from controller.errors import ConfigError
from controller.outputs import OutputError

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("controller", "sim", "hw", "configs")


def _checkout_numba_cannot_cache_in(tmp_path: Path) -> Path:
    """A copy of the sources in which numba can write no ``__pycache__`` beside a kernel
    (a file stands where each folder would be made: a read-only checkout, for root too)."""
    copy = tmp_path / "checkout"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    folders = [copy / p for p in PACKAGES]
    for folder in folders + [d for f in folders for d in f.rglob("*")]:
        if folder.is_dir():
            (folder / "__pycache__").write_text("not a folder\n")
    return copy


def test_a_read_only_checkout_and_home_cache_in_a_private_temporary_folder(tmp_path):
    """A read-only checkout run with a read-only (or no) home, NUMBA_CACHE_DIR unset:
    every command that loads a kernel module (even ``fes check-config``) ended with
    numba's ``RuntimeError: cannot cache function ...: no locator available`` traceback
    and exit code 1. Now numba caches into ``$TMPDIR/fes-numba-cache-<uid>``, with a note."""
    copy = _checkout_numba_cannot_cache_in(tmp_path)
    (tmp_path / "home").write_text("a file: nothing can be made under it\n")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    config = tmp_path / "c.toml"
    config.write_text("[stim.peroneal]\namplitude_ma = 30\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    env |= {"HOME": str(tmp_path / "home" / "x"), "TMPDIR": str(temporary),
            "PYTHONPATH": str(copy)}
    proc = subprocess.run(
        [sys.executable, "-c", "from controller.cli import entry; entry()",
         "check-config", str(config)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    folder = temporary / f"fes-numba-cache-{os.getuid()}"
    assert f"caches compiled code in {folder}" in proc.stderr
    assert str(copy / "controller" / "__pycache__") in proc.stderr
    assert "NUMBA_CACHE_DIR" in proc.stderr and "valid" in proc.stdout
    assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700


def _numba_places_not_writable(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("")
    monkeypatch.setattr(numba_cache, "SOURCE", tmp_path / "blocked")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked" / "cache"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delenv("NUMBA_DISABLE_JIT", raising=False)


def test_the_temporary_folder_must_be_the_users_own(monkeypatch, tmp_path):
    """A ``fes-numba-cache-<uid>`` that others may write (someone made it first in a
    shared /tmp) is not used: numba would load their machine code. Exit 2, naming
    NUMBA_CACHE_DIR."""
    _numba_places_not_writable(monkeypatch, tmp_path)
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    shared = tmp_path / f"fes-numba-cache-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(OutputError) as err:
        numba_cache.choose_cache_dir()
    assert err.value.path == "NUMBA_CACHE_DIR" and "set NUMBA_CACHE_DIR" in str(err.value)
    assert "NUMBA_CACHE_DIR" not in os.environ


def test_an_unwritable_numba_cache_dir_is_named_when_nothing_else_is_writable(
        monkeypatch, tmp_path):
    """``NUMBA_CACHE_DIR`` set to a folder the job cannot write, in a read-only checkout
    with a read-only home: numba's traceback again ("no locator available", exit 1)."""
    _numba_places_not_writable(monkeypatch, tmp_path)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "blocked" / "numba"))
    with pytest.raises(OutputError) as err:
        numba_cache.choose_cache_dir()
    assert err.value.path == "NUMBA_CACHE_DIR"
    assert str(err.value).startswith(f"cannot write NUMBA_CACHE_DIR: {tmp_path}/blocked/numba: ")


def test_numbas_own_places_or_the_users_choice_are_left_alone(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert numba_cache.choose_cache_dir() is None  # the checkout is writable here
    _numba_places_not_writable(monkeypatch, tmp_path)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert numba_cache.choose_cache_dir() is None
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


def test_two_trials_cannot_hold_one_folder(tmp_path):
    """Two jobs started at once with the same ``--out`` both found it empty and both
    wrote their trials into it, both exiting 0 (one run in four here): one seed's
    ``config.json`` beside another's ``samples.csv``. The folder is locked while a trial
    writes it; the second is refused, ``--overwrite`` or not."""
    from controller.trial.folder import TrialFolder

    out = tmp_path / "t"
    first = TrialFolder.claim(out)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="another fes command is writing a trial"):
            TrialFolder.claim(out, overwrite)
    first.release()
    TrialFolder.claim(out).release()  # free again, and still empty


def test_a_fork_of_the_trial_does_not_keep_its_folder_locked(tmp_path):
    """The log writer, forked by the trial, inherited the lock: when it exited a moment
    after the trial's end, the same process's next trial into the folder (``fes sim
    --overwrite`` in a test) was refused as if another command were writing it."""
    from controller.trial.folder import TrialFolder

    out = tmp_path / "t"
    first = TrialFolder.claim(out)
    read, write = os.pipe()
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # a writer that outlives the trial's end
        os.close(write)
        os.write(ready_write, b"r")  # the fork's hooks have run
        os.read(read, 1)
        os._exit(0)
    os.close(read)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"r"
    os.close(ready_read)
    try:
        first.release()
        TrialFolder.claim(out, overwrite=True).release()
    finally:
        os.close(write)
        os.waitpid(child, 0)


def test_two_fes_sim_at_once_into_one_folder_one_is_refused(tmp_path):
    out = tmp_path / "same"
    jobs = [subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "sim", "--duration-s", "20", "--seed",
         str(seed), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(job.wait(timeout=300), job.stderr.read()) for job in jobs]  # type: ignore[union-attr]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "Traceback" not in refused and f"cannot write {out}" in refused
    config = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["seed"] == config["sim"]["seed"]


@given(free=st.integers(-2**30, 64 * 2**30), seconds=st.floats(0.001, 86400.0),
       rate_hz=st.sampled_from([100.0, 500.0, 1000.0, 2000.0]))
def test_a_refused_trial_names_a_duration_that_fits(free, seconds, rate_hz):
    """A CI job under ``ulimit -v`` was told "keeps 3 MB ... may use 0.3 GB more ...: at
    most 0 s fit": the room kept for the rest of the program went unsaid, and "0 s" is
    no trial. A duration the message names must fit; otherwise it says none does."""
    from controller.trial import memory

    n_samples = max(1, round(seconds * rate_hz))
    with mock.patch.object(memory, "room_bytes", lambda: (free, "a test's limit")):
        try:
            memory.check_fits(n_samples, 21, rate_hz)
        except ConfigError as err:
            (message,) = err.problems
            assert "a test's limit" in message and "give it" in message
            if found := re.search(r"at most (\d+) s fit", message):
                assert int(found.group(1)) >= 1
                memory.check_fits(int(found.group(1)) * round(rate_hz), 21, rate_hz)
            else:
                assert "no trial fits" in message
                with pytest.raises(ConfigError):
                    memory.check_fits(round(rate_hz), 21, rate_hz)


def _address_space(kib: int):
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (kib * 1024, kib * 1024))
    return limit


def test_a_short_trial_runs_under_a_tight_ulimit(tmp_path):
    """``fes sim --duration-s 20`` under ``ulimit -v 700000`` was refused (exit 2): 512 MiB
    were kept for the rest of the program, where it needs some 200 MB more than at
    the check (and ran under 340,000 kB)."""
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", "sim", "--duration-s", "20", "--out",
         str(tmp_path / "t")], capture_output=True, text=True, check=False, timeout=300,
        preexec_fn=_address_space(700_000),
    )
    assert proc.returncode == 0, proc.stderr


def test_a_sweep_in_one_process_runs_every_trial_under_a_tight_ulimit(tmp_path):
    """``fes sweep --workers 1`` under ``ulimit -v 700000``: its first trial ran, every
    later one was refused ("no trial fits", exit 4, "run the same command again to retry
    them": one more trial per run), the check counting the address space the first
    trial had mapped and freed as taken."""
    out = tmp_path / "s"
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", "sweep", "--grid",
         "stim.peroneal.amplitude_ma=25,30,35", "--duration-s", "20", "--workers", "1",
         "--out", str(out)], capture_output=True, text=True, check=False, timeout=300,
        preexec_fn=_address_space(700_000),
    )
    assert proc.returncode == 0, proc.stderr
    assert len(list((out / "trials").iterdir())) == 3


def _floats(value):
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _floats(item)
    elif isinstance(value, list):
        for item in value:
            yield from _floats(item)


def test_every_figure_of_the_summary_is_rounded(tmp_path, capsys):
    """``gyro_mounting.decided_s`` was the sum of sample periods in binary,
    ``4.3500000000000005`` (in ``summary.json`` and ``results.csv``): the check a CI job
    writes from what it reads, ``--require 'gyro_mounting.decided_s<=4.35'``, failed."""
    from controller.cli import main

    out = tmp_path / "t"
    assert main(["sim", "--duration-s", "10", "--out", str(out), "--require",
                 "gyro_mounting.decided_s<=4.35"]) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gyro_mounting"]["decided_s"] == 4.35
    assert all(round(x, 6) == x for x in _floats(summary))


#: What each command may exit with (docs/cli.md, "Exit codes").
EXIT_CODES = {
    "sim": (0, 2, 3, 130), "sweep": (0, 2, 3, 4, 130), "report": (0, 2, 130),
    "check-config": (0, 2, 130), "run": (0, 2, 5, 6, 7, 8, 9, 10, 130),
    "ports": (0, 1, 2, 9), "board-emulator": (0, 2, 130), "detect": (0, 2, 130),
}


@pytest.mark.parametrize("command", sorted(EXIT_CODES))
def test_every_command_lists_its_exit_codes_in_its_help(command, capsys):
    """A CI maintainer reads ``fes sim --help`` for what an exit code means: ``fes sim``,
    ``fes report`` and ``fes check-config`` listed none."""
    from controller.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser(command).parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    listed = text[text.lower().index("exit codes:"):]
    for code in EXIT_CODES[command]:
        assert re.search(rf"(: |; |, ){code} ", listed), (code, listed)


@given(blank=st.text(alphabet=" \t", max_size=3),
       command=st.sampled_from([["sim", "--config"], ["sweep", "--config"],
                                ["run", "--port", "loop://", "--config"], ["check-config"],
                                ["report"], ["detect", "--output", "e.csv", "--config"],
                                ["detect", "--output", "e.csv", "--input"]]))
@settings(max_examples=25, deadline=None)
def test_an_empty_input_path_is_named_as_such(blank, command):
    """``--config "$CONFIG"`` with the variable unset: "invalid configuration (.): not a
    regular file" (the empty path read as the current folder). Named now: the option
    and "an empty path", exit 2, before anything runs."""
    proc = subprocess.run([sys.executable, "-m", "controller.cli", *command, blank],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 2
    assert "an empty path" in proc.stderr and "Traceback" not in proc.stderr
    assert ("--config" if "--config" in command else "argument") in proc.stderr


@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_- 0123456789", max_size=12))
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_an_unknown_patient_in_a_config_names_the_field_and_the_file(tmp_path, capsys, name):
    """``patient = "$PATIENT"`` written by a CI job: "invalid configuration (patients
    ''): no such patients config", naming neither ``sim.patient`` nor the file."""
    from controller.cli import main
    from controller.resources import available

    assume(name not in available("patients"))
    config = tmp_path / "ci.toml"
    config.write_text(f"[sim]\npatient = {json.dumps(name)}\n")
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"invalid configuration ({config})" in err
    assert f"sim.patient {name!r}: no such patients config; available: " in err


def test_a_report_of_a_killed_trial_says_the_trial_did_not_end(tmp_path, capsys):
    """A job killed by its timeout's SIGKILL, then ``fes report`` in an always-run step:
    "neither a trial folder (..., summary.json, config.json) nor a sweep folder", of a
    folder that holds a trial's files. A folder with config.json and no summary.json is
    a trial that did not end (docs/files.md, "What survives a crash"): said so."""
    from controller.cli import main

    out = tmp_path / "t"
    assert main(["sim", "--duration-s", "2", "--out", str(out)]) == 0
    (out / "summary.json").unlink()  # as a kill leaves it
    capsys.readouterr()
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a trial that did not end (config.json but no summary.json" in err
    assert not (out / "report").exists()


def test_a_report_without_matplotlib_makes_nothing(tmp_path, capsys, monkeypatch):
    """``fes report`` in a CI image without the report extra is refused (exit 2) before
    it makes anything: it made its ``--out`` folder (and DIR/report) first."""
    from controller.cli import main

    trial = tmp_path / "t"
    assert main(["sim", "--duration-s", "2", "--out", str(trial)]) == 0
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    out = tmp_path / "reports" / "t"
    assert main(["report", str(trial), "--out", str(out)]) == 2
    assert "needs matplotlib: pip install 'fes-timing[report]'" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()
    assert main(["report", str(trial)]) == 2
    assert not (trial / "report").exists()


def test_a_sweep_whose_trials_do_not_fit_stops_with_exit_2(tmp_path, capsys, monkeypatch):
    """A sweep in a job whose memory holds no trial: each trial failed in turn (exit 4,
    a traceback each in failures.txt, "run the same command again to retry them"). The
    memory check's refusal is the sweep's: exit 2 naming loop.duration_s, stopped at
    the first."""
    from controller.cli import main
    from controller.trial import memory

    monkeypatch.setattr(memory, "room_bytes", lambda: (100 * 2**20, "a test's limit"))
    out = tmp_path / "s"
    assert main(["sweep", "--grid", "stim.peroneal.amplitude_ma=25,30", "--duration-s", "2",
                 "--workers", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fes: invalid configuration (loop.duration_s): a trial of 2 s" in err
    assert "a test's limit" in err and "stopped there with 0 of 2 trials finished" in err
    assert "Traceback" not in err and not (out / "failures.txt").exists()


def _ended(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_killed_trials_writer_keeps_the_folder_until_its_files_are_closed(tmp_path):
    """A job's trial killed by SIGKILL (its timeout) while the log writer still writes:
    the writer goes on with its final pass (a Parquet part renamed into
    ``samples.parquet.partial/`` by path), but the lock died with the trial's process,
    so a retried ``fes sim --overwrite`` removed the files under it, and the killed
    trial's last part could land in the new trial's parts folder. The writer keeps the
    lock until its files are closed: the retry is refused (exit 2) meanwhile."""
    import signal
    import time

    out = tmp_path / "t"
    trial = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "sim", "--realtime", "--duration-s", "60",
         "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writer = None
    try:
        deadline = time.monotonic() + 60
        while writer is None and time.monotonic() < deadline:
            children = Path(f"/proc/{trial.pid}/task/{trial.pid}/children").read_text().split()
            if children and (out / "samples.csv").exists():
                writer = int(children[0])
            time.sleep(0.1)
        assert writer is not None, "the trial's log writer did not start"
        time.sleep(0.5)  # rows written
        os.kill(writer, signal.SIGSTOP)  # a writer busy with its final pass, held there
        trial.kill()
        trial.wait()
        retry = subprocess.run(
            [sys.executable, "-m", "controller.cli", "sim", "--duration-s", "1", "--out",
             str(out), "--overwrite"], capture_output=True, text=True)
        assert retry.returncode == 2, retry.stderr
        assert "another fes command is writing a trial into this folder" in retry.stderr
        assert (out / "samples.csv").exists()  # not removed under the writer
        os.kill(writer, signal.SIGCONT)
        while not _ended(writer) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ended(writer)
        retry = subprocess.run(
            [sys.executable, "-m", "controller.cli", "sim", "--duration-s", "1", "--out",
             str(out), "--overwrite"], capture_output=True, text=True)
        assert retry.returncode == 0, retry.stderr
    finally:
        if writer is not None and not _ended(writer):
            os.kill(writer, signal.SIGCONT)
        if trial.poll() is None:
            trial.kill()
            trial.wait()
