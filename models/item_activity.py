"""Per-item activity statistics the learned ranker reads, kept beside trending.

:class:`ItemActivity` is a :class:`~models.trending.Trending` (it keeps the decayed
trending counts exactly as before) that also records, from the same increments:

* the all-time number of interactions (the ranker uses its log as popularity),
* the time of the latest interaction (recency),
* a windowed engagement rate: decayed count of interactions stronger than a view
  (click, add to cart, purchase) over the decayed count of all interactions, with a
  Beta prior, so a barely-seen item sits near the prior. Impressions are not
  consumed, so this is the share of engaged interactions, the CTR estimate the
  event log supports.

Every worker applies the same item-stats increments in the same order, so every
worker holds the same statistics, and a replay of an event log gives the features
the pipeline saw at each moment (event time only, nothing from the future).

>>> a = ItemActivity(half_life=3600.0, window_half_life=86400.0, view_weight=1.0)
>>> a.learn_one("x", 1.0, ts=100.0); a.learn_one("x", 2.0, ts=200.0)
>>> a.count("x"), a.last_ts("x"), round(a.engagement("x"), 3)
(2.0, 200.0, 0.375)
>>> a.top(1)[0][0]
'x'
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from models.trending import Trending
from models.types import ItemId, Timestamp

FloatArray = NDArray[np.float64]

_RENORMALISE_AT = 500.0


class ItemActivity(Trending):
    """Trending counts plus all-time counts, latest interaction time and engagement rate.

    Parameters
    ----------
    half_life
        Half-life of the trending counts (seconds), as for :class:`Trending`.
    window_half_life
        Half-life of the engagement-rate window (seconds).
    view_weight
        The weight a view carries in the increments; heavier ones count as engaged.
    prior_rate, prior_strength
        Beta prior of the engagement rate: ``prior_strength`` pseudo-interactions
        at rate ``prior_rate``.
    """

    def __init__(
        self,
        half_life: float = 3600.0,
        window_half_life: float = 86400.0,
        view_weight: float = 1.0,
        prior_rate: float = 0.25,
        prior_strength: float = 2.0,
    ) -> None:
        super().__init__(half_life=half_life)
        self.window_half_life = window_half_life
        self.view_weight = view_weight
        self.prior_rate = float(prior_rate)
        self.prior_strength = prior_strength
        self._arow: dict[ItemId, int] = {}
        self._aids: list[ItemId] = []
        self._count = np.zeros(256, np.float64)
        self._last = np.full(256, np.nan, np.float64)
        self._win_all = np.zeros(256, np.float64)
        self._win_eng = np.zeros(256, np.float64)
        self._win_ref: Timestamp | None = None
        self._win_latest: Timestamp | None = None
        #: Bumped whenever an item gets a row, so row maps built on it know when to rebuild.
        self.rows_version = 0

    def _activity_row(self, item_id: ItemId) -> int:
        r = self._arow.get(item_id)
        if r is not None:
            return r
        r = len(self._aids)
        if r == self._count.shape[0]:
            grow = r
            self._count = np.concatenate([self._count, np.zeros(grow)])
            self._last = np.concatenate([self._last, np.full(grow, np.nan)])
            self._win_all = np.concatenate([self._win_all, np.zeros(grow)])
            self._win_eng = np.concatenate([self._win_eng, np.zeros(grow)])
        self._aids.append(item_id)
        self._arow[item_id] = r
        self.rows_version += 1
        return r

    def learn_one(self, item_id: ItemId, weight: float, ts: Timestamp) -> None:
        """Add one interaction of ``weight`` at ``ts`` (trending and the statistics)."""
        super().learn_one(item_id, weight, ts)
        r = self._activity_row(item_id)
        self._count[r] += 1.0
        last = self._last[r]
        self._last[r] = ts if np.isnan(last) else max(last, ts)
        if self._win_ref is None:
            self._win_ref = ts
        self._win_latest = ts if self._win_latest is None else max(self._win_latest, ts)
        exponent = (ts - self._win_ref) / self.window_half_life
        if exponent > _RENORMALISE_AT:
            n = len(self._aids)
            scale = 2.0 ** (-exponent)
            self._win_all[:n] *= scale
            self._win_eng[:n] *= scale
            self._win_ref = ts
            exponent = 0.0
        w = 2.0 ** max(exponent, -1000.0)
        self._win_all[r] += w
        if weight > self.view_weight:
            self._win_eng[r] += w

    def forget(self, item_id: ItemId) -> None:
        """Drop an item (deleted from the catalog): trending and statistics."""
        super().forget(item_id)
        r = self._arow.get(item_id)
        if r is not None:
            self._count[r] = 0.0
            self._last[r] = np.nan
            self._win_all[r] = 0.0
            self._win_eng[r] = 0.0

    def count(self, item_id: ItemId) -> float:
        """All-time interactions of an item."""
        r = self._arow.get(item_id)
        return 0.0 if r is None else float(self._count[r])

    def last_ts(self, item_id: ItemId) -> float:
        """Time of the item's latest interaction (NaN when never seen)."""
        r = self._arow.get(item_id)
        return float("nan") if r is None else float(self._last[r])

    def engagement(self, item_id: ItemId) -> float:
        """Smoothed share of engaged interactions in the window."""
        r = self._arow.get(item_id)
        rows = np.array([-1 if r is None else r], np.int64)
        return float(self.stats(rows)[2][0])

    def row_map(self, item_ids: list[ItemId]) -> NDArray[np.int64]:
        """Activity row of each id (-1 for an item never seen), for :meth:`stats`."""
        get = self._arow.get
        return np.fromiter((get(i, -1) for i in item_ids), np.int64, count=len(item_ids))

    def stats(self, rows: NDArray[np.int64]) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(all-time count, latest interaction time or NaN, engagement rate) per activity row.

        A row of -1 (never seen) gives count 0, NaN and the prior rate. Vectorised.
        """
        seen = rows >= 0
        safe = np.where(seen, rows, 0)
        count = np.where(seen, self._count[safe], 0.0)
        last = np.where(seen, self._last[safe], np.nan)
        # Window values are stored relative to a reference time; read them at the latest
        # interaction time, so the prior keeps the same strength against them.
        scale = 0.0
        if self._win_ref is not None and self._win_latest is not None:
            scale = 2.0 ** max((self._win_ref - self._win_latest) / self.window_half_life, -1000.0)
        k = self.prior_strength
        eng = np.where(seen, self._win_eng[safe], 0.0) * scale
        total = np.where(seen, self._win_all[safe], 0.0) * scale
        rate = (eng + k * self.prior_rate) / (total + k)
        return count, last, rate
