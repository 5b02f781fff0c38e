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


def _slate_recommender(idx: ItemIndex, **kw: object) -> Recommender:
    from models.slate import SlateSettings

    trending = Trending()
    for i in range(5):  # a second candidate source besides interest
        trending.learn_one(f"D{i:02d}", 5.0, 100.0)
    settings = SlateSettings(**{"k": 10, "mmr_lambda": 0.9, "category_cap": 0, **kw})  # type: ignore[arg-type]
    return Recommender(idx, CoVisitation(), trending, InterestLearner(), top_k=10, slate=settings,
                       per_source=12)


def _taste(rec: Recommender, idx: ItemIndex, cat: str = "B", n: int = 6) -> UserState:
    s = UserState()
    for i in range(n):
        s = rec.learner.learn_interaction(s, f"{cat}{i:02d}", idx.vector(f"{cat}{i:02d}"), "click", ts=100.0 + i)
    return s


def test_slates_carry_sources_and_propensities_and_the_exploration_slot_is_a_policy_choice() -> None:
    from models.slate import FRESH

    idx, _ = _catalog()
    rec = _slate_recommender(idx)
    assert rec.policy_name == "thompson"
    (items,) = rec.recommend([("u", _taste(rec, idx), 110.0)])
    assert len(items) == 10 and len({x.item_id for x in items}) == 10
    assert all(x.source in (*SOURCES, FRESH) and 0.0 < x.propensity <= 1.0 for x in items)
    explored = [x for x in items if x.propensity < 1.0]
    assert len(explored) == 1 and explored[0].source in ("interest", "trending")
    # the same state and trigger give the same slate (a replay publishes the same list)
    assert rec.recommend([("u", _taste(rec, idx), 110.0)]) == [items]


def test_slates_never_show_bought_items_and_cap_items_shown_without_clicks() -> None:
    from dataclasses import replace

    from models.user_bandit import UserBandit

    idx, _ = _catalog()
    rec = _slate_recommender(idx, freq_free=0, freq_decay=0.01)
    s = _taste(rec, idx)
    (before,) = rec.recommend([("u", s, 110.0)])
    top = before[0].item_id
    s_bought = rec.learner.learn_interaction(s, top, idx.vector(top), "purchase", ts=109.0)
    (after,) = rec.recommend([("u", s_bought, 110.0)])
    assert top not in [x.item_id for x in after]
    # shown three times without a click: the item drops out of the deterministic slots
    b = UserBandit.new("thompson", 0, window_s=10.0)
    for n in range(3):
        b.published(f"r{n}", [top], ["interest"], [1.0], ts=float(n))
        b.impression(f"r{n}", [top], ts=float(n))
    b.advance(100.0)
    assert b.shown_counts() == {top: 3}
    (capped,) = rec.recommend([("u", replace(s, bandit=b.to_json()), 110.0)])
    assert top not in [x.item_id for x in capped if x.propensity == 1.0 and x.source != "fresh"][:3]


def test_a_fresh_item_gets_the_fresh_slot_until_informed() -> None:
    from models.fresh_items import FreshItems
    from models.slate import FRESH

    idx, _ = _catalog()
    fresh = FreshItems(informed_after=2, max_age_s=1000.0)
    rec = _slate_recommender(idx)
    rec.fresh = fresh
    fresh.add("C07", ts=105.0)
    s = _taste(rec, idx)
    (items,) = rec.recommend([("u", s, 110.0)])
    assert [(x.item_id, x.propensity) for x in items if x.source == FRESH] == [("C07", 1.0)]
    fresh.learn_shown("C07", 2)
    (items,) = rec.recommend([("u", s, 110.0)])
    assert FRESH not in {x.source for x in items} and len(items) == 10  # the slot went back to MMR


def test_a_new_user_gets_trending_items_an_exploration_slot_and_new_items() -> None:
    from models.fresh_items import FreshItems
    from models.slate import FRESH

    idx, _ = _catalog()
    rec = _slate_recommender(idx)  # trending: D00-D04
    for i in range(5, 15):  # more trending items than the list holds: the exploration slot has a choice
        rec.trending.learn_one(f"D{i:02d}", 1.0, 100.0)
    rec.fresh = FreshItems(informed_after=2, max_age_s=1000.0)
    rec.fresh.add("C07", ts=105.0)
    (items,) = rec.recommend([("new", UserState(), 110.0)])
    by_source = {x.source for x in items}
    assert by_source == {"trending", FRESH}, items  # no history: what trends, plus the new item
    assert [x.item_id for x in items if x.source == FRESH] == ["C07"]
    explored = [x for x in items if x.arms]
    assert len(explored) == 1 and explored[0].arms == ("trending",) and explored[0].source == "trending"
    assert {f"D{i:02d}" for i in range(5)} <= {x.item_id for x in items if x.source == "trending"}


def test_the_category_cap_holds_in_every_slot() -> None:
    idx, _ = _catalog()
    rec = _slate_recommender(idx, category_cap=3)
    (items,) = rec.recommend([("u", _taste(rec, idx), 110.0)])
    cats = [idx.category(x.item_id) for x in items]
    assert max(cats.count(c) for c in set(cats)) == 3


def test_bundles_are_the_strongest_partners_still_in_the_catalog() -> None:
    idx, _ = _catalog()
    rec = _slate_recommender(idx)
    rec.covisitation.learn_many([("A00", "A04", 50.0)])  # browsing next to each other makes no bundle
    rec.together.learn_many([("A00", "A01", 8.0), ("A00", "A02", 1.0), ("A00", "A03", 4.0), ("A00", "A05", 9.0)])
    idx.delete("A05")
    rec.bundle_size = 2
    assert rec.bundles(["A00", "B00", "A00"]) == {"A00": ["A01", "A03"]}


def test_a_contextual_policy_chooses_on_the_users_context_and_learns_on_it(monkeypatch: object) -> None:
    from dataclasses import replace

    from models.bandit import RiverPolicy, user_context
    from models.slate import SlateSettings
    from models.user_bandit import UserBandit

    idx, _ = _catalog()
    trending = Trending()
    for i in range(5):
        trending.learn_one(f"D{i:02d}", 5.0, 100.0)
    rec = Recommender(idx, CoVisitation(), trending, InterestLearner(), top_k=10, per_source=12,
                      slate=SlateSettings(k=10, mmr_lambda=0.9, category_cap=0), bandit_policy="linucb")
    s = _taste(rec, idx)
    _, c_short, c_query = rec.learner.confidences(s, 110.0)
    expected = user_context(s.n_events, c_short, c_query)
    assert rec.bandit_context(s, 110.0) == expected and expected["session"] > 0
    seen: list[object] = []
    pull = RiverPolicy.pull

    def spy(self: RiverPolicy, arms: object, context: object = None) -> object:
        seen.append(context)
        return pull(self, arms, context)  # type: ignore[arg-type]

    monkeypatch.setattr(RiverPolicy, "pull", spy)  # type: ignore[attr-defined]
    (items,) = rec.recommend([("u", s, 110.0)])
    assert seen == [expected]
    clicked = items[0]
    assert clicked.source in UserBandit.arms
    # the published slate keeps the context; a click on one of its items is learned on it
    bandit = rec.user_bandit("u", s)
    bandit.published("r1", [x.item_id for x in items], [x.source for x in items], [x.propensity for x in items],
                     110.0, rec.bandit_context(s, 110.0))
    bandit.impression("r1", [x.item_id for x in items], 111.0)
    bandit.click("r1", clicked.item_id, 112.0)
    learned = replace(s, bandit=bandit.to_json())
    arms = {str(a[0][1]): a for a in rec.user_bandit("u", learned).policy.state_dict()["arms"]}
    ridge = arms[clicked.source][3]
    assert {k for k, _ in ridge["idx"]} == set(expected)  # the regression saw the whole context
