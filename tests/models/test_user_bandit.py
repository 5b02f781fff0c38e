"""A user's bandit record: slates remembered, impressions and clicks joined, policy and shown counts learned."""

from __future__ import annotations

from models.interest import UserState
from models.state_updates import apply_feedback
from models.user_bandit import UNKNOWN, UserBandit


def _bandit() -> UserBandit:
    return UserBandit.new("thompson", seed=3, window_s=60.0)


def test_impressions_take_sources_and_propensities_from_the_published_slate() -> None:
    b = _bandit()
    b.published("r1", ["a", "b", "c"], ["interest", "trending", "fresh"], [1.0, 0.3, 1.0], ts=0.0)
    rewards, new = b.impression("r1", ["a", "b", "c", "x"], ts=1.0)
    assert rewards == [] and new
    assert [r.propensity for r in b.click("r1", "b", ts=2.0)] == [0.3]
    closed = {r.item_id: (r.reward, r.source) for r in b.advance(62.0)}
    assert closed == {"a": (0, "interest"), "c": (0, "fresh"), "x": (0, UNKNOWN)}
    # fresh and unknown sources are not arms: only interest (a 0) and trending (a 1) were learned
    assert b.arm_posteriors() == {"trending": [2.0, 1.0], "interest": [1.0, 2.0]}
    assert b.shown_counts() == {"a": 1, "c": 1, "x": 1}


def test_a_click_clears_the_items_shown_count_and_records_are_bounded() -> None:
    b = UserBandit(_bandit().policy, _bandit().join, max_slates=2, max_shown=2)
    for n, item in enumerate(["a", "b", "c"]):
        b.published(f"r{n}", [item], ["interest"], [1.0], ts=float(n))
        b.impression(f"r{n}", [item], ts=float(n))
    b.advance(100.0)
    assert len(b.shown_counts()) == 2
    b.published("r9", ["c"], ["interest"], [1.0], ts=100.0)
    b.impression("r9", ["c"], ts=100.0)
    b.click("r9", "c", ts=101.0)
    assert "c" not in b.shown_counts()
    assert len(b.to_json()) < 5000


def test_a_record_of_another_policy_starts_a_new_policy_and_keeps_the_join() -> None:
    b = _bandit()
    b.published("r1", ["a"], ["interest"], [1.0], ts=0.0)
    b.impression("r1", ["a"], ts=0.0)
    b.click("r1", "a", ts=1.0)
    ucb = UserBandit.from_json(b.to_json(), "ucb", seed=3, window_s=60.0)
    assert ucb.policy.name == "ucb" and ucb.policy.state_dict()["arms"] == []
    assert ucb.join.counts["rewards_1"] == 1


def test_apply_feedback_joins_per_user_in_event_time_and_counts_new_impressions_only() -> None:
    class Imp:
        def __init__(self, user: str, rid: str, items: list[str], ts: float) -> None:
            self.user_id, self.request_id, self.item_ids, self.ts = user, rid, items, ts

    class Click:
        def __init__(self, user: str, item: str, ts: float, rid: str | None) -> None:
            self.user_id, self.item_id, self.ts, self.request_id = user, item, ts, rid
            self.kind, self.session_id = "click", None

    states = {"u": UserState(), "v": UserState()}
    def read(uid: str, st: UserState) -> UserBandit:
        return UserBandit.from_json(st.bandit, "thompson", 0, 10.0)

    # the click comes first in the batch but after the impression in event time
    fx = apply_feedback(states, [Imp("u", "r1", ["a", "b"], 1.0), Imp("u", "r1", ["a", "b"], 1.0)],
                        [Click("u", "b", 2.0, "r1"), Click("v", "a", 3.0, None)], read)
    assert (fx.impressions, fx.shown, fx.clicked) == (1, {"a": 1, "b": 1}, {"b": 1})
    assert states["v"].bandit == ""  # no feedback and nothing pending: untouched
    fx = apply_feedback(states, [], [Click("u", "c", 20.0, None)], read)
    assert fx.rewards == 1 and read("u", states["u"]).shown_counts() == {"a": 1}


def test_linucb_learns_each_reward_on_the_context_its_slate_was_chosen_on() -> None:
    from models.bandit import user_context

    searching, browsing = user_context(50, 0.0, 1.0), user_context(50, 1.0, 0.0)
    b = UserBandit.new("linucb", seed=3, window_s=60.0)
    arms = ["search", "trending"]
    for n in range(40):  # searching users click what search found, browsing ones what trends
        ctx, clicked = (searching, "s") if n % 2 == 0 else (browsing, "t")
        ts = 100.0 * n
        b.published(f"r{n}", ["s", "t"], arms, [1.0, 1.0], ts, ctx)
        b.impression(f"r{n}", ["s", "t"], ts)
        b.click(f"r{n}", clicked, ts + 1.0)
        b = UserBandit.from_json(b.to_json(), "linucb", seed=3, window_s=60.0)  # as stored between events
    b.advance(100.0 * 40)
    assert arms[int(b.policy.upper_bounds(arms, searching).argmax())] == "search"
    assert arms[int(b.policy.upper_bounds(arms, browsing).argmax())] == "trending"
    # without the stored context every reward would land on the intercept alone: no preference by context
    blind = UserBandit.new("linucb", seed=3, window_s=60.0)
    for n in range(40):
        blind.published(f"r{n}", ["s", "t"], arms, [1.0, 1.0], 100.0 * n)
        blind.impression(f"r{n}", ["s", "t"], 100.0 * n)
        blind.click(f"r{n}", "s" if n % 2 == 0 else "t", 100.0 * n + 1.0)
    blind.advance(100.0 * 40)
    assert blind.policy.upper_bounds(arms, searching).tolist() == blind.policy.upper_bounds(arms, browsing).tolist()
