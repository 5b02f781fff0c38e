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

import zlib
from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
from numpy.typing import NDArray

from models.segments import group_max, group_starts, ragged_gather
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
        self._ties: list[int] = []  # per row: the tie-break rank (a hash of the item id)
        self._tie_array: IntArray = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return sum(1 for n in self._nbrs if n)

    def _row(self, item_id: ItemId) -> int:
        r = self._rows.get(item_id)
        if r is None:
            r = self._rows[item_id] = len(self._ids)
            self._ids.append(item_id)
            self._ties.append(zlib.crc32(item_id.encode("utf-8")) & _TIE_MASK)
            self._nbrs.append({})
        return r

    def learn_one(self, a: ItemId, b: ItemId, w: float = 1.0) -> None:
        """Add weight to the directed pair a -> b.

        A negative weight takes weight back (a late event's correction, see
        :mod:`models.pair_history`); a pair left with none is dropped, and weight is never
        taken from a pair that is not held (pruned or forgotten).
        """
        if a == b:
            return
        if w < 0:
            self._take_back(a, b, -w)
            return
        ra, rb = self._row(a), self._row(b)
        nbrs = self._nbrs[ra]
        nbrs[rb] = nbrs.get(rb, 0.0) + w
        self._arrays.pop(ra, None)
        if len(nbrs) > 2 * self.max_neighbors:
            keep = sorted(nbrs.items(), key=lambda kv: (-kv[1], self._ids[kv[0]]))[: self.max_neighbors]
            self._nbrs[ra] = dict(keep)

    def _take_back(self, a: ItemId, b: ItemId, w: float) -> None:
        ra, rb = self._rows.get(a), self._rows.get(b)
        if ra is None or rb is None or rb not in self._nbrs[ra]:
            return
        nbrs = self._nbrs[ra]
        left = nbrs[rb] - w
        if left > 1e-9:
            nbrs[rb] = left
        else:
            del nbrs[rb]
        self._arrays.pop(ra, None)

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

    def _neighbour_lists(self, rows: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """CSR ``(indptr, cols, weights)`` of the neighbour lists of ``rows``."""
        parts = [self._neighbour_arrays(r) for r in rows.tolist()]
        lengths = np.fromiter((p[0].shape[0] for p in parts), np.int64, count=len(parts))
        indptr = np.zeros(len(parts) + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        if not parts or indptr[-1] == 0:
            return indptr, np.zeros(0, np.int64), np.zeros(0, np.float64)
        return indptr, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _spread(self, user: IntArray, row: IntArray, weight: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
        """For triples (user, row, weight): per (user, neighbour) the sum of ``weight * neighbour weight``.

        Returns flat ``(user, neighbour row, score)`` arrays grouped by user.
        """
        if row.shape[0] == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
        distinct, pick = np.unique(row, return_inverse=True)
        indptr, cols, vals = self._neighbour_lists(distinct)
        pos, owner = ragged_gather(indptr, pick)
        n = max(len(self._ids), 1)
        keys = user[owner] * n + cols[pos]
        keys, score = _sum_by_key(keys, vals[pos] * weight[owner], int(user.max() + 1) * n)
        return keys // n, keys % n, score

    def scores_for_many(
        self, recents: Sequence[Sequence[ItemId]], k: int | IntArray = 100
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """Candidates for a micro-batch of users whose latest items are ``recents``, in one pass.

        Returns flat ``(user, row, score)`` arrays grouped by user (the index into
        ``recents``), best first, at most ``k`` per user (one number, or one per user);
        rows name items through :meth:`item_ids`, scores are in [0, 1].

        First hop: neighbour weights summed over the last ``window`` items, the one at
        distance ``d`` weighted ``1 / d ** recency``, divided by the user's best sum.
        Second hop: the user's best ``expand`` first-hop candidates spread their own
        neighbour weights, in proportion to their first-hop score; that sum, divided by
        its best, is scaled by ``expand_weight`` and added. A user's own items (all of
        ``recent``) are never candidates. Ties go by a hash of the item id, so every worker
        picks the same items whatever order it learnt the pairs in.
        """
        hist_user: list[int] = []
        hist_row: list[int] = []
        hist_weight: list[float] = []
        own_user: list[int] = []
        own_row: list[int] = []
        rows = self._rows
        for u, recent in enumerate(recents):
            picked: set[int] = set()
            for dist, item_id in enumerate(reversed(list(recent)[-self.window :]), start=1):
                r = rows.get(item_id)
                if r is not None and r not in picked:
                    picked.add(r)
                    hist_user.append(u)
                    hist_row.append(r)
                    hist_weight.append(1.0 / dist**self.recency)
            if picked:
                own = {r for i in recent if (r := rows.get(i)) is not None}
                own_user.extend([u] * len(own))
                own_row.extend(own)
        n = max(len(self._ids), 1)
        own_keys = np.array(own_user, np.int64) * n + np.array(own_row, np.int64)

        def spread_not_own(user: IntArray, row: IntArray, weight: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
            su, sr, sc = self._spread(user, row, weight)
            keep = ~np.isin(su * n + sr, own_keys)
            su, sr, sc = su[keep], sr[keep], sc[keep]
            return su, sr, sc / group_max(su, sc) if sc.shape[0] else sc

        user, row, score = spread_not_own(
            np.array(hist_user, np.int64), np.array(hist_row, np.int64), np.array(hist_weight, np.float64)
        )
        if self.expand > 0 and self.expand_weight > 0 and score.shape[0]:
            seeds = _best_per_user(user, score, self.expand, self._tie_of(row))
            u2, r2, s2 = spread_not_own(user[seeds], row[seeds], score[seeds])
            if s2.shape[0]:
                keys, score = _sum_by_key(
                    np.concatenate([user * n + row, u2 * n + r2]),
                    np.concatenate([score, self.expand_weight * s2]),
                    len(recents) * n,
                )
                user, row = keys // n, keys % n
        top = _best_per_user(user, score, k, self._tie_of(row))
        user, row, score = user[top], row[top], score[top]
        return user, row, score / group_max(user, score) if score.shape[0] else score

    def _tie_of(self, rows: IntArray) -> IntArray:
        """The tie-break ranks of ``rows``: a hash of the item id, the same on every worker
        whatever order it first saw the items in."""
        if self._tie_array.shape[0] != len(self._ties):
            self._tie_array = np.asarray(self._ties, np.int64)
        return self._tie_array[rows]

    def item_ids(self, rows: IntArray) -> list[ItemId]:
        """The item ids of rows returned by :meth:`scores_for_many`."""
        ids = self._ids
        return [ids[r] for r in rows.tolist()]

    def scores_for(self, recent: Sequence[ItemId], k: int = 100) -> dict[ItemId, float]:
        """The ``k`` best candidates of one user, as :meth:`scores_for_many` finds them.

        Returned best first (ties by item id), scores in [0, 1].
        """
        _, rows, score = self.scores_for_many([recent], k)
        best = sorted(zip((-score).tolist(), self.item_ids(rows), strict=True))
        return {item_id: -s for s, item_id in best}


#: Largest key space summed with a dense ``bincount`` (8M float64 = 64 MB); above, keys are sorted.
_DENSE_KEYS = 1 << 23


#: Bits of the tie-break rank, of the quantised score and of the user in one sort key.
_TIE_BITS, _SCORE_BITS, _USER_BITS = 12, 31, 20
_TIE_MASK = (1 << _TIE_BITS) - 1


def _best_per_user(user: IntArray, score: FloatArray, k: int | IntArray, tie: IntArray) -> IntArray:
    """Positions of each user's ``k`` best entries, grouped by user, best first.

    Scores lie in [0, 2) and are compared on a grid of 2**-30 (sums of the same weights
    added in another order are equal there); equal scores go by ``tie`` (a hash of the item
    id, in ``[0, 2**12)``), so the order does not depend on which item a worker saw first. One
    stable sort of a single integer key (user, then score descending, then ``tie``) orders
    them at the cost of a one-key sort, a sixth of a three-key lexsort's.
    """
    if user.shape[0] == 0:
        return np.zeros(0, np.int64)
    quantised = np.minimum(np.floor(np.clip(score, 0.0, None) * (1 << (_SCORE_BITS - 1))), (1 << _SCORE_BITS) - 1)
    worse = (1 << _SCORE_BITS) - 1 - quantised.astype(np.int64)
    if int(user.max()) < (1 << _USER_BITS):
        key = (user << (_SCORE_BITS + _TIE_BITS)) | (worse << _TIE_BITS) | tie
        order = np.argsort(key, kind="stable")
    else:  # more users than the key holds: the same order, three keys
        order = np.lexsort((tie, worse, user))
    sorted_users = user[order]
    starts = group_starts(sorted_users)
    rank = np.arange(sorted_users.shape[0]) - np.repeat(starts, np.diff(np.r_[starts, sorted_users.shape[0]]))
    limit = k[sorted_users] if isinstance(k, np.ndarray) else k
    return order[rank < limit].astype(np.int64)


def _sum_by_key(keys: IntArray, values: FloatArray, size: int) -> tuple[IntArray, FloatArray]:
    """Distinct ``keys`` (ascending) and the sum of ``values`` per key; keys lie in ``[0, size)``."""
    if size <= _DENSE_KEYS:
        sums = np.bincount(keys, weights=values, minlength=size)
        present = np.bincount(keys, minlength=size) > 0
        distinct = np.flatnonzero(present).astype(np.int64)
        return distinct, cast(FloatArray, sums[distinct])  # numpy's stubs type a weighted bincount as ints
    distinct, inv = np.unique(keys, return_inverse=True)
    return distinct.astype(np.int64), cast(FloatArray, np.bincount(inv, weights=values, minlength=distinct.shape[0]))
