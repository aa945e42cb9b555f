"""Bad inputs a user can give any ``fes`` command: each is exit 2 with a one-line
message naming the input, never a traceback and never a hang (issue 13 items 9, 10)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest

from controller.cli import main

LONG_NAME = "a" * 300  # beyond the 255 bytes a file name may have


def fes(capsys, *argv: str) -> tuple[int, str]:
    """Exit code and stderr of ``fes argv`` run in this process."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff", "not UTF-8 text (byte 0xff at offset 0)"),
        (b"[loop]\nduration_s = 5\n# caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 27)"),
        (b"x = " + b"9" * 5000 + b"\n", "not valid TOML: an integer of 5000 digits"),
        (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "not valid TOML: nested too deeply"),
    ],
    ids=["invalid-utf8", "latin1-comment", "5000-digit-integer", "5000-deep-array"],
)
def test_a_config_that_is_not_sound_toml_is_named(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    code, err = fes(capsys, "check-config", str(path))
    assert code == 2
    assert f"({path})" in err and expected in err


def test_a_config_that_is_a_device_or_a_fifo_is_refused_without_reading_it(tmp_path, capsys):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    results = []
    worker = threading.Thread(
        target=lambda: results.extend(fes(capsys, "check-config", p) for p in
                                      ("/dev/zero", str(fifo))), daemon=True)
    worker.start()
    worker.join(10.0)
    assert not worker.is_alive(), "fes check-config hangs on a device or a FIFO"
    assert len(results) == 2
    for code, err in results:
        assert code == 2 and "not a regular file" in err


def test_a_config_of_many_megabytes_is_refused_before_it_is_parsed(tmp_path, capsys):
    path = tmp_path / "huge.toml"
    path.write_bytes(b"# padding\n" * 200_000)  # 2 MB of comments
    code, err = fes(capsys, "check-config", str(path))
    assert code == 2 and "2000000 bytes; a config is at most 1048576" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["sim", "--patient", LONG_NAME, "--duration-s", "1"],
        ["sim", "--stim", LONG_NAME, "--duration-s", "1"],
        ["sim", "--patient", f"/tmp/{LONG_NAME}.toml", "--duration-s", "1"],
    ],
    ids=["patient", "stim", "patient-path"],
)
def test_a_name_longer_than_a_file_name_can_be_is_named(tmp_path, capsys, argv):
    code, err = fes(capsys, *argv, "--out", str(tmp_path / "run"))
    assert code == 2
    assert "aaaaaaaaaa" in err and "at most 255" in err
    assert not (tmp_path / "run").exists()


def test_a_name_longer_than_a_file_name_can_be_in_a_config_is_named(tmp_path, capsys):
    path = tmp_path / "long.toml"
    path.write_text(f'[sim]\npatient = "{LONG_NAME}"\n[stim]\npreset = "{LONG_NAME}"\n')
    code, err = fes(capsys, "check-config", str(path))
    assert code == 2 and "at most 255" in err


# ---- fes sweep ----------------------------------------------------------------------


def hangs(target, timeout_s: float) -> bool:
    """Whether ``target()`` is still running after ``timeout_s`` (left on a daemon
    thread)."""
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return worker.is_alive()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--samples", "1000000000", "--random", "stim.peroneal.amplitude_ma=20:30"],
         "1000000000 trials; a sweep runs at most 100000"),
        (["--seeds", "1000000000"], "1000000000 trials; a sweep runs at most 100000"),
        (["--grid", "stim.peroneal.amplitude_ma=20,21,22,23,24,25,26,27,28,29",
          "--patients", "mild,moderate,severe", "--seeds", "4000"],
         "120000 trials; a sweep runs at most 100000"),
    ],
    ids=["samples-1e9", "seeds-1e9", "product"],
)
def test_a_sweep_too_large_to_plan_is_refused_at_once(tmp_path, capsys, argv, expected):
    results: list[tuple[int, str]] = []
    assert not hangs(lambda: results.append(
        fes(capsys, "sweep", *argv, "--dry-run", "--out", str(tmp_path / "s"))), 20.0)
    (code, err), = results
    assert code == 2 and expected in err


def test_a_scheduler_that_is_no_address_is_refused_before_dask_is_asked(tmp_path, capsys):
    code, err = fes(capsys, "sweep", "--scheduler", "garbage", "--duration-s", "1",
                    "--out", str(tmp_path / "s"))
    assert code == 2
    assert "--scheduler 'garbage': not a scheduler address (tcp://HOST:PORT or HOST:PORT)" in err


def test_an_unknown_patient_in_a_grid_is_named(tmp_path, capsys):
    code, err = fes(capsys, "sweep", "--grid", "sim.patient=nobody", "--dry-run",
                    "--out", str(tmp_path / "s"))
    assert code == 2 and "patient 'nobody': no such patients config" in err


def test_a_grid_of_patients_runs_those_patients(tmp_path, capsys):
    """Item 10: ``--grid sim.patient=X`` ran the config's patient (moderate) instead."""
    out = tmp_path / "s"
    assert main(["sweep", "--grid", "sim.patient=severe,mild", "--grid", "sim.seed=4,5",
                 "--duration-s", "1", "--workers", "1", "--out", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    rows = (out / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header.count("sim.patient") == 1 and header.count("sim.seed") == 1
    patient, seed = header.index("sim.patient"), header.index("sim.seed")
    ran = sorted((r.split(",")[patient], r.split(",")[seed]) for r in rows[1:])
    assert ran == [("mild", "4"), ("mild", "5"), ("severe", "4"), ("severe", "5")]


# ---- fes detect ---------------------------------------------------------------------


def test_a_csv_field_beyond_the_csv_limit_is_named_with_its_line(tmp_path, capsys):
    """Item 9 (a _csv.Error traceback). The field is not a number, so the file goes to
    the row-by-row reader (digits alone are numpy's, which reads them as inf)."""
    path = tmp_path / "rec.csv"
    path.write_text("time_s,gyro_rad_s\n0.0,0.1\n0.002," + "x" * 140_000 + "\n")
    code, err = fes(capsys, "detect", "--input", str(path), "--output", str(tmp_path / "e.csv"))
    assert code == 2
    assert f"{path}: line 3: a field longer than 131072 characters" in err


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path, capsys):
    """Item 10: a CSV saved by a spreadsheet starts with a BOM, and 'time_s' was not found."""
    path = tmp_path / "rec.csv"
    rows = "".join(f"{k * 0.002:.3f},{0.1 * (k % 7)}\n" for k in range(500))
    path.write_bytes(b"\xef\xbb\xbftime_s,gyro_rad_s\n" + rows.encode())
    code, err = fes(capsys, "detect", "--input", str(path), "--output", str(tmp_path / "e.csv"))
    assert code == 0, err
    assert (tmp_path / "e.csv").read_text().startswith("time_s,event\n")


# ---- configs merged with command-line options ---------------------------------------


@pytest.mark.parametrize(
    ("toml", "argv", "expected"),
    [
        ("loop = 5\n", ["--duration-s", "1"], "loop: 5 is not a table"),
        ("stim = \"odfs\"\n", ["--stim", "odfs"], "stim: 'odfs' is not a table"),
        ("sim = []\n", ["--patient", "mild"], "sim: [] is not a table"),
    ],
    ids=["loop-5", "stim-string", "sim-array"],
)
def test_an_invalid_section_is_not_dropped_when_an_option_sets_one_of_its_fields(
    tmp_path, capsys, toml, argv, expected
):
    """Item 10: ``loop = 5`` in a file was refused by check-config but silently replaced
    by the ``[loop]`` of ``--duration-s`` in ``fes sim``."""
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert fes(capsys, "check-config", str(path))[0] == 2
    code, err = fes(capsys, "sim", "--config", str(path), *argv, "--out", str(tmp_path / "r"))
    assert code == 2 and expected in err
    assert not (tmp_path / "r").exists()


# ---- Ctrl-C while fes starts ----------------------------------------------------------


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.15, 0.3, 0.5, 0.8])
def test_ctrl_c_during_start_up_is_exit_130_without_a_traceback(tmp_path, delay_s):
    """Item 9: SIGINT while ``fes`` imports its modules (pydantic, numpy, numba) printed a
    KeyboardInterrupt traceback from the console script.

    The delay counts from the moment ``controller.cli`` has imported its first module
    (``-X importtime`` says when): before it, the interrupted start-up is the Python
    interpreter's own (its site module), which no program can catch."""
    proc = subprocess.Popen(  # 6000 s: about 8 s of computing, still running at 0.8 s
        [sys.executable, "-X", "importtime", "-m", "controller.cli", "sim",
         "--duration-s", "6000", "--out", str(tmp_path / "run")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # import times, one line per module, as each is done
        lines.append(line)
        if line.rstrip().endswith("controller.commands.common"):
            break
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    err = "".join(lines) + proc.communicate(timeout=60)[1]
    assert "Traceback" not in err, err
    # 130, never death by SIGINT: CPython marks a KeyboardInterrupt that ends code it runs
    # from a string (dataclasses' and namedtuple's exec while modules import) as
    # unhandled even though main caught it, and would end by SIGINT at exit; entry()
    # clears the mark (tests/test_interrupts_exit.py).
    assert proc.returncode == 130, err


def test_a_ctrl_c_python_swallowed_while_the_kernels_loaded_ends_the_trial(
    tmp_path, capsys, monkeypatch
):
    """A SIGINT 0.8 s into ``fes sim --duration-s 600`` once came while Python ran a
    callback as the kernels loaded: Python only reported it to ``sys.unraisablehook``
    (which remembers it), nothing asked again, and the 600 s trial ran to the end with
    exit 0. Here the interrupt is swallowed just before the loop's kernels load."""
    from controller.trial import compiled_loop

    real = compiled_loop.LoopCompile.finish

    def swallowed_during(self: compiled_loop.LoopCompile) -> float:
        swallow_an_interrupt()
        return real(self)

    monkeypatch.setattr(compiled_loop.LoopCompile, "finish", swallowed_during)
    code, err = fes(capsys, "sim", "--duration-s", "600", "--out", str(tmp_path / "run"))
    assert code == 130, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_by"] == "interrupted" and summary["duration_s"] < 600


def test_a_ctrl_c_while_a_first_run_compiles_leaves_the_trial_s_files_complete(
    tmp_path, capsys, monkeypatch
):
    """A first run compiles before its files open (controller.trial.compile_ahead): a
    Ctrl-C then still ends it as an interrupted trial of no samples, files complete."""
    from controller.trial import compiled_loop

    def interrupted(self: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(compiled_loop.LoopCompilation, "start", interrupted)
    monkeypatch.setattr(compiled_loop, "_READY", set())  # no loop has run: a first run
    code, err = fes(capsys, "sim", "--duration-s", "600", "--out", str(tmp_path / "run"))
    assert code == 130, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_by"] == "interrupted" and summary["duration_s"] == 0
    assert (tmp_path / "run" / "samples.csv").read_text().count("\n") == 1  # the header


def test_a_ctrl_c_a_compiled_module_printed_ends_the_trial_without_a_traceback(
    tmp_path, capsys, monkeypatch
):
    """The CI saw a SIGINT in start-up print a KeyboardInterrupt traceback: it came while
    numba's ``_dispatcher`` imported ``numba._devicearray``, and that compiled module
    prints the failed import's error with ``PyErr_Print`` (through ``sys.excepthook``)
    before raising its own ImportError. Here a compiled module's ``PyErr_Print`` of a
    KeyboardInterrupt happens just before the loop's kernels load."""
    import ctypes

    from controller.trial import compiled_loop

    real = compiled_loop.LoopCompile.finish

    def printed_during(self: compiled_loop.LoopCompile) -> float:
        # C code that meets a KeyboardInterrupt and reports it with PyErr_Print.
        assert ctypes.pythonapi.PyRun_SimpleString(b"raise KeyboardInterrupt") == -1
        return real(self)

    monkeypatch.setattr(compiled_loop.LoopCompile, "finish", printed_during)
    code, err = fes(capsys, "sim", "--duration-s", "600", "--out", str(tmp_path / "run"))
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def swallow_an_interrupt() -> None:
    """What Python does with a Ctrl-C that came while it ran a callback (a finaliser in a
    garbage collection, a weak reference's): it hands it to ``sys.unraisablehook``."""
    from types import SimpleNamespace

    sys.unraisablehook(SimpleNamespace(exc_value=KeyboardInterrupt(), exc_type=None,
                                       exc_traceback=None, err_msg=None, object=None))


@pytest.mark.parametrize("compiled", [True, False])
def test_a_ctrl_c_python_swallowed_during_the_loop_ends_the_trial(
    tmp_path, capsys, monkeypatch, compiled
):
    """The CI once saw a SIGINT 0.8 s into ``fes sim --duration-s 600`` (in its loop by
    then) end in exit 0 after the whole trial: nothing in the loop asked whether an
    interrupt had been swallowed. Here one is swallowed in the tenth block (compiled) or
    at the tenth sample read (the Python loop of a paced trial)."""
    from sim.limb import SimulatedLimb

    name = "next_block" if compiled else "read"
    real = getattr(SimulatedLimb, name)
    calls = []

    def swallowed_in_the_tenth(self: SimulatedLimb):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 10:
            swallow_an_interrupt()
        return real(self)

    monkeypatch.setattr(SimulatedLimb, name, swallowed_in_the_tenth)
    # Paced by the wall clock, a trial runs in run_loop: 5 s there, the tenth sample at 18 ms.
    duration_s, options = (600.0, []) if compiled else (5.0, ["--realtime"])
    code, err = fes(capsys, "sim", "--duration-s", f"{duration_s:g}", "--out",
                    str(tmp_path / "run"), *options)
    assert code == 130, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_by"] == "interrupted" and summary["duration_s"] < duration_s / 5
    assert main(["sim", "--duration-s", "1", "--out", str(tmp_path / "after")]) == 0


def test_a_report_of_a_trial_too_short_for_a_stride_warns_of_nothing(tmp_path, capsys):
    """Found by the CLI fuzz: matplotlib printed 'No artists with labels found to put in
    legend' (with a file path and a line of code) for every empty figure."""
    assert main(["sim", "--duration-s", "1", "--out", str(tmp_path / "t")]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["report", str(tmp_path / "t")]) == 0
    assert "Warning" not in capsys.readouterr().err


def test_more_sweep_workers_than_the_machine_can_hold_are_refused(tmp_path, capsys):
    code, err = fes(capsys, "sweep", "--workers", "100000", "--dry-run",
                    "--out", str(tmp_path / "s"))
    assert code == 2 and "--workers: at most" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["sim", "--duration-s", "0.001"],
        ["sim", "--duration-s", "1e-300"],
        ["sim", "--duration-s", "0.004", "--rate-hz", "100"],
        ["sweep", "--duration-s", "0.001", "--workers", "1"],
    ],
    ids=["sim-half-a-period", "sim-1e-300", "sim-at-100-hz", "sweep"],
)
def test_a_trial_shorter_than_one_sample_period_is_refused_naming_the_field(
    tmp_path, capsys, argv
):
    """``fes sim --duration-s 0.001`` (0.5 of a 2 ms period) ended in a ValueError
    traceback from reshaping its empty arrays; a sweep of it failed every trial (exit 4)."""
    code, err = fes(capsys, *argv, "--out", str(tmp_path / "out"))
    assert code == 2
    assert "loop.duration_s" in err and "one sample period" in err
    assert not (tmp_path / "out" / "failures.txt").exists()


def test_check_config_refuses_a_trial_shorter_than_one_sample_period(tmp_path, capsys):
    path = tmp_path / "short.toml"
    path.write_text("[loop]\nduration_s = 0.0001\n")
    code, err = fes(capsys, "check-config", str(path))
    assert code == 2 and "loop.duration_s: 0.0001 s is shorter than one sample period" in err


@pytest.mark.parametrize("option", ["--patient", "--stim", "--config"])
def test_a_folder_given_as_a_profile_or_a_config_is_not_called_missing(tmp_path, capsys, option):
    """``fes sim --patient /tmp`` said 'file not found' of a folder that exists (``--config
    /tmp`` said 'not a regular file')."""
    code, err = fes(capsys, "sim", option, str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 2
    assert f"({tmp_path})" in err and "not a regular file" in err and "not found" not in err


def test_a_config_saved_with_a_utf8_byte_order_mark_is_read(tmp_path, capsys):
    """A TOML file saved by an editor that writes a UTF-8 byte order mark (Windows
    Notepad before 2019) was 'not valid TOML: Invalid statement (at line 1, column 1)'
    although it looks valid in every editor; the mark is an encoding signature, as in a
    CSV recording (above), not part of the first line."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[loop]\nduration_s = 0.5\n")
    code, err = fes(capsys, "check-config", str(path))
    assert code == 0, err
    out = tmp_path / "t"
    assert main(["sim", "--config", str(path), "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["duration_s"] == 0.5


def test_a_negative_sample_seed_is_refused_naming_the_option(tmp_path, capsys):
    """``fes sweep --random KEY=20:30 --samples 3 --sample-seed -5`` ended in numpy's
    'ValueError: expected non-negative integer' traceback (exit 1)."""
    code, err = fes(capsys, "sweep", "--random", "stim.peroneal.amplitude_ma=20:30",
                    "--samples", "3", "--sample-seed", "-5", "--dry-run",
                    "--out", str(tmp_path / "s"))
    assert code == 2 and "--sample-seed: must be >= 0 (got -5)" in err
