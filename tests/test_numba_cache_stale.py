"""A kernel that another kernel calls changes: the caller runs the new code.

numba keys a cached kernel by its own source file only, and a caller's machine code
holds its callees; after an update (``git pull`` into the editable install) the caller
loaded from the cache ran the old callee, without a word (``controller.kernel_sources``
now makes the package's cached kernels invalid when any of its sources changed). The
test runs in fresh interpreters on a copy of the package with a caller and a callee of
its own, in two files, and a cache folder of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from controller.kernel_sources import MESSAGE, PACKAGES, ROOT

CALLEE = "from controller.kernels import kernel\n\n\n@kernel\ndef offset(x):\n    return x + {}\n"
CALLER = ("from controller.kernels import kernel\nfrom controller.probe_callee import offset\n\n\n"
          "@kernel\ndef shifted(x):\n    return offset(x) * 2.0\n")
RUN = "from controller.probe_caller import shifted; print(shifted(1.0))"
#: ``RUN`` in a process that stops after numba saved its first new cache index and before
#: it saved that entry's data (``IndexDataCacheFile.save``'s order), until ``argv[2]``
#: exists; it creates ``argv[1]`` when it stops there.
PAUSED_BETWEEN_INDEX_AND_DATA = """
import os, sys, time
from numba.core import caching

save_data = caching.IndexDataCacheFile._save_data


def paused(self, name, data):
    if not os.path.exists(sys.argv[1]):
        open(sys.argv[1], "w").close()
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.01)
    save_data(self, name, data)


caching.IndexDataCacheFile._save_data = paused
""" + RUN + "\n"


def _copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The package copied into ``tmp_path`` with the two probe kernels, and the
    environment that imports it from there and caches in ``tmp_path``."""
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    (tmp_path / "controller" / "probe_caller.py").write_text(CALLER)
    (tmp_path / "controller" / "probe_callee.py").write_text(CALLEE.format("1.0"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
           "XDG_CACHE_HOME": str(tmp_path / "home-cache")}
    env.pop("NUMBA_DISABLE_JIT", None)
    return tmp_path, env


def _update(root: Path) -> None:
    """The callee as an update changes it: 12.0 where it added 1.0. Not the same length:
    Python takes a module's cached bytecode for current when the source's size and its
    modification time in whole seconds match (``.pyc`` stamps), so a same-length edit
    within the second of the first run's import ran the old bytecode, whatever numba's
    cache held (both commands printed 4.0 in one CI run, and said the note)."""
    (root / "controller" / "probe_callee.py").write_text(CALLEE.format("12.0"))


def _start(root: Path, env: dict[str, str], script: str = RUN,
           *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=root, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run(root: Path, env: dict[str, str]) -> tuple[str, str]:
    process = _start(root, env)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out.strip(), err


def test_a_caller_runs_its_changed_callee_not_the_cached_one(tmp_path):
    root, env = _copy(tmp_path)
    assert _run(root, env) == ("4.0", "")  # compiled and cached: (1 + 1) x 2
    assert _run(root, env) == ("4.0", "")  # loaded from the cache, nothing said

    _update(root)
    result, notes = _run(root, env)
    assert result == "26.0"  # (1 + 12) x 2; the cached caller held (1 + 1) x 2 = 4.0
    assert notes.strip() == MESSAGE
    assert _run(root, env) == ("26.0", "")  # cached again, said once


def test_two_commands_started_together_after_an_update_both_run_the_new_code(tmp_path):
    root, env = _copy(tmp_path)
    assert _run(root, env)[0] == "4.0"
    _update(root)
    together = [_start(root, env) for _ in range(2)]
    results = [(p.communicate(timeout=300), p.returncode) for p in together]
    assert [(out.strip(), code) for (out, _), code in results] == [("26.0", 0), ("26.0", 0)], \
        [err for (_, err), _ in results]


def test_a_command_reading_a_new_index_before_its_data_was_saved_runs_the_new_code(tmp_path):
    """The race behind the test above, made certain: one command after the update stops
    between saving a new cache index and saving its data (numba numbers the data files
    of a new index from 1, the old kernels' names); a second command started then must
    not load the old machine code under the new index's key (it printed 4.0, without a
    word, while the old data files were left beside the deleted indexes)."""
    root, env = _copy(tmp_path)
    assert _run(root, env)[0] == "4.0"
    _update(root)
    stopped, go = tmp_path / "stopped", tmp_path / "go"
    first = _start(root, env, PAUSED_BETWEEN_INDEX_AND_DATA, str(stopped), str(go))
    try:
        for _ in range(3000):  # the first command's import and compile: seconds
            if stopped.exists() or first.poll() is not None:
                break
            time.sleep(0.1)
        assert stopped.exists(), first.communicate(timeout=60)
        assert _run(root, env)[0] == "26.0"  # (1 + 12) x 2, not the cached (1 + 1) x 2
    finally:
        go.touch()
        out, err = first.communicate(timeout=300)
    assert (out.strip(), first.returncode) == ("26.0", 0), err
