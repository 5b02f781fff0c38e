"""Item co-visitation: which items the same users touch close together in time.

Counts are symmetric, weighted by how close two interactions were in the user's
sequence, and pruned to the strongest ``max_neighbors`` per item so memory stays
bounded. Every worker keeps the same counts by applying the same deltas.

>>> cv = CoVisitation(max_neighbors=10)
>>> cv.learn_many(covisit_pairs(["a", "b"], "c", window=5))
>>> cv.neighbors("c", k=2)
[('b', 1.0), ('a', 0.5)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from models.types import ItemId

Pair = tuple[ItemId, ItemId, float]


def covisit_pairs(recent: Sequence[ItemId], item_id: ItemId, window: int = 5) -> list[Pair]:
    """Pairs (both directions) between ``item_id`` and the user's last ``window`` items.

    The weight is ``1 / distance`` in the user's sequence (the previous item counts 1).
    """
    pairs: list[Pair] = []
    prev = [i for i in recent if i != item_id][-window:]
    for dist, other in enumerate(reversed(prev), start=1):
        w = 1.0 / dist
        pairs.append((other, item_id, w))
        pairs.append((item_id, other, w))
    return pairs


class CoVisitation:
    """Symmetric, pruned co-visitation weights between items."""

    def __init__(self, max_neighbors: int = 100) -> None:
        self.max_neighbors = max_neighbors
        self._weights: dict[ItemId, dict[ItemId, float]] = {}

    def __len__(self) -> int:
        return len(self._weights)

    def learn_one(self, a: ItemId, b: ItemId, w: float = 1.0) -> None:
        """Add weight to the directed pair a -> b."""
        if a == b:
            return
        nbrs = self._weights.setdefault(a, {})
        nbrs[b] = nbrs.get(b, 0.0) + w
        if len(nbrs) > 2 * self.max_neighbors:
            keep = sorted(nbrs.items(), key=lambda kv: kv[1], reverse=True)[: self.max_neighbors]
            self._weights[a] = dict(keep)

    def learn_many(self, pairs: Iterable[Pair]) -> None:
        """Add a batch of (a, b, w) pairs."""
        for a, b, w in pairs:
            self.learn_one(a, b, w)

    def forget(self, item_id: ItemId) -> None:
        """Drop an item (deleted from the catalog) as a source of neighbours."""
        self._weights.pop(item_id, None)

    def neighbors(self, item_id: ItemId, k: int = 20) -> list[tuple[ItemId, float]]:
        """The ``k`` strongest neighbours of an item, strongest first (ties by id)."""
        nbrs = self._weights.get(item_id)
        if not nbrs:
            return []
        return sorted(nbrs.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def scores_for(self, recent: Sequence[ItemId], k: int = 100, window: int = 5) -> dict[ItemId, float]:
        """Neighbour scores summed over a user's last ``window`` items, in [0, 1].

        More recent items count more (``1 / distance``); each item's neighbour
        weights are normalised by its strongest neighbour first.
        """
        scores: dict[ItemId, float] = {}
        for dist, item in enumerate(reversed(list(recent)[-window:]), start=1):
            nbrs = self._weights.get(item)
            if not nbrs:
                continue
            top = max(nbrs.values())
            for other, w in nbrs.items():
                scores[other] = scores.get(other, 0.0) + (w / top) / dist
        if not scores:
            return {}
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        norm = best[0][1]
        return {i: s / norm for i, s in best}
