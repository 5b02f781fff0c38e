"""Trending items: exponentially time-decayed interaction counts.

Counts are kept relative to a reference time so that no per-item decay runs on
update; ranking is by the stored value. Decay uses event time, so a replay of the
same events gives the same ranking. Values live in one numpy array, so the top
items are found by a partial sort, not by a pass of Python over every item.

>>> t = Trending(half_life=3600.0)
>>> t.learn_one("old", 10.0, ts=0.0)
>>> t.learn_one("new", 6.0, ts=3600.0)
>>> t.top(2)
[('new', 1.0), ('old', 0.833...)]
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from models.types import ItemId, Timestamp

_RENORMALISE_AT = 500.0  # log2 growth before values are rescaled (float64 overflows near 1024)


class Trending:
    """Decayed popularity with half-life ``half_life`` seconds."""

    def __init__(self, half_life: float = 3600.0) -> None:
        self.half_life = half_life
        self._rows: dict[ItemId, int] = {}
        self._ids: list[ItemId] = []
        self._values: NDArray[np.float64] = np.zeros(256, np.float64)
        self._free: list[int] = []
        self._ref_ts: Timestamp | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def _row(self, item_id: ItemId) -> int:
        r = self._rows.get(item_id)
        if r is not None:
            return r
        if self._free:
            r = self._free.pop()
            self._ids[r] = item_id
        else:
            r = len(self._ids)
            if r == self._values.shape[0]:
                self._values = np.concatenate([self._values, np.zeros(r, np.float64)])
            self._ids.append(item_id)
        self._rows[item_id] = r
        self._values[r] = 0.0
        return r

    def learn_one(self, item_id: ItemId, weight: float, ts: Timestamp) -> None:
        """Add ``weight`` for an interaction at ``ts``."""
        if self._ref_ts is None:
            self._ref_ts = ts
        exponent = (ts - self._ref_ts) / self.half_life
        if exponent > _RENORMALISE_AT:
            values = self._values[: len(self._ids)]
            values *= 2.0 ** (-exponent)
            values[values <= 1e-300] = 0.0
            self._ref_ts = ts
            exponent = 0.0
        r = self._row(item_id)
        self._values[r] += weight * 2.0 ** max(exponent, -1000.0)

    def forget(self, item_id: ItemId) -> None:
        r = self._rows.pop(item_id, None)
        if r is not None:
            self._values[r] = 0.0
            self._free.append(r)

    def score(self, item_id: ItemId) -> float:
        """Raw relative value (only comparable within this instance)."""
        r = self._rows.get(item_id)
        return 0.0 if r is None else float(self._values[r])

    def top(self, k: int) -> list[tuple[ItemId, float]]:
        """The ``k`` hottest items with scores normalised so the hottest is 1 (ties by id)."""
        n = len(self._ids)
        if k <= 0 or n == 0:
            return []
        values = self._values[:n]
        if k < n:
            threshold = np.partition(values, n - k)[n - k]
            cand = np.flatnonzero(values >= threshold)
        else:
            cand = np.arange(n)
        cand = cand[values[cand] > 0]
        best = sorted((-float(values[r]), self._ids[r]) for r in cand.tolist())[:k]
        if not best or not math.isfinite(best[0][0]):
            return []
        top = -best[0][0]
        return [(i, -v / top) for v, i in best]
