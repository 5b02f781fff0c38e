"""Nearest items by the fused (text + image) embedding, for ``similar:{item_id}``.

One matrix product of the wanted items' vectors against the whole catalog per catalog
batch; an item is never its own neighbour, and deleted items never appear. Nor do items
with a zero vector (behaviour-only: no text, no image), whose own lists are empty: a zero
vector is no nearer to one item than to any other.
:func:`catalog_view` is the item index with a batch's changes applied on top (new and
changed vectors, deletions), so lists are right even before the index has applied them.
:func:`affected_items` names the items whose lists a batch can alter: the changed ones
and their nearest items, before and after the change (similarity is symmetric, so an
item that gains or loses a neighbour is, in practice, among that neighbour's nearest).

>>> import numpy as np
>>> from models.item_index import ItemIndex
>>> idx = ItemIndex(dim=2)
>>> for name, v in {"a": [1, 0], "b": [0.9, 0.1], "c": [0, 1]}.items():
...     idx.upsert(name, np.array(v, np.float32))
>>> view = catalog_view(idx)
>>> [[i for i, _ in row] for row in nearest_items(view, ["a", "c"], k=1)]
[['b'], ['b']]
>>> view = catalog_view(idx, upserts={"d": np.array([0.1, 1], np.float32)}, deleted=["b"])
>>> [[i for i, _ in row] for row in nearest_items(view, ["a", "c"], k=1)]
[['d'], ['d']]
>>> view = catalog_view(idx, upserts={"e": np.zeros(2, np.float32)})
>>> [[i for i, _ in row] for row in nearest_items(view, ["a", "e"], k=5)]
[['b', 'c'], []]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.item_index import ItemIndex
from models.types import ItemId, Vector
from models.vectors import l2_normalize


@dataclass(frozen=True)
class CatalogView:
    """Item ids, unit vectors, live flags and which live rows have a non-zero vector, row by row."""

    ids: list[ItemId]
    matrix: NDArray[np.float32]
    alive: NDArray[np.bool_]
    rows: dict[ItemId, int]
    has_vector: NDArray[np.bool_]


def catalog_view(
    index: ItemIndex, upserts: Mapping[ItemId, Vector] | None = None, deleted: Iterable[ItemId] = ()
) -> CatalogView:
    """The index's items with ``upserts`` (new or changed vectors) and ``deleted`` applied."""
    ids = list(index.ids)
    matrix = index.matrix
    alive = index.alive.copy()
    has_vector = index.has_vector.copy()
    rows = {i: r for i, r in zip(ids, range(len(ids)), strict=True) if alive[r]}
    upserts = upserts or {}
    if upserts:
        new = [i for i in upserts if i not in rows]
        matrix = np.vstack([matrix, np.zeros((len(new), index.dim), np.float32)])
        alive = np.concatenate([alive, np.ones(len(new), bool)])
        has_vector = np.concatenate([has_vector, np.zeros(len(new), bool)])
        for i in new:
            rows[i] = len(ids)
            ids.append(i)
        for i, v in upserts.items():
            matrix[rows[i]] = l2_normalize(np.asarray(v, np.float32))
            alive[rows[i]] = True
            has_vector[rows[i]] = bool(matrix[rows[i]].any())
    for i in deleted:
        r = rows.pop(i, None)
        if r is not None:
            alive[r] = has_vector[r] = False
    return CatalogView(ids, matrix, alive, rows, has_vector)


def nearest_items(view: CatalogView, item_ids: Sequence[ItemId], k: int) -> list[list[tuple[ItemId, float]]]:
    """The ``k`` nearest live items of each of ``item_ids`` (best first, ties by row; [] for an unknown
    id or one with a zero vector)."""
    rows = np.fromiter((view.rows.get(i, -1) for i in item_ids), np.int64, count=len(item_ids))
    out: list[list[tuple[ItemId, float]]] = [[] for _ in item_ids]
    known = np.flatnonzero(rows >= 0)
    known = known[view.has_vector[rows[known]]]
    k = min(k, int(view.has_vector.sum()) - 1)
    if known.shape[0] == 0 or k <= 0:
        return out
    sims = view.matrix[rows[known]] @ view.matrix.T
    sims[:, ~view.has_vector] = -np.inf
    sims[np.arange(known.shape[0]), rows[known]] = -np.inf  # never its own neighbour
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    scores = np.take_along_axis(sims, part, axis=1)
    order = np.lexsort((part, -scores), axis=-1)
    part, scores = np.take_along_axis(part, order, axis=1), np.take_along_axis(scores, order, axis=1)
    ids = view.ids
    for n, (row_parts, row_scores) in enumerate(zip(part.tolist(), np.round(scores, 6).tolist(), strict=True)):
        out[int(known[n])] = [(ids[r], s) for r, s in zip(row_parts, row_scores, strict=True) if s != -np.inf]
    return out


def affected_items(before: CatalogView, after: CatalogView, changed: Sequence[ItemId], k: int) -> list[ItemId]:
    """Live items whose lists ``changed`` can alter: the changed ones still live, and the
    ``k`` nearest of each changed item before and after the change, without repeats."""
    seen: dict[ItemId, None] = {}
    for view in (before, after):
        for row in nearest_items(view, changed, k):
            for item_id, _ in row:
                seen.setdefault(item_id, None)
    for i in changed:
        seen.setdefault(i, None)
    return [i for i in seen if i in after.rows]
