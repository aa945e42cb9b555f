"""``controller.quantiles`` gives numpy's median and percentiles to the bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.quantiles import SORTED_UP_TO, median_and_percentiles

PERCENTS = (5.0, 90.0, 95.0, 99.0, 99.9, 0.0, 50.0, 100.0, 33.3)


def numpy_figures(values: np.ndarray) -> list[float]:
    return [float(np.median(values)), *(float(p) for p in np.percentile(values, list(PERCENTS)))]


def test_one_percentile_as_numpy_given_one():
    rng = np.random.default_rng(5)
    for n in range(1, 30):
        values = np.round(rng.normal(0.0, 1.0, n), 1)  # zeros of both signs, often
        expected = [float(np.median(values)), float(np.percentile(values, 95))]
        assert same(median_and_percentiles(values, 95), expected), values


@pytest.mark.parametrize("values", [[2.0, -1.0, 0.5], [-0.0, 1.0], [1.0, np.nan], [7.0] * 5000])
def test_the_median_alone_given_no_percentile(values):
    values = np.array(values)
    assert same(median_and_percentiles(values, ()), [float(np.median(values))]), values


def same(a: list[float], b: list[float]) -> bool:
    """Equal bit for bit (the sign of a zero too), NaN equal to NaN."""
    return all(
        (math.isnan(x) and math.isnan(y)) or (x == y and math.copysign(1, x) == math.copysign(1, y))
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("n", [*range(1, 40), 99, 100, 101, 257, 1000, SORTED_UP_TO + 1])
def test_as_numpy_on_random_arrays(n):
    rng = np.random.default_rng(n)
    for scale in (1e-3, 1.0, 37.0, 1e6):
        values = rng.normal(0.0, scale, n)
        assert same(median_and_percentiles(values, PERCENTS), numpy_figures(values)), (n, scale)
        ties = np.round(values / scale, 1) * scale  # many equal values
        assert same(median_and_percentiles(ties, PERCENTS), numpy_figures(ties)), (n, scale)


@pytest.mark.parametrize("values", [
    [0.0], [-0.0], [-0.0, -0.0], [0.0, -0.0], [-0.0, 0.0, -0.0], [1.0, np.nan, 2.0],
    [np.inf, 1.0], [-np.inf, np.inf], [1e308, 1e308, -1e308], [5.0] * 7,
])
def test_as_numpy_on_special_values(values):
    values = np.array(values)
    with np.errstate(invalid="ignore", over="ignore"):
        assert same(median_and_percentiles(values, PERCENTS), numpy_figures(values)), values


def test_the_input_is_left_as_it_was():
    values = np.array([3.0, 1.0, 2.0])
    median_and_percentiles(values, PERCENTS)
    assert values.tolist() == [3.0, 1.0, 2.0]
