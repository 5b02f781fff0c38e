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
