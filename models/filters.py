"""Request-time item filters as vectorised masks over item-index rows.

A :class:`ItemFilter` says which items may be shown: one or several categories, a
price range, in stock only, and ids to leave out. :meth:`ItemFilter.verdict` checks a
whole array of rows at once and says, per row, whether it passes and which rule
removed it. Filters combine (a surface's own filter plus a request's) with
:meth:`ItemFilter.merged`. Parsing from JSON lives in :meth:`ItemFilter.from_json`,
which raises :class:`FilterError` with the reason on bad input.

>>> import numpy as np
>>> from models.item_index import ItemIndex
>>> idx = ItemIndex(dim=2)
>>> idx.upsert("a", np.array([1, 0], np.float32), category="audio", price=20.0)
>>> idx.upsert("b", np.array([0, 1], np.float32), category="books", price=5.0, in_stock=False)
>>> idx.upsert("c", np.array([1, 1], np.float32), category="audio", price=200.0)
>>> f = ItemFilter.from_json({"category": "audio", "max_price": 100})
>>> keep, why = f.verdict(idx, np.array([0, 1, 2]))
>>> keep.tolist(), [REASONS[r] for r in why.tolist()]
([True, False, False], ['', 'category', 'price'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.item_index import ItemIndex
from models.types import ItemId

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Why a row was removed, by code (0: it was not).
REASONS: tuple[str, ...] = ("", "excluded", "category", "price", "out_of_stock")
KEPT, EXCLUDED, CATEGORY, PRICE, OUT_OF_STOCK = range(5)

#: The keys a filter object may have in JSON.
FILTER_KEYS = ("category", "min_price", "max_price", "in_stock", "exclude")


class FilterError(ValueError):
    """A filter that cannot be applied; the message says what was wrong."""


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FilterError(f"filters.{name} must be a finite number (got {value!r})")
    if value < 0:
        raise FilterError(f"filters.{name} must be >= 0 (got {value!r})")
    return float(value)


def _ids(name: str, value: Any, max_items: int, max_len: int) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise FilterError(f"filters.{name} must be a string or a list of strings")
    if len(value) > max_items:
        raise FilterError(f"filters.{name} has {len(value)} entries, at most {max_items} allowed")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not 1 <= len(v) <= max_len:
            raise FilterError(f"filters.{name}[{i}] must be a string of 1 to {max_len} characters")
    return frozenset(value)


@dataclass(frozen=True)
class ItemFilter:
    """Which items may be shown. Empty fields do not filter.

    ``categories``: allowed categories (any of them); ``min_price``/``max_price``:
    inclusive bounds (an item with no price fails a price bound); ``in_stock``: True
    keeps in-stock items only; ``exclude``: item ids never shown.
    """

    categories: frozenset[str] = frozenset()
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = False
    exclude: frozenset[ItemId] = frozenset()

    @property
    def empty(self) -> bool:
        """True when this filter keeps every item."""
        return self == ItemFilter()

    @classmethod
    def from_json(cls, raw: Any, max_ids: int = 1000, max_len: int = 128) -> ItemFilter:
        """Parse a JSON filter object (None or ``{}``: no filter); raises :class:`FilterError`.

        >>> ItemFilter.from_json({"category": ["a", "b"], "in_stock": True}).categories == {"a", "b"}
        True
        >>> ItemFilter.from_json({"min_price": 10, "max_price": 5})
        Traceback (most recent call last):
        ...
        models.filters.FilterError: filters.min_price (10.0) is above filters.max_price (5.0)
        """
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise FilterError("filters must be a JSON object")
        unknown = sorted(set(raw) - set(FILTER_KEYS))
        if unknown:
            raise FilterError(f"unknown filter(s): {', '.join(unknown)} (known: {', '.join(FILTER_KEYS)})")
        lo = _number("min_price", raw["min_price"]) if raw.get("min_price") is not None else None
        hi = _number("max_price", raw["max_price"]) if raw.get("max_price") is not None else None
        if lo is not None and hi is not None and lo > hi:
            raise FilterError(f"filters.min_price ({lo}) is above filters.max_price ({hi})")
        in_stock = raw.get("in_stock", False)
        if not isinstance(in_stock, bool):
            raise FilterError(f"filters.in_stock must be true or false (got {in_stock!r})")
        return cls(
            categories=_ids("category", raw["category"], max_ids, max_len) if "category" in raw else frozenset(),
            min_price=lo,
            max_price=hi,
            in_stock=in_stock,
            exclude=_ids("exclude", raw["exclude"], max_ids, max_len) if "exclude" in raw else frozenset(),
        )

    def merged(self, other: ItemFilter) -> ItemFilter:
        """Both filters at once (an item must pass each); categories of both must agree.

        >>> a = ItemFilter(categories=frozenset({"x", "y"}), max_price=10.0)
        >>> b = ItemFilter(categories=frozenset({"y"}), max_price=20.0, exclude=frozenset({"i"}))
        >>> m = a.merged(b); sorted(m.categories), m.max_price, sorted(m.exclude)
        (['y'], 10.0, ['i'])
        """
        if self.categories and other.categories:
            cats = self.categories & other.categories or frozenset({"\x00none"})  # disjoint: nothing passes
        else:
            cats = self.categories or other.categories
        los = [v for v in (self.min_price, other.min_price) if v is not None]
        his = [v for v in (self.max_price, other.max_price) if v is not None]
        return ItemFilter(
            categories=cats,
            min_price=max(los) if los else None,
            max_price=min(his) if his else None,
            in_stock=self.in_stock or other.in_stock,
            exclude=self.exclude | other.exclude,
        )

    def verdict(self, index: ItemIndex, rows: IntArray) -> tuple[BoolArray, IntArray]:
        """(kept, reason code into :data:`REASONS`) for each row; the first failing rule names the reason."""
        rows = np.asarray(rows, np.int64)
        reason = np.zeros(rows.shape[0], np.int64)
        if rows.shape[0] == 0 or self.empty:
            return reason == KEPT, reason
        checks: list[tuple[int, BoolArray]] = []
        if self.in_stock:
            checks.append((OUT_OF_STOCK, ~index.in_stock[rows]))
        if self.min_price is not None or self.max_price is not None:
            price = index.prices[rows]
            ok = ~np.isnan(price)
            if self.min_price is not None:
                ok &= price >= self.min_price
            if self.max_price is not None:
                ok &= price <= self.max_price
            checks.append((PRICE, ~ok))
        if self.categories:
            codes = np.array([c for name in self.categories if (c := index.category_code(name)) is not None], np.int64)
            checks.append((CATEGORY, ~np.isin(index.category_codes[rows], codes)))
        if self.exclude:
            checks.append((EXCLUDED, np.isin(rows, index.rows(self.exclude))))
        for code, failed in checks:  # the last assignment wins: checks run from the least to the most specific
            reason[failed] = code
        return reason == KEPT, reason

    def mask(self, index: ItemIndex) -> BoolArray:
        """Kept flag of every row ``[0, index.size)`` (dead rows are never kept)."""
        keep, _ = self.verdict(index, np.arange(index.size, dtype=np.int64))
        return keep & index.alive
