"""Applying a micro-batch of interactions, searches and impressions to users' states.

Pure functions over plain values: the events agent loads the touched users'
states, calls :func:`apply_events` (interests) and :func:`apply_feedback` (bandit
rewards from impressions and clicks on request_id), writes the states back and
publishes the co-visitation/trending/impression increments they return.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from models.interest import InterestLearner, UserState
from models.item_index import ItemIndex
from models.types import ItemId, Timestamp, UserId, Vector
from models.user_bandit import UserBandit
from models.user_guard import Admission, UserGuard


class Interaction(Protocol):
    """A click-stream event (ClickEvent has this shape)."""

    user_id: str
    item_id: str
    kind: str
    ts: float
    session_id: str | None


class Search(Protocol):
    """A search event (SearchEvent has this shape)."""

    user_id: str
    query: str
    ts: float
    session_id: str | None


@dataclass
class BatchEffects:
    """What a batch changed beyond the users' own states."""

    pairs: list[tuple[ItemId, ItemId, float]] = field(default_factory=list)
    counts: list[tuple[ItemId, float, Timestamp]] = field(default_factory=list)
    #: "Frequently bought together" pairs (:func:`models.bundles.bundle_pairs`).
    bundle_pairs: list[tuple[ItemId, ItemId, float]] = field(default_factory=list)
    #: The interactions (``user_id/event_id``) behind them, and the index there of each pair's
    #: and each count's event (item-stats readers apply an event's increments once).
    events: list[str] = field(default_factory=list)
    pair_events: list[int] = field(default_factory=list)
    count_events: list[int] = field(default_factory=list)
    bundle_events: list[int] = field(default_factory=list)
    #: Per touched user: (timestamp, event_id) of the newest event its state now holds -- the
    #: batch's newest, or an earlier batch's when all of this batch's events were late.
    triggers: dict[UserId, tuple[Timestamp, str]] = field(default_factory=dict)
    #: Touched users whose batch events were all older than their state's newest (re-read late).
    late: set[UserId] = field(default_factory=set)
    #: Events left out by the guard: redeliveries, and events past a user's rate limit.
    duplicates: int = 0
    rate_limited: int = 0
    #: Users whose state had expired (older than the TTL) and started afresh.
    expired: int = 0


def apply_events(
    states: dict[UserId, UserState],
    interactions: Sequence[tuple[str, Interaction]],
    searches: Sequence[tuple[str, Search, Vector]],
    index: ItemIndex,
    learner: InterestLearner,
    covisit_window: int = 5,
    covisit_decay: float = 0.0,
    guard: UserGuard | None = None,
) -> BatchEffects:
    """Fold ``(event_id, event)`` interactions and ``(event_id, search, query_vector)``
    searches into ``states`` (updated in place), in event-time order.

    With a ``guard``, redelivered events and events past the user's rate limit change
    nothing (no interest update, no co-visitation or trending increment, no refresh), and
    an expired state is replaced by a fresh one before its first event.

    >>> import numpy as np
    >>> idx = ItemIndex(dim=2); idx.upsert("a", np.array([1, 0], np.float32)); idx.upsert("b", np.array([0, 1], np.float32))
    >>> class C:
    ...     def __init__(self, item, ts): self.user_id, self.item_id, self.kind, self.ts, self.session_id = "u", item, "click", ts, None
    >>> states = {"u": UserState()}
    >>> fx = apply_events(states, [("e1", C("a", 1.0)), ("e2", C("b", 2.0))], [], idx, InterestLearner())
    >>> states["u"].recent, fx.triggers["u"], fx.pairs[0]
    (['a', 'b'], (2.0, 'e2'), ('a', 'b', 1.0))
    """
    fx = BatchEffects()
    timeline: list[tuple[float, int, str, object, Vector | None]] = [
        (ev.ts, i, event_id, ev, None) for i, (event_id, ev) in enumerate(interactions)
    ]
    timeline += [(q.ts, len(interactions) + i, event_id, q, v) for i, (event_id, q, v) in enumerate(searches)]
    timeline.sort(key=lambda t: (t[0], t[1]))
    admissions: dict[UserId, Admission] = {}
    for ts, _, event_id, ev, qvec in timeline:
        user_id = ev.user_id  # type: ignore[attr-defined]
        state = states.get(user_id) or UserState()
        if guard is not None:
            adm = admissions.get(user_id)
            if adm is None:
                if guard.expired(state, ts):
                    state = UserState()
                    fx.expired += 1
                adm = admissions[user_id] = guard.open(state)
            verdict = adm.admit(event_id, ts)
            if verdict != "ok":
                states[user_id] = state
                if verdict == "duplicate":
                    fx.duplicates += 1
                else:
                    fx.rate_limited += 1
                continue
        newest_ts = state.last_ts
        if qvec is None:
            c: Interaction = ev  # type: ignore[assignment]
            # pairs with the items before it in event time; a late event also corrects the
            # pairs of the events after it, so arrival order does not matter
            pairs, together = state.pair_history().increments(c.item_id, c.ts, c.kind, learner.max_history,
                                                              covisit_window, covisit_decay)
            n = len(fx.events)
            fx.events.append(f"{user_id}/{event_id}")
            fx.pairs.extend(pairs)
            fx.pair_events.extend([n] * len(pairs))
            fx.bundle_pairs.extend(together)
            fx.bundle_events.extend([n] * len(together))
            fx.counts.append((c.item_id, learner.kind_weights[c.kind], c.ts))
            fx.count_events.append(n)
            state = learner.learn_interaction(state, c.item_id, index.vector(c.item_id), c.kind, c.ts, c.session_id)
        else:
            q: Search = ev  # type: ignore[assignment]
            state = learner.learn_query(state, qvec, q.ts, q.session_id)
        if ts >= newest_ts:  # the newest event so far (of equal times, the later applied)
            object.__setattr__(state, "last_event_id", event_id)  # a new state, not shared yet
        states[user_id] = state
        prev = fx.triggers.get(user_id)
        if prev is None or ts >= prev[0]:
            fx.triggers[user_id] = (ts, event_id)
    for user_id, adm in admissions.items():
        states[user_id] = adm.close(states[user_id])
    for user_id, (ts, _) in fx.triggers.items():
        state = states[user_id]
        if state.last_ts > ts and state.last_event_id:  # only late events: answer the newest one
            fx.triggers[user_id] = (state.last_ts, state.last_event_id)
            fx.late.add(user_id)
    return fx


class Impression(Protocol):
    """What the site showed (ImpressionEvent has this shape)."""

    request_id: str
    user_id: str
    item_ids: list[str]
    ts: float


@dataclass
class FeedbackEffects:
    """What a batch's feedback changed beyond the users' bandit records."""

    #: Impressions and clicks (rewards of 1) per item, for the items' shared statistics.
    shown: dict[ItemId, int] = field(default_factory=dict)
    clicked: dict[ItemId, int] = field(default_factory=dict)
    #: The same increments one by one, each with the event it comes from (``user/impression/request``
    #: or ``user/reward/request/item``), so a reader can apply each once (see ``streams.internal``).
    shown_by: list[tuple[str, ItemId]] = field(default_factory=list)
    clicked_by: list[tuple[str, ItemId]] = field(default_factory=list)
    rewards: int = 0
    impressions: int = 0
    #: How the batch's feedback resolved, by :data:`models.feedback.COUNTERS` name (rewards of 1
    #: and 0, duplicate, late, early and orphan clicks, ...): the change in the users' join counts.
    outcomes: dict[str, int] = field(default_factory=dict)


def apply_feedback(
    states: dict[UserId, UserState],
    impressions: Sequence[Impression],
    interactions: Sequence[Interaction],
    bandit_of: Callable[[UserId, UserState], UserBandit],
    searches: Sequence[Search] = (),
) -> FeedbackEffects:
    """Join a batch's impressions with its clicks carrying a request_id, per user, in event-time
    order, and update each touched user's bandit record in ``states`` (in place).

    ``interactions`` whose ``request_id`` is set are clicks on a published list; every event
    (searches and interactions without a request_id too) moves its user's event time, so
    windows that ended give their 0 rewards. ``bandit_of(user_id, state)`` reads a user's
    record. Only newly seen impressions count in ``shown`` (a redelivery changes nothing).

    >>> from models.user_bandit import UserBandit
    >>> class I:
    ...     request_id, user_id, item_ids, ts = "r1", "u", ["a", "b"], 1.0
    >>> class C:
    ...     user_id, item_id, kind, ts, session_id, request_id = "u", "b", "click", 2.0, None, "r1"
    >>> states = {"u": UserState()}
    >>> fx = apply_feedback(states, [I(), I()], [C()], lambda u, s: UserBandit.from_json(s.bandit, "thompson"))
    >>> fx.shown, fx.clicked, fx.impressions
    ({'a': 1, 'b': 1}, {'b': 1}, 1)
    >>> fx.outcomes
    {'impressions': 1, 'rewards_1': 1, 'duplicate_impressions': 1}
    >>> fx.clicked_by
    [('u/reward/r1/b', 'b')]
    """
    fx = FeedbackEffects()
    timeline: list[tuple[float, int, object]] = [(float(i.ts), 0, i) for i in impressions]
    timeline += [(float(c.ts), 1, c) for c in interactions]
    timeline += [(float(q.ts), 1, q) for q in searches]
    timeline.sort(key=lambda t: (t[0], t[1]))
    feedback_users = {i.user_id for i in impressions} | {c.user_id for c in interactions if _request_id(c)}
    bandits: dict[UserId, UserBandit] = {}
    counts_before: dict[UserId, dict[str, int]] = {}
    for ts, kind, ev in timeline:
        user_id: UserId = ev.user_id  # type: ignore[attr-defined]
        if user_id not in feedback_users and not states.get(user_id, UserState()).bandit:
            continue  # no feedback and nothing pending: nothing to move
        b = bandits.get(user_id)
        if b is None:
            b = bandits[user_id] = bandit_of(user_id, states.get(user_id) or UserState())
            counts_before[user_id] = dict(b.join.counts)
        if kind == 0:
            imp: Impression = ev  # type: ignore[assignment]
            rewards, new = b.impression(imp.request_id, imp.item_ids, ts)
            if new:
                fx.impressions += 1
                for item_id in dict.fromkeys(imp.item_ids):
                    fx.shown[item_id] = fx.shown.get(item_id, 0) + 1
                    fx.shown_by.append((f"{user_id}/impression/{imp.request_id}", item_id))
        elif (request_id := _request_id(ev)) is not None:
            rewards = b.click(request_id, ev.item_id, ts)  # type: ignore[attr-defined]
        else:
            rewards = b.advance(ts)
        for r in rewards:
            fx.rewards += 1
            if r.reward:
                fx.clicked[r.item_id] = fx.clicked.get(r.item_id, 0) + 1
                fx.clicked_by.append((f"{user_id}/reward/{r.request_id}/{r.item_id}", r.item_id))
    for user_id, b in bandits.items():
        states[user_id] = replace(states.get(user_id) or UserState(), bandit=b.to_json())
        before = counts_before[user_id]
        for name, n in b.join.counts.items():
            if n != before.get(name, 0):
                fx.outcomes[name] = fx.outcomes.get(name, 0) + n - before.get(name, 0)
    return fx


def _request_id(ev: object) -> str | None:
    rid = getattr(ev, "request_id", None)
    return str(rid) if rid else None
