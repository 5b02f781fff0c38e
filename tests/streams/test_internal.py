"""Internal wire formats: item-stats deltas with impressions and clicks, read back and from older writers."""

from __future__ import annotations

import json

import numpy as np

from streams.internal import StatsDelta


def test_a_delta_with_impressions_and_clicks_round_trips() -> None:
    d = StatsDelta(pairs=[("a", "b", 2.0)], counts=[("a", 1.0, 5.0)], shown=[("n1", 3)], clicked=[("n1", 1)])
    assert StatsDelta.from_bytes(d.to_bytes()) == d


def test_a_delta_from_a_writer_without_impressions_reads_as_none() -> None:
    old = json.dumps({"pairs": [["a", "b", 1.0]], "counts": [["a", 1.0, 2.0]]}).encode()
    d = StatsDelta.from_bytes(old)
    assert d.shown == [] and d.clicked == [] and d.pairs == [("a", "b", 1.0)]
    assert b"shown" not in StatsDelta(d.pairs, d.counts).to_bytes()  # unchanged for readers of the old format


def test_resent_increments_are_applied_once_whatever_the_batching() -> None:
    from streams.internal import AppliedEvents, StatsDelta

    def delta(events: list[str]) -> StatsDelta:
        # each event: one count of its own item and one pair with the previous event's item
        return StatsDelta(
            pairs=[(e, "prev", 0.5) for e in events], counts=[(e, 1.0, 10.0) for e in events],
            events=[f"u/{e}" for e in events], pair_events=list(range(len(events))),
            count_events=list(range(len(events))),
        )

    applied = AppliedEvents(capacity=100)
    first = applied.first_time(delta(["e1", "e2", "e3"]))
    # a crashed worker resends e2 and e3 in a batch that also holds the new e4
    again = applied.first_time(StatsDelta.from_bytes(delta(["e2", "e3", "e4"]).to_bytes()))
    assert [c[0] for c in first.counts] == ["e1", "e2", "e3"]
    assert [c[0] for c in again.counts] == ["e4"] and [p[0] for p in again.pairs] == ["e4"]
    assert again.pair_events == [2] and again.count_events == [2]  # still index the delta's events
    # deltas written before events were named are applied whole
    old = StatsDelta.from_bytes(b'{"pairs": [["a", "b", 1.0]], "counts": [["a", 1.0, 1.0]]}')
    assert applied.first_time(old) == old
    # the window forgets the oldest events beyond its capacity
    small = AppliedEvents(capacity=1)
    small.first_time(delta(["x"]))
    small.first_time(delta(["y"]))
    assert [c[0] for c in small.first_time(delta(["x"])).counts] == ["x"]


def test_a_batch_names_the_event_of_each_increment() -> None:
    from models.interest import InterestLearner
    from models.item_index import ItemIndex
    from models.state_updates import apply_events
    from tests.models.clicks import Click

    index = ItemIndex(dim=4)
    for i in "abc":
        index.upsert(i, np.ones(4, np.float32))
    states: dict = {}
    clicks = [(f"e{n}", Click("u", item, float(n))) for n, item in enumerate("abc")]
    fx = apply_events(states, clicks, [], index, InterestLearner())
    assert fx.events == ["u/e0", "u/e1", "u/e2"]
    assert [fx.events[i] for i in fx.count_events] == ["u/e0", "u/e1", "u/e2"]
    # e1 pairs with a; e2 pairs with a and b (both directions): every pair is its click's
    assert [fx.events[i] for i in fx.pair_events] == ["u/e1"] * 2 + ["u/e2"] * 4


def test_impressions_and_clicks_processed_again_after_a_crash_are_applied_once() -> None:
    from dataclasses import dataclass

    from models.fresh_items import FreshItems
    from models.interest import UserState
    from models.state_updates import apply_feedback
    from models.user_bandit import UserBandit
    from streams.internal import AppliedEvents

    @dataclass
    class Shown:
        request_id: str
        user_id: str
        item_ids: list[str]
        ts: float

    @dataclass
    class Clicked:
        user_id: str
        item_id: str
        ts: float
        request_id: str | None = None
        kind: str = "click"
        session_id: str | None = None

    def batch(state: UserState, impressions: list[Shown], clicks: list[Clicked]) -> tuple[StatsDelta, UserState]:
        states = {"u": state}
        fb = apply_feedback(states, impressions, clicks, lambda u, s: UserBandit.from_json(s.bandit, "thompson"))
        return StatsDelta().with_feedback(fb.shown_by, fb.clicked_by), states["u"]

    before = UserState()
    first, after = batch(before, [Shown("r1", "u", ["n1", "n2"], 1.0)], [Clicked("u", "n1", 2.0, "r1")])
    assert sorted(first.shown) == [("n1", 1), ("n2", 1)] and first.clicked == [("n1", 1)]
    # The worker crashed after sending ``first`` and before saving ``after``: the next owner
    # processes the same events on the state before them, and sends the same increments again.
    resent, _ = batch(before, [Shown("r1", "u", ["n1", "n2"], 1.0)], [Clicked("u", "n1", 2.0, "r1")])
    later, _ = batch(after, [Shown("r2", "u", ["n2"], 3.0)], [])
    fresh = FreshItems()
    for item in ("n1", "n2"):
        fresh.add(item, 0.0)
    applied = AppliedEvents()
    for delta in (first, resent, later):
        d = applied.first_time(StatsDelta.from_bytes(delta.to_bytes()))
        for item, n in d.shown:
            fresh.learn_shown(item, n)
        for item, n in d.clicked:
            fresh.learn_one(item, 1, n)
    assert applied.first_time(resent).shown == [] and applied.first_time(resent).clicked == []
    # n1 shown once and clicked once; n2 shown twice (r1 once, despite the resend, and r2)
    once = FreshItems()
    for item, shown in (("n1", 1), ("n2", 2)):
        once.add(item, 0.0)
        once.learn_shown(item, shown)
    once.learn_one("n1", 1)
    assert [fresh.impressions(i) for i in ("n1", "n2")] == [1, 2]
    assert [fresh.mean(i) for i in ("n1", "n2")] == [once.mean(i) for i in ("n1", "n2")]
