from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from models.interest import KIND_WEIGHTS, DecayedMean, InterestLearner, UserState

A = np.array([1.0, 0.0, 0.0], np.float32)
B = np.array([0.0, 1.0, 0.0], np.float32)


def test_kind_weights_are_ordered() -> None:
    assert KIND_WEIGHTS["view"] < KIND_WEIGHTS["click"] < KIND_WEIGHTS["add_to_cart"] < KIND_WEIGHTS["purchase"]


def test_recent_events_dominate_short_term_but_not_long_term() -> None:
    learner = InterestLearner(long_half_life=30 * 86400, short_half_life=600)
    s = UserState()
    for i in range(10):
        s = learner.learn_interaction(s, f"a{i}", A, "click", ts=1_000.0 + i)
    # One hour later the user switches to B.
    for i in range(3):
        s = learner.learn_interaction(s, f"b{i}", B, "click", ts=4_600.0 + i)
    short, long = learner.short_vector(s), learner.long_vector(s)
    assert short is not None and long is not None
    assert short[1] > 0.95  # session vector follows the switch
    assert long[0] > long[1]  # long-term memory still mostly A


def test_decay_is_by_event_time_and_order_independent() -> None:
    learner = InterestLearner(long_half_life=100.0, short_half_life=10.0)
    events = [("x", A, "view", 0.0), ("y", B, "purchase", 50.0), ("z", A, "click", 20.0)]
    s1 = UserState()
    for item, v, kind, ts in events:
        s1 = learner.learn_interaction(s1, item, v, kind, ts)
    s2 = UserState()
    for item, v, kind, ts in sorted(events, key=lambda e: e[3]):
        s2 = learner.learn_interaction(s2, item, v, kind, ts)
    np.testing.assert_allclose(s1.long.total, s2.long.total, rtol=1e-5)
    assert s1.long.weight == pytest.approx(s2.long.weight)


def test_confidence_fades_with_time() -> None:
    learner = InterestLearner(short_half_life=60.0)
    s = learner.learn_interaction(UserState(), "a", A, "click", ts=0.0)
    _, fresh, _ = learner.confidences(s, now=0.0)
    _, stale, _ = learner.confidences(s, now=600.0)
    assert fresh > 0.4 and stale < 0.01


def test_query_moves_short_term_and_sets_query_vector() -> None:
    learner = InterestLearner()
    s = learner.learn_interaction(UserState(), "a", A, "view", ts=0.0)
    s = learner.learn_query(s, B, ts=1.0)
    assert s.query.direction() is not None
    assert learner.short_vector(s)[1] > learner.short_vector(s)[0]
    assert learner.long_vector(s)[1] == 0.0  # searches do not touch the long-term vector


def test_purchases_are_remembered_and_recent_is_bounded() -> None:
    learner = InterestLearner(max_recent=3)
    s = UserState()
    for i in range(5):
        s = learner.learn_interaction(s, f"i{i}", A, "purchase" if i == 1 else "view", ts=float(i))
    assert s.recent == ["i2", "i3", "i4"]
    assert s.bought == ["i1"]


def test_the_pair_history_keeps_the_latest_interactions_and_summarises_the_rest() -> None:
    learner = InterestLearner(max_history=3)
    s = UserState(recent=["old"], recent_ts=[0.5], bought=["old"], bought_ts=[0.5])  # written before the history
    for i, kind in enumerate(("purchase", "view", "click", "view", "view")):
        s = learner.learn_interaction(s, f"i{i}", A, kind, ts=float(i + 1))
    h = s.history
    assert h.items == ("i2", "i3", "i4") and h.kinds == "evv"
    assert h.earlier == ("old", "i0", "i1") and h.earlier_engaged == ("i0",) and h.earlier_bought == {"old", "i0"}
    late = learner.learn_interaction(s, "x", A, "click", ts=0.1)  # older than all of a full history
    assert late.history == h and late.recent[0] == "x"


def test_state_round_trips_through_json_dict() -> None:
    learner = InterestLearner()
    s = learner.learn_interaction(UserState(), "a", A, "click", ts=5.0, session_id="s1")
    s = learner.learn_query(s, B, ts=6.0)
    back = UserState.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(back.short.total, s.short.total)
    assert back.recent == s.recent and back.session_id == "s1" and back.n_events == 2
    assert UserState.from_dict(None) == UserState()
    assert DecayedMean.from_dict(None).direction() is None


def test_state_round_trips_bit_exactly_through_bytes() -> None:
    learner = InterestLearner()
    rng = np.random.default_rng(3)
    s = UserState()
    for i in range(5):
        kind = ("view", "click", "purchase")[i % 3]
        s = learner.learn_interaction(s, f"i{i}", rng.normal(size=8).astype(np.float32), kind, ts=float(i), session_id="s")
    s = learner.learn_query(s, rng.normal(size=8).astype(np.float32), ts=9.0)
    back = UserState.from_bytes(s.to_bytes())
    assert (back.engaged, back.engaged_ts) == (s.engaged, s.engaged_ts) == (["i1", "i2", "i4"], [1.0, 2.0, 4.0])
    assert UserState.from_dict(json.loads(json.dumps(s.to_dict()))).engaged == s.engaged
    for name in ("long", "short", "query"):
        assert getattr(back, name).total.tobytes() == getattr(s, name).total.tobytes()
        assert getattr(back, name).weight == getattr(s, name).weight
    assert back.recent == s.recent and back.bought == s.bought and back.n_events == s.n_events
    assert back.history == s.history and s.history.kinds == "vepve" and s.history.times == (0.0, 1.0, 2.0, 3.0, 4.0)
    assert UserState.from_dict(json.loads(json.dumps(s.to_dict()))).history == s.history
    with_seen = replace(s, seen=(7, 8), seen_ts=(1.0, 2.0))  # the times follow the dedup hashes
    back_seen = UserState.from_bytes(with_seen.to_bytes())
    assert (back_seen.seen, back_seen.seen_ts, back_seen.history) == ((7, 8), (1.0, 2.0), s.history)
    assert UserState.from_bytes(None) == UserState()
    assert UserState.from_bytes(UserState().to_bytes()).long.total is None
    with pytest.raises(ValueError):
        UserState.from_bytes(b"garbage")
