"""Admission of one event into a user's state: duplicates, floods and expired state.

Three rules, all decided from the user's own state (so they travel with it through the
changelog and a restarted worker decides exactly as the crashed one did):

* **Dedup**: the last ``dedup_window`` event ids the user's state took a decision on are
  remembered (as 64-bit hashes); an event whose id is among them is a redelivery
  (at-least-once after a crash or a producer retry) and changes nothing.
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

import hashlib
from dataclasses import replace
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

    def admit(self, state: UserState, event_id: str, ts: Timestamp) -> tuple[UserState, Verdict]:
        """The state with the decision recorded, and the decision for event ``event_id`` at ``ts``.

        Only ``"ok"`` events may then be learned; the others leave the interest state as it was.
        """
        seen = state.seen
        h = 0
        if self.dedup_window:
            h = event_hash(event_id)
            if h in seen:
                return state, "duplicate"
            seen = (*seen[-(self.dedup_window - 1) :], h) if self.dedup_window > 1 else (h,)
        verdict: Verdict = "ok"
        tokens, clock = state.rl_tokens, state.rl_ts
        if self.rate_per_s:
            if clock <= 0.0:
                tokens, clock = self.burst, ts
            elif ts > clock:
                tokens, clock = min(self.burst, tokens + (ts - clock) * self.rate_per_s), ts
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                verdict = "rate_limited"
        return replace(state, seen=seen, rl_tokens=tokens, rl_ts=clock), verdict
