"""The architecture as a table: which part of the project may import which.

Read ``MAY_IMPORT`` top to bottom as the data flow. At the bottom is the shared
vocabulary (samples, commands, the two back-end interfaces, gait events, the pulse rule,
config validation); the back ends ``sim`` and ``hw`` are leaves over it; the detector,
scheduler and watchdog stages sit beside them, the loop above the stages, the trial
above the loop and the back ends, and the tools (sweeps, reports, commands, benchmarks)
on top. Every import of every module counts, also one inside a function.

The test fails on an import between two parts that the table does not list (a new
arrow: add it here, in the same commit, if it is meant), on an arrow the table lists but
no import uses any more (tighten the table), on a module that belongs to no part, and on
any import cycle, between parts or between modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("controller", "sim", "hw", "configs")

#: The parts of the project and the modules (or packages) each one holds. A module
#: belongs to the part with the longest matching name.
PARTS: dict[str, tuple[str, ...]] = {
    "vocabulary": (
        "controller",  # the package itself (imports nothing)
        "controller.ports",  # Sample, StimCommand, SensorSource, Stimulator
        "controller.events",  # Phase, Event, DetectedEvent
        "controller.pulses",  # when a stimulator fires its pulses, their shape
        "controller.errors",  # ConfigError (no pydantic: the parser and --help need it)
        "controller.validation",  # ConfigModel, describe_errors
        "controller.resources",  # the shipped configs/ files
        "controller.kernels",  # how every numba kernel is compiled, and the list of them
        "configs",  # TOML data
    ),
    "sim": ("sim",),  # the simulated patient
    "hw": ("hw",),  # wire protocol, transport, drivers, emulators, port discovery
    "detect": ("controller.detect",),  # gait phase detection (numba kernels)
    "stim": ("controller.stim",),  # stimulation patterns and scheduler
    "safety": ("controller.safety",),  # the watchdog, the only path to a Stimulator
    "runtime": (  # clocks, deadlines, hot-path settings, shared memory
        "controller.clock",
        "controller.deadlines",
        "controller.hotpath",
        "controller.quantiles",  # numpy's median and percentiles of short arrays, faster
        "controller.sharedmem",
    ),
    "loop": ("controller.loop",),  # one fixed-period loop for any back end
    "config": ("controller.config",),  # the trial config composing every part's models
    "trial": ("controller.trial",),  # simulated and live trials, recording, scoring, files
    "sweep": ("controller.sweep",),  # parameter sweeps over simulated trials
    "report": ("controller.report",),  # figures and reports of trials and sweeps
    "commands": ("controller.commands", "controller.cli"),  # the fes command line
    "bench": ("controller.bench",),  # benchmarks and calibrations that print figures
}

#: Who may import whom. Arrows point down the data flow; nothing below imports above.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "vocabulary": (),
    "sim": ("vocabulary",),
    # The board emulator plays a board with the simulated patient behind it.
    "hw": ("vocabulary", "sim"),
    "detect": ("vocabulary",),
    # The scheduler reads the detector's event outbox.
    "stim": ("vocabulary", "detect"),
    "safety": ("vocabulary",),
    "runtime": (),
    "loop": ("vocabulary", "safety", "runtime"),
    "config": ("vocabulary", "detect", "stim", "safety"),
    "trial": (
        "vocabulary", "sim", "hw", "detect", "stim", "safety", "runtime", "loop", "config",
    ),
    "sweep": ("vocabulary", "sim", "config", "trial"),
    "report": ("vocabulary", "trial", "sweep"),
    # `fes sim` runs without the cycle collector, in one frame-stack chunk (hotpath).
    "commands": (
        "vocabulary", "sim", "hw", "detect", "safety", "runtime", "config", "trial", "sweep",
        "report",
    ),
    "bench": (
        "vocabulary", "sim", "hw", "detect", "stim", "safety", "runtime", "loop", "config",
        "trial", "commands",
    ),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
}


def _imported(name: str, path: Path) -> set[str]:
    """The project's modules that ``name`` imports anywhere in its source (also inside a
    function): ``from package import submodule`` counts as the submodule."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


IMPORTS = {name: _imported(name, path) for name, path in MODULES.items()}


def _part(module: str) -> str | None:
    matches = [
        (len(prefix), part)
        for part, prefixes in PARTS.items()
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def _arrows() -> dict[tuple[str, str], list[str]]:
    """Every import between two parts, with the module imports behind it."""
    arrows: dict[tuple[str, str], list[str]] = {}
    for module, targets in IMPORTS.items():
        for target in sorted(targets):
            source_part, target_part = _part(module), _part(target)
            if source_part and target_part and source_part != target_part:
                arrows.setdefault((source_part, target_part), []).append(f"{module} -> {target}")
    return arrows


def _cycles(graph: dict[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan), plus self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_every_module_belongs_to_a_part():
    assert len(MODULES) > 100
    unplaced = sorted(name for name in MODULES if _part(name) is None)
    assert not unplaced, f"add these modules to a part of PARTS: {unplaced}"


def test_the_table_names_each_part_once_and_has_no_cycle():
    assert set(MAY_IMPORT) == set(PARTS)
    for part, allowed in MAY_IMPORT.items():
        assert part not in allowed and len(set(allowed)) == len(allowed), part
        assert set(allowed) <= set(PARTS), part
    assert _cycles(MAY_IMPORT) == []


def test_every_import_between_parts_is_an_arrow_of_the_table():
    new = [
        f"{source} -> {target}: {', '.join(imports)}"
        for (source, target), imports in sorted(_arrows().items())
        if target not in MAY_IMPORT[source]
    ]
    assert not new, "imports the table does not allow:\n" + "\n".join(new)


def test_every_arrow_of_the_table_is_used():
    used = set(_arrows())
    stale = [
        f"{source} -> {target}"
        for source, allowed in MAY_IMPORT.items()
        for target in allowed
        if (source, target) not in used
    ]
    assert not stale, f"arrows no import uses (remove them from MAY_IMPORT): {stale}"


def test_the_back_ends_are_leaves():
    """Spelled out for the two back ends: below them only the shared vocabulary (and,
    for the board emulator, the simulated patient)."""
    for module, targets in IMPORTS.items():
        if _part(module) in ("sim", "hw"):
            above = {t for t in targets if _part(t) not in ("vocabulary", "sim", "hw")}
            assert not above, f"{module} imports {sorted(above)}"


def test_no_module_import_cycle():
    assert _cycles(IMPORTS) == []


def test_the_checker_sees_function_local_and_relative_imports(tmp_path):
    """Guards the tests above: an import inside a function and a ``from package import
    submodule`` both count."""
    source = tmp_path / "probe.py"
    source.write_text(
        "def late():\n    from controller.trial import summary\n    import hw.board\n"
    )
    assert _imported("sim.probe", source) == {"controller.trial.summary", "hw.board"}
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_no_test_module_imports_another():
    """Shared test code lives in ``tests/conftest.py`` and ``tests/helpers/``: a test
    module imported by another would run its tests twice and tie the two together."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            offenders += [
                f"{path.relative_to(ROOT)} imports {name}"
                for name in names
                if name.split(".")[-1].startswith(("test_", "conftest"))
            ]
    assert offenders == []
