"""In-memory item index: one row of the fused embedding matrix per catalog item.

Every worker rebuilds it from the compacted item-vector topic on start. Retrieval
is one matrix product per batch of users, never a loop per item.

>>> import numpy as np
>>> idx = ItemIndex(dim=2)
>>> idx.upsert("a", np.array([1, 0], np.float32), category="x")
>>> idx.upsert("b", np.array([0, 1], np.float32), category="y")
>>> rows, scores = idx.nearest(np.array([[0.9, 0.1]], np.float32), k=1)
>>> [idx.item_id(r) for r in rows[0]], len(idx)
(['a'], 2)
>>> idx.delete("a"); len(idx), "a" in idx
(1, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from models.types import ItemId, Matrix, Vector
from models.vectors import l2_normalize

IntArray = NDArray[np.int64]


class ItemIndex:
    """Item embeddings plus the metadata ranking needs (category, price)."""

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self._vectors = np.zeros((capacity, dim), dtype=np.float32)
        self._alive = np.zeros(capacity, dtype=bool)
        self._has_vector = np.zeros(capacity, dtype=bool)  # alive and its vector is not zero
        self._ids: list[ItemId] = []
        self._rows: dict[ItemId, int] = {}
        self._categories: list[str] = []
        self._category_codes = np.full(capacity, -1, dtype=np.int64)
        self._category_ids: dict[str, int] = {}
        self._prices = np.full(capacity, np.nan, dtype=np.float32)
        self._in_stock = np.zeros(capacity, dtype=bool)
        self._titles: list[str] = []
        self._free: list[int] = []
        self.version = 0  # bumped on every change
        self._changed_at = np.zeros(capacity, dtype=np.int64)  # per row: the version that last changed it

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    @property
    def size(self) -> int:
        """Number of rows in use (alive or free); row ids are below this."""
        return len(self._ids)

    def _grow(self) -> None:
        cap = self._vectors.shape[0] * 2
        self._vectors = np.resize(self._vectors, (cap, self.dim))
        self._vectors[len(self._ids) :] = 0.0
        alive = np.zeros(cap, dtype=bool)
        alive[: self._alive.shape[0]] = self._alive
        self._alive = alive
        has_vector = np.zeros(cap, dtype=bool)
        has_vector[: self._has_vector.shape[0]] = self._has_vector
        self._has_vector = has_vector
        prices = np.full(cap, np.nan, dtype=np.float32)
        prices[: self._prices.shape[0]] = self._prices
        self._prices = prices
        stock = np.zeros(cap, dtype=bool)
        stock[: self._in_stock.shape[0]] = self._in_stock
        self._in_stock = stock
        codes = np.full(cap, -1, dtype=np.int64)
        codes[: self._category_codes.shape[0]] = self._category_codes
        self._category_codes = codes
        changed = np.zeros(cap, dtype=np.int64)
        changed[: self._changed_at.shape[0]] = self._changed_at
        self._changed_at = changed

    def upsert(
        self,
        item_id: ItemId,
        vector: Vector,
        category: str = "",
        price: float | None = None,
        title: str = "",
        in_stock: bool = True,
    ) -> None:
        """Insert or replace an item's embedding and metadata."""
        if vector.shape != (self.dim,):
            raise ValueError(f"vector of {item_id!r} has shape {vector.shape}, expected ({self.dim},)")
        row = self._rows.get(item_id)
        if row is None:
            if self._free:
                row = self._free.pop()
                self._ids[row] = item_id
                self._categories[row] = category
                self._titles[row] = title
            else:
                if len(self._ids) == self._vectors.shape[0]:
                    self._grow()
                row = len(self._ids)
                self._ids.append(item_id)
                self._categories.append(category)
                self._titles.append(title)
            self._rows[item_id] = row
        else:
            self._categories[row] = category
            self._titles[row] = title
        self._vectors[row] = l2_normalize(vector)
        self._has_vector[row] = bool(self._vectors[row].any())
        self._prices[row] = np.nan if price is None else price
        self._in_stock[row] = in_stock
        self._category_codes[row] = self._category_code(category)
        self._alive[row] = True
        self.version += 1
        self._changed_at[row] = self.version

    def delete(self, item_id: ItemId) -> None:
        """Remove an item (a catalog tombstone); unknown ids are ignored."""
        row = self._rows.pop(item_id, None)
        if row is None:
            return
        self._alive[row] = False
        self._has_vector[row] = False
        self._vectors[row] = 0.0
        self._category_codes[row] = -1
        self._prices[row] = np.nan
        self._in_stock[row] = False
        self._free.append(row)
        self.version += 1
        self._changed_at[row] = self.version

    def _category_code(self, category: str) -> int:
        if not category:
            return -1
        code = self._category_ids.get(category)
        if code is None:
            code = self._category_ids[category] = len(self._category_ids)
        return code

    def category_code(self, category: str) -> int | None:
        """The small integer of a category in :attr:`category_codes` (None when no item ever had it)."""
        return self._category_ids.get(category) if category else None

    def row(self, item_id: ItemId) -> int | None:
        """Row of an item, or None when it is not in the catalog."""
        return self._rows.get(item_id)

    def rows(self, item_ids: Iterable[ItemId]) -> IntArray:
        """Rows of the known items among ``item_ids`` (unknown ones are skipped)."""
        return np.fromiter((r for i in item_ids if (r := self._rows.get(i)) is not None), dtype=np.int64)

    def item_id(self, row: int) -> ItemId:
        return self._ids[row]

    def item_ids(self, rows: Sequence[int] | IntArray) -> list[ItemId]:
        return [self._ids[int(r)] for r in rows]

    def vector(self, item_id: ItemId) -> Vector | None:
        row = self._rows.get(item_id)
        return None if row is None else self._vectors[row].copy()

    def category(self, item_id: ItemId) -> str | None:
        row = self._rows.get(item_id)
        return None if row is None else self._categories[row]

    def title(self, item_id: ItemId) -> str | None:
        row = self._rows.get(item_id)
        return None if row is None else self._titles[row]

    @property
    def matrix(self) -> Matrix:
        """Embedding rows ``[0, size)``; dead rows are zero."""
        return self._vectors[: len(self._ids)]

    def changed_since(self, version: int) -> NDArray[np.int64]:
        """Rows upserted or deleted after ``version`` (rows added since then included).

        >>> idx = ItemIndex(dim=2)
        >>> idx.upsert("a", np.array([1.0, 0.0])); v = idx.version
        >>> idx.upsert("b", np.array([0.0, 1.0])); idx.upsert("a", np.array([1.0, 1.0]))
        >>> idx.changed_since(v).tolist(), idx.changed_since(idx.version).tolist()
        ([0, 1], [])
        """
        return np.flatnonzero(self._changed_at[: len(self._ids)] > version)

    @property
    def alive(self) -> NDArray[np.bool_]:
        return self._alive[: len(self._ids)]

    @property
    def has_vector(self) -> NDArray[np.bool_]:
        """Whether each row ``[0, size)`` is alive with a non-zero vector: the rows nearest-item
        retrieval can return. A behaviour-only item (no text, no image) has a zero vector, which
        is no nearer to any user or item than any other: it is found by co-visitation and
        trending, never by similarity.

        >>> idx = ItemIndex(dim=2)
        >>> idx.upsert("a", np.array([1.0, 0.0])); idx.upsert("b", np.zeros(2, np.float32))
        >>> idx.has_vector.tolist(), idx.alive.tolist()
        ([True, False], [True, True])
        """
        return self._has_vector[: len(self._ids)]

    @property
    def category_codes(self) -> IntArray:
        """Category of rows ``[0, size)`` as small integers (-1: no category, or a free row)."""
        return self._category_codes[: len(self._ids)]

    @property
    def prices(self) -> NDArray[np.float32]:
        """Price of rows ``[0, size)`` (NaN where unknown)."""
        return self._prices[: len(self._ids)]

    @property
    def in_stock(self) -> NDArray[np.bool_]:
        """Whether each row ``[0, size)`` is in stock (False for a free row)."""
        return self._in_stock[: len(self._ids)]

    @property
    def ids(self) -> list[ItemId]:
        """Item id of every row ``[0, size)`` (a free row keeps its last id; see :attr:`alive`)."""
        return self._ids

    def nearest(self, queries: Matrix, k: int) -> tuple[IntArray, Matrix]:
        """Top-``k`` rows by dot product for each query row, best first, among the rows
        :attr:`has_vector`.

        Returns ``(rows, scores)`` of shape ``(n_queries, min(k, rows with a vector))``. A zero
        query is near nothing: all its scores are -inf.
        """
        n = len(self._ids)
        k = min(k, int(self._has_vector[:n].sum()))
        if k == 0 or queries.shape[0] == 0:
            return np.zeros((queries.shape[0], 0), np.int64), np.zeros((queries.shape[0], 0), np.float32)
        sims = queries.astype(np.float32) @ self._vectors[:n].T
        sims[:, ~self._has_vector[:n]] = -np.inf
        sims[~queries.any(axis=1)] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)
