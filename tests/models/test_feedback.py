"""Impression/click join: rewards within the window, late and duplicate events, state round trip."""

from __future__ import annotations

import json

import pytest

from models.feedback import FeedbackJoin


def _r(rewards):
    return sorted((r.request_id, r.item_id, r.reward) for r in rewards)


def test_click_in_window_is_1_and_unclicked_items_are_0_when_the_window_closes() -> None:
    j = FeedbackJoin(window_s=100)
    assert j.impression("r1", "u", ["a", "b", "c"], ts=0.0, sources=["interest", "trending", "fresh"],
                        propensities=[1.0, 0.4, 1.0]) == []
    got = j.click("r1", "b", ts=99.0)
    assert _r(got) == [("r1", "b", 1)] and got[0].source == "trending" and got[0].propensity == 0.4
    assert j.advance(100.0) == []  # the window is [0, 100]: still open
    assert _r(j.advance(100.5)) == [("r1", "a", 0), ("r1", "c", 0)]
    assert j.pending() == 0 and j.counts["rewards_1"] == 1 and j.counts["rewards_0"] == 2


def test_duplicates_are_idempotent_by_request_and_item() -> None:
    j = FeedbackJoin(window_s=100)
    j.impression("r1", "u", ["a", "b"], ts=0.0)
    j.impression("r1", "u", ["a", "b"], ts=0.0)  # redelivered
    assert _r(j.click("r1", "a", ts=5.0)) == [("r1", "a", 1)]
    assert j.click("r1", "a", ts=6.0) == []  # second click on the same item
    assert _r(j.advance(200.0)) == [("r1", "b", 0)]
    j.impression("r1", "u", ["a", "b"], ts=0.0)  # redelivered after the window closed
    assert j.pending() == 0
    assert j.counts["duplicate_impressions"] == 2 and j.counts["duplicate_clicks"] == 1
    assert j.counts["rewards_1"] + j.counts["rewards_0"] == 2  # one reward per shown item, exactly


def test_late_clicks_are_counted_not_rewarded() -> None:
    j = FeedbackJoin(window_s=10)
    j.impression("r1", "u", ["a"], ts=0.0)
    # a click stamped after the end, before event time closed the window: no 1, and its
    # timestamp moves event time on, which closes the window with the 0
    assert _r(j.click("r1", "a", ts=11.0)) == [("r1", "a", 0)]
    assert j.counts["late_clicks"] == 1 and j.counts["rewards_1"] == 0
    j.impression("r2", "u", ["b"], ts=20.0)
    j.advance(40.0)
    assert j.click("r2", "b", ts=41.0) == []  # its request already closed
    assert j.counts["late_clicks"] == 2 and j.counts["rewards_0"] == 2


def test_click_before_its_impression_is_applied_when_the_impression_arrives() -> None:
    j = FeedbackJoin(window_s=100)
    assert j.click("r9", "a", ts=3.0) == []
    assert _r(j.impression("r9", "u", ["a", "b"], ts=1.0)) == [("r9", "a", 1)]
    assert j.counts["early_clicks"] == 1
    j.click("r-never", "x", ts=4.0)
    j.advance(500.0)
    assert j.counts["orphan_clicks"] == 1


def test_click_on_an_item_the_request_did_not_show() -> None:
    j = FeedbackJoin(window_s=100)
    j.impression("r1", "u", ["a"], ts=0.0)
    assert j.click("r1", "zzz", ts=1.0) == []
    assert j.counts["clicks_not_shown"] == 1


def test_state_round_trips_through_json() -> None:
    j = FeedbackJoin(window_s=50)
    j.impression("r1", "u", ["a", "b"], ts=0.0, sources=["interest", "fresh"], propensities=[1.0, 0.5])
    j.click("r1", "a", ts=1.0)
    j.click("r2", "c", ts=2.0)
    k = FeedbackJoin.from_state(json.loads(json.dumps(j.state_dict())))
    assert k.state_dict() == j.state_dict()
    assert _r(k.advance(60.0)) == _r(j.advance(60.0)) == [("r1", "b", 0)]


def test_bad_input() -> None:
    j = FeedbackJoin()
    with pytest.raises(ValueError, match="propensities must be in"):
        j.impression("r", "u", ["a"], ts=0.0, propensities=[0.0])
    with pytest.raises(ValueError, match="one entry per shown item"):
        j.impression("r", "u", ["a", "b"], ts=0.0, sources=["x"])
    with pytest.raises(ValueError, match="window_s"):
        FeedbackJoin(window_s=0)


def test_max_open_closes_the_oldest_impression_early_and_bounds_the_state() -> None:
    j = FeedbackJoin(window_s=60, max_open=2)
    j.impression("r1", "u", ["a", "b"], ts=0.0)
    j.impression("r2", "u", ["c"], ts=1.0)
    j.click("r1", "a", ts=1.5)
    early = j.impression("r3", "u", ["d"], ts=2.0)  # r1 closes now: b gets its 0
    assert [(r.request_id, r.item_id, r.reward) for r in early] == [("r1", "b", 0)]
    assert j.click("r1", "b", ts=3.0) == [] and j.counts["late_clicks"] == 1
    for n in range(4, 20):
        j.impression(f"r{n}", "u", ["x"], ts=float(n))
    state = j.state_dict()
    assert len(state["open"]) == 2 and len(state["closed"]) <= 8
    assert FeedbackJoin.from_state(state).state_dict() == state
