"""Live-trial tests on a shared machine: the host's wall-clock fault timeouts, and runs
that a stalled machine ended by a heartbeat fault (with the kernel's count of the run's
waits for a CPU as proof), or, with the board's word for it, by an acknowledgement fault,
a late reply or a silence, repeated."""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import TypeVar

from controller.bench import LOOSE_TIMEOUTS_TOML
from controller.bench.openems_harness import spoiled_by_the_machine
from controller.commands.common import EXIT_WATCHDOG_FAULT
from helpers.cpu_waits import KERNEL, TreeWatch
from hw.board import LISTEN_STEP_S
from hw.emulator import MAX_CLOCK_STEP_S
from hw.runqueue import machine_delay_within

T = TypeVar("T")
#: A folder whose ``sitecustomize`` makes ``fes run`` late (``late_product``).
LATE_PRODUCT = Path(__file__).resolve().parent / "late_product"
#: A live run ended by a heartbeat fault is tried this many times in all.
RUNS = 3

#: The host's wall-clock fault timeouts at their compiled maximum (30 ms) instead of the
#: default 20 ms: on a shared CI machine other jobs can keep ``fes run``'s process off
#: the CPU for 20 ms, which the watchdog rightly reports as a hung loop (heartbeat) but
#: which is not what these tests are about; the fault bounds have their own tests
#: (tests/test_watchdog_faults.py).
SHARED_MACHINE_SAFETY = LOOSE_TIMEOUTS_TOML
#: The same, as ``load_config`` overrides of the ``safety`` table.
SHARED_MACHINE_LIMITS: dict[str, float] = tomllib.loads(SHARED_MACHINE_SAFETY)["safety"]


def host_config(tmp_path: Path) -> str:
    """A ``fes run --config`` file with ``SHARED_MACHINE_SAFETY``."""
    path = tmp_path / "host.toml"
    path.write_text(SHARED_MACHINE_SAFETY)
    return str(path)


#: A simulated board (emulator, simavr) that logged its schedule this late (``paused``
#: events: it was off the CPU, and sent the samples due meanwhile only then) accounts
#: for two thirds of the 30 ms silence an acknowledgement fault of ``SHARED_MACHINE_SAFETY``
#: needs; the rest is the host's own delay in reading them on a loaded core. (A real board
#: is never descheduled. Measured with the AVR board in simavr sharing one core with the
#: host and four busy loops: it lost 5.5 s of 28 s to pauses, the longest 24 ms late.)
BOARD_LATE_MS = 20.0


def board_was_starved(board_log: Iterable[dict]) -> str:
    """The simulated board's own pauses while it streamed (its log's ``paused`` events of
    at least ``BOARD_LATE_MS`` after its first ``stream_start``; before it, start-up
    pauses of 40-50 ms are usual), as text; empty when it kept to its schedule."""
    late, streaming = [], False
    for event in board_log:
        streaming = streaming or event["event"] == "stream_start"
        if streaming and event["event"] == "paused" and event["late_ms"] >= BOARD_LATE_MS:
            late.append(event["late_ms"])
    if not late:
        return ""
    return f"the simulated board ran {len(late)} times late, up to {max(late):.0f} ms"


def starved_board_explains(late: Iterable[tuple[str, float, float, float]],
                           board_log: Iterable[dict]) -> str:
    """Whether the machine's own delays account for every reply that came too late:
    ``late`` holds, for each, what it was, the window from the host's command to the
    board's reply (monotonic s) and by how much the reply missed its bound (s);
    ``board_log`` the simulated board's ``paused`` events (its waits for a CPU,
    ``hw.runqueue``) and ``held`` events (its ``select`` kept past its timeout by the
    kernel's tty worker), and those of ``fes run``'s threads. A reply is accounted for
    when the machine provably delayed the board within its window at least as long as
    the reply was over its bound (``machine_delay_within``): without that delay it
    would have been in time. Text naming them when all are (the run says nothing about
    the product), empty when one is not (the test judges the run) or nothing was late.

    A late host cannot produce either event, so a late product is still judged
    (``late_product``, ``test_a_late_product_is_not_taken_for_a_starved_machine``):
    ``paused`` is the kernel's count of the board thread's time runnable without a CPU,
    which no other process's timing changes; and a ``held`` ``select`` came back later
    than its own timeout. Bytes a host writes can only end a ``select`` earlier (the
    descriptor becomes readable); a host that writes late or not at all leaves it to
    time out on time. Only the kernel keeps it waiting past that (in ``__flush_work``
    for the tty worker, docs/hardware.md, "Bytes late on a loaded machine"), and the
    worker's turn depends on the machine's load, not on when the bytes were written."""
    log = list(board_log)
    late = list(late)
    found = []
    for what, start_s, end_s, excess_s in late:
        delayed_s = machine_delay_within(log, start_s, end_s)
        if delayed_s < excess_s:
            return ""
        found.append(f"{what} {excess_s * 1e3:.1f} ms over its bound, the board "
                     f"{delayed_s * 1e3:.1f} ms delayed by the machine meanwhile "
                     f"(without a CPU or held by the kernel)")
    return "; ".join(found)


def silent_link(board: dict, timeout_s: float, unseen_s: float,
                answered: str = "did not answer") -> list[tuple[str, float, float, float]]:
    """A link timeout in ``starved_board_explains``'s terms: for a trial's ``board``
    block (summary.json) whose fault says the board ``answered`` not within
    ``timeout_s``, the silence before the fault was declared and how much of it the
    machine must account for: ``timeout_s`` less ``unseen_s``, the part a board's
    log cannot show (a ``held`` event is at least ``unseen_s``, its ``select``'s
    longest timeout, short of the hold). Empty for any other ending."""
    fault, at = board.get("fault"), board.get("fault_monotonic_s")
    if not fault or at is None or answered not in fault:
        return []
    return [("the link's silence", at - timeout_s, at, timeout_s - unseen_s)]


#: How the project's driver names a silent board (``hw.board``: its link timeout).
NO_FRAME = "no frame from the board"
#: What of a link timeout's silence the board emulator's log (``hw.emulator``, its
#: ``paused`` clock gaps) cannot show: the normal step each ``paused_ms`` leaves out of
#: its gap (``MAX_CLOCK_STEP_S``, at speed 1), and up to ``LISTEN_STEP_S`` of bytes the
#: machine held on their way to the host, which the driver counts as listening (a pause
#: of the host's own reader longer than that it does not count: ``hw.board``).
EMULATOR_UNSEEN_S = MAX_CLOCK_STEP_S + LISTEN_STEP_S


def emulator_silence_explains(out: Path, board_log: Iterable[dict], link_timeout_s: float,
                              before_s: float = math.inf) -> str:
    """``starved_board_explains`` for a run of ``fes run`` against ``fes board-emulator``
    (its own process, over a pty) that the link timeout ended (exit 5, ``NO_FRAME``)
    before ``before_s`` (monotonic; a test's own fault, after which a link loss is the
    test's to judge): text when the emulator's ``paused`` gaps (a wait for a CPU or a
    ``select`` the kernel held) fill the silence before the fault but
    ``EMULATOR_UNSEEN_S``, the rule of a P24 walk's link timeout (``silent_link``);
    empty otherwise (any other ending, no trial written, a silence the board's log does
    not account for). A late host cannot make such a gap: the emulator's pty is
    non-blocking and its ``select`` waits at most ``hw.emulator.MAX_SLEEP_S`` whatever a
    host writes, so only the machine keeps it past that. (An emulator on a thread of
    ``fes run``'s own process is no witness: its gaps can be the host's, the GIL.)"""
    path = out / "summary.json"
    if not path.is_file():
        return ""
    trial = json.loads(path.read_text())
    board = trial.get("board") or {}
    if trial.get("stopped_by") != "link_lost" or (board.get("fault_monotonic_s")
                                                   or math.inf) >= before_s:
        return ""
    silence = silent_link(board, link_timeout_s, EMULATOR_UNSEEN_S, NO_FRAME)
    return starved_board_explains(silence, board_log) if silence else ""


#: Tries for a walk made late on purpose (a late product), a walk ended by a heartbeat
#: fault (the host off the CPU) run again: the openEMSstim late walk ran once and ended
#: so after one train in 1 of 10 tests at load 3.3-7.2 (two busy loops beside other work,
#: 6 Dec 2026; 56 ms), so five tries rather than three. A walk the driver ended with a
#: lost link ("no echo ... 300 ms after it was due") is not run again: such endings were
#: the driver's, its reader or writer thread waiting for a CPU taken for a silent board
#: (fixed in hw/openems/driver.py).
LATE_RUNS = 5


#: A heartbeat (or stalled-loop) ending is the machine's only when the run's threads (or
#: the simulated board's) provably waited for a CPU, or were held by the kernel, for at
#: least this share of the silence the watchdog reported before it latched: most of it.
#: A loop that hangs on its own (a lock held, a blocking write, a GC pause) is not
#: runnable meanwhile and leaves no such wait.
MACHINE_SHARE = 0.5
#: The silence the watchdog reported: a stalled loop's (beside another rule's age, which
#: may be the board's), else a heartbeat fault's age.
_SILENCE = (re.compile(r"sent no command for (\d+(?:\.\d+)?) ms either \(a stalled loop\)"),
            re.compile(r"(\d+(?:\.\d+)?) ms > [\d.]+ ms \(wall clock"))


#: The watchdog's note on a heartbeat fault whose loop had sent its command and waited for
#: its next sample (``controller.safety.watchdog``): only then do the kernel's workers'
#: waits (``helpers.cpu_waits.KERNEL``), which hold a pty's bytes, count.
WAITS_FOR_SAMPLE = "it waits for its next sensor sample"


def stalled_loop(code: int, err: str) -> bool:
    """Whether a run ended by a heartbeat fault or another wall-clock fault the watchdog
    saw with the loop silent too ("(a stalled loop)")."""
    return code == EXIT_WATCHDOG_FAULT and (
        "heartbeat_timeout_ms" in err or "(a stalled loop)" in err)


def fault_time(result: object, depth: int = 3) -> float | None:
    """When the watchdog latched a run's fault (monotonic s: ``summary.json``'s
    ``watchdog.fault_monotonic_s``), from whatever ``result`` a test's run returns: a
    summary, a trial folder or its ``summary.json``, or a tuple, list or dataclass (a
    ``LiveResult``) holding one. None when it holds no such record."""
    if isinstance(result, dict):
        dog = result.get("watchdog")
        return dog.get("fault_monotonic_s") if isinstance(dog, dict) else None
    if isinstance(result, Path):
        path = result / "summary.json" if result.is_dir() else result
        if path.name != "summary.json" or not path.is_file():
            return None
        return fault_time(json.loads(path.read_text()))
    if depth == 0:
        return None
    if is_dataclass(result) and not isinstance(result, type):
        parts: Iterable[object] = (getattr(result, f.name) for f in fields(result))
    elif isinstance(result, tuple | list):
        parts = (part for part in result if not isinstance(part, dict) or "watchdog" in part)
    else:
        return None
    return next((t for part in parts if (t := fault_time(part, depth - 1)) is not None), None)


def machine_stalled(err: str, delays: Iterable[dict], fault_s: float | None) -> tuple[str, str]:
    """Whether the machine caused a stalled-loop ending (``stalled_loop``): ``delays``
    are the machine's delays of the run's processes (``paused`` waits for a CPU of
    ``fes run``'s threads and the test's, ``helpers.cpu_waits.TreeWatch``; a simulated
    board's own ``paused`` and ``held`` events; the kernel's unbound workers' waits,
    counted only for a loop that waited for its sample, ``WAITS_FOR_SAMPLE``),
    ``fault_s`` when the watchdog latched
    the fault (``fault_time``). Proof is the machine delaying the run for at least
    ``MACHINE_SHARE`` of the silence the fault reports, within that silence (the span
    before ``fault_s``; ``machine_delay_within``: never overstated). Returns (the proof,
    "") or ("", what was found instead), each with its figures."""
    found = [float(m.group(1)) for pattern in _SILENCE if (m := pattern.search(err))]
    if not found:
        return "", "the fault names no silence (ms) to account for"
    if fault_s is None:
        return "", "the run left no record of when the watchdog latched (summary.json)"
    silence_s = found[0] / 1e3
    if WAITS_FOR_SAMPLE not in err:  # hung in its own work: no worker's wait explains it
        delays = [event for event in delays if event.get("pid", -1) != KERNEL]
    delayed_s = machine_delay_within(delays, fault_s - silence_s, fault_s)
    figure = (f"{delayed_s * 1e3:.1f} ms of the loop's {silence_s * 1e3:.1f} ms silence "
              f"before the fault delayed by the machine (waits for a CPU, kernel holds)")
    if delayed_s >= MACHINE_SHARE * silence_s:
        return figure, ""
    return "", (f"{figure}; {MACHINE_SHARE * silence_s * 1e3:.1f} ms needed "
                f"(a loop that hung on its own: a product defect?)")


def rerun_after_heartbeat_faults(
    run: Callable[[int], tuple[int, str, T]],
    board_log: Callable[[T], Iterable[dict]] | None = None,
    board_late: Callable[[T], str] | None = None,
    runs: int = RUNS,
) -> tuple[int, str, T]:
    """``run(attempt)`` (returning the exit code, the stderr and what the test reads)
    until it ends other than by a heartbeat fault, at most ``runs`` times; that run's
    code, stderr and result.

    A heartbeat fault is run again only with proof that another job kept the live
    process off the CPU beyond the watchdog's wall-clock timeout, or kept the simulated
    board from sending the samples that pace the live loop: every run is watched
    (``helpers.cpu_waits.TreeWatch``: the kernel's count of each thread's wait for a
    CPU, of this process and its descendants), and the run's threads, or the board's
    own log, must show the machine delaying it for ``MACHINE_SHARE`` of the silence the
    fault reports (``machine_stalled``). Then the watchdog was right, and the tests that
    use this compare walks and timelines, not the machine's punctuality (the fault
    bounds have their own tests). Without that proof the run is returned, what was
    found printed: a loop that hung on its own (a lock held too long, a blocking write
    in the loop thread, a GC pause) ends the same way and must fail the test, not pass
    on a rerun. With ``board_log`` (the simulated board's log of a run's result),
    an acknowledgement fault is run again too when that log shows the board itself off
    the CPU (``board_was_starved``): the host's watchdog saw the same silence and named
    it by the age that crossed its limit first. With ``board_late`` (text when a run's
    late replies or a fault's silence are all accounted for by the simulated board's
    own waits for a CPU or the kernel's holds of its bytes, ``starved_board_explains``;
    empty otherwise), such a run is run again too, however it ended. A fault of another
    rule that the watchdog saw with the loop silent too ("the loop has sent no command for
    21.2 ms either (a stalled loop)": an acknowledgement age crossed its limit first while
    the host was off the CPU; once in a fresh-clone CI run beside a helper's real-time
    benchmarks, 6 Dec 2026) is a heartbeat fault by another name, run again by the same
    proof. Each rerun prints what proved the stall (its figure). Any other ending is
    returned at once for the test to judge."""
    for attempt in range(runs):
        watch = TreeWatch()
        try:
            code, err, result = run(attempt)
        finally:
            waits = watch.stop()
        ending = (err.strip().splitlines() or [""])[-1]
        late = board_late(result) if board_late is not None else ""
        starved = (code == EXIT_WATCHDOG_FAULT and board_log is not None
                   and "ack_timeout_ms" in err and board_was_starved(board_log(result)))
        why = late or starved
        if not why and stalled_loop(code, err):
            board = list(board_log(result)) if board_log is not None else []
            why, lacking = machine_stalled(err, waits + board, fault_time(result))
            if not why:  # shown when the test fails
                print(f"run {attempt + 1} of {runs} ended by {ending!r}, not run again: "
                      f"nothing proves the machine stalled it ({lacking})")
        if not why:
            return code, err, result
        print(f"run {attempt + 1} of {runs} ended by {ending!r} ({why})")  # shown on failure
    raise AssertionError(f"a stalled machine (heartbeat fault, or a starved board's fault or "
                         f"late replies) ended all {runs} runs:\n{err}\nthe last run's: {why}")


def late_product(back_end: str, delay_s: float) -> dict[str, str]:
    """The environment for a ``fes run`` made ``delay_s`` late on ``back_end`` (``p24``,
    ``openemsstim``; ``board``, deaf that long: ``late_product/sitecustomize.py``), for
    the tests that show a late product is never taken for a starved machine."""
    path = [str(LATE_PRODUCT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path), "FES_TEST_LATE": back_end,
            "FES_TEST_LATE_S": str(delay_s)}


def rerun_openems_runs_spoiled_by_the_machine(run: Callable[[int], T],
                                              folder: Callable[[int], Path],
                                              runs: int = RUNS) -> T:
    """``run(attempt)`` (the driver against openEMSstim's firmware on a pty, logging into
    ``folder(attempt)``) again when the machine spoiled it
    (``controller.bench.openems_harness.spoiled_by_the_machine``): the firmware's
    process kept off the CPU for its 50 ms line timeout in the middle of a line the host
    had written whole, so it read the line in two pieces (once in a fresh-clone CI run
    at load 3-5 on 86c53f8: the connection's all-off line read as 'Connectio', no train
    started), or bytes the driver had written reaching the firmware 300 ms (the driver's
    echo timeout) or more later (the pty's tty worker or the firmware waiting for a CPU:
    8 of 10 runs at load 6-9, 7 Dec 2026). The driver rightly reports the garbled or
    missing echo; the run says nothing about it. Any other run, passed or failed (a line
    the host wrote in pieces, a lost byte, a bound missed), is returned or raised for
    the test to judge; at most ``runs`` tries."""
    why = ""
    for attempt in range(runs):
        try:
            result = run(attempt)
        except Exception:
            why = spoiled_by_the_machine(folder(attempt))
            if not why:
                raise
        else:
            why = spoiled_by_the_machine(folder(attempt))
            if not why:
                return result
        print(f"run {attempt + 1} of {runs} spoiled by the machine: {why}")  # shown on failure
    raise AssertionError(f"the machine spoiled all {runs} runs: {why}")
