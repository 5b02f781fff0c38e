from __future__ import annotations

import pytest

from models.covisitation import CoVisitation, covisit_pairs
from models.trending import Trending


def test_covisit_pairs_weights_by_distance_and_skips_self() -> None:
    pairs = covisit_pairs(["a", "b", "c", "x"], "x", window=2, decay=1.0)
    assert ("c", "x", 1.0) in pairs and ("x", "b", 0.5) in pairs
    assert all(a != b for a, b, _ in pairs) and len(pairs) == 4
    assert {w for _, _, w in covisit_pairs(["a", "b", "c"], "x", window=3)} == {1.0}  # no decay by default


def test_neighbors_are_pruned_to_the_strongest() -> None:
    cv = CoVisitation(max_neighbors=3)
    for i in range(10):
        cv.learn_one("a", f"n{i}", float(i))
    assert [n for n, _ in cv.neighbors("a", k=3)] == ["n9", "n8", "n7"]
    assert len(cv.neighbors("a", k=100)) <= 6


def test_scores_for_prefers_neighbours_of_recent_items() -> None:
    cv = CoVisitation()
    cv.learn_many([("old", "p", 5.0), ("new", "q", 5.0)])
    scores = cv.scores_for(["old", "new"])
    assert scores["q"] == pytest.approx(1.0) and scores["p"] == pytest.approx(0.5)
    assert cv.scores_for(["unknown"]) == {}


def test_scores_for_keeps_the_strength_of_the_evidence() -> None:
    # x was seen next to a by ten users, y next to b by one: normalising each item's
    # neighbours by its strongest one would rank y first (b is the newer item).
    cv = CoVisitation(expand=0)
    cv.learn_many([("a", "x", 1.0)] * 10 + [("b", "y", 1.0)])
    scores = cv.scores_for(["a", "b"])
    assert list(scores) == ["x", "y"] and scores["y"] == pytest.approx(0.2)


def test_second_hop_reaches_neighbours_of_neighbours_below_the_first_hop() -> None:
    cv = CoVisitation(expand=5, expand_weight=0.3)
    cv.learn_many([("a", "b", 2.0), ("a", "c", 1.0), ("b", "d", 4.0), ("b", "a", 2.0), ("c", "a", 1.0)])
    scores = cv.scores_for(["a"])
    assert list(scores) == ["b", "c", "d"]
    assert scores["d"] == pytest.approx(0.3)  # b, the best first-hop item, holds all of d's evidence
    assert "a" not in scores  # the user's own items never come back through a neighbour
    assert "d" not in CoVisitation(expand=0).scores_for(["a"])
    no_hop = CoVisitation(expand=0)
    no_hop.learn_many([("a", "b", 2.0), ("a", "c", 1.0), ("b", "d", 4.0)])
    assert list(no_hop.scores_for(["a"])) == ["b", "c"]


def test_a_forgotten_item_lends_no_neighbours() -> None:
    cv = CoVisitation()
    cv.learn_many([("a", "b", 1.0), ("b", "c", 1.0)])
    cv.forget("a")
    assert cv.scores_for(["a"]) == {} and cv.neighbors("a") == []
    assert "c" in cv.scores_for(["b"])


def test_negative_weight_takes_back_and_a_pair_left_with_none_is_dropped() -> None:
    cv = CoVisitation(expand=0)
    cv.learn_many([("a", "b", 2.0), ("a", "c", 1.0)])
    cv.learn_one("a", "b", -1.0)
    assert cv.neighbors("a") == [("b", 1.0), ("c", 1.0)]
    cv.learn_one("a", "c", -1.0)
    assert cv.neighbors("a") == [("b", 1.0)] and list(cv.scores_for(["a"])) == ["b"]
    cv.learn_one("a", "z", -1.0)  # nothing held: nothing taken, no row made
    cv.learn_one("y", "a", -1.0)
    assert cv.neighbors("a") == [("b", 1.0)] and cv.neighbors("y") == [] and cv.scores_for(["y"]) == {}


def test_ties_at_the_cut_do_not_depend_on_the_order_pairs_were_learnt_in() -> None:
    pairs = [("a", f"n{i}", 1.0) for i in range(40)] + [("b", f"n{i}", 1.0) for i in range(0, 40, 3)]
    picks = []
    for ordered in (pairs, pairs[::-1], sorted(pairs, key=lambda p: p[1][::-1])):
        cv = CoVisitation(expand=0)
        cv.learn_many(ordered)
        picks.append(cv.scores_for(["a"], k=5))
    assert picks[0] == picks[1] == picks[2] and len(picks[0]) == 5


def test_trending_decays_with_event_time() -> None:
    t = Trending(half_life=60.0)
    t.learn_one("a", 8.0, ts=0.0)
    t.learn_one("b", 3.0, ts=180.0)  # a has decayed to 1 by now
    assert [i for i, _ in t.top(2)] == ["b", "a"]
    assert t.top(2)[1][1] == pytest.approx(1 / 3)


def test_trending_survives_long_gaps_without_overflow() -> None:
    t = Trending(half_life=1.0)
    t.learn_one("a", 1.0, ts=0.0)
    t.learn_one("b", 1.0, ts=10_000.0)
    assert t.top(1)[0][0] == "b"
    assert t.top(5)[0][1] == 1.0


def test_trending_top_matches_a_full_sort_and_forgets() -> None:
    import random

    rng = random.Random(0)
    t = Trending(half_life=50.0)
    for n in range(2000):
        t.learn_one(f"i{rng.randrange(300)}", float(rng.choice([1, 2, 4])), ts=float(n))
    t.forget("i7")
    t.learn_one("fresh", 1.0, ts=2000.0)  # may reuse the forgotten slot
    values = {i: t.score(i) for i in [f"i{n}" for n in range(300)] + ["fresh"] if t.score(i) > 0}
    expected = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:25]
    top = t.top(25)
    assert [i for i, _ in top] == [i for i, _ in expected]
    assert top[0][1] == 1.0 and "i7" not in dict(t.top(400)) and t.score("i7") == 0.0
    assert len(t) == len(values)


def _reference_scores(cv: CoVisitation, recent: list[str], k: int) -> dict[str, float]:
    """The documented algorithm, written plainly with dicts, for one user."""
    own = set(recent)
    first: dict[str, float] = {}
    picked: list[str] = []
    for dist, item in enumerate(reversed(recent[-cv.window :]), start=1):
        if item in picked or not cv.neighbors(item, k=10**6):
            picked.append(item)
            continue
        picked.append(item)
        for other, w in cv.neighbors(item, k=10**6):
            first[other] = first.get(other, 0.0) + w / dist**cv.recency
    first = {i: s for i, s in first.items() if i not in own}
    if not first:
        return {}
    best = max(first.values())
    first = {i: s / best for i, s in first.items()}
    seeds = sorted(first.items(), key=lambda kv: -kv[1])[: cv.expand]
    second: dict[str, float] = {}
    for seed, s in seeds:
        for other, w in cv.neighbors(seed, k=10**6):
            if other not in own:
                second[other] = second.get(other, 0.0) + s * w
    total = dict(first)
    if second:
        best2 = max(second.values())
        for i, s in second.items():
            total[i] = total.get(i, 0.0) + cv.expand_weight * s / best2
    top = sorted(total.items(), key=lambda kv: -kv[1])[:k]
    norm = top[0][1]
    return {i: s / norm for i, s in top}


def test_batched_scores_match_the_plain_algorithm_for_every_user() -> None:
    import random

    rng = random.Random(3)
    items = [f"i{n}" for n in range(60)]
    cv = CoVisitation(max_neighbors=15, expand=4, expand_weight=0.3)
    for _ in range(2000):  # distinct random weights: no ties to break
        a, b = rng.sample(items, 2)
        cv.learn_one(a, b, rng.random())
    histories = [rng.sample(items, rng.randint(1, 14)) for _ in range(40)] + [[], ["unknown"]]
    user, rows, score = cv.scores_for_many(histories, k=12)
    assert user.tolist() == sorted(user.tolist())  # grouped by user
    got: dict[int, dict[str, float]] = {}
    for u, item, s in zip(user.tolist(), cv.item_ids(rows), score.tolist(), strict=True):
        got.setdefault(u, {})[item] = s
    for u, recent in enumerate(histories):
        expected = _reference_scores(cv, recent, k=12)
        assert list(got.get(u, {})) == list(expected), u  # same items, same order
        assert got.get(u, {}) == pytest.approx(expected), u
        assert cv.scores_for(recent, k=12) == pytest.approx(expected)
