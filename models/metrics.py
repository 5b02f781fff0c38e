"""Top-K quality metrics for a single relevant item per list (prequential scoring).

A rank is 1-based; ``None`` means the item was not in the list (a miss).

>>> rank_of("c", ["a", "b", "c"]), rank_of("z", ["a", "b"])
(3, None)
>>> hit(3), reciprocal_rank(4), round(ndcg(3), 4), ndcg(None)
(1.0, 0.25, 0.5, 0.0)
>>> acc = MetricAccumulator()
>>> for r in (1, None, 3, None):
...     acc.add(r)
>>> acc.summary()
{'hr': 0.5, 'mrr': 0.333333, 'ndcg': 0.375, 'n': 4}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def rank_of(target: str, ranked_list: Sequence[str]) -> int | None:
    """1-based position of ``target`` in ``ranked_list``, or None when absent."""
    for i, item in enumerate(ranked_list, start=1):
        if item == target:
            return i
    return None


def hit(rank: int | None) -> float:
    """1 when the item was in the list, else 0."""
    return 0.0 if rank is None else 1.0


def reciprocal_rank(rank: int | None) -> float:
    """``1 / rank`` (0 for a miss).

    >>> reciprocal_rank(1), reciprocal_rank(None)
    (1.0, 0.0)
    """
    return 0.0 if rank is None else 1.0 / rank


def ndcg(rank: int | None) -> float:
    """NDCG with one relevant item: ``1 / log2(rank + 1)`` (the ideal DCG is 1).

    >>> ndcg(1), ndcg(7)
    (1.0, 0.3333333333333333)
    """
    return 0.0 if rank is None else 1.0 / math.log2(rank + 1)


@dataclass
class MetricAccumulator:
    """Running sums of HR, MRR and NDCG over scored events."""

    n: int = 0
    hits: float = 0.0
    rr: float = 0.0
    dcg: float = 0.0

    def add(self, rank: int | None) -> None:
        """Score one event whose target was at ``rank`` (None: a miss)."""
        if rank is not None and rank < 1:
            raise ValueError(f"ranks are 1-based, got {rank}")
        self.n += 1
        self.hits += hit(rank)
        self.rr += reciprocal_rank(rank)
        self.dcg += ndcg(rank)

    def summary(self, digits: int = 6) -> dict[str, float | int]:
        """Means over the scored events (0 when nothing was scored)."""
        d = max(self.n, 1)
        return {
            "hr": round(self.hits / d, digits),
            "mrr": round(self.rr / d, digits),
            "ndcg": round(self.dcg / d, digits),
            "n": self.n,
        }
