"""Cached kernels made invalid when any source of the project's kernels changed.

numba keys a cached kernel by its own source file only. A kernel's machine code also
holds every kernel it calls (they are inlined and linked into it), so after a callee
changes (a ``git pull`` into the editable install the README sets up) the callers'
cached code still runs the old callee: seen, the heel detector at 0 % recall, a
``ModuleNotFoundError`` naming a module that moved, a ``ZeroDivisionError`` from an old
slot layout, all without a word until the cache was deleted by hand.

``invalidate_if_changed`` runs once per process, as ``controller.kernels`` is imported
(every path to a kernel passes there: the ``fes`` command, the benchmarks, the
evaluation, library use) and before any kernel is loaded. It fingerprints the sources
of ``controller``, ``sim`` and ``hw`` (every ``.py`` file) and compares the fingerprint
with the one stored in each place numba caches this package's kernels (``__pycache__``
beside the sources, ``NUMBA_CACHE_DIR``'s mirror, the user's cache folder). Where the
fingerprint differs it deletes the package's cached kernels there (their index files,
``*.nbi``, and their data files, ``*.nbc``), so that numba compiles every kernel again,
stores the new fingerprint, and says so in one line on standard error.

The fingerprint is two-level, to stay within a few milliseconds per command: the
names, sizes and modification times of the files (``os.scandir``, about 1 ms for the
200 files) decide when nothing changed; only when they differ are the contents hashed
(about 10 ms), so a checkout that touched files without changing them compiles nothing.

Two processes starting at once after an update both delete the cached kernels;
whichever loads a kernel first finds no index and compiles, as numba does for any
missing index (its index is written whole, by a rename), so neither fails. The data
files go too: numba saves a kernel's index before its data and numbers the data files
of a new index from 1, so with the old data files left, a process that read the other
one's new index before that one had saved its data loaded the old machine code under
the new key (one of two commands started together printed the old result, without a
word, in a fresh-clone CI run of 7 Dec 2026); an index entry whose data file is
missing numba takes for no entry, and compiles. A process still running
the code from before the update may cache a kernel after the new code's check: the
fingerprint is also a key of every cache entry (``fingerprint``, used by
``controller.numba_hooks``), so the new code never loads it. Standard library only (and
``controller.numba_cache.user_cache``, numba's per-user cache folder).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from controller.numba_cache import user_cache

#: The folder holding the packages whose sources are compiled into kernels.
ROOT = Path(os.path.abspath(__file__)).parent.parent
PACKAGES = ("controller", "sim", "hw")
#: The file, in the ``controller`` package's cache folder of each place, that holds the
#: fingerprint of the sources its kernels were compiled from.
STAMP = "fes-kernel-sources.txt"
MESSAGE = "fes: note: sources changed since the kernels were cached: compiling again"


def _folders(root: Path) -> list[Path]:
    """Every source folder of the packages under ``root`` (no ``__pycache__``)."""
    found: list[Path] = []
    stack = [root / name for name in reversed(PACKAGES) if (root / name).is_dir()]
    while stack:
        folder = stack.pop()
        found.append(folder)
        with os.scandir(folder) as entries:
            stack.extend(Path(e.path) for e in sorted(entries, key=lambda e: e.name,
                                                       reverse=True)
                         if e.is_dir(follow_symlinks=False) and e.name != "__pycache__")
    return found


def _sources(folders: list[Path]) -> Iterator[os.DirEntry[str]]:
    for folder in folders:
        with os.scandir(folder) as entries:
            yield from sorted((e for e in entries if e.name.endswith(".py") and e.is_file()),
                              key=lambda e: e.name)


def stat_key(folders: list[Path]) -> str:
    """A digest of the sources' names, sizes and modification times (cheap)."""
    digest = hashlib.blake2b(digest_size=16)
    for entry in _sources(folders):
        info = entry.stat()
        digest.update(f"{entry.path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def content_key(folders: list[Path]) -> str:
    """A digest of the sources' names and contents: what the kernels are compiled from."""
    digest = hashlib.blake2b(digest_size=16)
    for entry in _sources(folders):
        digest.update(f"{os.path.relpath(entry.path, ROOT)}\0".encode())
        digest.update(Path(entry.path).read_bytes())
    return digest.hexdigest()


def _mirror(base: Path, folder: Path) -> Path:
    """numba's cache folder for the sources in ``folder`` under ``base`` (numba's
    ``_CacheLocator.get_suitable_cache_subpath``: the folder's name and a SHA-1 of its
    absolute path)."""
    path = os.path.abspath(folder)
    return base / f"{os.path.basename(path)}_{hashlib.sha1(path.encode()).hexdigest()}"


def cache_places(folders: list[Path]) -> list[tuple[list[Path], bool]]:
    """Where numba may cache the kernels of ``folders``: one list of cache folders per
    place (the first, the ``controller`` package's, holds the stamp), and whether numba
    may cache there in this process (then the stamp goes in before numba caches
    anything; elsewhere only where numba cached before: the user's cache folder is
    numba's fallback when the folder beside the sources cannot be written)."""
    beside = [folder / "__pycache__" for folder in folders]
    places = [(beside, True)]
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        places.append(([_mirror(Path(chosen), folder) for folder in folders], True))
    user = user_cache()
    if user is None:  # no home: numba has no user cache either
        return places
    if not chosen or Path(chosen) != user:
        fallback = not os.access(beside[0] if beside[0].is_dir() else folders[0], os.W_OK)
        places.append(([_mirror(user, folder) for folder in folders], fallback))
    return places


def _read_stamp(path: Path) -> tuple[str, str]:
    try:
        stat_part, _, content_part = path.read_text().partition(" ")
    except (OSError, UnicodeDecodeError):
        return "", ""
    return stat_part, content_part.strip()


def _write_stamp(path: Path, quick: str, content: str) -> None:
    """Replace the stamp whole (a rename), so a concurrent reader sees old or new."""
    try:
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False,
                                         prefix=".stamp-") as out:
            out.write(f"{quick} {content}\n")
        os.replace(out.name, path)
    except OSError:
        pass  # a place numba cannot write to holds no kernels of ours either


def _delete_cached(place: list[Path]) -> int:
    """Delete the cached kernels in ``place``, index files and data files (module
    docstring: a data file left behind is reused by name under a new index); how many
    index files were there."""
    indexes = 0
    for folder in place:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.endswith((".nbi", ".nbc")):
                try:
                    os.unlink(folder / name)
                    indexes += name.endswith(".nbi")
                except FileNotFoundError:  # another process got there first
                    pass
    return indexes


def invalidate_if_changed(notes: TextIO | None = None, root: Path = ROOT) -> bool:
    """Make every cached kernel of the package invalid in each cache place whose stored
    fingerprint differs from the sources' (module docstring); whether any cached kernel
    was, which is then said on ``notes`` (standard error)."""
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return False
    folders = _folders(root)
    quick = stat_key(folders)
    content = ""
    invalidated = False
    for place, used in cache_places(folders):
        stamp = place[0] / STAMP
        stored_quick, stored_content = _read_stamp(stamp)
        if stored_quick == quick:
            content = content or stored_content
            continue
        if not used and not any(folder.is_dir() for folder in place):
            continue  # nothing cached here, and numba will not cache here
        try:
            place[0].mkdir(parents=True, exist_ok=True)
        except OSError:
            continue  # numba cannot cache here either
        if not os.access(place[0], os.W_OK):
            continue  # nor here (a read-only install): no hashing on every command
        content = content or content_key(folders)
        if stored_content != content:  # also no stamp: cached by a version without it
            invalidated |= _delete_cached(place) > 0
        _write_stamp(stamp, quick, content)
    _fingerprint[root] = content
    if invalidated:
        print(MESSAGE, file=notes or sys.stderr)
    return invalidated


#: The content fingerprint each check found, by root (read from a stamp when possible).
_fingerprint: dict[Path, str] = {}


def fingerprint(root: Path = ROOT) -> str:
    """The content fingerprint of the sources the kernels of this process are compiled
    from, as ``invalidate_if_changed`` found it (hashed here if it found none): a key of
    every cache entry (``controller.numba_hooks``), so that an entry a process still
    running older code caches after an update is never loaded by the new code."""
    if not _fingerprint.get(root):
        _fingerprint[root] = content_key(_folders(root))
    return _fingerprint[root]
