"""The folder of real recordings a calibration printout reads, checked before it reads it.

``python -m sim.turns``, ``sim.forefoot``, ``controller.bench.landing``,
``controller.bench.heelforce`` and ``controller.bench.shank`` take a folder of a public
data set (``../shared/data`` or the Marpino workbooks) and find its recordings by file
name. Given another folder (a data set's parent, a typo'd sibling), they found none and
ended in numpy's ``IndexError`` or a ``zip()`` ``ValueError`` deep in their statistics,
or printed the simulated rows alone as if the real ones were there; now each refuses
with a usage error (exit 2) naming the folder and the files it should hold.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def recordings_folder(parser: argparse.ArgumentParser, folder: Path, pattern: str,
                      holds: str) -> Path:
    """``folder`` if it is a folder with at least one file matching ``pattern``; else
    ``parser.error`` (exit 2) saying what was given and what the folder should hold
    (``holds``, e.g. "the Voisard et al. 2023 trials (<s>-1.json, <s>-1_lf.txt, ...)")."""
    if not folder.is_dir():
        parser.error(f"{folder}: no such folder; give the folder of {holds}")
    if next(folder.glob(pattern), None) is None:
        parser.error(f"{folder}: no {pattern} file in it; give the folder of {holds}")
    return folder
