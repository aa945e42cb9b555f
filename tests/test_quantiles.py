"""``controller.quantiles`` gives numpy's median and percentiles to the bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.quantiles import SORTED_UP_TO, SpilledCounts, median_and_percentiles

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


def spilled_figures(values: np.ndarray, blocks: int, folder) -> list[float]:
    """``SpilledCounts``' median and ``PERCENTS`` of int64 ``values`` added in ``blocks``,
    as floats (a non-decreasing map: numpy's figures of the floats must come out)."""
    counts = SpilledCounts(folder)
    parts = np.array_split(values, blocks)
    for k, part in enumerate(parts):
        counts.add(part)
        if k == 0 and part.size:  # figures asked before the last values came
            so_far = counts.median_and_percentiles(PERCENTS, lambda v: v.astype(np.float64))
            assert so_far == numpy_figures(part.astype(np.float64))
    assert counts.size == values.size and counts.max() == values.max()
    figures = counts.median_and_percentiles(PERCENTS, lambda v: v.astype(np.float64))
    counts.close()
    return figures


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 4097, 100_003])
def test_spilled_counts_give_numpys_figures(n, tmp_path):
    # Latencies (ns) of a few tens of us, ties of a few values far apart (buckets
    # wider than a pass keeps), a heavy tail up to 2**62, and int64's whole range with
    # negative values: the ranks' values are found in one pass or several.
    rng = np.random.default_rng(n)
    kinds = {
        "latency": np.rint(rng.gamma(2.0, 3e4, n)).astype(np.int64),
        "ties": rng.integers(0, 5, n) * 10**9 + rng.integers(0, 3, n),
        "tail": np.minimum(rng.pareto(0.5, n) * 1e4, 2.0**62).astype(np.int64),
        "int64": rng.integers(-2**63, 2**63 - 1, n, endpoint=True),
    }
    for kind, values in kinds.items():
        expected = numpy_figures(values.astype(np.float64))
        assert spilled_figures(values, 5, tmp_path) == expected, kind
    assert not list(tmp_path.iterdir())  # the spill files are gone


def test_spilled_counts_hold_a_bounded_memory_of_ten_million_distinct_values(tmp_path):
    # The log writer's lateness and latency counts of a long live trial: 10**7 distinct
    # nanosecond values (2.8 hours at 1 kHz, each value new) held 16 bytes each in
    # exact counts (160 MB); now at most MEMORY_BOUND_BYTES however many come, and the
    # figures the summary prints are still numpy's.
    import tracemalloc

    from controller.deadlines import counted_us, percentiles_us
    from controller.quantiles import MEMORY_BOUND_BYTES

    n, block = 10**7, 2**15
    values = np.random.default_rng(3).permutation(n).astype(np.int64) * 997 + 11
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        counts = SpilledCounts(tmp_path)  # as the log writer keeps each
        for start in range(0, n, block):
            counts.add(values[start : start + block])
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        figures = counted_us(counts)
        seeking = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert held - before < MEMORY_BOUND_BYTES
    assert peak - before < MEMORY_BOUND_BYTES
    assert seeking - before < MEMORY_BOUND_BYTES
    assert figures == percentiles_us(values / 1e9)  # the seconds a trial kept


def test_the_counts_benchmark_reports_memory_disk_and_figures(tmp_path):
    # python -m controller.bench.timing_counts: two counts per sample, 8 bytes each on
    # disk, memory under the bound, and figures once the samples have come.
    from controller.bench.timing_counts import measured
    from controller.quantiles import MEMORY_BOUND_BYTES

    first, second = measured([0.001, 0.002], 1000.0, tmp_path)
    assert (first["samples"], second["samples"]) == (3600, 7200)
    assert second["spilled_bytes"] == 16 * 7200
    assert 0 < second["traced_bytes"] < MEMORY_BOUND_BYTES
    assert 0 < second["latency_median_us"] < second["lateness_p99_us"]
    assert not list(tmp_path.iterdir())
