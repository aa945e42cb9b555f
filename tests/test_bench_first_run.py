"""``python -m controller.bench.first_run --python PATH`` measures PATH's own build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from controller.bench import first_run


def test_the_probe_imports_the_interpreters_own_build_not_the_working_directorys(
    tmp_path, monkeypatch
):
    """Run from a checkout, ``python -c`` imports that checkout's ``controller`` first:
    the probe must import ``--python``'s own (the package installed for it), or a
    comparison of two builds measures one twice. Another checkout stands in the working
    directory; the probe's interpreter, started as the probe starts it, must not import
    it (the cold ``fes sim`` itself is left out: ``tests/test_first_run.py`` runs one)."""
    checkout = tmp_path / "checkout"
    (checkout / "controller").mkdir(parents=True)
    (checkout / "controller" / "__init__.py").write_text("")
    monkeypatch.chdir(checkout)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "compile.log").write_text("")
    start = subprocess.run
    imported: list[str] = []

    def run(args: list[str], **kwargs: object) -> None:  # where the probe would import
        found = start([args[0], "-c", "import controller; print(controller.__file__)"],
                      cwd=kwargs.get("cwd"), capture_output=True, text=True, check=True)
        imported.append(found.stdout.strip())

    monkeypatch.setattr(first_run.subprocess, "run", run)
    first_run.probe(sys.executable, folder)
    assert imported == [str(Path(first_run.__file__).parents[1] / "__init__.py")]
