"""Wire formats of the internal topics (JSON, versioned by field names, never pickle).

- ``streamrec.item-vectors`` (compacted, keyed by item_id): :class:`ItemVector`; a
  tombstone (null value) deletes the item.
- ``streamrec.item-stats``: :class:`StatsDelta`, one per processed click batch, the
  co-visitation and trending increments every worker applies, and the impressions
  and clicks (rewards of 1) of shown items, which feed every worker's new-item statistics.

>>> d = StatsDelta(pairs=[("a", "b", 1.0)], counts=[("a", 2.0, 10.0)], shown=[("a", 3)], clicked=[("a", 1)])
>>> StatsDelta.from_bytes(d.to_bytes()) == d
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

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

    def to_bytes(self) -> bytes:
        d: dict[str, object] = {"pairs": self.pairs, "counts": self.counts}
        if self.shown or self.clicked:
            d.update(shown=self.shown, clicked=self.clicked)
        return json.dumps(d).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> StatsDelta:
        d = json.loads(raw)
        return cls(
            pairs=[(str(a), str(b), float(w)) for a, b, w in d.get("pairs", [])],
            counts=[(str(i), float(w), float(ts)) for i, w, ts in d.get("counts", [])],
            shown=[(str(i), int(n)) for i, n in d.get("shown", [])],
            clicked=[(str(i), int(n)) for i, n in d.get("clicked", [])],
        )
