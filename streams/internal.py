"""Wire formats of the internal topics (JSON, versioned by field names, never pickle).

- ``streamrec.item-vectors`` (compacted, keyed by item_id): :class:`ItemVector`; a
  tombstone (null value) deletes the item.
- ``streamrec.item-stats``: :class:`StatsDelta`, one per processed click batch, the
  co-visitation and trending increments every worker applies, and the impressions
  and clicks (rewards of 1) of shown items, which feed every worker's new-item statistics.
  Each pair and count names the event it came from, so that a reader applies an event's
  increments once even when a worker that crashed sends them again (:class:`AppliedEvents`).

>>> d = StatsDelta(pairs=[("a", "b", 1.0)], counts=[("a", 2.0, 10.0)], shown=[("a", 3)], clicked=[("a", 1)],
...                events=["u/e1"], pair_events=[0], count_events=[0])
>>> StatsDelta.from_bytes(d.to_bytes()) == d
True
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from models.types import ItemId, Timestamp, Vector
from models.vectors import decode_vector, encode_vector


@dataclass(frozen=True)
class ItemVector:
    """An item's fused embedding plus the metadata ranking needs."""

    item_id: ItemId
    vector: Vector
    space: str
    category: str = ""
    price: float | None = None
    title: str = ""
    in_stock: bool = True

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "item_id": self.item_id,
                "vector": encode_vector(self.vector),
                "space": self.space,
                "category": self.category,
                "price": self.price,
                "title": self.title,
                "in_stock": self.in_stock,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ItemVector:
        d = json.loads(raw)
        return cls(
            item_id=d["item_id"],
            vector=decode_vector(d["vector"]).astype(np.float32),
            space=d["space"],
            category=d.get("category") or "",
            price=d.get("price"),
            title=d.get("title") or "",
            in_stock=bool(d.get("in_stock", True)),  # vectors published before the field existed: in stock
        )


@dataclass(frozen=True)
class StatsDelta:
    """Co-visitation pairs (a, b, weight), trending counts (item, weight, ts), and
    impressions and clicks on shown items (item, n); deltas written before the last two
    existed have none."""

    pairs: list[tuple[ItemId, ItemId, float]] = field(default_factory=list)
    counts: list[tuple[ItemId, float, Timestamp]] = field(default_factory=list)
    shown: list[tuple[ItemId, int]] = field(default_factory=list)
    clicked: list[tuple[ItemId, int]] = field(default_factory=list)
    #: The events (``user_id/event_id``) whose increments these are, and for each pair and
    #: each count the index of its event here; empty in deltas written before they existed.
    events: list[str] = field(default_factory=list)
    pair_events: list[int] = field(default_factory=list)
    count_events: list[int] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        d: dict[str, object] = {"pairs": self.pairs, "counts": self.counts}
        if self.shown or self.clicked:
            d.update(shown=self.shown, clicked=self.clicked)
        if self.events:
            d.update(events=self.events, pe=self.pair_events, ce=self.count_events)
        return json.dumps(d).encode()

    def without_events(self, seen: set[int]) -> StatsDelta:
        """The delta without the pairs and counts of the events at indexes ``seen``."""
        if not seen:
            return self
        return replace(
            self,
            pairs=[x for x, e in zip(self.pairs, self.pair_events, strict=True) if e not in seen],
            pair_events=[e for e in self.pair_events if e not in seen],
            counts=[x for x, e in zip(self.counts, self.count_events, strict=True) if e not in seen],
            count_events=[e for e in self.count_events if e not in seen],
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> StatsDelta:
        d = json.loads(raw)
        return cls(
            pairs=[(str(a), str(b), float(w)) for a, b, w in d.get("pairs", [])],
            counts=[(str(i), float(w), float(ts)) for i, w, ts in d.get("counts", [])],
            shown=[(str(i), int(n)) for i, n in d.get("shown", [])],
            clicked=[(str(i), int(n)) for i, n in d.get("clicked", [])],
            events=[str(e) for e in d.get("events", [])],
            pair_events=[int(i) for i in d.get("pe", [])],
            count_events=[int(i) for i in d.get("ce", [])],
        )


class AppliedEvents:
    """The events whose item-statistics increments a reader has applied, the newest ``capacity``.

    Every reader reads the single-partition item-stats topic in the same order, so every
    reader drops the same increments. A worker that crashed after sending a batch's
    increments but before its user states reached the changelog processes those events
    again and sends their increments again; they are dropped here.

    >>> seen = AppliedEvents(capacity=2)
    >>> d = StatsDelta(counts=[("a", 1.0, 1.0), ("b", 1.0, 2.0)], events=["u/1", "u/2"], count_events=[0, 1])
    >>> [c[0] for c in seen.first_time(d).counts], [c[0] for c in seen.first_time(d).counts]
    (['a', 'b'], [])
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._order: deque[str] = deque()
        self._seen: set[str] = set()

    def first_time(self, delta: StatsDelta) -> StatsDelta:
        """``delta`` without the increments of events applied before; records its events as applied."""
        if not delta.events:
            return delta  # written before deltas named their events: applied as they are
        repeated = {i for i, e in enumerate(delta.events) if e in self._seen}
        for i, e in enumerate(delta.events):
            if i not in repeated:
                self._seen.add(e)
                self._order.append(e)
        while len(self._order) > self.capacity:
            self._seen.discard(self._order.popleft())
        return delta.without_events(repeated)
