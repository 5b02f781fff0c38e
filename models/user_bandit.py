"""One user's online bandit record: policy, reward join, published slates, shown-without-click counts.

:class:`UserBandit` is what the events agent keeps per user (inside the user's
state, so it lives in the same changelog-backed table, partitioned by user) to
close the feedback loop event by event:

* :meth:`published` remembers every slate published to the user (request_id ->
  items with their ``source`` and ``propensity``) for ``window_s`` seconds of event
  time, so an impression, which carries only item ids, can be joined with how
  each item was chosen;
* :meth:`impression` and :meth:`click` feed the :class:`~models.feedback.FeedbackJoin`
  (late, duplicate and early events are handled as it documents); every resolved
  reward updates the user's :class:`~models.bandit.Policy` on the item's source
  (when the source is one of the policy's arms) and the shown-without-click count
  of the item (a 0 adds one, a 1 clears it), which drives frequency capping;
* :meth:`advance` moves the user's event time: windows that ended give their 0s.

Event time is the user's own: a window closes at the user's first event after its
end. The record is plain JSON (no pickle) and bounded: at most ``max_slates``
remembered slates and open impressions (a newer impression closes the oldest early)
and ``max_shown`` shown counts (the smallest dropped first).

>>> b = UserBandit.new("thompson", seed=1, window_s=60)
>>> b.published("r1", ["a", "b"], ["interest", "trending"], [1.0, 0.4], ts=0.0)
>>> b.impression("r1", ["a", "b"], ts=1.0)
([], True)
>>> [(r.item_id, r.reward) for r in b.click("r1", "b", ts=5.0)]
[('b', 1)]
>>> [(r.item_id, r.reward, r.source) for r in b.advance(100.0)]
[('a', 0, 'interest')]
>>> b.shown_counts(), sorted(b.arm_posteriors().items())
({'a': 1}, [('interest', [1.0, 2.0]), ('trending', [2.0, 1.0])])
>>> UserBandit.from_json(b.to_json(), "thompson", 1, 60).to_json() == b.to_json()
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from models.bandit import Context, RiverPolicy, make_policy, policy_from_state
from models.feedback import FeedbackJoin, Reward

#: Source recorded for an impressed item that no remembered slate explains.
UNKNOWN = "unknown"
#: Most impressions of one user whose window is open at once (and remembered slates).
MAX_OPEN = 32


class UserBandit:
    """A user's bandit policy, reward join, remembered slates and shown counts (see the module docstring)."""

    #: The sources the policy chooses among (:data:`models.candidates.SOURCES`); rewards of items
    #: from other sources (``fresh``, ``unknown``) update the shown counts only.
    arms: tuple[str, ...] = ("search", "covisit", "interest", "trending")

    def __init__(
        self,
        policy: RiverPolicy,
        join: FeedbackJoin,
        slates: dict[str, list[Any]] | None = None,
        shown: dict[str, int] | None = None,
        max_slates: int = 32,
        max_shown: int = 200,
    ) -> None:
        self.policy = policy
        self.join = join
        # request_id -> [ts, [[item, source, propensity], ...]] (+ the decision's context, if any)
        self._slates: dict[str, list[Any]] = slates or {}
        self._shown: dict[str, int] = shown or {}
        self.max_slates = max_slates
        self.max_shown = max_shown

    @classmethod
    def new(cls, policy: str, seed: int = 0, window_s: float = 1800.0) -> UserBandit:
        """A fresh record with a new ``policy`` (by name) and an empty join."""
        return cls(make_policy(policy, seed), FeedbackJoin(window_s, max_open=MAX_OPEN))

    @classmethod
    def from_json(cls, raw: str, policy: str, seed: int = 0, window_s: float = 1800.0) -> UserBandit:
        """Rebuild from :meth:`to_json` (an empty string gives :meth:`new`).

        A record learned under another policy than ``policy`` starts a new policy
        (arms' statistics of one policy mean nothing to another); the join is kept.
        """
        if not raw:
            return cls.new(policy, seed, window_s)
        d = json.loads(raw)
        pol = policy_from_state(d["policy"]) if d["policy"]["policy"] == policy else make_policy(policy, seed)
        join = FeedbackJoin.from_state(d["join"])
        join.window_s, join.max_open = float(window_s), MAX_OPEN
        return cls(pol, join, {r: list(v) for r, v in d.get("slates", {}).items()},
                   {i: int(n) for i, n in d.get("shown", {}).items()})

    def to_json(self) -> str:
        """The whole record as compact JSON."""
        return json.dumps(
            {"policy": self.policy.state_dict(), "join": self.join.state_dict(), "slates": self._slates,
             "shown": self._shown},
            separators=(",", ":"),
        )

    # -- what was published and shown --------------------------------------------------

    def published(
        self, request_id: str, item_ids: Sequence[str], sources: Sequence[str], propensities: Sequence[float], ts: float,
        context: Context | None = None,
    ) -> None:
        """Remember a published slate (its items' sources and propensities) under its request_id,
        with the ``context`` its exploration source was chosen on (for a policy that reads one):
        its rewards update the policy on that same context."""
        slate: list[Any] = [float(ts), [[i, s, float(p)] for i, s, p in zip(item_ids, sources, propensities,
                                                                            strict=True)]]
        if context is not None:
            slate.append({k: float(v) for k, v in context.items()})
        self._slates[request_id] = slate
        while len(self._slates) > self.max_slates:
            del self._slates[min(self._slates, key=lambda r: self._slates[r][0])]

    def impression(self, request_id: str, item_ids: Sequence[str], ts: float) -> tuple[list[Reward], bool]:
        """The site showed ``item_ids`` of ``request_id``: rewards resolved now, and whether it was new
        (False for a redelivered impression, which changes nothing)."""
        slate = {i: (s, p) for i, s, p in self._slates.get(request_id, (0.0, []))[1]}
        sources = [slate.get(i, (UNKNOWN, 1.0))[0] for i in item_ids]
        props = [slate.get(i, (UNKNOWN, 1.0))[1] for i in item_ids]
        before = self.join.counts["impressions"]
        rewards = self.join.impression(request_id, "", list(item_ids), ts, sources, props)
        self._learn(rewards)
        return rewards, self.join.counts["impressions"] > before

    def click(self, request_id: str, item_id: str, ts: float) -> list[Reward]:
        """A click carrying ``request_id``: its reward (if in the window) and any windows it closed."""
        rewards = self.join.click(request_id, item_id, ts)
        self._learn(rewards)
        return rewards

    def advance(self, ts: float) -> list[Reward]:
        """Move the user's event time to ``ts``: the 0s of windows that ended."""
        rewards = self.join.advance(ts)
        self._learn(rewards)
        for r in [r for r, slate in self._slates.items() if slate[0] + 2 * self.join.window_s < ts]:
            del self._slates[r]
        return rewards

    def _learn(self, rewards: list[Reward]) -> None:
        arms = set(self.arms)
        for r in rewards:
            if r.source in arms:
                slate = self._slates.get(r.request_id)
                context = slate[2] if slate is not None and len(slate) > 2 else None
                self.policy.update(r.source, r.reward, context)
            if r.reward:
                self._shown.pop(r.item_id, None)
            else:
                self._shown[r.item_id] = self._shown.get(r.item_id, 0) + 1
        while len(self._shown) > self.max_shown:
            del self._shown[min(self._shown, key=lambda i: self._shown[i])]

    # -- what ranking reads --------------------------------------------------------------

    def shown_counts(self) -> dict[str, int]:
        """Items shown to the user without a click since (their count of unclicked impressions)."""
        return dict(self._shown)

    def arm_posteriors(self) -> dict[str, list[float]]:
        """Thompson sampling: each learned arm's Beta (alpha, beta); other policies: their state's arms."""
        out: dict[str, list[float]] = {}
        for entry in self.policy.state_dict()["arms"]:
            if entry[2] is not None:
                out[str(entry[0][1])] = [float(x) for x in entry[2]]
        return out
