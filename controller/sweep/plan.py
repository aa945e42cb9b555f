"""What a sweep runs: every combination of swept config values, patients and seeds.

Swept keys are dotted config paths (``stim.peroneal.amplitude_ma``), so a sweep works on
any field any package adds to the trial config without knowing it. ``--grid`` lists
values; ``--random`` draws ``--samples`` values in a range by Latin hypercube sampling
(each range cut into equal strata, one draw per stratum, strata paired at random) from
``--sample-seed``, so the same command draws the same values. Every trial's config is
built and validated before any trial runs: a bad key or value is named at once.

A trial is identified by a hash of its full validated config and its patient profile,
so a finished trial is recognised (and not run again) whatever order or command listed
it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.errors import ConfigError

if TYPE_CHECKING:  # imported where used: `fes sweep --help` needs only the constants
    import numpy as np

PATIENT_KEY = "sim.patient"
SEED_KEY = "sim.seed"
SOURCE = "fes sweep"
_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
#: Random draws are rounded to this many significant digits, so the table, the
#: config of each trial and the value a user types to repeat it are the same number.
RANDOM_DIGITS = 6
#: The most trials one sweep plans (each config is built and validated up front, about
#: a millisecond each): a larger one is refused at once, before anything is drawn.
MAX_TRIALS = 100_000

Value = bool | int | float | str


@dataclass(frozen=True, slots=True)
class GridAxis:
    """A config key and the values it takes, every one crossed with every other axis."""

    key: str
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class RandomAxis:
    """A config key drawn in ``[low, high]``; whole numbers if both bounds are integers."""

    key: str
    low: float
    high: float
    integer: bool

    def draw(self, strata: np.ndarray) -> list[Value]:
        """Values at the unit-interval positions ``strata``."""
        if self.integer:
            span = self.high - self.low + 1
            return [int(min(self.low + math.floor(u * span), self.high)) for u in strata]
        return [
            float(f"{self.low + u * (self.high - self.low):.{RANDOM_DIGITS}g}") for u in strata
        ]


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A sweep as the user asked for it."""

    base_config: Path | None = None
    grid: tuple[GridAxis, ...] = ()
    random: tuple[RandomAxis, ...] = ()
    samples: int = 0
    sample_seed: int = 0
    patients: tuple[str, ...] = ()
    seeds: int = 1
    fixed: dict[str, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlannedTrial:
    """One trial: its place in the sweep, swept values, full config and identity."""

    index: int
    params: dict[str, Value]
    config: dict[str, Any]
    key: str


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """Every trial of a sweep, in a fixed order, and the keys that were swept."""

    spec: SweepSpec
    parameters: tuple[str, ...]
    trials: tuple[PlannedTrial, ...]
    #: What the base config file sets that no trial reads (``KEY = VALUE (why)``).
    unread: tuple[str, ...] = ()
    #: Swept keys some trials do not read: their values repeat one trial there.
    partly_read: tuple[str, ...] = ()
    #: What the trials run but the simulated limb does not simulate (a channel on an
    #: output that drives no simulated muscle: ``controller.trial.simulated.channel_notes``).
    unsimulated: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """A short hash of the whole sweep (its trials, in order)."""
        return _digest([t.key for t in self.trials])[:10]

    def describe(self) -> dict[str, Any]:
        """The plan as JSON-ready data, for ``sweep.json``."""
        spec = self.spec
        return {
            "base_config": str(spec.base_config) if spec.base_config else None,
            "grid": {a.key: list(a.values) for a in spec.grid},
            "random": {a.key: [a.low, a.high] for a in spec.random},
            "samples": spec.samples,
            "sample_seed": spec.sample_seed,
            "fixed": spec.fixed,
            "parameters": list(self.parameters),
            "trials": len(self.trials),
        }


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def parse_value(text: str) -> Value:
    """A TOML scalar (``30``, ``2.5``, ``true``, ``"x"``), else the text as a word."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    return value if isinstance(value, bool | int | float | str) else text


def _split_key(option: str, text: str) -> tuple[str, str]:
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not rest.strip():
        raise ConfigError(SOURCE, [f"{option} {text!r}: expected KEY={_FORMS[option]}"])
    if not _KEY.match(key):
        raise ConfigError(SOURCE, [f"{option} {text!r}: {key!r} is not a dotted config key"])
    return key, rest.strip()


_FORMS = {"--grid": "V1,V2,...", "--random": "LOW:HIGH"}


def parse_grid(text: str) -> GridAxis:
    """``key=v1,v2,...`` as an axis; repeated values are an error (same trial twice)."""
    key, rest = _split_key("--grid", text)
    raw = [v.strip() for v in rest.split(",")]
    if "" in raw:
        raise ConfigError(SOURCE, [f"--grid {text!r}: empty value in the list"])
    repeated = sorted({v for v in raw if raw.count(v) > 1})
    if repeated:
        raise ConfigError(SOURCE, [f"--grid {text!r}: repeated value {', '.join(repeated)}"])
    return GridAxis(key, tuple(parse_value(v) for v in raw))


def parse_random(text: str) -> RandomAxis:
    """``key=low:high`` as a random axis; integer bounds give whole-number draws."""
    key, rest = _split_key("--random", text)
    low_text, sep, high_text = rest.partition(":")
    low, high = parse_value(low_text.strip()), parse_value(high_text.strip())
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not sep or not numbers:
        raise ConfigError(SOURCE, [f"--random {text!r}: expected KEY=LOW:HIGH with numbers"])
    if not low < high:  # type: ignore[operator]
        raise ConfigError(SOURCE, [f"--random {text!r}: LOW must be below HIGH"])
    integer = isinstance(low, int) and isinstance(high, int)
    return RandomAxis(key, float(low), float(high), integer)


def latin_hypercube(dimensions: int, samples: int, seed: int) -> np.ndarray:
    """``samples`` points in the unit cube, one per stratum along every dimension."""
    import numpy as np

    rng = np.random.default_rng(seed)
    points = np.empty((samples, dimensions))
    for d in range(dimensions):
        points[:, d] = (rng.permutation(samples) + rng.random(samples)) / samples
    return points


def _nest(flat: dict[str, Value]) -> dict[str, Any]:
    """Dotted keys to the nested dict layer ``load_config`` merges."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _at(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = node[part]
    return node


def _check_keys(spec: SweepSpec) -> None:
    problems = []
    keys = [a.key for a in spec.grid] + [a.key for a in spec.random] + list(spec.fixed)
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"{key}: swept or set more than once")
    if spec.patients and PATIENT_KEY in keys:
        problems.append(f"{PATIENT_KEY}: give patients with --patients or --grid, not both")
    if spec.seeds > 1 and SEED_KEY in keys:
        problems.append(f"{SEED_KEY}: give seeds with --seeds or --grid, not both")
    if spec.random and spec.samples < 1:
        problems.append("--random needs --samples N (N >= 1)")
    if spec.samples and not spec.random:
        problems.append("--samples needs at least one --random KEY=LOW:HIGH")
    if problems:
        raise ConfigError(SOURCE, problems)
    trials = math.prod(len(a.values) for a in spec.grid) * max(1, spec.samples) * max(
        1, len(spec.patients)) * spec.seeds
    if trials > MAX_TRIALS:
        raise ConfigError(SOURCE, [f"{trials} trials; a sweep runs at most {MAX_TRIALS} "
                                   "(split it into several sweeps)"])


def _settings(spec: SweepSpec) -> list[dict[str, Value]]:
    """Every combination of grid values crossed with every random sample."""
    grid = [[(a.key, v) for v in a.values] for a in spec.grid]
    draws: list[dict[str, Value]] = [{}]
    if spec.random:
        points = latin_hypercube(len(spec.random), spec.samples, spec.sample_seed)
        columns = [a.draw(points[:, d]) for d, a in enumerate(spec.random)]
        draws = [{a.key: col[i] for a, col in zip(spec.random, columns, strict=True)}
                 for i in range(spec.samples)]
    return [dict(combo) | draw for combo in itertools.product(*grid) for draw in draws]


def _new_channels(spec: SweepSpec, channels: set[str]) -> list[str]:
    """Swept keys under ``stim.channels.<name>`` for a channel the base config does not
    define: the sweep would add a channel of default settings (output 0, taken by the
    peroneal channel) instead of varying the one the user had in mind."""
    problems = []
    for key in dict.fromkeys([a.key for a in spec.grid] + [a.key for a in spec.random]):
        parts = key.split(".")
        if parts[:2] == ["stim", "channels"] and len(parts) > 3 and parts[2] not in channels:
            problems.append(
                f"{key}: the base config has no channel {parts[2]!r} (its channels under "
                f"stim.channels: {', '.join(sorted(channels)) or 'none'}); a sweep varies a "
                "channel's settings, it does not add one: define the channel in --config "
                f"([stim.channels.{parts[2]}], or stim.preset = \"peroneal_calf\" for a "
                "calf channel)"
            )
    return problems


def _swept_unsimulated(notes: tuple[str, ...], swept: list[str]) -> tuple[str, ...]:
    """``notes`` (``channel_notes``), each naming the swept keys of its channel: their
    values change only that channel's charge and timing, so a charge objective ranks its
    weakest value first and every other figure ties."""
    marked = []
    for note in notes:
        path = note.split(" ", 1)[0]
        keys = [k for k in swept if k.startswith(f"{path}.")]
        marked.append(note if not keys else (
            f"{note}; swept here: {', '.join(keys)}: every walk figure ties between its "
            "values (the default objective keeps plan order), and an objective over that "
            "channel's charge ranks its weakest setting first"))
    return tuple(marked)


def build_plan(spec: SweepSpec) -> SweepPlan:
    """Every trial of the sweep, each config validated; all problems named at once."""
    from controller.config import (
        changed_in_file,
        load_config,
        simulated_problems,
        unread,
        unused_by,
        unused_settings,
    )
    from controller.trial.simulated import channel_notes, channel_problems
    from sim.patient import load_patient

    _check_keys(spec)
    base = load_config(spec.base_config, _nest(dict(spec.fixed)))
    patients = spec.patients or (base.sim.patient,)
    profiles: dict[Value, dict[str, Any] | None] = {}
    problems: list[str] = []

    def profile(name: Value) -> dict[str, Any] | None:
        """The patient profile ``name`` (loaded once; a bad name is one problem)."""
        if name not in profiles:
            profiles[name] = None
            try:
                profiles[name] = load_patient(str(name)).model_dump()
            except ConfigError as err:
                problems.extend(f"patient {name!r}: {p}" for p in err.problems)
        return profiles[name]

    for name in patients:
        profile(name)
    if added := _new_channels(spec, set(base.stim.channels)):  # (each trial's config
        raise ConfigError(SOURCE, problems + added)  # would fail on the new channel too)
    swept = [a.key for a in spec.grid] + [a.key for a in spec.random]
    parameters = tuple(dict.fromkeys((*swept, PATIENT_KEY, SEED_KEY)))
    trials: list[PlannedTrial] = []
    seen: dict[str, int] = {}
    #: How many trials do not read each swept key, and why (the last trial's reason).
    idle: dict[str, tuple[int, str]] = {
        key: (0, "") for key in swept if key not in (PATIENT_KEY, SEED_KEY)}
    # Likewise what the base config file changes from the defaults (told, not refused).
    changed = changed_in_file(spec.base_config) if spec.base_config else {}
    unused: dict[str, str] = {}  # the last trial's
    unsimulated: dict[str, None] = {}  # notes of every trial, in order, once each
    for setting in _settings(spec):
        for patient in patients:
            for offset in range(spec.seeds):
                # A patient or seed swept by --grid or --random wins over the defaults.
                defaults: dict[str, Value] = {PATIENT_KEY: patient,
                                              SEED_KEY: base.sim.seed + offset}
                chosen = defaults | setting
                try:
                    config = load_config(spec.base_config, _nest(dict(spec.fixed) | chosen))
                except ConfigError as err:
                    problems += [p for p in err.problems if p not in problems]
                    continue
                problems += [p for p in simulated_problems(config) + channel_problems(config)
                             if p not in problems]
                unsimulated.update(dict.fromkeys(channel_notes(config)))
                unused = unused_settings(config)
                changed = {k: v for k, v in changed.items() if unused_by(unused, k)}
                for name, (count, _) in idle.items():
                    if (why := unused_by(unused, name)) is not None:
                        idle[name] = (count + 1, why)
                dump = config.model_dump()
                key = _digest([dump, profile(chosen[PATIENT_KEY])])[:16]
                params = {k: _at(dump, k) for k in parameters}
                if key in seen:
                    problems.append(
                        f"trials {seen[key]} and {len(trials)} have the same config "
                        f"({params}); remove the repeated value"
                    )
                seen[key] = len(trials)
                trials.append(PlannedTrial(len(trials), params, dump, key))
    if trials:  # (with none, every config was refused: those problems say why)
        problems += [
            f"{name}: no trial reads it ({why}), so every value would give the same trial; "
            "sweep or set that choice too (--grid or --config), or sweep another key"
            for name, (count, why) in idle.items() if count == len(trials)
        ]
    if problems:
        raise ConfigError(SOURCE, problems)
    partly = tuple(
        f"{name} is not read by {count} of {len(trials)} trials (those with {why}): there "
        "its values give the same trial, run and ranked as separate settings"
        for name, (count, why) in idle.items() if 0 < count < len(trials))
    return SweepPlan(spec, parameters, tuple(trials), tuple(unread(changed, unused).values()),
                     partly, _swept_unsimulated(tuple(unsimulated), swept))

