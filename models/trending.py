"""Trending items: exponentially time-decayed interaction counts.

Counts are kept relative to a reference time so that no per-item decay runs on
update; ranking is by the stored value. Decay uses event time, so a replay of the
same events gives the same ranking.

>>> t = Trending(half_life=3600.0)
>>> t.learn_one("old", 10.0, ts=0.0)
>>> t.learn_one("new", 6.0, ts=3600.0)
>>> t.top(2)
[('new', 1.0), ('old', 0.833...)]
"""

from __future__ import annotations

import heapq
import math

from models.types import ItemId, Timestamp

_RENORMALISE_AT = 500.0  # log2 growth before values are rescaled (float64 overflows near 1024)


class Trending:
    """Decayed popularity with half-life ``half_life`` seconds."""

    def __init__(self, half_life: float = 3600.0) -> None:
        self.half_life = half_life
        self._values: dict[ItemId, float] = {}
        self._ref_ts: Timestamp | None = None

    def __len__(self) -> int:
        return len(self._values)

    def learn_one(self, item_id: ItemId, weight: float, ts: Timestamp) -> None:
        """Add ``weight`` for an interaction at ``ts``."""
        if self._ref_ts is None:
            self._ref_ts = ts
        exponent = (ts - self._ref_ts) / self.half_life
        if exponent > _RENORMALISE_AT:
            scale = 2.0 ** (-exponent)
            self._values = {k: v * scale for k, v in self._values.items() if v * scale > 1e-300}
            self._ref_ts = ts
            exponent = 0.0
        self._values[item_id] = self._values.get(item_id, 0.0) + weight * 2.0 ** max(exponent, -1000.0)

    def forget(self, item_id: ItemId) -> None:
        self._values.pop(item_id, None)

    def score(self, item_id: ItemId) -> float:
        """Raw relative value (only comparable within this instance)."""
        return self._values.get(item_id, 0.0)

    def top(self, k: int) -> list[tuple[ItemId, float]]:
        """The ``k`` hottest items with scores normalised so the hottest is 1 (ties by id)."""
        best = heapq.nsmallest(k, self._values.items(), key=lambda kv: (-kv[1], kv[0]))
        if not best or best[0][1] <= 0 or not math.isfinite(best[0][1]):
            return []
        top = best[0][1]
        return [(i, v / top) for i, v in best]
