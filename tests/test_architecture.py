"""The architecture as a table: which part of the project may import which.

Read ``MAY_IMPORT`` top to bottom as the data flow. At the bottom are the base (signals,
file writes, numba's internals: nothing of gait or stimulation) and the shared
vocabulary (samples, commands, the two back-end interfaces, gait events, the pulse rule,
config validation); the back ends ``sim`` and ``hw`` are leaves over it; the detector,
scheduler and watchdog stages sit beside them, the loop above the stages, the trial
above the loop and the back ends, and the tools (sweeps, reports, commands, benchmarks)
on top. Every import of every module counts, also one inside a function.

The test fails on an import between two parts that the table does not list (a new
arrow: add it here, in the same commit, if it is meant), on an arrow the table lists but
no import uses any more (tighten the table), on a module that belongs to no part, and on
any import cycle, between parts or between modules. Beside the imports: only the watchdog
drives a stimulator's outputs (``test_only_the_watchdog_drives_an_output``).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("controller", "sim", "hw", "configs")

#: The parts of the project and the modules (or packages) each one holds. A module
#: belongs to the part with the longest matching name; a name in ``ONLY_ITSELF`` is the
#: package alone, not what lies below it.
PARTS: dict[str, tuple[str, ...]] = {
    # Below everything, knowing nothing of gait or stimulation: how a command is
    # interrupted, how files are written, how numba's internals are used.
    "base": (
        "controller.interrupts",  # Ctrl-C and SIGTERM in every phase, exit 130
        "controller.outputs",  # output folders and atomic writes, OutputError
        "controller.numba_hooks",  # numba's private API, checked (controller.kernels)
        "controller.numba_cache",  # a cache folder for numba when its own are read-only
        "controller.kernel_sources",  # cached kernels made invalid when a source changed
        "controller.cgroup",  # the CPUs and memory a container's control group allows
        "controller.progress",  # progress lines of long work, on a terminal only
        "controller.csvcolumns",  # numeric columns of a CSV file, a block at a time
        "controller.sizes",  # byte counts in messages (12.4 GB, 310 MB)
    ),
    "vocabulary": (
        "controller",  # the package itself (imports nothing)
        "controller.ports",  # Sample, StimCommand, SensorSource, Stimulator
        "controller.events",  # Phase, Event, DetectedEvent
        "controller.eventlog",  # true and detected events held as arrays
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
    # the fes command line, its streams (console) and check-config --explain (explain)
    "commands": ("controller.commands", "controller.cli", "controller.console",
                 "controller.explain"),
    "bench": ("controller.bench",),  # benchmarks and calibrations that print figures
}

ONLY_ITSELF = ("controller",)

#: Who may import whom. Arrows point down the data flow; nothing below imports above.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "base": (),
    # The kernels are compiled through numba_hooks.
    "vocabulary": ("base",),
    "sim": ("vocabulary",),
    # The board emulator plays a board with the simulated patient behind it.
    "hw": ("vocabulary", "sim"),
    # The evaluation's recording loaders show progress and fes detect reads a recording's
    # columns (base); the kernels import no base.
    "detect": ("base", "vocabulary"),
    # The scheduler reads the detector's event outbox.
    "stim": ("vocabulary", "detect"),
    "safety": ("vocabulary",),
    "runtime": (),
    "loop": ("base", "vocabulary", "safety", "runtime"),
    "config": ("vocabulary", "detect", "stim", "safety"),
    "trial": (
        "base", "vocabulary", "sim", "hw", "detect", "stim", "safety", "runtime", "loop",
        "config",
    ),
    "sweep": ("base", "vocabulary", "sim", "config", "trial"),
    "report": ("base", "vocabulary", "trial", "sweep"),
    # `fes sim` runs without the cycle collector, in one frame-stack chunk (hotpath).
    "commands": (
        "base", "vocabulary", "sim", "hw", "detect", "safety", "runtime", "config", "trial",
        "sweep", "report",
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
        if module == prefix or (module.startswith(prefix + ".") and prefix not in ONLY_ITSELF)
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
    assert _part("controller.new_module") is None  # not the vocabulary by its prefix
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


#: The modules of ``hw`` that play a board with the simulated patient as its front end
#: (the firmware model, the pty emulator, the AVR co-simulation): of a back end, the only
#: ones that may import the other. A driver never does.
BOARD_EMULATORS = ("hw.firmware", "hw.emulator", "hw.avr.cosim")


def test_the_back_ends_are_leaves():
    """Spelled out for the two back ends: from ``controller`` they import the shared
    vocabulary only (``controller.ports`` and the few modules of ``PARTS["vocabulary"]``:
    events, pulses, kernels, validation, resources), never a layer that uses them; and
    only the board emulators import the simulated patient."""
    for module, targets in IMPORTS.items():
        part = _part(module)
        if part not in ("sim", "hw"):
            continue
        above = sorted(t for t in targets if _part(t) not in ("vocabulary", "sim", "hw"))
        assert not above, f"{module} imports {above}"
        if part == "hw" and module not in BOARD_EMULATORS:
            patient = sorted(t for t in targets if _part(t) == "sim")
            assert not patient, f"{module} (not a board emulator) imports {patient}"
    for module in BOARD_EMULATORS:
        assert any(_part(t) == "sim" for t in IMPORTS[module]), f"{module}: drop it"


#: What reaches a stimulator's outputs: the two methods of ``controller.ports.Stimulator``.
OUTPUT_METHODS = ("apply", "stop_all")
#: Besides the watchdog (``controller.safety``) and the back ends themselves (a driver's
#: own stop, a board emulator's firmware driving the simulated limb behind its pins),
#: the modules that call them: benchmarks that measure one back end alone, in no trial.
OUTPUT_WRITERS_BESIDE_THE_WATCHDOG = {
    "controller.bench.simulator": "the simulated limb stepped through its ports, alone",
    "controller.bench.openems": "openEMSstim's driver against the firmware's harness",
}


def _output_calls(path: Path) -> list[str]:
    """The calls of an output method in ``path``, as ``line: call``. Not counted: a call
    to the watchdog (its receiver's name ends in ``watchdog``), and a call inside a
    function of the same name (a ``Stimulator`` that hands on to the one it wraps: it is
    itself what the watchdog drives, and whoever calls it is checked)."""
    found: list[str] = []

    def visit(node: ast.AST, enclosing: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                method, receiver = child.func.attr, ast.unparse(child.func.value)
                if (method in OUTPUT_METHODS and method != enclosing
                        and not receiver.lower().endswith("watchdog")):
                    found.append(f"{child.lineno}: {ast.unparse(child)}")
            is_function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, child.name if is_function else enclosing)

    visit(ast.parse(path.read_text(), str(path)), None)
    return found


def test_only_the_watchdog_drives_an_output():
    """The watchdog is the only path to a ``Stimulator``: no detector, scheduler, loop,
    trial, sweep or command calls ``apply`` or ``stop_all`` on one (the loop's e-stop
    goes through the watchdog too)."""
    offenders = [
        f"{module}:{call}"
        for module, path in sorted(MODULES.items())
        if _part(module) not in ("safety", "sim", "hw")
        and module not in OUTPUT_WRITERS_BESIDE_THE_WATCHDOG
        for call in _output_calls(path)
    ]
    assert not offenders, "outputs driven past the watchdog:\n" + "\n".join(offenders)
    for module in OUTPUT_WRITERS_BESIDE_THE_WATCHDOG:
        assert _output_calls(MODULES[module]), f"{module} drives no output: drop it"


#: Modules beside the back ends (``hw``) that open a serial port themselves, and why. A
#: port written raw (a STIM frame, an openEMSstim line) reaches a stimulator's outputs
#: without a call of ``OUTPUT_METHODS``, so the checker above would not see it.
SERIAL_PORTS_BESIDE_HW = {
    "controller.bench.openems": "raw lines to the openEMSstim firmware's host build "
    "(FirmwareProcess, a pty it made), never a device",
}


def _serial_imports(path: Path) -> list[str]:
    """The imports of pyserial in ``path``, as ``line: import``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                 else [])
        if any(name == "serial" or name.startswith("serial.") for name in names):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_serial_port_is_written_past_the_back_ends():
    """Only the back ends (``hw``: drivers, transport, emulators) open a serial port:
    anything else could write a stimulator's wire past the watchdog."""
    offenders = [
        f"{module}:{found}"
        for module, path in sorted(MODULES.items())
        if _part(module) != "hw" and module not in SERIAL_PORTS_BESIDE_HW
        for found in _serial_imports(path)
    ]
    assert not offenders, "serial ports opened outside hw:\n" + "\n".join(offenders)
    for module in SERIAL_PORTS_BESIDE_HW:
        assert _serial_imports(MODULES[module]), f"{module} opens no serial port: drop it"


def test_the_serial_checker_sees_each_form_of_import(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("import serial\nfrom serial.tools import list_ports\n"
                      "import serialize\nfrom . import serial\n")
    assert _serial_imports(source) == ["1: import serial",
                                       "2: from serial.tools import list_ports"]


def test_the_compiled_loop_fills_the_limb_s_command_from_the_watchdog_only():
    """The compiled simulation (``controller.trial.compiled_loop``) runs the kernels with
    no ``Stimulator`` object: the limb's command array is its output. It is written by
    ``_hold`` from the watchdog's delivered rows, or set to all off, and by nothing else."""
    path = MODULES["controller.trial.compiled_loop"]
    tree = ast.parse(path.read_text(), str(path))
    sources = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            words = [node.func, *node.args]
            sources += [ast.unparse(after) for word, after in itertools.pairwise(words)
                        if isinstance(word, ast.Name) and word.id == "_hold"]
    assert sources and set(sources) == {"watchdog.delivered"}, sources
    hold = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "_hold")
    in_hold = {id(node) for node in ast.walk(hold)}
    writes = {
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AugAssign) and id(node) not in in_hold
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "command"
    }
    assert writes == {"command[:] = 0.0"}, writes


def test_the_output_checker_sees_a_call_and_lets_the_watchdog_and_a_wrapper_through(
    tmp_path,
):
    source = tmp_path / "probe.py"
    source.write_text(
        "def step(stimulator, watchdog):\n"
        "    watchdog.stop_all()\n"
        "    stimulator.apply(0.0, [])\n"
        "class Wrapper:\n"
        "    def apply(self, t_s, commands):\n"
        "        self._stimulator.apply(t_s, commands)\n"
        "    def stop_all(self):\n"
        "        self._stimulator.stop_all()\n"
        "        self._stimulator.apply(0.0, [])\n"
    )
    assert _output_calls(source) == ["3: stimulator.apply(0.0, [])",
                                     "9: self._stimulator.apply(0.0, [])"]


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
