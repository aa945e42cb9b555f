"""``fes sweep``: many seeded simulated trials over a grid or random ranges of config
values, patients and seeds; resumable; tabulated and ranked by an objective."""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from controller.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REQUIREMENT_FAILED,
    EXIT_TRIALS_FAILED,
    EXIT_USAGE,
    add_format_option,
    add_require_option,
    input_path,
    not_a_trial_folder,
    output_path,
    print_unread,
)
from controller.errors import ConfigError

if TYPE_CHECKING:
    from controller.sweep.plan import SweepSpec

SHOWN_PROBLEMS = 10
#: What a sweep whose trials' files cannot fit may change (``diskroom.check_room``).
ROOM_CHANGES = ("run fewer trials or shorter ones (at most {seconds} s of trials in all), "
                "--summaries-only (no samples kept), or another --out on a disk with room")
#: Local worker processes per CPU at most (each holds its own Python and compiled code).
WORKERS_PER_CPU = 4


#: A Dask scheduler address: an optional network protocol, a host and a port; or an
#: in-process address (a cluster in this process, inproc://HOST/PID/N).
_SCHEDULER = re.compile(
    r"^(?:(?:tcp|tls|ucx|ws|wss)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$"
    r"|^inproc://\S+$"
)


def _scheduler(text: str) -> str:
    """``--scheduler``: a scheduler address, checked before Dask is asked to connect."""
    if not _SCHEDULER.match(text):
        raise ConfigError("--scheduler", [
            f"--scheduler {text!r}: not a scheduler address (tcp://HOST:PORT or HOST:PORT)"])
    return text


def _workers(args: argparse.Namespace) -> int:
    from controller.cgroup import usable_cpus

    if args.workers is None:  # one per CPU the process may use (a container's quota)
        return usable_cpus()
    if args.scheduler is not None:
        raise ConfigError("--workers", ["applies to local processes; a Dask cluster has its own"])
    most = WORKERS_PER_CPU * len(os.sched_getaffinity(0))
    if not 1 <= args.workers <= most:
        raise ConfigError("--workers", [
            f"--workers: at most {most} ({WORKERS_PER_CPU} per CPU: each is a process of "
            f"its own) and at least 1, got {args.workers}"])
    return int(args.workers)


def _spec(args: argparse.Namespace) -> SweepSpec:
    """The sweep the options describe; every malformed --grid/--random named at once."""
    from controller.sweep.plan import SweepSpec, parse_grid, parse_random

    problems: list[str] = []
    grid, random = [], []
    for text in args.grid or []:
        try:
            grid.append(parse_grid(text))
        except ConfigError as err:
            problems += err.problems
    for text in args.random or []:
        try:
            random.append(parse_random(text))
        except ConfigError as err:
            problems += err.problems
    if args.seeds < 1:
        problems.append(f"--seeds: must be >= 1 (got {args.seeds})")
    if args.sample_seed < 0:
        problems.append(f"--sample-seed: must be >= 0 (got {args.sample_seed})")
    if args.patients is not None and not args.patients.replace(",", "").strip():
        # ``--patients "$PATIENTS"`` with the variable unset ran the config's patient
        problems.append(f"--patients {args.patients!r}: no patient named (leave the option "
                        "out for the config's patient)")
    if problems:
        raise ConfigError("fes sweep", problems)
    fixed = {} if args.duration_s is None else {"loop.duration_s": args.duration_s}
    patients = tuple(p.strip() for p in args.patients.split(",")) if args.patients else ()
    return SweepSpec(
        base_config=args.config,
        grid=tuple(grid),
        random=tuple(random),
        samples=args.samples,
        sample_seed=args.sample_seed,
        patients=patients,
        seeds=args.seeds,
        fixed=fixed,
    )


def _run(args: argparse.Namespace) -> int:
    from controller.outputs import output_folder, writing
    from controller.progress import format_duration
    from controller.sweep import executors
    from controller.sweep.names import check_names
    from controller.sweep.plan import build_plan
    from controller.sweep.ranking import misread_terms, parse_objective, render_ranking
    from controller.sweep.run import run_sweep
    from controller.sweep.store import FAILURES, RANKING, RESULTS, RESULTS_PARQUET, SweepStore
    from controller.trial.diskroom import check_room, sweep_files
    from controller.trial.parquet import pyarrow_modules
    from controller.trial.require import parse_requirements

    terms = parse_objective(args.objective)
    for note in misread_terms(terms):
        print(f"fes sweep: note: {note}", file=sys.stderr)
    checks = parse_requirements(args.require)
    workers = _workers(args)
    if args.scheduler is not None:
        _scheduler(args.scheduler)
    plan = build_plan(_spec(args))
    check_names(plan, terms, checks)  # before any trial: a typo costs no trial
    if args.config is not None:
        print_unread(args.config, list(plan.unread))
    for note in (*plan.partly_read, *plan.unsimulated):
        print(f"fes sweep: note: {note}", file=sys.stderr)
    out = args.out or Path("runs") / f"sweep-{plan.key}"
    not_a_trial_folder(out)
    where = f"Dask cluster at {args.scheduler}" if args.scheduler else f"{workers} process(es)"
    print(f"sweep: {len(plan.trials)} trials over {', '.join(plan.parameters)} "
          f"into {out}, on {where}")
    if args.dry_run:
        store = SweepStore(out)
        finished = sum(store.finished(t.key) is not None for t in plan.trials)
        print(f"dry run: every config is valid; {finished} of {len(plan.trials)} trials "
              f"already finished in {out}")
        return EXIT_OK
    executor = (
        functools.partial(executors.run_dask, address=args.scheduler) if args.scheduler
        else executors.run_serial if workers == 1
        else functools.partial(executors.run_processes, workers=workers)
    )
    if args.data_format == "parquet":
        pyarrow_modules()  # a usage error now if pyarrow is missing, not after the trials
    store = SweepStore(out)
    todo = [t.config for t in plan.trials if store.finished(t.key) is None]
    # Before the folder is made: a sweep whose trials cannot fit writes nothing.
    check_room(out, sweep_files(todo, args.summaries_only, args.data_format),
               changes=ROOM_CHANGES, notes=sys.stderr, of_what="trials")
    start = time.monotonic()
    with writing(output_folder(out)):
        outcome = run_sweep(plan, out, executor, terms, checks,
                            summaries_only=args.summaries_only, data_format=args.data_format)
    print(f"sweep: {outcome.ran} trials run now, {outcome.reused} from an earlier run, "
          f"{len(outcome.failed)} failed, in {format_duration(time.monotonic() - start)}")
    table_files = f"{out}/{RESULTS}" + (
        f" and {out}/{RESULTS_PARQUET}" if args.data_format == "parquet" else ""
    )
    finished = outcome.reused + outcome.ran
    # A sweep cut short (interrupted, a full disk, failed trials) tabulates what finished:
    # said on every line that a script or a reader could take for the sweep's result.
    rows = ("one row per trial" if finished == outcome.total else
            f"one row per finished trial: {finished} of {outcome.total}, the sweep is not "
            "complete")
    print(f"files: {table_files} ({rows}), {out}/{RANKING}, {out}/trials/")
    if outcome.ranked:
        order = ", then ".join(str(t) for t in terms)
        of = "" if finished == outcome.total else f"; of the {finished} finished trials only"
        print(f"best settings by {order} (mean over seeds{of}):")
        print(render_ranking(outcome.ranked, plan.parameters, terms))
    if outcome.output_error is not None:
        print(f"fes: {outcome.output_error}; the sweep stopped there with "
              f"{finished} of {outcome.total} trials finished: once that is mended, run "
              "the same command again to run the rest", file=sys.stderr)
        return EXIT_USAGE
    if outcome.interrupted:
        print(f"fes: interrupted: {finished} of {outcome.total} trials finished; run the same "
              "command again to run the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.failed:
        print(f"fes: {len(outcome.failed)} trials failed (errors in {out}/{FAILURES}); "
              "run the same command again to retry them", file=sys.stderr)
        return EXIT_TRIALS_FAILED
    for message in outcome.unmet[:SHOWN_PROBLEMS]:
        print(f"fes: requirement {message}", file=sys.stderr)
    if len(outcome.unmet) > SHOWN_PROBLEMS:
        print(f"fes: ... and {len(outcome.unmet) - SHOWN_PROBLEMS} more failed checks",
              file=sys.stderr)
    return EXIT_REQUIREMENT_FAILED if outcome.unmet else EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fes sweep`` to the subcommands."""
    from controller.sweep.plan import MAX_TRIALS
    from controller.sweep.ranking import DEFAULT_OBJECTIVE

    sweep = sub.add_parser(
        "sweep",
        help="run many seeded simulated trials over parameter values, patients and seeds",
        description="Run every combination of --grid values (times --samples random draws "
        "of the --random ranges), patients and seeds as independent seeded trials; write "
        "results.csv (one row per trial: parameters and every summary figure) and "
        "ranking.csv (settings ranked by --objective). Finished trials are kept in "
        "DIR/trials/: run the same command again after an interruption and only the "
        "missing trials run. Every config is validated before any trial runs; a sweep "
        f"has at most {MAX_TRIALS} trials.",
        epilog=f"Exit codes: 0 ok, 2 bad usage or configuration, or an output it cannot "
        f"write (trials whose files the disk cannot hold: said before any runs; a disk "
        f"filled by others stops the sweep), {EXIT_REQUIREMENT_FAILED} "
        f"a --require check failed, {EXIT_TRIALS_FAILED} some trials raised an error, "
        "130 interrupted (finished trials kept).",
    )
    sweep.add_argument(
        "--config", type=input_path, metavar="FILE",
        help="base TOML config every trial starts from (over configs/default.toml)",
    )
    sweep.add_argument(
        "--grid", action="append", metavar="KEY=V1,V2,...",
        help="a dotted config key and its values, e.g. stim.peroneal.amplitude_ma=30,35,40; "
        "repeatable, every combination runs",
    )
    sweep.add_argument(
        "--random", action="append", metavar="KEY=LOW:HIGH",
        help="a dotted config key drawn in [LOW, HIGH] (whole numbers if both are integers), "
        "Latin hypercube over all --random keys; repeatable; needs --samples",
    )
    sweep.add_argument(
        "--samples", type=int, default=0, metavar="N",
        help="number of random draws, each crossed with every --grid combination",
    )
    sweep.add_argument(
        "--sample-seed", type=int, default=0, metavar="N",
        help="seed of the random draws, 0 or more (default 0; the same seed draws the same values)",
    )
    sweep.add_argument(
        "--patients", metavar="A,B,...",
        help="patient profiles to run every setting on (default: the config's patient)",
    )
    sweep.add_argument(
        "--seeds", type=int, default=1, metavar="N",
        help="trials per setting and patient, with seeds sim.seed, sim.seed+1, ... (default 1)",
    )
    sweep.add_argument(
        "--duration-s", type=float, metavar="S",
        help="length of every trial in seconds (default: the config's loop.duration_s)",
    )
    sweep.add_argument(
        "--workers", type=int, metavar="N",
        help="local worker processes (default: one per CPU; 1 runs in this process)",
    )
    sweep.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run the trials on the Dask cluster whose scheduler is at ADDRESS, "
        "[PROTOCOL://]HOST:PORT, e.g. tcp://10.0.0.5:8786 (needs the dask extra: pip "
        "install 'fes-timing[dask]')",
    )
    sweep.add_argument(
        "--out", type=output_path, metavar="DIR",
        help="sweep folder (default runs/sweep-<hash of the trials>, so the same command "
        "resumes into the same folder); a folder holding a trial's files (fes sim, fes "
        "run) is refused",
    )
    sweep.add_argument(
        "--objective", default=DEFAULT_OBJECTIVE, metavar="NAME,...",
        help="summary figures (or swept keys) to rank settings by, first one first, each "
        "minimised unless written max:NAME (highest first) or abs:NAME (closest to zero "
        "first: a signed error such as stim.onset_error_ms.median, negative = early) "
        f"(default {DEFAULT_OBJECTIVE}: fewest toe drags, then least charge)",
    )
    add_require_option(sweep, "every trial's summary")
    sweep.add_argument(
        "--summaries-only", action="store_true",
        help="keep only summary.json and config.json of each trial (no samples.csv or "
        "events.csv: far less disk, but no per-trial figures in fes report)",
    )
    add_format_option(sweep, "each trial's samples and events, and the results table "
                      "(results.parquet beside results.csv)")
    sweep.add_argument(
        "--dry-run", action="store_true",
        help="validate every trial's config, print the number of trials and stop",
    )
    sweep.set_defaults(handler=_run)
