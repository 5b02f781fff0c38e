"""Request-time re-ranking and filters on a small clustered catalog (pure numpy, no servers)."""

from __future__ import annotations

import numpy as np
import pytest

from models.candidates import generate_candidates
from models.covisitation import CoVisitation
from models.filters import FilterError, ItemFilter
from models.interest import InterestLearner, UserState
from models.item_activity import ItemActivity
from models.item_index import ItemIndex
from models.recommender import Recommender
from models.rerank import RankRequest, pair_candidates, rerank

DIM = 16


def _recommender(seed: int = 0) -> Recommender:
    rng = np.random.default_rng(seed)
    idx = ItemIndex(dim=DIM)
    for c in "ABCD":
        centre = rng.normal(size=DIM)
        for i in range(10):
            v = (centre + 0.3 * rng.normal(size=DIM)).astype(np.float32)
            idx.upsert(f"{c}{i}", v, category=c, price=float(10 * i), in_stock=i % 3 != 0)
    return Recommender(idx, CoVisitation(), ItemActivity(), InterestLearner(), top_k=10)


def _fan_of(rec: Recommender, cat: str) -> UserState:
    s = UserState()
    for i in range(4):
        item = f"{cat}{i}"
        s = rec.learner.learn_interaction(s, item, rec.index.vector(item), "click", ts=100.0 + i)
    return s


def test_items_of_the_users_interest_come_first_with_reasons_and_sorted_scores() -> None:
    rec = _recommender()
    items = [f"{c}{i}" for c in "ABCD" for i in range(5, 10)]
    (res,) = rerank(rec, [RankRequest("u", items, _fan_of(rec, "C"), now=110.0)])
    assert res.personalised and not res.removed
    assert sorted(x.item_id for x in res.items) == sorted(items)  # the same items, reordered
    assert {x.item_id[0] for x in res.items[:5]} == {"C"}
    assert [x.score for x in res.items] == sorted((x.score for x in res.items), reverse=True)
    assert res.items[0].source == "interest" and res.items[0].reason


def test_scores_equal_the_refresh_paths_for_the_same_pairs() -> None:
    rec = _recommender()
    state = _fan_of(rec, "B")
    ctx = rec.context("u", state, 110.0)
    full = generate_candidates([ctx], rec.index, rec.covisitation, rec.trending, per_source=100, exclude_recent=0)
    trend = full.trending  # no trending items: all zero
    pairs = pair_candidates(rec, [ctx], full.user, full.row, np.zeros(rec.index.size, np.float32))
    np.testing.assert_allclose(pairs.sim_short, full.sim_short, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pairs.sim_long, full.sim_long, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pairs.trending, trend)


def test_request_query_reorders_towards_matching_items() -> None:
    rec = _recommender()
    items = [f"{c}{i}" for c in "AD" for i in range(10)]
    query = rec.index.vector("D7")
    (plain, searched) = rerank(rec, [
        RankRequest("u", items, _fan_of(rec, "A"), now=110.0),
        RankRequest("u", items, _fan_of(rec, "A"), query=query, now=110.0),
    ])
    assert plain.items[0].item_id.startswith("A")
    assert searched.items[0].item_id == "D7" and searched.items[0].source == "search"


def test_unknown_user_gets_popularity_order_and_unknown_items_are_reported() -> None:
    rec = _recommender()
    for n, item in enumerate(["B3", "B3", "B3", "A1", "A1", "C2"]):
        rec.trending.learn_one(item, 1.0, ts=100.0 + n)
    (res,) = rerank(rec, [RankRequest("new", ["C2", "nope", "A1", "D5", "B3"], None, now=110.0)])
    assert not res.personalised
    assert [x.item_id for x in res.items] == ["B3", "A1", "C2", "D5"]
    assert {x.source for x in res.items} == {"popularity"}
    assert res.removed == [("nope", "not_in_catalog")]


def test_filters_remove_items_with_the_rule_that_removed_them() -> None:
    rec = _recommender()
    f = ItemFilter.from_json({"category": ["A", "B"], "min_price": 20, "max_price": 60, "in_stock": True,
                              "exclude": ["A4"]})
    items = ["A2", "A3", "A4", "A8", "B5", "C4"]
    (res,) = rerank(rec, [RankRequest("u", items, _fan_of(rec, "A"), filter=f, now=110.0)])
    assert sorted(x.item_id for x in res.items) == ["A2", "B5"]
    assert dict(res.removed) == {"A3": "out_of_stock", "A4": "excluded", "A8": "price", "C4": "category"}


def test_filter_mask_is_vectorised_over_the_whole_index_and_merges() -> None:
    rec = _recommender()
    surface = ItemFilter(in_stock=True)
    request = ItemFilter.from_json({"category": "D", "max_price": 50})
    keep = surface.merged(request).mask(rec.index)
    kept = {rec.index.item_id(r) for r in np.flatnonzero(keep)}
    assert kept == {"D1", "D2", "D4", "D5"}
    rec.index.delete("D1")
    assert rec.index.item_id(int(np.flatnonzero(surface.merged(request).mask(rec.index))[0])) == "D2"


@pytest.mark.parametrize("raw, message", [
    ([1], "must be a JSON object"),
    ({"colour": "red"}, "unknown filter(s): colour"),
    ({"min_price": -1}, "must be >= 0"),
    ({"max_price": "cheap"}, "must be a finite number"),
    ({"in_stock": "yes"}, "must be true or false"),
    ({"category": [""]}, "filters.category[0]"),
    ({"exclude": 5}, "must be a string or a list"),
])
def test_bad_filters_say_what_is_wrong(raw: object, message: str) -> None:
    with pytest.raises(FilterError, match=None) as err:
        ItemFilter.from_json(raw)
    assert message in str(err.value)


def test_trend_cache_reuses_the_array_until_it_ages_or_the_index_changes() -> None:
    from models.rerank import TrendCache

    rec = _recommender()
    rec.trending.learn_one("A1", 1.0, ts=100.0)
    cache = TrendCache(max_age_s=1.0)
    first = cache.get(rec, 100, now=10.0)
    assert first[rec.index.row("A1")] == 1.0
    rec.trending.learn_one("B2", 5.0, ts=101.0)
    assert cache.get(rec, 100, now=10.5) is first  # within the age: the same array
    aged = cache.get(rec, 100, now=11.5)
    assert aged[rec.index.row("B2")] == 1.0 and aged[rec.index.row("A1")] < 1.0
    rec.index.upsert("A9", rec.index.vector("A1"), category="A")
    assert cache.get(rec, 100, now=11.6) is not aged  # the catalog changed
