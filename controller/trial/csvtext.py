"""The text of ``samples.csv``, rendered by a compiled kernel, byte-identical to ``%``.

A minute at 1 kHz is 60,000 rows of some twenty numbers; formatting them with Python's
``%`` operator (or ``numpy.char.mod``, which calls it per value) costs about 10 us per
row, longer than the compiled simulation that produced them. This module writes the same
bytes from a numba kernel: a ``%.6f`` number is its correctly rounded number of
millionths written with a decimal point, a ``%d`` number the integer part, a phase its
name; digits go out two at a time from a table, the point and six decimals as one
8-byte store. A cell whose value has the same bits as the cell above it (a trial's
command columns, a foot switch, a constant truth column: more than half the cells of a
simulated trial) is copied from the row above as one vector move. A minute at 1 kHz
(60,000 rows of 18 columns) renders in about 7 ms on the development machine, 17 ms
before those three changes (``python -m controller.bench.simulator``; docs/simulator.md).

Python's ``%.6f`` rounds the exact binary value half to even. ``x * 1e6`` is rounded
once before the kernel sees it, so when the product lies close to a half the kernel
recovers the product's rounding error exactly (Dekker's product, Dekker 1971) and decides
on the exact value, ties to even. Cells the kernel leaves to Python are *hard*:
infinities and magnitudes past ``_MAX_FAST_FLOAT`` (where millionths stop being exact
integers), and integers past ``_MAX_FAST_INTEGER``; Python formats them with ``%`` and
the kernel copies that text in. A test compares both on random and adversarial values
(ties, huge, tiny, negative zero).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from controller.kernels import allocating_kernel, kernel

FLOAT6 = 0  # "%.6f"
INTEGER = 1  # "%d" of the value truncated to int64
NAME = 2  # a phase: the name of its integer code

#: ``x * 1e6`` this close to a half is decided on its exact value (the rounding error of
#: the product, half an ulp of a number under 1e12, is below 6.2e-5).
_TIE_MARGIN = 1e-3
#: Below this magnitude millionths are exact integers in a double.
_MAX_FAST_FLOAT = 1e6
_MAX_FAST_INTEGER = 2.0**62
#: Widest fast cell: a sign and 19 digits (an integer), or a sign, 7 integer digits, the
#: point and 6 decimals.
_CELL_BYTES = 20
#: Dekker's splitter for doubles (2**27 + 1) and 1e6 split into two halves of 26 bits.
_SPLITTER = 134217729.0
_MILLION_HIGH = 1000000.0  # 1e6 needs 14 bits: its low half is zero
_MILLION_LOW = 0.0
#: A cell copied from the row above is copied as this many bytes at once (one vector
#: load and store; the bytes past the cell are overwritten by what follows it).
_COPY_BYTES = 32
#: "00" to "99", two ASCII digits per entry.
_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8)
#: The same pairs as 16-bit words (first digit in the low byte), to assemble the digits
#: of a number in a register and store them at once.
_PAIR_WORDS = _PAIRS.view("<u2").astype(np.int64)


def _byte_intrinsic(emit: Callable[[Any, Any, Any, Any], None], third: Any) -> Any:
    """An intrinsic ``f(out, at, x)`` on a byte array ``out`` (uint8) that compiles to
    ``emit(builder, address of out[0], at, x)``; ``x`` is of numba type ``third``."""

    def typer(typingctx: Any, out: Any, at: Any, x: Any) -> Any:
        if not (isinstance(out, types.Array) and out.dtype == types.uint8):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            array = context.make_array(signature.args[0])(context, builder, args[0])
            emit(builder, array.data, args[1], args[2])
            return context.get_dummy_value()

        return types.void(out, types.intp, third), codegen

    return intrinsic(typer)


def _emit_copy(builder: Any, data: Any, at: Any, start: Any) -> None:
    """``out[at : at + _COPY_BYTES] = out[start : start + _COPY_BYTES]``: a ``memmove``
    of a constant length, which LLVM turns into vector loads, then the stores."""
    cgutils.raw_memmove(builder, builder.gep(data, [at]), builder.gep(data, [start]),
                        ir.Constant(at.type, _COPY_BYTES), 1)


def _emit_store8(builder: Any, data: Any, at: Any, word: Any) -> None:
    """``out[at : at + 8]`` = the bytes of the int64 ``word``, lowest first: one
    unaligned store."""
    builder.store(word, builder.bitcast(builder.gep(data, [at]), word.type.as_pointer()),
                  align=1)


#: ``_copy_cell(out, at, start)``: a cell copied from the row above, as ``_COPY_BYTES``
#: bytes (what follows the cell overwrites the rest). A loop over the bytes of the cell
#: took longer than formatting the number again.
_copy_cell = _byte_intrinsic(_emit_copy, types.intp)
#: ``_store8(out, at, word)``: eight bytes at once (what follows overwrites the unused).
_store8 = _byte_intrinsic(_emit_store8, types.int64)


@kernel
def _is_hard(x: float, kind: int) -> bool:
    """A cell the kernel leaves to Python's ``%`` (NaN is not hard: it is empty)."""
    if kind == NAME or math.isnan(x):
        return False
    if kind == INTEGER:
        return not abs(x) < _MAX_FAST_INTEGER
    return not abs(x) < _MAX_FAST_FLOAT


@allocating_kernel
def hard_cells(values: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Flat row-major indices (row * columns + column) of every hard cell."""
    columns, rows = values.shape
    found = np.empty(0, dtype=np.int64)
    count = 0
    for i in range(rows):
        for c in range(columns):
            if _is_hard(values[c, i], kinds[c]):
                if count == found.size:
                    grown = np.empty(max(16, 2 * found.size), dtype=np.int64)
                    for k in range(count):  # a loop: numba compiles a slice copy's
                        grown[k] = found[k]  # shape-error message, 20 functions
                    found = grown
                found[count] = i * columns + c
                count += 1
    return found[:count]


@kernel
def _millionths(a: float) -> int:
    """``a`` >= 0 (below ``_MAX_FAST_FLOAT``) in millionths, rounded as Python's
    ``%.6f``: to nearest, exact halves to even.

    First the common case, with the fewest dependent steps: ``p + 0.5`` is exact (``p``
    < 1e12 < 2**40, so its ulp is at most 2**-13) and truncates to ``p`` rounded half up;
    when that is farther than ``_TIE_MARGIN`` from a half, the exact product (``p`` give
    or take its rounding error, under 6.2e-5) rounds the same way and no tie is
    possible. Otherwise (about one cell in 500) the exact decision below."""
    p = a * 1e6
    nearest = int(p + 0.5)
    if abs(p - float(nearest)) <= 0.5 - _TIE_MARGIN:  # an exact difference
        return nearest
    whole = math.floor(p)
    frac = p - whole  # exact: p < 2**40
    micro = int(whole)
    off = frac - 0.5  # exact
    if abs(off) >= _TIE_MARGIN:
        return micro + (off > 0.0)
    # Dekker's exact product: a * 1e6 == p + err exactly.
    c = _SPLITTER * a
    ah = c - (c - a)
    al = a - ah
    err = ((ah * _MILLION_HIGH - p) + ah * _MILLION_LOW + al * _MILLION_HIGH) + al * _MILLION_LOW
    if off > -err:
        return micro + 1
    if off < -err:
        return micro
    return micro + (micro & 1)  # an exact half: to even


@kernel
def _pair(value: int, out: np.ndarray, at: int) -> None:
    """Two digits of ``value`` (0-99) at ``at``."""
    out[at] = _PAIRS[2 * value]
    out[at + 1] = _PAIRS[2 * value + 1]


@kernel
def _digits(value: int, out: np.ndarray, at: int) -> int:
    """The decimal digits of ``value`` >= 0 at ``at`` (no leading zeros); return the end."""
    if value < 10:
        out[at] = 48 + value
        return at + 1
    if value < 100:
        _pair(value, out, at)
        return at + 2
    n = 3
    scale = 1000
    while n < 19 and value >= scale:
        n += 1
        scale *= 10
    end = at + n
    while value >= 100:
        quotient = value // 100
        end -= 2
        _pair(value - 100 * quotient, out, end)
        value = quotient
    if value >= 10:
        _pair(value, out, end - 2)
    else:
        out[end - 1] = 48 + value
    return at + n


@kernel
def _fraction(micro: int, out: np.ndarray, at: int) -> int:
    """The point and six decimals of ``micro`` (0-999999) millionths at ``at`` (stored
    as one 8-byte word: what follows overwrites its last byte); return the end."""
    high = micro // 10000
    rest = micro - 10000 * high
    middle = rest // 100
    _store8(out, at, 46 | (_PAIR_WORDS[high] << 8) | (_PAIR_WORDS[middle] << 24)
            | (_PAIR_WORDS[rest - 100 * middle] << 40))
    return at + 7


@kernel
def render(values: np.ndarray, bits: np.ndarray, kinds: np.ndarray, names: np.ndarray,
           name_lengths: np.ndarray, hard_at: np.ndarray, hard_text: np.ndarray,
           hard_start: np.ndarray, last: np.ndarray, out: np.ndarray) -> int:
    """Write the CSV body (no header) into ``out``: one line per sample, cells separated
    by commas; return its length, or ``-1 - index`` at the first hard cell (flat
    row-major ``index``) that is not in ``hard_at``.

    ``values`` has one row per column, ``bits`` is the same memory as int64; hard cell
    ``h`` (at flat index ``hard_at[h]``) is ``hard_text[hard_start[h]:hard_start[h + 1]]``.
    ``last`` (2 x columns, scratch) holds where each column's cell of the row before
    starts and how long it is: a cell whose bits equal the one above it (most of a
    trial's command and event columns, a constant truth column) copies its text.
    ``out`` holds at least ``body_bytes`` bytes.
    """
    columns, rows = values.shape
    at = 0
    h = 0
    next_hard = hard_at[0] if hard_at.size else -1
    flat = 0
    for i in range(rows):
        for c in range(columns):
            start = at
            if flat == next_hard:
                for j in range(hard_start[h], hard_start[h + 1]):
                    out[at] = hard_text[j]
                    at += 1
                h += 1
                next_hard = hard_at[h] if h < hard_at.size else -1
            elif i > 0 and bits[c, i] == bits[c, i - 1] and last[1, c] <= _COPY_BYTES:
                _copy_cell(out, at, last[0, c])
                at += last[1, c]
            else:
                x = values[c, i]
                kind = kinds[c]
                if math.isnan(x):
                    pass
                elif kind == NAME:
                    code = int(x)
                    for j in range(name_lengths[code]):
                        out[at + j] = names[code, j]
                    at += name_lengths[code]
                elif _is_hard(x, kind):
                    return -1 - flat
                elif kind == INTEGER:
                    whole = int(x)  # truncates toward zero, as numpy's astype(int64)
                    if whole < 0:
                        out[at] = 45  # "-"
                        at += 1
                        whole = -whole
                    at = _digits(whole, out, at)
                else:
                    out[at] = 45  # "-", kept only for a negative number (no branch)
                    at += math.copysign(1.0, x) < 0.0
                    micro = _millionths(abs(x))
                    whole = micro // 1000000
                    at = _fraction(micro - 1000000 * whole, out, _digits(whole, out, at))
            last[0, c] = start
            last[1, c] = at - start
            out[at] = 44  # ","
            at += 1
            flat += 1
        out[at - 1] = 10  # the line's last comma becomes its newline
    return at


def body_bytes(rows: int, kinds: np.ndarray, names: list[str]) -> int:
    """Most bytes ``render`` writes for ``rows`` rows of ``kinds`` without hard cells."""
    longest = max(map(len, names))
    cells = sum(longest + 1 if kind == NAME else _CELL_BYTES + 1 for kind in kinds)
    return rows * cells + _COPY_BYTES


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


class CsvRenderer:
    """Renders blocks of rows of fixed column kinds into a reused buffer (so a stream of
    blocks does not fault in fresh pages for every one)."""

    def __init__(self, kinds: np.ndarray, names: list[str]) -> None:
        self.kinds = np.ascontiguousarray(kinds, dtype=np.int64)
        self.names = names
        self._table, self._lengths = name_table(names)
        self._out = np.empty(0, dtype=np.uint8)
        self._no_hard = (np.zeros(0, np.int64), np.zeros(0, np.uint8), np.zeros(1, np.int64))
        self._last = np.zeros((2, len(self.kinds)), dtype=np.int64)

    def rows(self, values: np.ndarray) -> np.ndarray:
        """The text of ``values`` (one row per column), as a view of the buffer: valid
        until the next call (``os.write`` takes it as it is)."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        bits = values.view(np.int64)
        need = body_bytes(values.shape[1], self.kinds, self.names)
        if self._out.size < need:
            self._out = np.empty(need, dtype=np.uint8)
        hard = self._no_hard
        end = render(values, bits, self.kinds, self._table, self._lengths, *hard,
                     self._last, self._out)
        if end < 0:  # rare: infinities or huge numbers, formatted by Python
            hard = self._hard(values)
            if self._out.size < need + hard[1].size:
                self._out = np.empty(need + hard[1].size, dtype=np.uint8)
            end = render(values, bits, self.kinds, self._table, self._lengths, *hard,
                     self._last, self._out)
        return self._out[:end]

    def _hard(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hard_at = hard_cells(values, self.kinds)
        columns = values.shape[0]
        texts = [
            python_text(values[index % columns, index // columns],
                        int(self.kinds[index % columns])).encode("ascii")
            for index in hard_at.tolist()
        ]
        hard_start = np.zeros(len(texts) + 1, dtype=np.int64)
        hard_start[1:] = np.cumsum([len(t) for t in texts])
        # Writable, as the empty one of a block without hard cells: numba types a
        # read-only array (``frombuffer`` of bytes) apart, and compiled a second
        # ``render`` (about 0.6 s, some 60 MB of LLVM's code mapped) at the first hard
        # cell of a trial, in its log writer, while the loop ran.
        return hard_at, np.frombuffer(bytearray(b"".join(texts)), dtype=np.uint8), hard_start


def csv_body(values: np.ndarray, kinds: np.ndarray, names: list[str]) -> bytes:
    """The rows of a CSV file for ``values`` (one row per column) of the given kinds."""
    return CsvRenderer(kinds, names).rows(values).tobytes()
