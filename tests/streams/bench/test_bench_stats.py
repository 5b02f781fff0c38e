"""Percentiles, rates and ratios, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from streams.bench.stats import (
    latency_percentiles,
    per_second,
    percentile,
    ratio,
    ratios,
)


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]  # sorted 1..5; position (n - 1) * q / 100
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0  # position 2
    assert percentile(values, 95) == pytest.approx(4.8)  # position 3.8: 4 + 0.8 * (5 - 4)
    assert percentile(values, 99) == pytest.approx(4.96)  # position 3.96
    assert percentile(values, 100) == 5.0
    assert percentile([7.0], 99) == 7.0


def test_percentile_matches_numpy_default() -> None:
    rng = np.random.default_rng(3)
    values = list(rng.exponential(0.2, size=997))
    for q in (1, 50, 95, 99, 99.9):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], 101)


def test_latency_percentiles_are_in_milliseconds() -> None:
    # 0.1 s .. 1.0 s: p50 at position 4.5 -> 0.55 s; p95 at 8.55 -> 0.955 s; p99 at 8.91 -> 0.991 s
    seconds = [i / 10 for i in range(1, 11)]
    assert latency_percentiles(seconds) == {"p50": 550.0, "p95": 955.0, "p99": 991.0}
    assert latency_percentiles([]) == {}


def test_rates_and_ratios() -> None:
    assert per_second(3000, 2.0) == 1500.0
    assert per_second(3000, 0.0) is None
    assert ratio(150.0, 50.0) == 3.0
    assert ratio(0.0, 50.0) == 0.0
    assert ratio(1.0, 0.0) is None and ratio(None, 1.0) is None and ratio(1.0, None) is None
    pipeline = {"rate": 400.0, "lat": {"p99": 250.0}, "flag": True, "name": "x", "zero": 1.0}
    echo = {"rate": 1600.0, "lat": {"p99": 20.0}, "flag": True, "name": "y", "zero": 0}
    assert ratios(pipeline, echo, ["rate", "lat.p99", "flag", "name", "zero", "missing", "lat.p50"]) == {
        "rate": 0.25,
        "lat.p99": 12.5,
        "flag": None,  # booleans are not figures
        "name": None,
        "zero": None,
        "missing": None,
        "lat.p50": None,
    }
