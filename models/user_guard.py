"""Admission of one event into a user's state: duplicates, floods and expired state.

Three rules, all decided from the user's own state (so they travel with it through the
changelog and a restarted worker decides exactly as the crashed one did):

* **Dedup**: the ids of the latest ``dedup_window`` events (by event time) the user's state
  took a decision on are remembered (as 64-bit hashes); an event whose id is among them is a
  redelivery (at-least-once after a crash or a producer retry) and changes nothing.
* **Rate limit**: a token bucket per user, ``rate_per_s`` tokens a second up to ``burst``,
  refilled by *event* time, whose clock never goes back. A replayed backlog is judged as it
  was lived, and a bot forging timestamps gains nothing: timestamps are bounded by the
  decoder (at most ``max_clock_skew_s`` ahead), so a user's state takes at most
  ``burst + rate_per_s * (elapsed + skew)`` events, however many are sent.
* **TTL**: a state whose newest event is older than ``state_ttl_s`` is forgotten (the user
  starts afresh).

>>> g = UserGuard(dedup_window=4, rate_per_s=1.0, burst=2)
>>> s = UserState()
>>> s, v1 = g.admit(s, "e1", 100.0)
>>> s, v2 = g.admit(s, "e1", 100.0)    # redelivered
>>> s, v3 = g.admit(s, "e2", 100.0)
>>> s, v4 = g.admit(s, "e3", 100.0)    # bucket empty
>>> s, v5 = g.admit(s, "e4", 101.0)    # one second later: one token
>>> [v1, v2, v3, v4, v5]
['ok', 'duplicate', 'ok', 'rate_limited', 'ok']
"""

from __future__ import annotations

import copy
import hashlib
from typing import Literal

from models.interest import UserState
from models.types import Timestamp

Verdict = Literal["ok", "duplicate", "rate_limited"]


def event_hash(event_id: str) -> int:
    """A stable 64-bit hash of an event id (the same in every process).

    >>> event_hash("e1") == event_hash("e1") != event_hash("e2")
    True
    """
    return int.from_bytes(hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class UserGuard:
    """Decides whether an event may change a user's state (settings only; state is passed in)."""

    def __init__(
        self, dedup_window: int = 128, rate_per_s: float = 5.0, burst: int = 100, state_ttl_s: float = 0.0
    ) -> None:
        if dedup_window < 0 or rate_per_s < 0 or burst < 1 or state_ttl_s < 0:
            raise ValueError("dedup_window, rate_per_s and state_ttl_s must be >= 0 and burst >= 1")
        self.dedup_window = dedup_window
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self.state_ttl_s = state_ttl_s

    def expired(self, state: UserState, now: Timestamp) -> bool:
        """True when ``state`` has seen no event for longer than the TTL at ``now``."""
        return bool(self.state_ttl_s) and state.last_ts > 0 and now - state.last_ts > self.state_ttl_s

    def open(self, state: UserState) -> Admission:
        """Start deciding on a batch of one user's events (cheap per event; see :class:`Admission`)."""
        return Admission(self, state)

    def admit(self, state: UserState, event_id: str, ts: Timestamp) -> tuple[UserState, Verdict]:
        """The state with the decision recorded, and the decision for event ``event_id`` at ``ts``.

        Only ``"ok"`` events may then be learned; the others leave the interest state as it was.
        """
        adm = self.open(state)
        verdict = adm.admit(event_id, ts)
        return adm.close(state), verdict


class Admission:
    """One user's guard state while a micro-batch is applied: mutable, written back once.

    ``admit`` costs a hash and a set lookup per event; ``close`` copies the decisions into
    the user's (immutable) state.
    """

    __slots__ = ("_changed", "_clock", "_guard", "_seen", "_set", "_tokens")

    def __init__(self, guard: UserGuard, state: UserState) -> None:
        self._guard = guard
        self._seen = list(zip(state.seen_ts, state.seen, strict=True))
        self._set = set(state.seen)
        self._tokens, self._clock = state.rl_tokens, state.rl_ts
        self._changed = False

    def admit(self, event_id: str, ts: Timestamp) -> Verdict:
        """Decide on one event (in event-time order) and remember the decision."""
        g = self._guard
        if g.dedup_window:
            h = event_hash(event_id)
            if h in self._set:
                return "duplicate"
            self._seen.append((ts, h))
            self._set.add(h)
        self._changed = True
        if not g.rate_per_s:
            return "ok"
        if self._clock <= 0.0:
            self._tokens, self._clock = g.burst, ts
        elif ts > self._clock:
            self._tokens, self._clock = min(g.burst, self._tokens + (ts - self._clock) * g.rate_per_s), ts
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return "ok"
        return "rate_limited"

    def close(self, state: UserState) -> UserState:
        """``state`` (the user's state after learning the batch) with the decisions recorded."""
        if not self._changed:
            return state
        w = self._guard.dedup_window
        # The newest ``w`` by event time (ties by hash): the same window whatever the arrival order.
        kept = sorted(self._seen)[-w:] if w else []
        new = copy.copy(state)  # a frozen dataclass; dataclasses.replace would cost more
        object.__setattr__(new, "seen", tuple(h for _, h in kept))
        object.__setattr__(new, "seen_ts", tuple(t for t, _ in kept))
        object.__setattr__(new, "rl_tokens", self._tokens)
        object.__setattr__(new, "rl_ts", self._clock)
        return new
