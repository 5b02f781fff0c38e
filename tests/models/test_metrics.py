"""Hand-computed cases for the single-relevant-item top-K metrics."""

from __future__ import annotations

import math

import pytest

from models.metrics import MetricAccumulator, hit, ndcg, rank_of, reciprocal_rank


def test_rank_of_is_one_based_and_none_when_absent() -> None:
    assert rank_of("a", ["a", "b"]) == 1
    assert rank_of("b", ["a", "b"]) == 2
    assert rank_of("z", ["a", "b"]) is None
    assert rank_of("a", []) is None


def test_per_event_metrics_by_hand() -> None:
    assert (hit(1), hit(10), hit(None)) == (1.0, 1.0, 0.0)
    assert (reciprocal_rank(1), reciprocal_rank(4), reciprocal_rank(None)) == (1.0, 0.25, 0.0)
    assert ndcg(1) == 1.0
    assert ndcg(3) == pytest.approx(0.5)  # 1 / log2(4)
    assert ndcg(2) == pytest.approx(1 / math.log2(3))  # 0.6309...
    assert ndcg(None) == 0.0


def test_accumulator_means_by_hand() -> None:
    acc = MetricAccumulator()
    for rank in (1, 2, None, 4):
        acc.add(rank)
    s = acc.summary()
    assert s["n"] == 4
    assert s["hr"] == pytest.approx(0.75)
    assert s["mrr"] == pytest.approx((1 + 0.5 + 0 + 0.25) / 4, abs=1e-6)
    assert s["ndcg"] == pytest.approx((1 + 1 / math.log2(3) + 0 + 1 / math.log2(5)) / 4, abs=1e-6)


def test_empty_accumulator_and_bad_rank() -> None:
    assert MetricAccumulator().summary() == {"hr": 0.0, "mrr": 0.0, "ndcg": 0.0, "n": 0}
    with pytest.raises(ValueError):
        MetricAccumulator().add(0)
