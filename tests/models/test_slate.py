"""Slate building: MMR and the category cap on hand-computed cases, filters, exploration, fresh items."""

from __future__ import annotations

import numpy as np
import pytest

from models.bandit import make_policy
from models.fresh_items import FreshItems
from models.slate import ScoredPairs, SlateBuilder, SlateSettings

SOURCES = ("interest", "trending")
# rows 0 and 1 nearly identical, row 2 orthogonal to row 0, row 3 between them.
EMB = np.array([[1.0, 0.0], [0.99, np.sqrt(1 - 0.99**2)], [0.0, 1.0], [0.6, 0.8]], np.float32)
CATS = np.array([0, 0, 1, -1])


def _pairs(users, rows, scores, sources) -> ScoredPairs:
    return ScoredPairs(np.array(users), np.array(rows), np.array(scores, np.float32), np.array(sources))


def _rows(slate) -> list[int]:
    return [x.row for x in slate]


def _plain(**kw) -> SlateBuilder:
    settings = {"k": 3, "explore_slots": 0, "fresh_slots": 0, "category_cap": 0}
    settings.update(kw)
    return SlateBuilder(SlateSettings(**settings), SOURCES)


ONE_USER = _pairs([0, 0, 0, 0], [0, 1, 2, 3], [1.0, 0.9, 0.5, 0.0], [0, 0, 1, 1])


def test_mmr_on_a_hand_computed_case() -> None:
    # relevance (min-max) = [1, .9, .5, 0]; lambda .5:
    # 1st: row 0 (.5). 2nd: row1 .45-.5*.99=-.045, row2 .25-0=.25, row3 0-.5*.6=-.3 -> row 2.
    # 3rd: row1 .45-.5*max(.99, .141)=-.045, row3 0-.5*max(.6, .8)=-.4 -> row 1.
    assert _rows(_plain(mmr_lambda=0.5).build(ONE_USER, 1, EMB, CATS)[0]) == [0, 2, 1]
    # lambda 1 is plain relevance order
    assert _rows(_plain(mmr_lambda=1.0).build(ONE_USER, 1, EMB, CATS)[0]) == [0, 1, 2]
    # lambda .9: row1 .81-.1*.99=.711 beats row2 .45: a near-duplicate is kept when relevance dominates
    assert _rows(_plain(mmr_lambda=0.9).build(ONE_USER, 1, EMB, CATS)[0]) == [0, 1, 2]


def test_category_cap() -> None:
    # cap 1: rows 0 and 1 share category 0, so row 1 waits for nothing: it is skipped; row 3 has no category.
    out = _plain(mmr_lambda=1.0, category_cap=1, k=4).build(ONE_USER, 1, EMB, CATS)[0]
    assert _rows(out) == [0, 2, 3]


def test_bought_items_are_never_shown_and_users_are_independent() -> None:
    pairs = _pairs([0, 0, 0, 1, 1], [0, 1, 2, 0, 3], [3, 2, 1, 1, 2], [0, 0, 1, 0, 1])
    out = _plain(mmr_lambda=1.0).build(pairs, 2, EMB, CATS, bought=(np.array([0, 1]), np.array([0, 3])))
    assert _rows(out[0]) == [1, 2] and _rows(out[1]) == [0]
    assert all(x.propensity == 1.0 for s in out for x in s)


def test_frequency_capping_down_weights_items_shown_without_a_click() -> None:
    pairs = _pairs([0, 0, 0], [0, 2, 3], [1.0, 0.8, 0.0], [0, 0, 0])
    b = _plain(mmr_lambda=1.0, freq_free=2, freq_decay=0.5)
    assert _rows(b.build(pairs, 1, EMB, CATS)[0]) == [0, 2, 3]
    # row 0 shown 4 times without a click: relevance 1 * .5**2 = .25 < row 2's .8
    shown = (np.array([0]), np.array([0]), np.array([4]))
    assert _rows(b.build(pairs, 1, EMB, CATS, shown=shown)[0]) == [2, 0, 3]
    # within the free impressions nothing changes
    shown = (np.array([0]), np.array([0]), np.array([2]))
    assert _rows(b.build(pairs, 1, EMB, CATS, shown=shown)[0]) == [0, 2, 3]


def test_exploration_slot_records_source_and_policy_propensity() -> None:
    # k 2: MMR takes row 0; both sources still have candidates for the exploration slot
    b = SlateBuilder(SlateSettings(k=2, mmr_lambda=1.0, explore_slots=1, fresh_slots=0, category_cap=0,
                                   explore_positions=(1,)), SOURCES)
    policy = make_policy("epsilon_greedy", seed=0, epsilon=0.5)
    policy.update("trending", 1)
    expected = dict(zip(["interest", "trending"], policy.propensities(["interest", "trending"]).tolist(), strict=True))
    slate = b.build(ONE_USER, 1, EMB, CATS, policies=[policy])[0]
    explored = slate[1]
    assert explored.source in SOURCES and explored.propensity == pytest.approx(expected[explored.source])
    assert explored.row == {"interest": 1, "trending": 2}[explored.source]  # the source's best remaining item
    assert slate[0].row == 0 and slate[0].propensity == 1.0


def test_a_new_item_is_shown_within_a_bounded_number_of_refreshes() -> None:
    """One fresh slot per refresh: the new item waits only behind the fresh items ahead of it."""
    fresh = FreshItems(informed_after=3)
    row_of = {f"old-{i}": i for i in range(3)}
    for i in range(3):
        fresh.add(f"old-{i}", ts=float(i))
    b = SlateBuilder(SlateSettings(k=3, explore_slots=0, fresh_slots=1, category_cap=0), SOURCES)
    emb = np.eye(8, dtype=np.float32)
    cats = np.full(8, -1)
    pairs = _pairs([0, 0], [6, 7], [1.0, 0.5], [0, 1])
    shown_at: int | None = None
    for refresh in range(20):
        if refresh == 4:  # a new item arrives after the old ones had some impressions
            fresh.add("new", ts=10.0)
            row_of["new"] = 5
        slate = b.build(pairs, 1, emb, cats, fresh=fresh, row_of=row_of)[0]
        fresh_items = [x for x in slate if x.source == "fresh"]
        assert len(fresh_items) <= 1
        for x in fresh_items:
            item = next(k for k, r in row_of.items() if r == x.row)
            fresh.learn_shown(item)
            fresh.learn_one(item, 0)
            if item == "new" and shown_at is None:
                shown_at = refresh
    # 4 refreshes gave old-0..old-2 1 or 2 impressions each; "new" has 0, so it is first in line.
    assert shown_at == 4
    assert fresh.impressions("new") == 3 and "new" not in fresh.fresh()  # informed after 3, then left the pool


def test_bound_with_a_queue_of_new_items() -> None:
    fresh = FreshItems(informed_after=1)
    for i in range(10):
        fresh.add(f"n{i}", ts=float(i))
    order = []
    for _ in range(10):
        (item, p), = fresh.pick(1)
        assert p == 1.0
        order.append(item)
        fresh.learn_shown(item)
    assert order == [f"n{i}" for i in range(10)]  # the i-th new item is shown at refresh i: bound = queue + 1


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="mmr_lambda"):
        SlateSettings(mmr_lambda=1.5)


def test_ties_break_by_the_tiebreak_then_the_row() -> None:
    pairs = _pairs([0, 0, 0], [0, 2, 3], [0.5, 0.5, 0.5], [0, 0, 0])
    builder = _plain(mmr_lambda=1.0)
    assert _rows(builder.build(pairs, 1, EMB, CATS)[0]) == [0, 2, 3]
    assert _rows(builder.build(pairs, 1, EMB, CATS, tiebreak=np.array([0.0, 1.0, 2.0]))[0]) == [3, 2, 0]


def test_reserved_slots_nothing_fills_go_back_to_mmr() -> None:
    builder = SlateBuilder(SlateSettings(k=3, explore_slots=1, fresh_slots=1, category_cap=0, mmr_lambda=1.0), SOURCES)
    empty = FreshItems()
    slate = builder.build(ONE_USER, 1, EMB, CATS, fresh=empty, row_of={})[0]
    assert _rows(slate) == [0, 1, 2] and all(x.propensity == 1.0 for x in slate)


def test_fresh_items_are_judged_in_event_time_and_age_out() -> None:
    f = FreshItems(informed_after=5, max_age_s=100.0)
    f.add("old", ts=0.0)
    f.add("new", ts=150.0)
    assert f.fresh() == ["old", "new"]
    assert f.fresh(now=50.0) == ["old"]  # "new" had not arrived yet
    assert f.fresh(now=160.0) == ["new"]  # "old" is older than max_age_s
    assert f.pick(1, now=160.0) == [("new", 1.0)]
    f.learn_shown("new", 5)
    assert f.fresh(now=160.0) == []
    assert FreshItems.from_state(f.state_dict()).state_dict() == f.state_dict()
    with pytest.raises(ValueError, match="max_age_s"):
        FreshItems(max_age_s=0.0)
