"""Item activity statistics and the ranker's feature assembly."""

from __future__ import annotations

import math

import numpy as np

from models.candidates import SOURCES, Candidates, UserContext
from models.item_activity import ItemActivity
from models.item_index import ItemIndex
from models.ranker_features import DENSE_FEATURES, N_DENSE, FeatureAssembler
from models.ranking import ScoringContext
from models.trending import Trending

COL = {name: i for i, name in enumerate(DENSE_FEATURES)}


def test_item_activity_keeps_trending_and_adds_counts_recency_engagement() -> None:
    a, t = ItemActivity(half_life=60.0, window_half_life=3600.0), Trending(half_life=60.0)
    for item, w, ts in [("a", 1.0, 0.0), ("b", 8.0, 10.0), ("a", 2.0, 20.0), ("c", 1.0, 30.0)]:
        a.learn_one(item, w, ts)
        t.learn_one(item, w, ts)
    assert a.top(3) == t.top(3)  # trending behaves exactly as before
    count, last, rate = a.stats(a.row_map(["a", "b", "zzz"]))
    assert count.tolist() == [2.0, 1.0, 0.0]
    assert last[:2].tolist() == [20.0, 10.0] and math.isnan(last[2])
    assert rate[1] > rate[0] > rate[2] * 0.99  # b: all engaged; a: half; unseen: the prior
    assert rate[2] == a.prior_rate
    a.forget("b")
    assert a.count("b") == 0.0 and "b" not in dict(a.top(3))


def _index() -> ItemIndex:
    idx = ItemIndex(dim=4)
    for i, (cat, price) in enumerate([("shoes", 20.0), ("shoes", None), ("books", 5.0), ("", None)]):
        v = np.zeros(4, np.float32)
        v[i] = 1.0
        idx.upsert(f"i{i}", v, category=cat, price=price)
    return idx


def _cands(user: list[int], row: list[int], source: list[int]) -> Candidates:
    n = len(user)
    f = np.linspace(0.1, 0.9, n).astype(np.float32)
    return Candidates(np.array(user), np.array(row), np.array(source), f, f, f, f * 0, f * 0 + 0.5, f * 0,
                      f, f[::-1].copy())


def test_features_of_each_pair_come_from_its_own_user_and_item() -> None:
    idx = _index()
    act = ItemActivity(half_life=3600.0)
    for _ in range(3):
        act.learn_one("i0", 2.0, ts=1000.0)
    act.learn_one("i2", 1.0, ts=4600.0)
    users = [UserContext("u0", long=np.array([1, 0, 0, 0], np.float32), recent=("i1", "i0")),
             UserContext("u1", query=np.array([0, 0, 1, 0], np.float32), recent=("i2",))]
    c = _cands([0, 0, 1, 1], [0, 2, 0, 3], [1, 2, 3, 0])
    ctx = ScoringContext(users, np.array([8200.0, 4600.0]), idx, act)
    x = FeatureAssembler()(c, ctx)
    assert x.dense.shape == (4, N_DENSE) and x.user_vectors.shape == (2, 3, 4)
    assert x.user_vectors[0, 0, 0] == 1.0 and not x.user_vectors[0, 2].any() and x.user_vectors[1, 2, 2] == 1.0
    d = x.dense
    np.testing.assert_allclose(d[:, COL["log_popularity"]], np.log1p([3, 1, 3, 0]), rtol=1e-6)
    # recency is per pair's own "now": u0 at 8200 s sees i0 two hours old, u1 at 4600 s one hour.
    np.testing.assert_allclose(d[[0, 2], COL["recency"]], np.log1p([2.0, 1.0]), rtol=1e-6)
    assert d[1, COL["recency"]] == np.float32(np.log1p(1.0))  # i2 touched at 4600, u0 is at 8200
    assert d[3, COL["recency"]] == np.float32(np.log1p(24 * 365))  # never seen
    np.testing.assert_allclose(d[:, COL["log_price"]], np.log1p([20, 5, 20, 0]), rtol=1e-6)
    assert d[:, COL["has_price"]].tolist() == [1, 1, 1, 0]
    # u0's session is (i1 shoes, i0 shoes): i0 matches fully, i2 (books) not; u1's is (i2 books).
    assert d[:, COL["category_match"]].tolist() == [1.0, 0.0, 0.0, 0.0]
    src = d[:, [COL[f"source_{s}"] for s in SOURCES]]
    assert src.argmax(axis=1).tolist() == [1, 2, 3, 0] and src.sum(axis=1).tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(d[:, COL["covisit"]], c.covisit)
    np.testing.assert_array_equal(d[:, COL["trending"]], c.trending)
    np.testing.assert_array_equal(d[:, COL["conf_short"]], c.conf_short)


def test_row_map_follows_new_items_on_either_side() -> None:
    idx = _index()
    act = ItemActivity()
    asm = FeatureAssembler()
    users = [UserContext("u")]
    c = _cands([0], [0], [2])
    first = asm(c, ScoringContext(users, np.array([10.0]), idx, act))
    assert first.dense[0, COL["log_popularity"]] == 0.0
    act.learn_one("i0", 1.0, ts=5.0)  # the item gains statistics after the map was built
    again = asm(c, ScoringContext(users, np.array([10.0]), idx, act))
    assert again.dense[0, COL["log_popularity"]] == np.float32(np.log1p(1.0))
