"""Byte counts as people read them in a message: ``12.4 GB``, ``310 MB``, ``3.2 MB``,
``64 kB`` (decimal units, as ``df -H`` and disk makers count).

One formatter for every refusal that names a size (the memory a trial keeps,
``controller.trial.memory``; the room its files need on disk,
``controller.trial.diskroom``), so that the two say sizes the same way. Standard library
only: the commands import it before anything heavy.
"""

from __future__ import annotations


def size_text(n_bytes: float) -> str:
    """``12.4 GB``, ``310 MB``, ``3.2 MB``, ``64 kB``."""
    if n_bytes >= 1e9:
        return f"{n_bytes / 1e9:.1f} GB"
    if n_bytes >= 1e7:
        return f"{n_bytes / 1e6:.0f} MB"
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.0f} kB"
