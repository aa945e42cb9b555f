"""The watchdog sees commands, samples and heartbeats only: it imports nothing from the
detector, the scheduler, the loop, the trial code or a back end."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAFETY_MODULES = sorted((ROOT / "controller" / "safety").glob("*.py"))
ALLOWED_PROJECT_IMPORTS = (
    "controller.ports", "controller.validation", "controller.kernels", "controller.safety",
)
FORBIDDEN = ("controller.detect", "controller.stim", "controller.loop", "controller.trial",
             "controller.clock", "sim", "hw")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_safety_modules_import_only_ports_validation_and_themselves():
    assert len(SAFETY_MODULES) >= 5
    for path in SAFETY_MODULES:
        project = {
            name for name in imported_modules(path)
            if name.split(".")[0] in ("controller", "sim", "hw", "configs")
        }
        unexpected = {n for n in project if not n.startswith(ALLOWED_PROJECT_IMPORTS)}
        assert not unexpected, f"{path.name} imports {sorted(unexpected)}"


def test_importing_the_watchdog_loads_no_detector_or_scheduler():
    code = (
        "import sys, controller.safety, controller.safety.estop\n"
        f"bad = [m for m in sys.modules if m.startswith({FORBIDDEN!r})]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
