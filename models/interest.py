"""User interest: time-decayed weighted means of item (and query) embeddings.

A user has a long-term and a short-term (session) vector. Each is a decayed mean
``S / W`` where every interaction adds ``weight(kind) * embedding`` and all earlier
mass halves every ``half_life`` seconds of *event* time, so a replay of the same
events gives the same state. The learner holds settings only; the learned state is
a :class:`UserState` value kept in a Faust table, one per user.

>>> import numpy as np
>>> learner = InterestLearner(long_half_life=86400.0, short_half_life=1800.0)
>>> s = UserState()
>>> s = learner.learn_interaction(s, "i1", np.array([1.0, 0.0], np.float32), "click", ts=1000.0)
>>> s = learner.learn_interaction(s, "i2", np.array([0.0, 1.0], np.float32), "purchase", ts=1000.0)
>>> [round(float(x), 3) for x in learner.short_vector(s)]
[0.243, 0.97]
>>> s.recent, s.bought
(['i1', 'i2'], ['i2'])
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from models.bundles import is_engagement
from models.event_order import insert_latest, times_for
from models.pair_history import PairHistory
from models.types import ItemId, Timestamp, Vector
from models.vectors import decay, decode_vector, encode_vector, l2_normalize

_MAGIC = b"SRU1"

#: How much one interaction of each kind moves the interest vectors.
KIND_WEIGHTS: dict[str, float] = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}


@dataclass(frozen=True)
class DecayedMean:
    """A weighted mean whose mass decays with time: ``vector = total / weight``."""

    total: Vector | None = None
    weight: float = 0.0
    ts: Timestamp = 0.0

    def add(self, v: Vector, w: float, ts: Timestamp, half_life: float) -> DecayedMean:
        """Fold ``v`` with weight ``w`` observed at ``ts`` (late events are discounted)."""
        if self.total is None:
            return DecayedMean(np.asarray(v, np.float32) * w, w, ts)
        if ts >= self.ts:
            f = decay(ts - self.ts, half_life)
            return DecayedMean(self.total * f + v * w, self.weight * f + w, ts)
        g = decay(self.ts - ts, half_life)
        return DecayedMean(self.total + v * (w * g), self.weight + w * g, self.ts)

    def weight_at(self, now: Timestamp, half_life: float) -> float:
        """Mass left at ``now``: how much evidence still backs the vector."""
        return self.weight * decay(now - self.ts, half_life) if self.total is not None else 0.0

    def direction(self) -> Vector | None:
        """Unit vector of the mean, or None before any evidence."""
        return None if self.total is None else l2_normalize(self.total)

    def to_dict(self) -> dict[str, Any] | None:
        if self.total is None:
            return None
        return {"v": encode_vector(self.total), "w": self.weight, "ts": self.ts}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> DecayedMean:
        if not d:
            return cls()
        return cls(decode_vector(d["v"]), float(d["w"]), float(d["ts"]))


@dataclass(frozen=True)
class UserState:
    """Everything streamrec learns about one user (the value of the ``users`` table)."""

    long: DecayedMean = field(default_factory=DecayedMean)
    short: DecayedMean = field(default_factory=DecayedMean)
    query: DecayedMean = field(default_factory=DecayedMean)
    #: The latest ``max_recent`` items interacted with, oldest first, by event time (``recent_ts``).
    recent: list[ItemId] = field(default_factory=list)
    #: The latest ``max_bought`` items bought, by the time of their latest purchase (``bought_ts``).
    bought: list[ItemId] = field(default_factory=list)
    #: The latest ``max_recent`` items engaged with (clicked, added to the cart or bought: not
    #: just viewed), by the time of their latest engagement (``engaged_ts``); bundles pair these.
    engaged: list[ItemId] = field(default_factory=list)
    session_id: str | None = None
    last_ts: Timestamp = 0.0
    n_events: int = 0
    #: Hashes of the latest event ids decided on (see :mod:`models.user_guard`), oldest first by
    #: event time (``seen_ts``).
    seen: tuple[int, ...] = ()
    #: Rate-limit token bucket: tokens left and the event time they were counted at.
    rl_tokens: float = 0.0
    rl_ts: Timestamp = 0.0
    #: The user's online bandit record as JSON (:class:`models.user_bandit.UserBandit`; "" for none yet).
    bandit: str = ""
    #: Id of the newest event (by event time, at ``last_ts``) in the state: what a refresh answers.
    last_event_id: str = ""
    #: Event times of ``recent``, ``bought`` and ``seen``, entry by entry (see :mod:`models.event_order`).
    recent_ts: list[Timestamp] = field(default_factory=list)
    bought_ts: list[Timestamp] = field(default_factory=list)
    seen_ts: tuple[Timestamp, ...] = ()
    engaged_ts: list[Timestamp] = field(default_factory=list)
    #: The latest ``max_history`` interactions in event time and a summary of the ones before:
    #: what makes co-visitation and bundle pairs independent of arrival order
    #: (see :mod:`models.pair_history`).
    history: PairHistory = field(default_factory=PairHistory)

    def __post_init__(self) -> None:
        # States stored before the times existed: their lists in stored order, ending at last_ts.
        for name in ("recent", "bought", "seen", "engaged"):
            if len(getattr(self, name + "_ts")) != len(getattr(self, name)):
                times = times_for(len(getattr(self, name)), self.last_ts)
                object.__setattr__(self, name + "_ts", tuple(times) if name == "seen" else times)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the changelog-backed table."""
        return {
            "long": self.long.to_dict(),
            "short": self.short.to_dict(),
            "query": self.query.to_dict(),
            "recent": self.recent,
            "bought": self.bought,
            "session_id": self.session_id,
            "last_ts": self.last_ts,
            "n_events": self.n_events,
            "seen": list(self.seen),
            "rl": [self.rl_tokens, self.rl_ts],
            "bandit": self.bandit,
            "last_event_id": self.last_event_id,
            "recent_ts": self.recent_ts,
            "bought_ts": self.bought_ts,
            "seen_ts": list(self.seen_ts),
            "engaged": self.engaged,
            "engaged_ts": self.engaged_ts,
            "history": {**self.history.to_json(), "t": list(self.history.times)},
        }

    def pair_history(self) -> PairHistory:
        """The state's pair history; for a state written before it existed, an empty one whose
        earlier interactions are the state's lists."""
        if self.history.items or self.history.earlier or not self.recent:
            return self.history
        return PairHistory.starting_from(self.recent, self.engaged, self.bought)

    def to_bytes(self) -> bytes:
        """Compact binary form for the table: a JSON header, then the raw float32 vectors.

        Vectors are stored bit-exactly, so a state recovered from the changelog
        equals the state that was written. The dedup hashes follow the vectors as
        little-endian uint64, then their event times as float64. No pickle: the header is
        JSON, the rest raw numbers.
        """
        vectors: list[bytes] = []
        means: dict[str, Any] = {}
        for name in ("long", "short", "query"):
            m: DecayedMean = getattr(self, name)
            if m.total is not None:
                raw = np.asarray(m.total, dtype="<f4").tobytes()
                means[name] = [len(raw), m.weight, m.ts]
                vectors.append(raw)
        header = json.dumps(
            {
                "m": means,
                "recent": self.recent,
                "bought": self.bought,
                "session_id": self.session_id,
                "last_ts": self.last_ts,
                "n_events": self.n_events,
                "ns": len(self.seen),
                "rl": [self.rl_tokens, self.rl_ts],
                "rt": self.recent_ts,
                "bt": self.bought_ts,
                "le": self.last_event_id,
                **({"b": self.bandit} if self.bandit else {}),
                **({"en": self.engaged, "et": self.engaged_ts} if self.engaged else {}),
                **({"hi": self.history.to_json()} if self.history.items or self.history.earlier else {}),
            },
            separators=(",", ":"),
        ).encode()
        if self.seen:
            vectors.append(np.asarray(self.seen, dtype="<u8").tobytes())
            vectors.append(np.asarray(self.seen_ts, dtype="<f8").tobytes())
        if self.history.times:  # the pair history's event times, after everything else
            vectors.append(np.asarray(self.history.times, dtype="<f8").tobytes())
        return _MAGIC + struct.pack("<I", len(header)) + header + b"".join(vectors)

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> UserState:
        """Inverse of :meth:`to_bytes` (None or empty gives a new user's state)."""
        if not raw:
            return cls()
        if raw[:4] != _MAGIC:
            raise ValueError("not a serialised UserState")
        (n,) = struct.unpack_from("<I", raw, 4)
        h = json.loads(raw[8 : 8 + n])
        offset = 8 + n
        means: dict[str, DecayedMean] = {}
        for name in ("long", "short", "query"):
            if name in h["m"]:
                size, weight, ts = h["m"][name]
                vec = np.frombuffer(raw, dtype="<f4", count=size // 4, offset=offset).astype(np.float32)
                means[name] = DecayedMean(vec, float(weight), float(ts))
                offset += size
        ns = int(h.get("ns", 0))
        seen = tuple(np.frombuffer(raw, dtype="<u8", count=ns, offset=offset).tolist()) if ns else ()
        offset += 8 * ns
        seen_ts: tuple[float, ...] = ()
        if ns and len(raw) >= offset + 8 * ns:  # states written before the times have none
            seen_ts = tuple(np.frombuffer(raw, dtype="<f8", count=ns, offset=offset).tolist())
        if seen_ts:
            offset += 8 * ns
        history = PairHistory()
        if "hi" in h:  # states written before the field existed have none
            nh = len(h["hi"].get("i", ()))
            times = np.frombuffer(raw, dtype="<f8", count=nh, offset=offset).tolist() if nh else []
            history = PairHistory.from_json(h["hi"], times)
        rl_tokens, rl_ts = h.get("rl", (0.0, 0.0))
        return cls(
            recent=list(h["recent"]),
            bought=list(h["bought"]),
            session_id=h["session_id"],
            last_ts=float(h["last_ts"]),
            n_events=int(h["n_events"]),
            seen=seen,
            rl_tokens=float(rl_tokens),
            rl_ts=float(rl_ts),
            bandit=str(h.get("b", "")),  # states written before the field existed have none
            last_event_id=str(h.get("le", "")),
            recent_ts=[float(t) for t in h.get("rt", ())],
            bought_ts=[float(t) for t in h.get("bt", ())],
            seen_ts=seen_ts,
            engaged=list(h.get("en", ())),  # states written before the field existed have none
            engaged_ts=[float(t) for t in h.get("et", ())],
            history=history,
            **means,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> UserState:
        if not d:
            return cls()
        return cls(
            long=DecayedMean.from_dict(d.get("long")),
            short=DecayedMean.from_dict(d.get("short")),
            query=DecayedMean.from_dict(d.get("query")),
            recent=list(d.get("recent") or []),
            bought=list(d.get("bought") or []),
            session_id=d.get("session_id"),
            last_ts=float(d.get("last_ts") or 0.0),
            n_events=int(d.get("n_events") or 0),
            seen=tuple(int(x) for x in d.get("seen") or ()),
            rl_tokens=float((d.get("rl") or (0.0, 0.0))[0]),
            rl_ts=float((d.get("rl") or (0.0, 0.0))[1]),
            bandit=str(d.get("bandit") or ""),
            last_event_id=str(d.get("last_event_id") or ""),
            recent_ts=[float(t) for t in d.get("recent_ts") or ()],
            bought_ts=[float(t) for t in d.get("bought_ts") or ()],
            seen_ts=tuple(float(t) for t in d.get("seen_ts") or ()),
            engaged=list(d.get("engaged") or []),
            engaged_ts=[float(t) for t in d.get("engaged_ts") or ()],
            history=PairHistory.from_json(d.get("history"), (d.get("history") or {}).get("t", ())),
        )


def _session(state: UserState, session_id: str | None, ts: Timestamp) -> str | None:
    """The session after an event of ``session_id`` at ``ts``: a late event does not change it
    (and of two at the same time, the greater id wins, whichever came first)."""
    if not session_id or state.session_id is None or ts > state.last_ts:
        return session_id or state.session_id
    if ts == state.last_ts:
        return max(session_id, state.session_id)
    return state.session_id


class InterestLearner:
    """Updates :class:`UserState` values from interactions and searches.

    Parameters are settings; the learned state is passed in and returned (never
    kept here), so one learner serves every user of a worker. ``max_history`` is how many of
    a user's latest interactions the state keeps so that late events pair as if they had come
    in order (:mod:`models.pair_history`).
    """

    def __init__(
        self,
        long_half_life: float = 30 * 86400.0,
        short_half_life: float = 1800.0,
        query_half_life: float = 900.0,
        kind_weights: dict[str, float] | None = None,
        query_weight: float = 3.0,
        max_recent: int = 20,
        max_bought: int = 500,
        max_history: int = 50,
    ) -> None:
        self.long_half_life = long_half_life
        self.short_half_life = short_half_life
        self.query_half_life = query_half_life
        self.kind_weights = dict(kind_weights or KIND_WEIGHTS)
        self.query_weight = query_weight
        self.max_recent = max_recent
        self.max_bought = max_bought
        self.max_history = max_history

    def learn_interaction(
        self,
        state: UserState,
        item_id: ItemId,
        item_vector: Vector | None,
        kind: str,
        ts: Timestamp,
        session_id: str | None = None,
    ) -> UserState:
        """Fold one click-stream interaction into the user's state."""
        w = self.kind_weights[kind]
        long, short = state.long, state.short
        if item_vector is not None:
            long = long.add(item_vector, w, ts, self.long_half_life)
            short = short.add(item_vector, w, ts, self.short_half_life)
        recent, recent_ts = insert_latest(state.recent, state.recent_ts, item_id, ts, self.max_recent)
        bought, bought_ts = state.bought, state.bought_ts
        if kind == "purchase":
            bought, bought_ts = insert_latest(bought, bought_ts, item_id, ts, self.max_bought)
        engaged, engaged_ts = state.engaged, state.engaged_ts
        if is_engagement(kind):
            engaged, engaged_ts = insert_latest(engaged, engaged_ts, item_id, ts, self.max_recent)
        history = state.pair_history().insert((item_id, ts, kind), self.max_history)
        return replace(
            state,
            long=long,
            short=short,
            recent=recent,
            recent_ts=recent_ts,
            bought=bought,
            bought_ts=bought_ts,
            engaged=engaged,
            engaged_ts=engaged_ts,
            history=history,
            session_id=_session(state, session_id, ts),
            last_ts=max(state.last_ts, ts),
            n_events=state.n_events + 1,
        )

    def learn_query(
        self, state: UserState, query_vector: Vector, ts: Timestamp, session_id: str | None = None
    ) -> UserState:
        """Fold a search query's embedding into the short-term vector and the query vector."""
        return replace(
            state,
            short=state.short.add(query_vector, self.query_weight, ts, self.short_half_life),
            query=state.query.add(query_vector, 1.0, ts, self.query_half_life),
            session_id=_session(state, session_id, ts),
            last_ts=max(state.last_ts, ts),
            n_events=state.n_events + 1,
        )

    def long_vector(self, state: UserState) -> Vector | None:
        """Unit long-term interest vector (None for a new user)."""
        return state.long.direction()

    def short_vector(self, state: UserState) -> Vector | None:
        """Unit short-term (session) interest vector."""
        return state.short.direction()

    def confidences(self, state: UserState, now: Timestamp) -> tuple[float, float, float]:
        """How much to trust the long, short and query vectors at ``now`` (each in [0, 1])."""

        def squash(w: float, scale: float) -> float:
            return float(w / (w + scale)) if w > 0 else 0.0

        return (
            squash(state.long.weight_at(now, self.long_half_life), 2.0),
            squash(state.short.weight_at(now, self.short_half_life), 2.0),
            squash(state.query.weight_at(now, self.query_half_life), 0.5),
        )
