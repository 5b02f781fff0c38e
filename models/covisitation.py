"""Item co-visitation: which items the same users touch close together in time.

Counts are symmetric, weighted by how close two interactions were in the user's
sequence, and pruned to the strongest ``max_neighbors`` per item so memory stays
bounded. Every worker keeps the same counts by applying the same deltas.

A user's candidates are scored from the raw counts of their last ``window``
items (a more recent item counts more), so an item seen next to the user's items
by many users outranks one seen once; then the strongest of those candidates
lend a share of their own neighbours (a second hop), which reaches items that
were never seen next to the user's items themselves but next to their neighbours.

>>> cv = CoVisitation(max_neighbors=10)
>>> cv.learn_many(covisit_pairs(["a", "b"], "c", window=5))
>>> cv.neighbors("c", k=2)
[('a', 1.0), ('b', 1.0)]
>>> cv.learn_many(covisit_pairs(["c"], "d"))
>>> cv.scores_for(["d"])  # a and b are neighbours of d's neighbour c
{'c': 1.0, 'a': 0.1, 'b': 0.1}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from models.types import ItemId

Pair = tuple[ItemId, ItemId, float]
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def covisit_pairs(recent: Sequence[ItemId], item_id: ItemId, window: int = 5, decay: float = 0.0) -> list[Pair]:
    """Pairs (both directions) between ``item_id`` and the user's last ``window`` items.

    The weight is ``1 / distance ** decay`` in the user's sequence (the previous
    item is at distance 1); with ``decay=0`` every pair in the window counts 1.

    >>> covisit_pairs(["a", "b"], "c", decay=1.0)
    [('b', 'c', 1.0), ('c', 'b', 1.0), ('a', 'c', 0.5), ('c', 'a', 0.5)]
    """
    pairs: list[Pair] = []
    prev = [i for i in recent if i != item_id][-window:]
    for dist, other in enumerate(reversed(prev), start=1):
        w = 1.0 / dist**decay
        pairs.append((other, item_id, w))
        pairs.append((item_id, other, w))
    return pairs


class CoVisitation:
    """Symmetric, pruned co-visitation weights between items.

    Parameters
    ----------
    max_neighbors
        Neighbours kept per item: when an item has twice as many, only the
        strongest ``max_neighbors`` stay.
    window
        How many of the user's latest items :meth:`scores_for` starts from.
    recency
        The item at distance ``d`` from the newest counts ``1 / d ** recency``.
    expand
        How many of the best first-hop candidates lend their neighbours (0: none).
    expand_weight
        Scale of the second-hop scores against the first hop's (both in [0, 1]).
    """

    def __init__(
        self,
        max_neighbors: int = 200,
        window: int = 10,
        recency: float = 1.0,
        expand: int = 20,
        expand_weight: float = 0.1,
    ) -> None:
        if max_neighbors < 1 or window < 1:
            raise ValueError("max_neighbors and window must be at least 1")
        self.max_neighbors = max_neighbors
        self.window = window
        self.recency = recency
        self.expand = expand
        self.expand_weight = expand_weight
        self._rows: dict[ItemId, int] = {}
        self._ids: list[ItemId] = []
        self._nbrs: list[dict[int, float]] = []
        self._arrays: dict[int, tuple[IntArray, FloatArray]] = {}

    def __len__(self) -> int:
        return sum(1 for n in self._nbrs if n)

    def _row(self, item_id: ItemId) -> int:
        r = self._rows.get(item_id)
        if r is None:
            r = self._rows[item_id] = len(self._ids)
            self._ids.append(item_id)
            self._nbrs.append({})
        return r

    def learn_one(self, a: ItemId, b: ItemId, w: float = 1.0) -> None:
        """Add weight to the directed pair a -> b."""
        if a == b:
            return
        ra, rb = self._row(a), self._row(b)
        nbrs = self._nbrs[ra]
        nbrs[rb] = nbrs.get(rb, 0.0) + w
        self._arrays.pop(ra, None)
        if len(nbrs) > 2 * self.max_neighbors:
            keep = sorted(nbrs.items(), key=lambda kv: (-kv[1], self._ids[kv[0]]))[: self.max_neighbors]
            self._nbrs[ra] = dict(keep)

    def learn_many(self, pairs: Iterable[Pair]) -> None:
        """Add a batch of (a, b, w) pairs."""
        for a, b, w in pairs:
            self.learn_one(a, b, w)

    def forget(self, item_id: ItemId) -> None:
        """Drop an item (deleted from the catalog) as a source of neighbours."""
        r = self._rows.get(item_id)
        if r is not None:
            self._nbrs[r] = {}
            self._arrays.pop(r, None)

    def neighbors(self, item_id: ItemId, k: int = 20) -> list[tuple[ItemId, float]]:
        """The ``k`` strongest neighbours of an item, strongest first (ties by id)."""
        r = self._rows.get(item_id)
        if r is None or not self._nbrs[r]:
            return []
        return sorted(((self._ids[o], w) for o, w in self._nbrs[r].items()), key=lambda kv: (-kv[1], kv[0]))[:k]

    def _neighbour_arrays(self, r: int) -> tuple[IntArray, FloatArray]:
        arrays = self._arrays.get(r)
        if arrays is None:
            nbrs = self._nbrs[r]
            arrays = (
                np.fromiter(nbrs.keys(), np.int64, count=len(nbrs)),
                np.fromiter(nbrs.values(), np.float64, count=len(nbrs)),
            )
            self._arrays[r] = arrays
        return arrays

    def _spread(self, rows: Sequence[int], weights: Sequence[float]) -> tuple[IntArray, FloatArray]:
        """Sum of ``weight * neighbour weights`` over ``rows``: (distinct rows, scores)."""
        parts = [self._neighbour_arrays(r) for r in rows]
        if not any(len(p[0]) for p in parts):
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        idx = np.concatenate([p[0] for p in parts])
        val = np.concatenate([p[1] * w for p, w in zip(parts, weights, strict=True)])
        uniq, inv = np.unique(idx, return_inverse=True)
        return uniq, np.bincount(inv, weights=val, minlength=uniq.shape[0])

    def scores_for(self, recent: Sequence[ItemId], k: int = 100) -> dict[ItemId, float]:
        """The ``k`` best candidates for a user whose latest items are ``recent``, scores in [0, 1].

        First hop: neighbour weights summed over the last ``window`` items, the
        one at distance ``d`` weighted ``1 / d ** recency``, divided by the best
        sum. Second hop: the best ``expand`` first-hop candidates (not among
        ``recent``) spread their own neighbour weights, in proportion to their
        first-hop score; that sum, divided by its best, is scaled by
        ``expand_weight`` and added. Items of ``recent`` are never candidates.
        """
        hist: list[int] = []
        weights: list[float] = []
        for dist, item_id in enumerate(reversed(list(recent)[-self.window :]), start=1):
            r = self._rows.get(item_id)
            if r is not None and r not in hist:
                hist.append(r)
                weights.append(1.0 / dist**self.recency)
        if not hist:
            return {}
        own = {r for i in recent if (r := self._rows.get(i)) is not None}
        rows, score = self._spread(hist, weights)
        if rows.shape[0] == 0:
            return {}
        mine = np.fromiter((r in own for r in rows.tolist()), bool, count=rows.shape[0])
        rows, score = rows[~mine], score[~mine]
        if rows.shape[0] == 0:
            return {}
        score = score / score.max()
        if self.expand > 0 and self.expand_weight > 0:
            m = min(self.expand, rows.shape[0])
            seeds = np.argpartition(-score, m - 1)[:m]
            rows2, score2 = self._spread(rows[seeds].tolist(), score[seeds].tolist())
            keep2 = np.fromiter((r not in own for r in rows2.tolist()), bool, count=rows2.shape[0])
            rows2, score2 = rows2[keep2], score2[keep2]
            if rows2.shape[0]:
                rows = np.concatenate([rows, rows2])
                score = np.concatenate([score, self.expand_weight * score2 / score2.max()])
                rows, inv = np.unique(rows, return_inverse=True)
                score = np.bincount(inv, weights=score, minlength=rows.shape[0])
        n = min(k, rows.shape[0])
        if n <= 0:
            return {}
        top = np.argpartition(-score, n - 1)[:n] if n < rows.shape[0] else np.arange(rows.shape[0])
        best = sorted(((-float(score[j]), self._ids[int(rows[j])]) for j in top.tolist()))
        norm = -best[0][0]
        return {i: -s / norm for s, i in best}
