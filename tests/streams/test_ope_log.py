"""The join behind ``streamrec ope-log``: which shown exploration decisions get which reward."""

from __future__ import annotations

from streams.ope_log import join_decisions


def _rec(request_id: str, item: str = "b") -> dict[str, object]:
    return {"request_id": request_id, "user_id": "u", "policy": "thompson", "items": [
        {"item_id": "a", "source": "interest", "propensity": 1.0},
        {"item_id": item, "source": "trending", "propensity": 0.25, "arms": ["interest", "trending"]}]}


def test_rewards_follow_the_window_and_what_was_shown() -> None:
    recs = [_rec("r-click"), _rec("r-late"), _rec("r-early"), _rec("r-open"), _rec("r-unseen"), _rec("r-partial")]
    imps = [
        {"request_id": "r-click", "item_ids": ["a", "b"], "ts": 100.0},
        {"request_id": "r-click", "item_ids": ["a", "b"], "ts": 150.0},  # redelivered: the first one counts
        {"request_id": "r-late", "item_ids": ["a", "b"], "ts": 100.0},
        {"request_id": "r-early", "item_ids": ["b"], "ts": 100.0},
        {"request_id": "r-open", "item_ids": ["b"], "ts": 170.0},
        {"request_id": "r-partial", "item_ids": ["a"], "ts": 100.0},  # the exploration item was not shown
        {"request_id": "broken"},
    ]
    clicks = [
        {"request_id": "r-click", "item_id": "b", "ts": 159.0},
        {"request_id": "r-late", "item_id": "b", "ts": 161.0},  # after the 60 s window: a 0
        {"request_id": "r-early", "item_id": "b", "ts": 95.0},  # before its impression, inside a window: a 1
        {"request_id": "r-click", "item_id": "a", "ts": 101.0},  # not an exploration decision
        {"user_id": "u", "item_id": "z", "ts": 200.0},  # no request: moves the newest event time only
    ]
    lines, counts = join_decisions(recs, imps, clicks, window_s=60.0)
    rewards = {x["request_id"]: x["reward"] for x in lines}
    assert rewards == {"r-click": 1, "r-late": 0, "r-early": 1}
    assert counts == {"pending": 1, "not_shown": 2, "unreadable_impressions": 1}
    assert {(x["arm"], x["propensity"], tuple(x["arms"])) for x in lines} == {("trending", 0.25, ("interest", "trending"))}
