"""The text of ``samples.csv``, rendered by a compiled kernel, byte-identical to ``%``.

A minute at 1 kHz is 60,000 rows of some twenty numbers; formatting them with Python's
``%`` operator (or ``numpy.char.mod``, which calls it per value) costs about 10 us per
row, longer than the compiled simulation that produced them. This module writes the same
bytes from a numba kernel: a ``%.6f`` number is the integer ``rint(x * 1e6)`` written
with its decimal point, a ``%d`` number the integer part, a phase its name.

``rint(x * 1e6)`` equals Python's correctly rounded ``%.6f`` unless ``x * 1e6`` lies
within rounding error of a half (the product is rounded once before ``rint`` sees it) or
is too large for exact integers; such cells, and infinities, are *hard*: the kernel
finds them, Python formats them with ``%`` and the kernel copies that text in. A test
compares both on random and adversarial values (ties, huge, tiny, negative zero).
"""

from __future__ import annotations

import math

import numba
import numpy as np

FLOAT6 = 0  # "%.6f"
INTEGER = 1  # "%d" of the value truncated to int64
NAME = 2  # a phase: the name of its integer code

#: ``x * 1e6`` this close to a half may have been rounded across it: format it exactly.
_TIE_MARGIN = 1e-3
#: Below this magnitude the rounding error of ``x * 1e6`` (half an ulp of a number under
#: 1e12, about 6e-5) is far inside ``_TIE_MARGIN``.
_MAX_FAST_FLOAT = 1e6
_MAX_FAST_INTEGER = 2.0**62
#: Widest fast cell: a sign and 19 digits (an integer), or a sign, 7 integer digits, the
#: point and 6 decimals.
_CELL_BYTES = 20


@numba.njit(cache=True)
def _is_hard(x: float, kind: int) -> bool:
    """A cell the kernel leaves to Python's ``%`` (NaN is not hard: it is empty)."""
    if math.isnan(x) or kind == NAME:
        return False
    if math.isinf(x):
        return True
    if kind == INTEGER:
        return abs(x) >= _MAX_FAST_INTEGER
    if abs(x) >= _MAX_FAST_FLOAT:
        return True
    scaled = abs(x) * 1e6
    return abs(scaled - math.floor(scaled) - 0.5) < _TIE_MARGIN


@numba.njit(cache=True)
def hard_cells(values: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Flat row-major indices (row * columns + column) of every hard cell."""
    columns, rows = values.shape
    found = np.empty(rows * columns, dtype=np.int64)
    count = 0
    for i in range(rows):
        for c in range(columns):
            if _is_hard(values[c, i], kinds[c]):
                found[count] = i * columns + c
                count += 1
    return found[:count]


@numba.njit(cache=True)
def _digits(value: int, out: np.ndarray, at: int, minimum: int) -> int:
    """Write the decimal digits of ``value`` >= 0 (at least ``minimum`` of them)."""
    n = 0
    rest = value
    while rest > 0 or n < minimum:
        rest //= 10
        n += 1
    for j in range(n - 1, -1, -1):
        out[at + j] = 48 + value % 10
        value //= 10
    return at + n


@numba.njit(cache=True)
def _cell(x: float, kind: int, names: np.ndarray, name_lengths: np.ndarray,
          out: np.ndarray, at: int) -> int:
    """Write one fast cell at ``at``; return the end."""
    if math.isnan(x):
        return at
    if kind == NAME:
        code = int(x)
        for j in range(name_lengths[code]):
            out[at + j] = names[code, j]
        return at + name_lengths[code]
    if kind == INTEGER:
        whole = int(x)  # truncates toward zero, as numpy's astype(int64)
        if whole < 0:
            out[at] = 45  # "-"
            at += 1
            whole = -whole
        return _digits(whole, out, at, 1)
    micro = int(np.rint(abs(x) * 1e6))
    if math.copysign(1.0, x) < 0.0:
        out[at] = 45
        at += 1
    at = _digits(micro // 1000000, out, at, 1)
    out[at] = 46  # "."
    return _digits(micro % 1000000, out, at + 1, 6)


@numba.njit(cache=True)
def render(values: np.ndarray, kinds: np.ndarray, names: np.ndarray, name_lengths: np.ndarray,
           hard_at: np.ndarray, hard_text: np.ndarray, hard_start: np.ndarray) -> np.ndarray:
    """The CSV body (no header): one line per sample, cells separated by commas.

    ``values`` has one row per column; hard cell ``h`` (at flat index ``hard_at[h]``) is
    ``hard_text[hard_start[h]:hard_start[h + 1]]``.
    """
    columns, rows = values.shape
    size = rows * columns * (_CELL_BYTES + 1) + hard_text.size
    for c in range(columns):
        if kinds[c] == NAME:
            size += rows * name_lengths.max()
    out = np.empty(size, dtype=np.uint8)
    at = 0
    h = 0
    for i in range(rows):
        for c in range(columns):
            if h < hard_at.size and hard_at[h] == i * columns + c:
                for j in range(hard_start[h], hard_start[h + 1]):
                    out[at] = hard_text[j]
                    at += 1
                h += 1
            else:
                at = _cell(values[c, i], kinds[c], names, name_lengths, out, at)
            out[at] = 44 if c < columns - 1 else 10  # "," or newline
            at += 1
    return out[:at]


def name_table(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Names as a padded byte table and their lengths, indexed by code."""
    encoded = [name.encode("ascii") for name in names]
    table = np.zeros((len(encoded), max(map(len, encoded))), dtype=np.uint8)
    for code, text in enumerate(encoded):
        table[code, : len(text)] = np.frombuffer(text, dtype=np.uint8)
    return table, np.array([len(text) for text in encoded], dtype=np.int64)


def python_text(x: float, kind: int) -> str:
    """A cell formatted by Python (``%.6f`` or ``%d`` of the value cast as numpy casts)."""
    if kind == INTEGER:
        with np.errstate(invalid="ignore"):
            return f"{np.array([x]).astype(np.int64)[0]:d}"
    return f"{x:.6f}"


def csv_body(values: np.ndarray, kinds: np.ndarray, names: list[str]) -> bytes:
    """The rows of a CSV file for ``values`` (one row per column) of the given kinds."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    kinds = np.ascontiguousarray(kinds, dtype=np.int64)
    hard_at = hard_cells(values, kinds)
    columns = values.shape[0]
    texts = [
        python_text(values[index % columns, index // columns], int(kinds[index % columns]))
        .encode("ascii")
        for index in hard_at.tolist()
    ]
    hard_start = np.zeros(len(texts) + 1, dtype=np.int64)
    hard_start[1:] = np.cumsum([len(t) for t in texts])
    hard_text = np.frombuffer(b"".join(texts), dtype=np.uint8)
    table, lengths = name_table(names)
    return render(values, kinds, table, lengths, hard_at, hard_text, hard_start).tobytes()
