"""Where numba caches the compiled kernels, when neither of its own places can be written.

numba keeps a kernel's machine code in a ``__pycache__`` folder beside its source, or,
where that cannot be written (a read-only checkout or install: a CI container, a
package installed by root), under the user's cache folder (``$XDG_CACHE_HOME`` or
``~/.cache``, then ``numba/``), unless ``NUMBA_CACHE_DIR`` names a folder. When none can
be written (a read-only checkout run with a read-only or missing home, as CI jobs and
containers often are), numba raises ``RuntimeError: cannot cache function ...: no
locator available`` as the first kernel module is imported: every ``fes`` command that
runs a kernel ended with that traceback and exit code 1.

``choose_cache_dir`` runs before numba is imported (``controller.cli``): if numba's
places cannot be written and ``NUMBA_CACHE_DIR`` is not set, it sets it to a folder of
this user's in the temporary folder (``fes-numba-cache-<uid>``, mode 0700, reused by
later commands of the same job so that only the first compiles) and says so on
standard error. If that cannot be made either, or ``NUMBA_CACHE_DIR`` names a folder
that cannot be written (numba then tries its own places, which failed too), the
command stops with exit code 2 naming ``NUMBA_CACHE_DIR``. Standard library only (and
``controller.outputs``): every command imports it before its own modules.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from controller.outputs import OutputError

#: The folder of this package: numba's first choice is a ``__pycache__`` beside it.
SOURCE = Path(__file__).resolve().parent
ENV = "NUMBA_CACHE_DIR"


def _writable(folder: Path) -> str | None:
    """None if numba could cache into ``folder`` (it makes the folder and a temporary
    file in it, as numba's ``ensure_cache_path`` does), else the system's reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return os.strerror(err.errno) if err.errno else str(err)
    return None


def user_cache() -> Path | None:
    """numba's per-user cache folder (``numba.misc.appdirs`` on Linux), or None when there
    is no home to find it in."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no HOME and no passwd entry
            return None
    return Path(base) / "numba"


def _own_folder(folder: Path) -> str | None:
    """Make ``folder`` this user's private folder, or say why it cannot be used (it is
    someone else's, a link, or open to others: a shared temporary folder)."""
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError as err:
        return os.strerror(err.errno) if err.errno else str(err)
    if not stat.S_ISDIR(info.st_mode):
        return "not a folder"
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return "another user's, or writable by others"
    return _writable(folder)


def choose_cache_dir(notes: TextIO | None = None) -> Path | None:
    """Set ``NUMBA_CACHE_DIR`` to a private temporary folder when numba could cache
    nowhere else (see the module docstring); the folder chosen, or None when numba's
    own places (or the user's ``NUMBA_CACHE_DIR``) do. ``OutputError`` naming
    ``NUMBA_CACHE_DIR`` when no folder can be had."""
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return None
    chosen = os.environ.get(ENV)
    if chosen and (problem := _writable(Path(chosen))) is None:
        return None
    pycache = SOURCE / "__pycache__"
    beside = _writable(pycache)
    if beside is None:  # numba falls back on it after an unwritable NUMBA_CACHE_DIR
        return None
    user = user_cache()
    in_home = _writable(user) if user is not None else "no home folder"
    if in_home is None:
        return None
    if chosen:  # the user's choice, unwritable: said, not replaced
        raise OutputError(ENV, (
            f"{chosen}: {problem}; numba cannot write its cache beside the code ({pycache}: "
            f"{beside}) nor in {user or 'the home folder'} ({in_home}) either: set {ENV} "
            "to a writable folder"))
    folder = Path(tempfile.gettempdir()) / f"fes-numba-cache-{os.getuid()}"
    if (problem := _own_folder(folder)) is not None:
        raise OutputError(ENV, (
            f"numba cannot write its cache beside the code ({pycache}: {beside}) nor in "
            f"{user or 'the home folder'} ({in_home}), nor in {folder} ({problem}): set "
            f"{ENV} to a writable folder"))
    os.environ[ENV] = str(folder)
    print(f"fes: note: numba cannot write its cache beside the code ({pycache}: {beside}) "
          f"nor in {user or 'the home folder'} ({in_home}): it caches compiled code in "
          f"{folder} (set {ENV} to choose the folder)", file=notes or sys.stderr)
    return folder
