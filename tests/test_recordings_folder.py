"""The calibration printouts refuse a folder without their recordings: exit 2, no traceback.

``python -m sim.turns DIR`` and its siblings (docs/cli.md, docs/simulator.md) read a
public data set by file name. A folder of something else (the data set's parent, the
Marpino checkout instead of its ``Dataset/Young``) ended in numpy's ``IndexError`` or a
``zip()`` ``ValueError`` (exit 1), or, for the heel force bench, printed the simulated
rows alone as though the real ones had been read.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

MODULES = {
    "sim.turns": "*.json",
    "sim.forefoot": "*.json",
    "controller.bench.landing": "*.json",
    "controller.bench.heelforce": "*_[0-9][0-9].txt",
    "controller.bench.heelwalkers": "*_[0-9][0-9].txt",
    "controller.bench.shank": "*.xlsx",
}


@pytest.mark.parametrize(("module", "pattern"), MODULES.items())
def test_a_folder_without_recordings_is_a_usage_error(
    module: str, pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a recording\n")
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as ended:
        main([str(tmp_path)])
    assert ended.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{tmp_path}: no {pattern} file in it; give the folder of" in captured.err


@pytest.mark.parametrize("module", MODULES)
def test_a_missing_folder_is_a_usage_error(
    module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as ended:
        main([str(tmp_path / "absent")])
    assert ended.value.code == 2
    assert f"{tmp_path / 'absent'}: no such folder" in capsys.readouterr().err
