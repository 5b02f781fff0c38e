"""The user guard: redeliveries change nothing, floods are capped, old states expire."""

from __future__ import annotations

from models.interest import InterestLearner, UserState
from models.item_index import ItemIndex
from models.state_updates import apply_events
from models.user_guard import UserGuard
from tests.models.clicks import Click, random_index


def _index() -> ItemIndex:
    return random_index(dim=4, n=10, seed=0)


def test_replaying_a_batch_changes_neither_state_nor_item_statistics() -> None:
    idx, learner, guard = _index(), InterestLearner(), UserGuard(dedup_window=64, rate_per_s=0)
    events = [(f"e{n}", Click("u", f"i{n % 10}", 1000.0 + n)) for n in range(30)]
    states: dict[str, UserState] = {"u": UserState()}
    first = apply_events(states, events, [], idx, learner, guard=guard)
    once = UserState.from_bytes(states["u"].to_bytes())  # as recovered from the changelog
    states = {"u": once}
    replay = apply_events(states, events[10:], [], idx, learner, guard=guard)  # redelivered after a crash
    assert replay.duplicates == 20 and not replay.pairs and not replay.counts and not replay.triggers
    assert states["u"].to_bytes() == once.to_bytes()
    assert states["u"].n_events == 30 and len(first.counts) == 30


def test_without_the_guard_a_replay_double_counts() -> None:  # what the guard prevents
    idx, learner = _index(), InterestLearner()
    events = [(f"e{n}", Click("u", f"i{n}", 1000.0 + n)) for n in range(5)]
    states = {"u": UserState()}
    apply_events(states, events, [], idx, learner)
    apply_events(states, events, [], idx, learner)
    assert states["u"].n_events == 10


def test_dedup_window_is_bounded_and_forgets_the_oldest() -> None:
    guard = UserGuard(dedup_window=3, rate_per_s=0)
    s = UserState()
    for n in range(5):
        s, v = guard.admit(s, f"e{n}", 1.0)
        assert v == "ok"
    assert len(s.seen) == 3
    assert guard.admit(s, "e4", 1.0)[1] == "duplicate"
    assert guard.admit(s, "e0", 1.0)[1] == "ok"  # out of the window


def test_a_flood_moves_the_state_by_at_most_burst_plus_rate_times_time() -> None:
    idx, learner = _index(), InterestLearner()
    guard = UserGuard(dedup_window=16, rate_per_s=2.0, burst=10)
    honest = [(f"h{n}", Click("u", f"i{n % 3}", 1000.0 + n * 10)) for n in range(5)]
    states = {"u": UserState()}
    apply_events(states, honest, [], idx, learner, guard=guard)
    before = states["u"]
    # A bot sends 5,000 purchases of one item within 10 s of event time, timestamps going backwards too.
    flood = [(f"b{n}", Click("u", "i9", 1040.0 + (n % 1000) / 100.0, "purchase")) for n in range(5000)]
    fx = apply_events(states, flood, [], idx, learner, guard=guard)
    taken = states["u"].n_events - before.n_events
    assert taken <= 10 + 2 * 10 + 1, taken
    assert fx.rate_limited == 5000 - taken
    assert len(fx.counts) == taken  # trending and co-visitation get only what the state took


def test_forged_future_timestamps_gain_nothing_beyond_the_clock() -> None:
    guard = UserGuard(dedup_window=0, rate_per_s=1.0, burst=5)
    s = UserState()
    verdicts = []
    for n in range(100):
        s, v = guard.admit(s, f"e{n}", 1000.0 + (n % 2) * 3600)  # jumps an hour ahead and back
        verdicts.append(v)
    # One jump refills the bucket once; going back in time refills nothing.
    assert verdicts.count("ok") <= 5 + 5
    _, v = guard.admit(s, "late", 1000.0)
    assert v == "rate_limited"


def test_rate_limit_and_dedup_state_survive_the_changelog_round_trip() -> None:
    guard = UserGuard(dedup_window=8, rate_per_s=1.0, burst=3)
    s = UserState()
    for n in range(4):
        s, _ = guard.admit(s, f"e{n}", 50.0)
    back = UserState.from_bytes(s.to_bytes())
    assert back.seen == s.seen and back.rl_tokens == s.rl_tokens and back.rl_ts == s.rl_ts
    assert guard.admit(back, "e2", 50.0)[1] == "duplicate"
    assert guard.admit(back, "e9", 50.0)[1] == "rate_limited"
    assert UserState.from_dict(s.to_dict()).seen == s.seen


def test_expired_state_is_replaced_by_a_fresh_one() -> None:
    idx, learner = _index(), InterestLearner()
    guard = UserGuard(rate_per_s=0, state_ttl_s=100.0)
    states = {"u": UserState()}
    apply_events(states, [("e1", Click("u", "i1", 1000.0, "purchase"))], [], idx, learner, guard=guard)
    assert states["u"].bought == ["i1"]
    fx = apply_events(states, [("e2", Click("u", "i2", 1200.0))], [], idx, learner, guard=guard)
    assert fx.expired == 1 and states["u"].bought == [] and states["u"].recent == ["i2"]
    assert states["u"].n_events == 1

