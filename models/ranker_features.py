"""The learned ranker's inputs, assembled with numpy from a micro-batch's candidates.

Serving (:mod:`models.onnx_ranker`) and training (:mod:`export.examples`) both call
:class:`FeatureAssembler`, so the model is trained on exactly the features it is
served with. Nothing here imports torch.

The model reads five arrays (names fixed, see :data:`INPUT_NAMES`; the served pair
scorer reads ``item_features`` in place of ``item_vectors``, see :data:`PAIR_INPUT_NAMES`):

* ``user_vectors`` ``(U, 3, D)``: each user's long-term, short-term and latest-query
  unit vectors (zeros where the user has none);
* ``user_index`` ``(N,)``: the user of each candidate pair;
* ``item_vectors`` ``(M, D)``: the item index's fused matrix (text part first, then
  the image part; a zero image part means the item has no image). It is the same
  array for every call until the catalog changes, so a GPU session keeps it resident;
* ``item_rows`` ``(N,)``: the item row of each pair;
* ``dense`` ``(N, F)``: the per-pair features of :data:`DENSE_FEATURES`, all known at
  the time the list is made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.candidates import SOURCES, Candidates
from models.ranking import ScoringContext

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]

INPUT_NAMES: tuple[str, ...] = ("user_vectors", "user_index", "item_vectors", "item_rows", "dense")
OUTPUT_NAME = "score"
#: Inputs of the served pair scorer: the item matrix is replaced by its precomputed item
#: features (``(M, 3 * rank + 1)``, the output :data:`ITEM_OUTPUT_NAME` of the item model,
#: whose one input is ``item_vectors``).
PAIR_INPUT_NAMES: tuple[str, ...] = ("user_vectors", "user_index", "item_features", "item_rows", "dense")
ITEM_OUTPUT_NAME = "item_features"
#: File name of the item model next to the pair scorer (in a bundle and in an export folder).
ITEM_MODEL_FILE = "item_features.onnx"

#: Per-pair dense features, in column order.
DENSE_FEATURES: tuple[str, ...] = (
    "log_popularity",  # log(1 + all-time interactions of the item)
    "recency",  # log(1 + hours since the item's latest interaction); a year when never seen
    "engagement_rate",  # windowed share of engaged interactions (CTR estimate), Beta-smoothed
    "log_price",  # log(1 + price), 0 when unknown
    "has_price",
    "category_match",  # share of the user's latest items in the candidate's category
    "covisit",  # co-visitation score with the user's recent items, in [0, 1]
    "trending",  # decayed trending score, in [0, 1]
    "sim_long",  # cosine of the item's vector with the user's long-term, short-term and query vectors
    "sim_short",  # (from candidate generation, which computes them for every item anyway)
    "sim_query",
    "conf_long",  # how much evidence backs each user vector now, in [0, 1]
    "conf_short",
    "conf_query",
    *(f"source_{s}" for s in SOURCES),  # which candidate source found the pair (one-hot)
)
N_DENSE = len(DENSE_FEATURES)

#: Latest items of the session compared with the candidate's category.
SESSION_ITEMS = 5
_NEVER_SEEN_HOURS = 24.0 * 365.0


@dataclass(frozen=True)
class RankerInputs:
    """The per-call inputs of the ranker (all but the item matrix)."""

    user_vectors: FloatArray
    user_index: IntArray
    item_rows: IntArray
    dense: FloatArray

    def __len__(self) -> int:
        return int(self.item_rows.shape[0])

    def feeds(self, item_vectors: FloatArray, item_input: str = "item_vectors") -> dict[str, NDArray[np.generic]]:
        """Named model inputs, with ``item_vectors`` (or precomputed item features) as ``item_input``."""
        return {
            "user_vectors": self.user_vectors,
            "user_index": self.user_index,
            item_input: item_vectors,
            "item_rows": self.item_rows,
            "dense": self.dense,
        }


def _stack(vectors: list[NDArray[np.float32] | None], dim: int) -> FloatArray:
    out = np.zeros((len(vectors), dim), np.float32)
    for i, v in enumerate(vectors):
        if v is not None:
            out[i] = v
    return out


class FeatureAssembler:
    """Builds :class:`RankerInputs` for a batch of candidates, vectorised over pairs.

    It caches the map from item-index rows to item-statistics rows and rebuilds it
    only when either side gains or changes rows.

    >>> import numpy as np
    >>> from models.candidates import UserContext, Candidates
    >>> from models.item_index import ItemIndex
    >>> idx = ItemIndex(dim=2); idx.upsert("a", np.array([1, 0], np.float32), category="x", price=9.0)
    >>> z = np.zeros(1, np.float32)
    >>> c = Candidates(np.array([0]), np.array([0]), np.array([2]), z, z, z, z, z, z, z, z)
    >>> ctx = ScoringContext([UserContext("u", recent=("a",))], np.array([0.0]), idx)
    >>> x = FeatureAssembler()(c, ctx)
    >>> x.user_vectors.shape, x.dense.shape, float(x.dense[0, DENSE_FEATURES.index("category_match")])
    ((1, 3, 2), (1, 18), 1.0)
    """

    def __init__(self) -> None:
        self._map_key: tuple[int, ...] | None = None
        self._map: IntArray = np.zeros(0, np.int64)

    def _activity_rows(self, ctx: ScoringContext) -> IntArray:
        index, activity = ctx.index, ctx.activity
        assert activity is not None
        key = (id(index), index.version, index.size, id(activity), activity.rows_version)
        if key != self._map_key:
            self._map = activity.row_map(index.ids[: index.size])
            self._map_key = key
        return self._map

    def __call__(self, c: Candidates, ctx: ScoringContext) -> RankerInputs:
        """The ranker's inputs for ``c``'s pairs, in their order."""
        index = ctx.index
        n, dim = len(c), index.dim
        users = ctx.users
        user_vectors = np.stack(
            [
                _stack([u.long for u in users], dim),
                _stack([u.short for u in users], dim),
                _stack([u.query for u in users], dim),
            ],
            axis=1,
        )
        dense = np.zeros((n, N_DENSE), np.float32)
        col = {name: i for i, name in enumerate(DENSE_FEATURES)}
        rows, owner = c.row, c.user
        if ctx.activity is not None and n:
            count, last, rate = ctx.activity.stats(self._activity_rows(ctx)[rows])
            hours = np.where(np.isnan(last), _NEVER_SEEN_HOURS, np.maximum(ctx.now[owner] - last, 0.0) / 3600.0)
            dense[:, col["log_popularity"]] = np.log1p(count)
            dense[:, col["recency"]] = np.log1p(hours)
            dense[:, col["engagement_rate"]] = rate
        else:
            dense[:, col["recency"]] = np.log1p(_NEVER_SEEN_HOURS)
        price = index.prices[rows]
        known = ~np.isnan(price)
        dense[:, col["log_price"]] = np.where(known, np.log1p(np.maximum(np.nan_to_num(price), 0.0)), 0.0)
        dense[:, col["has_price"]] = known
        dense[:, col["category_match"]] = self._category_match(c, ctx)
        dense[:, col["covisit"]] = c.covisit
        dense[:, col["trending"]] = c.trending
        dense[:, col["sim_long"]] = c.sim_long
        dense[:, col["sim_short"]] = c.sim_short
        dense[:, col["sim_query"]] = c.sim_query
        dense[:, col["conf_long"]] = c.conf_long
        dense[:, col["conf_short"]] = c.conf_short
        dense[:, col["conf_query"]] = c.conf_query
        dense[np.arange(n), col[f"source_{SOURCES[0]}"] + c.source] = 1.0
        return RankerInputs(user_vectors, owner.astype(np.int64), rows.astype(np.int64), dense)

    @staticmethod
    def _category_match(c: Candidates, ctx: ScoringContext) -> FloatArray:
        """Share of each pair's user's latest :data:`SESSION_ITEMS` items in the candidate's category."""
        codes = ctx.index.category_codes
        session = np.full((len(ctx.users), SESSION_ITEMS), -1, np.int64)
        for i, u in enumerate(ctx.users):  # one small lookup per user, not per pair
            rows = ctx.index.rows(u.recent[-SESSION_ITEMS:])
            if rows.shape[0]:
                session[i, : rows.shape[0]] = codes[rows]
        mine = session[c.user]  # (N, SESSION_ITEMS)
        cand = codes[c.row][:, None]
        valid = mine >= 0
        hits = ((mine == cand) & valid & (cand >= 0)).sum(axis=1)
        return (hits / np.maximum(valid.sum(axis=1), 1)).astype(np.float32)
