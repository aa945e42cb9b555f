"""The compiled CSV text is the text Python's ``%`` gives, cell for cell."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.trial.csvtext import FLOAT6, INTEGER, NAME, csv_body, python_text

NAMES = ["unknown", "stance", "pre_swing"]


def expected(values: np.ndarray, kinds: list[int]) -> bytes:
    lines = []
    for i in range(values.shape[1]):
        cells = []
        for c, kind in enumerate(kinds):
            x = values[c, i]
            if np.isnan(x):
                cells.append("")
            elif kind == NAME:
                cells.append(NAMES[int(x)])
            else:
                cells.append(python_text(x, kind))
        lines.append(",".join(cells) + "\n")
    return "".join(lines).encode()


def test_ties_huge_tiny_and_signed_zeros_match_python():
    floats = [0.0078125, -0.0078125, 2.5e-7, 1.5e-6, 0.0000005, -0.0, 0.0, -1e-7, 1e-7,
              123456.9999995, 999999.4999999, 1e6, 3.7e12, -2.2e15, np.inf, -np.inf,
              np.nan, 0.1 + 0.2, 59.999, 1.0000005, 35.0]
    ints = [0.0, 1.0, -1.0, 7.9, -7.9, 2.0**63, np.nan, 1e18, -0.0, 5.0, 3.0, 2.0, 1.0,
            0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 4.0]
    names = [0.0, 1.0, 2.0] * 7
    values = np.array([floats, ints, names])
    kinds = [FLOAT6, INTEGER, NAME]
    assert csv_body(values, np.array(kinds), NAMES) == expected(values, kinds)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1,
                max_size=40))
def test_any_float_matches_python(xs):
    values = np.array([xs])
    assert csv_body(values, np.array([FLOAT6]), NAMES) == expected(values, [FLOAT6])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=40).map(
    lambda ks: [k / 128.0 for k in ks]))
def test_binary_fractions_round_half_even_as_python(xs):
    values = np.array([xs])
    assert csv_body(values, np.array([FLOAT6]), NAMES) == expected(values, [FLOAT6])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**11), st.integers(-4, 4), st.booleans())
def test_numbers_next_to_a_half_millionth_round_as_python(k, ulps, negative):
    """Products ``x * 1e6`` within a few ulps of a half: the kernel decides on the exact
    value, as Python does, not on the rounded product."""
    x = (k + 0.5) / 1e6
    for _ in range(abs(ulps)):
        x = np.nextafter(x, np.inf if ulps > 0 else -np.inf)
    values = np.array([[-x if negative else x]])
    assert csv_body(values, np.array([FLOAT6]), NAMES) == expected(values, [FLOAT6])


def test_a_block_of_hard_cells_after_easy_ones():
    """Hard cells found mid-block are formatted by Python, in place."""
    values = np.array([[0.5, 1.25, np.inf, 2e6, -3.5, 1e300], [1.0, 2.0, 3.0, 2.0**63, 5.0, 6.0]])
    kinds = [FLOAT6, INTEGER]
    assert csv_body(values, np.array(kinds), NAMES) == expected(values, kinds)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**11), st.sampled_from([-1e-3, 1e-3, -0.5, 0.5]), st.integers(-64, 64))
def test_numbers_at_the_edge_of_the_quick_rounding_round_as_python(k, offset, ulps):
    """Products ``x * 1e6`` about ``_TIE_MARGIN`` from a half (where the kernel's quick
    rounding hands over to the exact decision) and next to whole millionths."""
    x = np.float64((k + 0.5 + offset) / 1e6)
    for _ in range(abs(ulps)):
        x = np.nextafter(x, np.inf if ulps > 0 else -np.inf)
    values = np.array([[x, -x]])
    assert csv_body(values, np.array([FLOAT6]), NAMES) == expected(values, [FLOAT6])
