from __future__ import annotations

import numpy as np

from models.candidates import SOURCES, UserContext, generate_candidates
from models.covisitation import CoVisitation
from models.interest import InterestLearner, UserState
from models.item_index import ItemIndex
from models.recommender import Recommender
from models.trending import Trending

DIM = 32


def _catalog(seed: int = 0) -> tuple[ItemIndex, dict[str, np.ndarray]]:
    """4 categories, 25 items each, items of a category clustered around a centre."""
    rng = np.random.default_rng(seed)
    centres = {c: rng.normal(size=DIM) for c in "ABCD"}
    idx = ItemIndex(dim=DIM)
    for c, centre in centres.items():
        for i in range(25):
            v = (centre + 0.4 * rng.normal(size=DIM)).astype(np.float32)
            idx.upsert(f"{c}{i:02d}", v / np.linalg.norm(v), category=c)
    return idx, centres


def _recommender(idx: ItemIndex, **kw: object) -> Recommender:
    return Recommender(idx, CoVisitation(), Trending(), InterestLearner(), top_k=10, **kw)  # type: ignore[arg-type]


def test_single_category_user_gets_that_category() -> None:
    idx, _ = _catalog()
    rec = _recommender(idx)
    s = UserState()
    for i in range(8):
        item = f"B{i:02d}"
        s = rec.learner.learn_interaction(s, item, idx.vector(item), "click", ts=100.0 + i)
    (items,) = rec.recommend([("u", s, 110.0)])
    assert len(items) == 10
    assert sum(idx.category(x.item_id) == "B" for x in items) >= 9
    assert not {x.item_id for x in items} & set(s.recent[-5:])  # the 5 latest items are left out
    assert all(x.source in SOURCES for x in items)
    assert [x.score for x in items] == sorted((x.score for x in items), reverse=True)


def test_bought_items_never_come_back_even_when_recent_allowed() -> None:
    idx, _ = _catalog()
    rec = _recommender(idx, exclude_recent=0)
    s = UserState()
    for i in range(5):
        item = f"C{i:02d}"
        s = rec.learner.learn_interaction(s, item, idx.vector(item), "purchase", ts=float(i))
    (items,) = rec.recommend([("u", s, 5.0)])
    assert not {x.item_id for x in items} & set(s.bought)


def test_search_pulls_matching_items_and_is_labelled() -> None:
    idx, centres = _catalog()
    rec = _recommender(idx)
    s = UserState()
    for i in range(5):
        item = f"A{i:02d}"
        s = rec.learner.learn_interaction(s, item, idx.vector(item), "view", ts=float(i))
    q = centres["D"] / np.linalg.norm(centres["D"])
    s = rec.learner.learn_query(s, q.astype(np.float32), ts=6.0)
    (items,) = rec.recommend([("u", s, 6.0)])
    top = items[:5]
    assert all(idx.category(x.item_id) == "D" for x in top)
    assert top[0].source == "search"


def test_new_user_gets_trending_and_batch_is_independent_of_order() -> None:
    idx, _ = _catalog()
    rec = _recommender(idx)
    for i, item in enumerate(["A01", "C03", "C03", "D07"]):
        rec.trending.learn_one(item, 1.0, ts=float(i))
    s = rec.learner.learn_interaction(UserState(), "B01", idx.vector("B01"), "click", ts=1.0)
    a = rec.recommend([("new", UserState(), 2.0), ("old", s, 2.0)])
    b = rec.recommend([("old", s, 2.0), ("new", UserState(), 2.0)])
    assert a[0] == b[1] and a[1] == b[0]
    assert [x.item_id for x in a[0]][:3] == ["C03", "D07", "A01"]  # more recent counts more
    assert all(x.source == "trending" for x in a[0])


def test_covisitation_candidates_carry_their_feature() -> None:
    idx, _ = _catalog()
    cv = CoVisitation()
    cv.learn_many([("A00", "D05", 3.0)])
    users = [UserContext("u", recent=("A00",))]
    c = generate_candidates(users, idx, cv, Trending(), per_source=5)
    pos = np.flatnonzero(c.row == idx.row("D05"))
    assert pos.size == 1 and c.covisit[pos[0]] == 1.0 and SOURCES[c.source[pos[0]]] == "covisit"


def test_covisitation_neighbours_lead_over_trending_and_interest_alone() -> None:
    idx, _ = _catalog()
    rec = _recommender(idx)
    rec.covisitation.learn_many([("A00", "D05", 3.0), ("A00", "C09", 1.0)])
    for i in range(50):
        rec.trending.learn_one("B03", 1.0, ts=float(i))
    s = rec.learner.learn_interaction(UserState(), "A00", idx.vector("A00"), "click", ts=50.0)
    (items,) = rec.recommend([("u", s, 50.0)])
    ids = [x.item_id for x in items]
    assert ids[0] == "D05" and items[0].source == "covisit"
    assert "B03" not in ids  # merely trending: every item with better evidence comes first
    assert sum(idx.category(i) == "A" for i in ids) >= 7  # the rest follows the user's interest


def test_short_interest_orders_equally_covisited_items() -> None:
    idx, _ = _catalog()
    rec = _recommender(idx)
    rec.covisitation.learn_many([("A00", "D05", 1.0), ("A00", "A07", 1.0)])
    s = rec.learner.learn_interaction(UserState(), "A00", idx.vector("A00"), "click", ts=1.0)
    (items,) = rec.recommend([("u", s, 1.0)])
    assert [x.item_id for x in items[:2]] == ["A07", "D05"]
