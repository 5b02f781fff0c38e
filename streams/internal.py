"""Wire formats of the internal topics (JSON, versioned by field names, never pickle).

- ``streamrec.item-vectors`` (compacted, keyed by item_id): :class:`ItemVector`; a
  tombstone (null value) deletes the item.
- ``streamrec.item-stats``: :class:`StatsDelta`, one per processed click batch, the
  co-visitation, bundle and trending increments every worker applies, and the impressions
  and clicks (rewards of 1) of shown items, which feed every worker's new-item statistics.
  Each pair, count, impression and click names the event it came from, so that a reader
  applies an event's increments once even when a worker that crashed sends them again
  (:class:`AppliedEvents`).

>>> d = StatsDelta(pairs=[("a", "b", 1.0)], counts=[("a", 2.0, 10.0)], events=["u/e1"], pair_events=[0],
...                count_events=[0]).with_feedback([("u/impression/r1", "a")], [("u/reward/r1/a", "a")])
>>> StatsDelta.from_bytes(d.to_bytes()) == d
True
>>> d.shown, d.clicked, d.events
([('a', 1)], [('a', 1)], ['u/e1', 'u/impression/r1', 'u/reward/r1/a'])
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from models.types import ItemId, Timestamp, Vector
from models.vectors import decode_vector, encode_vector

_T = TypeVar("_T")


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
    """Co-visitation pairs (a, b, weight), trending counts (item, weight, ts),
    impressions and clicks on shown items (item, n), and "frequently bought together"
    pairs (a, b, weight); deltas written before the last three existed have none."""

    pairs: list[tuple[ItemId, ItemId, float]] = field(default_factory=list)
    counts: list[tuple[ItemId, float, Timestamp]] = field(default_factory=list)
    shown: list[tuple[ItemId, int]] = field(default_factory=list)
    clicked: list[tuple[ItemId, int]] = field(default_factory=list)
    bundle_pairs: list[tuple[ItemId, ItemId, float]] = field(default_factory=list)
    #: The events (``user_id/event_id``) whose increments these are, and for each pair and
    #: each count the index of its event here; empty in deltas written before they existed.
    events: list[str] = field(default_factory=list)
    pair_events: list[int] = field(default_factory=list)
    count_events: list[int] = field(default_factory=list)
    bundle_events: list[int] = field(default_factory=list)
    #: For each entry of ``shown`` and ``clicked`` (then one per event and item, n = 1), the
    #: index of its event; empty in deltas written before they existed (entries then per item).
    shown_events: list[int] = field(default_factory=list)
    clicked_events: list[int] = field(default_factory=list)

    def with_feedback(
        self, shown_by: Sequence[tuple[str, ItemId]], clicked_by: Sequence[tuple[str, ItemId]]
    ) -> StatsDelta:
        """This delta with impressions and clicks, given as (event, item_id), one entry each."""
        events = list(self.events)
        index = {e: i for i, e in enumerate(events)}

        def at(event: str) -> int:
            if event not in index:
                index[event] = len(events)
                events.append(event)
            return index[event]

        return replace(
            self, events=events,
            shown=[(item, 1) for _, item in shown_by], shown_events=[at(e) for e, _ in shown_by],
            clicked=[(item, 1) for _, item in clicked_by], clicked_events=[at(e) for e, _ in clicked_by],
        )

    def to_bytes(self) -> bytes:
        d: dict[str, object] = {"pairs": self.pairs, "counts": self.counts}
        if self.shown or self.clicked:
            d.update(shown=self.shown, clicked=self.clicked)
        if self.events:
            d.update(events=self.events, pe=self.pair_events, ce=self.count_events)
        if self.shown_events or self.clicked_events:
            d.update(se=self.shown_events, cle=self.clicked_events)
        if self.bundle_pairs:
            d.update(bundles=self.bundle_pairs, be=self.bundle_events)
        return json.dumps(d).encode()

    def without_events(self, seen: set[int]) -> StatsDelta:
        """The delta without the increments of the events at indexes ``seen`` (impressions and
        clicks of a delta that does not name their events are kept)."""
        if not seen:
            return self

        def keep(entries: list[_T], of: list[int]) -> tuple[list[_T], list[int]]:
            if not of:  # impressions and clicks from a writer that did not name their events
                return entries, of
            kept = [(x, e) for x, e in zip(entries, of, strict=True) if e not in seen]
            return [x for x, _ in kept], [e for _, e in kept]

        pairs, pair_events = keep(self.pairs, self.pair_events)
        counts, count_events = keep(self.counts, self.count_events)
        shown, shown_events = keep(self.shown, self.shown_events)
        clicked, clicked_events = keep(self.clicked, self.clicked_events)
        together, bundle_events = keep(self.bundle_pairs, self.bundle_events)
        return replace(self, pairs=pairs, pair_events=pair_events, counts=counts, count_events=count_events,
                       shown=shown, shown_events=shown_events, clicked=clicked, clicked_events=clicked_events,
                       bundle_pairs=together, bundle_events=bundle_events)

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
            shown_events=[int(i) for i in d.get("se", [])],
            clicked_events=[int(i) for i in d.get("cle", [])],
            bundle_pairs=[(str(a), str(b), float(w)) for a, b, w in d.get("bundles", [])],
            bundle_events=[int(i) for i in d.get("be", [])],
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
