"""Applying a user's events in any arrival order gives the same state (late events included)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from models.event_order import insert_latest
from models.interest import InterestLearner, UserState
from models.item_index import ItemIndex
from models.state_updates import apply_events
from models.user_guard import UserGuard
from tests.models.clicks import Click, random_index

KINDS = ("view", "click", "view", "add_to_cart", "purchase")


def _index() -> ItemIndex:
    return random_index(dim=8, n=12, seed=1)


def _log(n: int, rng: np.random.Generator) -> list[tuple[str, Click]]:
    """One user's events; items repeat (recent moves them), some are bought twice."""
    ts = np.sort(rng.uniform(0, 4000, size=n))
    return [(f"e{k}", Click("u", f"i{rng.integers(12)}", float(ts[k]), KINDS[rng.integers(len(KINDS))], f"s{int(ts[k] // 1000)}"))
            for k in range(n)]


def _replay(log: list[tuple[str, Click]], batches: list[list[int]], learner: InterestLearner, guard: UserGuard) -> UserState:
    states: dict[str, UserState] = {}
    idx = _index()
    for batch in batches:
        apply_events(states, [log[k] for k in batch], [], idx, learner, guard=guard)
        states["u"] = UserState.from_bytes(states["u"].to_bytes())  # through the changelog
    return states["u"]


def _shuffled_batches(rng: np.random.Generator, n: int, redelivered: int | range) -> list[list[int]]:
    """Event positions ``0..n-1`` shuffled, 10 drawn from ``redelivered`` sent again, cut into
    13 uneven batches."""
    order = list(rng.permutation(n)) + list(rng.choice(redelivered, size=10))
    cuts = sorted(rng.choice(range(1, len(order)), size=12, replace=False))
    return [list(map(int, b)) for b in np.split(np.array(order), cuts)]


@pytest.mark.parametrize("seed", range(5))
def test_any_arrival_order_gives_the_in_order_state(seed: int) -> None:
    rng = np.random.default_rng(seed)
    log = _log(60, rng)
    learner, guard = InterestLearner(max_recent=6, max_bought=3), UserGuard(dedup_window=16, rate_per_s=0.0)
    in_order = _replay(log, [[k] for k in range(len(log))], learner, guard)
    # Shuffled, in uneven batches, with some of the newest events redelivered (at-least-once).
    shuffled = _replay(log, _shuffled_batches(rng, len(log), range(len(log) - 16, len(log))), learner, guard)

    assert (shuffled.recent, shuffled.recent_ts) == (in_order.recent, in_order.recent_ts)
    assert (shuffled.bought, shuffled.bought_ts) == (in_order.bought, in_order.bought_ts)
    assert (shuffled.engaged, shuffled.engaged_ts) == (in_order.engaged, in_order.engaged_ts)
    assert (shuffled.session_id, shuffled.last_ts) == (in_order.session_id, in_order.last_ts)
    assert (shuffled.seen, shuffled.seen_ts) == (in_order.seen, in_order.seen_ts)
    assert len(in_order.recent) == 6 and len(in_order.bought) == 3 and len(in_order.seen) == 16
    # Redeliveries inside the dedup window (the newest 16 events by event time) change nothing.
    assert in_order.n_events == shuffled.n_events == len(log)
    np.testing.assert_allclose(shuffled.long.total, in_order.long.total, rtol=1e-4, atol=1e-6)


def test_a_late_event_also_corrects_the_pairs_of_the_events_after_it() -> None:
    idx, learner = _index(), InterestLearner()
    states: dict[str, UserState] = {}
    first = apply_events(states, [("e1", Click("u", "i1", 1.0, "view", "s")), ("e3", Click("u", "i3", 3.0, "view", "s"))],
                         [], idx, learner, covisit_window=1)
    late = apply_events(states, [("e2", Click("u", "i2", 2.0, "view", "s"))], [], idx, learner, covisit_window=1)
    # i2 pairs with i1 before it; i3 now pairs with i2 instead of i1: as if e2 had come in time.
    assert _net(first.pairs + late.pairs) == {("i1", "i2"): 1, ("i2", "i1"): 1, ("i2", "i3"): 1, ("i3", "i2"): 1}
    assert states["u"].recent == ["i1", "i2", "i3"]
    assert states["u"].history.items == ("i1", "i2", "i3")


def _net(pairs: list[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    """Summed pair weights, zeros left out."""
    total: Counter[tuple[str, str]] = Counter()
    for a, b, w in pairs:
        total[(a, b)] += w
    return {k: w for k, w in total.items() if abs(w) > 1e-9}


def _pair_totals(log: list[tuple[str, Click]], batches: list[list[int]], learner: InterestLearner,
                 guard: UserGuard) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    states: dict[str, UserState] = {}
    idx = _index()
    covisit: list[tuple[str, str, float]] = []
    bundles: list[tuple[str, str, float]] = []
    for batch in batches:
        fx = apply_events(states, [log[k] for k in batch], [], idx, learner, guard=guard)
        covisit += fx.pairs
        bundles += fx.bundle_pairs
        states["u"] = UserState.from_bytes(states["u"].to_bytes())  # through the changelog
    return _net(covisit), _net(bundles)


@pytest.mark.parametrize("seed", range(5))
def test_co_visitation_and_bundle_counts_do_not_depend_on_arrival_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    log = _log(40, rng)
    learner, guard = InterestLearner(max_recent=6, max_bought=3), UserGuard(dedup_window=64, rate_per_s=0.0)
    in_order = _pair_totals(log, [[k] for k in range(len(log))], learner, guard)
    shuffled = _pair_totals(log, _shuffled_batches(rng, len(log), len(log)), learner, guard)  # with redeliveries
    assert shuffled[0] == pytest.approx(in_order[0]) and shuffled[1] == pytest.approx(in_order[1])
    assert in_order[0] and in_order[1]


@pytest.mark.parametrize("seed", range(3))
def test_events_late_by_less_than_the_history_pair_as_in_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    log = _log(150, rng)  # three times the retained history (50)
    learner, guard = InterestLearner(), UserGuard(dedup_window=64, rate_per_s=0.0)
    in_order = _pair_totals(log, [[k] for k in range(len(log))], learner, guard)
    order = list(range(len(log)))
    for k in rng.choice(len(log) - 30, size=30, replace=False):  # some events arrive up to 29 later
        e = order.index(int(k))
        order.insert(e + int(rng.integers(1, 30)), order.pop(e))
    late = _pair_totals(log, [[k] for k in order], learner, guard)
    assert late[0] == pytest.approx(in_order[0]) and late[1] == pytest.approx(in_order[1])


def test_lists_keep_one_entry_per_item_at_its_latest_time() -> None:
    items, times = insert_latest(["a", "b"], [1.0, 2.0], "a", 3.0, keep=5)
    assert (items, times) == (["b", "a"], [2.0, 3.0])
    assert insert_latest(items, times, "a", 0.5, keep=5) == (["b", "a"], [2.0, 3.0])  # older sighting
    assert insert_latest(["a"], [1.0], "b", 1.0, keep=5) == insert_latest(["b"], [1.0], "a", 1.0, keep=5)  # ties by id


def test_states_stored_without_times_keep_their_order() -> None:
    old = UserState(recent=["x", "y"], bought=["y"], seen=(5, 9), last_ts=100.0)
    assert old.recent_ts == [99.999999, 100.0] and old.bought_ts == [100.0] and len(old.seen_ts) == 2
    learner = InterestLearner()
    s = learner.learn_interaction(old, "z", None, "view", ts=50.0)  # late: goes first
    assert s.recent == ["z", "x", "y"]
    again = UserState.from_bytes(s.to_bytes())
    assert (again.recent_ts, again.seen_ts) == (s.recent_ts, s.seen_ts)


def test_a_refresh_for_late_events_answers_the_newest_event_in_the_state() -> None:
    idx, learner = _index(), InterestLearner()
    states: dict[str, UserState] = {}
    fx = apply_events(states, [("e1", Click("u", "i1", 1.0, "view", "s")), ("e3", Click("u", "i3", 3.0, "view", "s"))],
                      [], idx, learner)
    assert fx.triggers["u"] == (3.0, "e3") and not fx.late
    late = apply_events(states, [("e2", Click("u", "i2", 2.0, "view", "s"))], [], idx, learner)
    assert late.triggers["u"] == (3.0, "e3") and late.late == {"u"}  # not (2.0, "e2"): the list is newer
    again = UserState.from_bytes(states["u"].to_bytes())
    assert (again.last_ts, again.last_event_id, again.n_events) == (3.0, "e3", 3)
    newer = apply_events(states, [("e4", Click("u", "i4", 4.0, "view", "s"))], [], idx, learner)
    assert newer.triggers["u"] == (4.0, "e4") and not newer.late
