"""Simple online recommenders to compare the product against, test-then-train.

Every baseline learns one event at a time (``learn_one``) and gives a real top-K
list (``recommend``): items are ordered by the baseline's score, then by global
popularity, then by a fixed random order seeded by ``seed`` -- never by anything
that depends on the item being scored. Only items seen in the stream so far can
be recommended.

>>> class Ev:
...     def __init__(self, u, i, ts): self.user_id, self.item_id, self.ts, self.kind = u, i, ts, "click"
>>> pop = Popularity(seed=0)
>>> for u, i in [("u1", "a"), ("u2", "a"), ("u2", "b")]:
...     pop.learn_one(Ev(u, i, 0.0))
>>> pop.recommend("u3", k=2, exclude=set()), pop.recommend("u1", k=2, exclude={"a"})
(['a', 'b'], ['b'])
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from models.types import ItemId, Timestamp, UserId

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class InteractionLike(Protocol):
    """What a baseline reads from an event (read-only, so frozen dataclasses fit)."""

    @property
    def user_id(self) -> str: ...
    @property
    def item_id(self) -> str: ...
    @property
    def ts(self) -> float: ...
    @property
    def kind(self) -> str: ...


class Baseline(Protocol):
    """An online recommender driven by the prequential evaluator."""

    name: str

    def learn_one(self, ev: InteractionLike) -> None:
        """Fold one event into the model."""
        ...

    def recommend(
        self, user_id: UserId, k: int, exclude: set[ItemId], now: Timestamp | None = None
    ) -> list[ItemId]:
        """The top-``k`` items for ``user_id`` at event time ``now``, none of them in ``exclude``."""
        ...


def tie_key(item_id: ItemId, seed: int) -> float:
    """A fixed pseudo-random number in [0, 1) per (item, seed): the last tie-breaker.

    >>> tie_key("a", 0) == tie_key("a", 0), tie_key("a", 0) == tie_key("a", 1)
    (True, False)
    """
    digest = hashlib.blake2b(f"{seed}\x00{item_id}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / float(1 << 53)


class ItemTable:
    """Dense ids for the items seen so far, their counts, and the ranking rule.

    Ranking: ``primary`` desc, then count desc, then :func:`tie_key` asc.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rows: dict[ItemId, int] = {}
        self._ids: list[ItemId] = []
        self.counts: FloatArray = np.zeros(256, np.float64)
        self._tie: FloatArray = np.zeros(256, np.float64)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def capacity(self) -> int:
        return int(self.counts.shape[0])

    def row(self, item_id: ItemId) -> int | None:
        return self._rows.get(item_id)

    def add(self, item_id: ItemId) -> int:
        """Row of ``item_id``, created (count 0) when new."""
        r = self._rows.get(item_id)
        if r is not None:
            return r
        r = len(self._ids)
        if r == self.capacity:
            self.counts = np.concatenate([self.counts, np.zeros(r, np.float64)])
            self._tie = np.concatenate([self._tie, np.zeros(r, np.float64)])
        self._rows[item_id] = r
        self._ids.append(item_id)
        self._tie[r] = tie_key(item_id, self.seed)
        return r

    def count(self, item_id: ItemId) -> int:
        """Add one interaction with ``item_id``; returns its row."""
        r = self.add(item_id)
        self.counts[r] += 1.0
        return r

    def top(self, k: int, exclude: set[ItemId], primary: FloatArray | None = None) -> list[ItemId]:
        """The ``k`` best items not in ``exclude`` by (primary, count, tie key)."""
        m = len(self._ids)
        if m == 0 or k <= 0:
            return []
        counts = self.counts[:m]
        key = np.array(counts if primary is None else primary[:m], dtype=np.float64, copy=True)
        excluded = np.fromiter((r for i in exclude if (r := self._rows.get(i)) is not None), np.int64)
        key[excluded] = -np.inf
        n = min(k, m - excluded.shape[0])
        if n <= 0:
            return []
        if n < m:
            threshold = np.partition(key, m - n)[m - n]
            cand = np.flatnonzero(key >= threshold)
        else:
            cand = np.flatnonzero(key > -np.inf)
        order = np.lexsort((self._tie[cand], -counts[cand], -key[cand]))[:n]
        return [self._ids[r] for r in cand[order].tolist()]


class Popularity:
    """Most-interacted items overall (all-time counts)."""

    def __init__(self, seed: int = 0, name: str = "popularity") -> None:
        self.name = name
        self.items = ItemTable(seed)

    def learn_one(self, ev: InteractionLike) -> None:
        self.items.count(ev.item_id)

    def recommend(
        self, user_id: UserId, k: int, exclude: set[ItemId], now: Timestamp | None = None
    ) -> list[ItemId]:
        return self.items.top(k, exclude)


class RecencyPopularity:
    """Popularity with counts halving every ``half_life_s`` seconds of event time.

    >>> class Ev:
    ...     def __init__(self, i, ts): self.user_id, self.item_id, self.ts, self.kind = "u", i, ts, "click"
    >>> rp = RecencyPopularity(half_life_s=10.0)
    >>> for i, ts in [("old", 0.0), ("old", 0.0), ("new", 20.0)]:
    ...     rp.learn_one(Ev(i, ts))
    >>> rp.recommend("u", 2, set())
    ['new', 'old']
    """

    _RENORMALISE_AT = 500.0  # log2 growth before values are rescaled

    def __init__(self, half_life_s: float = 86400.0, seed: int = 0, name: str | None = None) -> None:
        if half_life_s <= 0:
            raise ValueError("half_life_s must be positive")
        self.name = name or f"recency-popularity({half_life_s:g}s)"
        self.half_life_s = half_life_s
        self.items = ItemTable(seed)
        self._values: FloatArray = np.zeros(256, np.float64)
        self._ref_ts: float | None = None

    def learn_one(self, ev: InteractionLike) -> None:
        r = self.items.count(ev.item_id)
        if self._values.shape[0] < self.items.capacity:
            grown = np.zeros(self.items.capacity, np.float64)
            grown[: self._values.shape[0]] = self._values
            self._values = grown
        if self._ref_ts is None:
            self._ref_ts = ev.ts
        exponent = (ev.ts - self._ref_ts) / self.half_life_s
        if exponent > self._RENORMALISE_AT:
            self._values *= 2.0 ** (-exponent)
            self._ref_ts, exponent = ev.ts, 0.0
        self._values[r] += 2.0 ** max(exponent, -1000.0)

    def recommend(
        self, user_id: UserId, k: int, exclude: set[ItemId], now: Timestamp | None = None
    ) -> list[ItemId]:
        return self.items.top(k, exclude, primary=self._values)


class CoVisitationBaseline:
    """Items co-occurring with the user's last ``window`` items, then popular ones.

    Two items co-occur once each time one is consumed while the other is among the
    same user's last ``window`` distinct items. A candidate's score is its summed
    counts with the user's last ``window`` items.

    >>> class Ev:
    ...     def __init__(self, u, i): self.user_id, self.item_id, self.ts, self.kind = u, i, 0.0, "click"
    >>> cv = CoVisitationBaseline(window=2)
    >>> for u, i in [("u1", "a"), ("u1", "b"), ("u2", "c"), ("u2", "c"), ("u2", "a"), ("u3", "b")]:
    ...     cv.learn_one(Ev(u, i))
    >>> cv.recommend("u3", k=3, exclude={"b"})
    ['a', 'c']
    """

    def __init__(self, window: int = 5, seed: int = 0, name: str | None = None) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.name = name or f"covisitation(last {window})"
        self.window = window
        self.items = ItemTable(seed)
        self._recent: dict[UserId, list[int]] = {}
        self._co: list[dict[int, float]] = []
        self._arrays: dict[int, tuple[IntArray, FloatArray]] = {}

    def learn_one(self, ev: InteractionLike) -> None:
        r = self.items.count(ev.item_id)
        while len(self._co) <= r:
            self._co.append({})
        recent = self._recent.setdefault(ev.user_id, [])
        prev = [j for j in recent if j != r][-self.window :]
        mine = self._co[r]
        for j in prev:
            mine[j] = mine.get(j, 0.0) + 1.0
            theirs = self._co[j]
            theirs[r] = theirs.get(r, 0.0) + 1.0
            self._arrays.pop(j, None)
        if prev:
            self._arrays.pop(r, None)
        self._recent[ev.user_id] = (prev + [r])[-self.window :]

    def _neighbours(self, r: int) -> tuple[IntArray, FloatArray]:
        arrays = self._arrays.get(r)
        if arrays is None:
            co = self._co[r]
            arrays = (
                np.fromiter(co.keys(), np.int64, count=len(co)),
                np.fromiter(co.values(), np.float64, count=len(co)),
            )
            self._arrays[r] = arrays
        return arrays

    def scores(self, user_id: UserId) -> FloatArray:
        """Summed co-occurrence counts of every known item with the user's recent items."""
        score = np.zeros(len(self.items), np.float64)
        for r in self._recent.get(user_id, ()):
            idx, val = self._neighbours(r)
            score[idx] += val  # one item's neighbour rows are distinct
        return score

    def recommend(
        self, user_id: UserId, k: int, exclude: set[ItemId], now: Timestamp | None = None
    ) -> list[ItemId]:
        return self.items.top(k, exclude, primary=self.scores(user_id))

