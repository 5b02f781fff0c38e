"""Request-time re-ranking: order the items a caller sends for a user, in one scoring call.

The caller (a search page, a category page) already has the items; :func:`rerank`
builds the same :class:`~models.candidates.Candidates` features the refresh path
builds (interest, latest-query, co-visitation and trending evidence) for exactly those
items, scores the pairs of every request of a batch with the recommender's scorer in
one call, and orders each request's items by score. A user with no state gets the
items by popularity (trending, then all-time interactions), with no scorer call.

Each item comes back with the main reason it scored (``search``, ``covisit``,
``interest``, ``trending``), and each item left out with why (not in the catalog, or
the filter rule that removed it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from models.candidates import (
    COVISIT,
    INTEREST,
    SEARCH,
    SOURCES,
    TRENDING,
    Candidates,
    UserContext,
)
from models.filters import REASONS, ItemFilter
from models.interest import UserState
from models.item_activity import ItemActivity
from models.item_index import ItemIndex
from models.ranking import BlendScorer, ScoringContext
from models.recommender import Recommender
from models.types import ItemId, Timestamp, UserId, Vector

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]

#: A short, human-readable reason per source; ``popularity`` is the order for users with no state.
REASON_TEXT: dict[str, str] = {
    "search": "matches the latest search",
    "covisit": "viewed together with the user's recent items",
    "interest": "near the user's interests",
    "trending": "popular right now",
    "popularity": "popular (no history for this user)",
}

#: How much a request's own query counts (the confidence a fresh search has).
REQUEST_QUERY_CONFIDENCE = 1.0


@dataclass(frozen=True)
class RankRequest:
    """One user's items to order. ``query`` is the request's search, already embedded."""

    user_id: UserId
    items: Sequence[ItemId]
    state: UserState | None = None  # None: nothing known about the user
    query: Vector | None = None
    filter: ItemFilter = field(default_factory=ItemFilter)
    now: Timestamp = 0.0


@dataclass(frozen=True)
class RankedItem:
    """An item in its new place, with its score and the main reason for it."""

    item_id: ItemId
    score: float
    source: str

    @property
    def reason(self) -> str:
        return REASON_TEXT[self.source]


@dataclass(frozen=True)
class RankResult:
    """One request's answer: ``items`` best first, ``removed`` as (item_id, reason)."""

    items: list[RankedItem]
    removed: list[tuple[ItemId, str]]
    personalised: bool


def _user_context(rec: Recommender, r: RankRequest) -> UserContext:
    ctx = rec.context(r.user_id, r.state or UserState(), r.now)
    if r.query is not None and np.any(r.query):
        ctx = replace(ctx, query=r.query, conf_query=REQUEST_QUERY_CONFIDENCE)
    return ctx


class TrendCache:
    """The trending feature and the all-time popularity per index row, recomputed at most
    every ``max_age_s`` seconds (and whenever the index changes), since every request of
    that window would compute the same arrays.
    """

    def __init__(self, max_age_s: float = 0.25) -> None:
        self.max_age_s = max_age_s
        self._key: tuple[int, int] | None = None
        self._at = -float("inf")
        self._trend: FloatArray | None = None
        #: All-time interactions per index row, from the same moment as the trend array.
        self.popularity: NDArray[np.float64] | None = None

    def get(self, rec: Recommender, per_source: int, now: float) -> FloatArray:
        """The cached array, or a fresh one when it is older than ``max_age_s`` at ``now`` (a monotonic time)."""
        key = (id(rec.index), rec.index.version)
        if self._trend is None or key != self._key or now - self._at > self.max_age_s:
            self._trend, self._key, self._at = _trend(rec, per_source), key, now
            self.popularity = _popularity(rec, np.arange(rec.index.size, dtype=np.int64))
        return self._trend


def _trend(rec: Recommender, per_source: int) -> FloatArray:
    """Trending score per index row, as the refresh path's candidates carry it (hottest = 1)."""
    index = rec.index
    trend = np.zeros(index.size, np.float32)
    hot = rec.trending.top(max(per_source, 1) * 4)
    if hot:
        rows = index.rows(i for i, _ in hot)
        known = np.fromiter((i in index for i, _ in hot), bool, count=len(hot))
        trend[rows] = np.array([s for _, s in hot], np.float32)[known]
    return trend


def _covisit(
    rec: Recommender, contexts: Sequence[UserContext], user: IntArray, row: IntArray, per_source: int
) -> FloatArray:
    """Co-visitation score of each (user, row) pair, as the refresh path computes it: the
    user's best ``per_source`` neighbours (plus as many as the user has blocked items) carry
    their score, the others 0."""
    out = np.zeros(user.shape[0], np.float32)
    cov = rec.covisitation
    if user.shape[0] == 0 or len(cov) == 0 or not any(c.recent for c in contexts):
        return out
    wanted = np.array([per_source + len(c.recent) + len(c.bought) for c in contexts], np.int64)
    cu, crow, cscore = cov.scores_for_many([c.recent for c in contexts], wanted)
    if cu.shape[0] == 0:
        return out
    distinct, inverse = np.unique(crow, return_inverse=True)
    in_index = np.array([-1 if (r := rec.index.row(i)) is None else r for i in cov.item_ids(distinct)], np.int64)
    cr = in_index[inverse]
    ok = cr >= 0
    n = max(rec.index.size, 1)
    ckeys = cu[ok] * n + cr[ok]
    order = np.argsort(ckeys)
    ckeys, cvals = ckeys[order], cscore[ok][order].astype(np.float32)
    if ckeys.shape[0] == 0:
        return out
    keys = user * n + row
    pos = np.clip(np.searchsorted(ckeys, keys), 0, ckeys.shape[0] - 1)
    hit = ckeys[pos] == keys
    out[hit] = cvals[pos[hit]]
    return out


def _main_source(c: Candidates) -> IntArray:
    """The candidate source of each pair: the strongest evidence under the default blend."""
    b = BlendScorer()
    parts = np.stack(
        [
            b.w_query * c.conf_query * c.sim_query,
            b.w_covisit * c.covisit,
            b.w_long * c.conf_long * c.sim_long + b.w_short * c.conf_short * c.sim_short,
            np.full(c.user.shape[0], 1e-6, np.float32),  # no evidence at all: trending
        ],
        axis=1,
    )
    assert parts.shape[1] == len(SOURCES) and (SEARCH, COVISIT, INTEREST, TRENDING) == (0, 1, 2, 3)
    return parts.argmax(axis=1).astype(np.int64)


def pair_candidates(
    rec: Recommender, contexts: Sequence[UserContext], user: IntArray, row: IntArray, trend: FloatArray,
    per_source: int = 100,
) -> Candidates:
    """Features of given (user, row) pairs, as :func:`~models.candidates.generate_candidates` gives them."""
    index = rec.index
    dim = index.dim

    def stack(vectors: Sequence[Vector | None]) -> FloatArray:
        out = np.zeros((len(vectors), dim), np.float32)
        for i, v in enumerate(vectors):
            if v is not None:
                out[i] = v
        return out

    items = index.matrix[row]

    def sim(vectors: FloatArray) -> FloatArray:
        return np.einsum("ij,ij->i", items, vectors[user]).astype(np.float32)

    conf = np.array([[c.conf_long, c.conf_short, c.conf_query] for c in contexts], np.float32).reshape(-1, 3)
    c = Candidates(
        user=user,
        row=row,
        source=np.zeros(user.shape[0], np.int64),
        sim_long=sim(stack([c.long for c in contexts])),
        sim_short=sim(stack([c.short for c in contexts])),
        sim_query=sim(stack([c.query for c in contexts])),
        conf_long=conf[user, 0],
        conf_short=conf[user, 1],
        conf_query=conf[user, 2],
        covisit=_covisit(rec, contexts, user, row, per_source),
        trending=trend[row],
    )
    return replace(c, source=_main_source(c))


def _popularity(rec: Recommender, rows: IntArray) -> NDArray[np.float64]:
    """All-time interactions per row (0 without item statistics)."""
    if not isinstance(rec.trending, ItemActivity) or rows.shape[0] == 0:
        return np.zeros(rows.shape[0], np.float64)
    count, _, _ = rec.trending.stats(rec.trending.row_map(rec.index.item_ids(rows)))
    return count


def rerank(
    rec: Recommender, requests: Sequence[RankRequest], per_source: int = 100, trend: FloatArray | None = None,
    popularity: NDArray[np.float64] | None = None,
) -> list[RankResult]:
    """Order each request's items for its user; all known users' pairs are scored in one call.

    Items not in the catalog, or removed by the request's filter, are listed in
    ``removed`` with the reason. Ties break by trending, then by the caller's order.
    ``trend`` is the trending feature per index row and ``popularity`` the all-time interactions
    per index row (see :class:`TrendCache`); computed here when None.
    """
    index: ItemIndex = rec.index
    if trend is None or trend.shape[0] != index.size:
        trend = _trend(rec, per_source)
    req_of: list[IntArray] = []
    rows_of: list[IntArray] = []
    pos_of: list[IntArray] = []
    removed: list[list[tuple[ItemId, str]]] = []
    for n, r in enumerate(requests):
        rows = np.fromiter((-1 if (x := index.row(i)) is None else x for i in r.items), np.int64, count=len(r.items))
        known = rows >= 0
        keep, why = r.filter.verdict(index, np.where(known, rows, 0))
        why[~known] = -1
        gone = np.flatnonzero(~known | ~keep)
        removed.append([(r.items[int(p)], "not_in_catalog" if why[p] < 0 else REASONS[why[p]]) for p in gone])
        ok = np.flatnonzero(known & keep)
        req_of.append(np.full(ok.shape[0], n, np.int64))
        rows_of.append(rows[ok])
        pos_of.append(ok.astype(np.int64))
    user = np.concatenate(req_of) if req_of else np.zeros(0, np.int64)
    row = np.concatenate(rows_of) if rows_of else np.zeros(0, np.int64)
    pos = np.concatenate(pos_of) if pos_of else np.zeros(0, np.int64)

    personalised = np.array([r.state is not None for r in requests], bool)
    score = np.zeros(user.shape[0], np.float64)
    source = np.full(user.shape[0], -1, np.int64)  # -1: popularity
    scored = personalised[user] if user.shape[0] else np.zeros(0, bool)
    if scored.any():
        which = np.flatnonzero(personalised)
        contexts = [_user_context(rec, requests[int(i)]) for i in which]
        local = np.searchsorted(which, user[scored])  # request index -> position among personalised ones
        cands = pair_candidates(rec, contexts, local, row[scored], trend, per_source)
        now = np.array([float(requests[int(i)].now) for i in which], np.float64)
        activity = rec.trending if isinstance(rec.trending, ItemActivity) else None
        s, reasons = rec.scorer.score(cands, ScoringContext(contexts, now, index, activity))
        score[scored] = np.asarray(s, np.float64)
        source[scored] = reasons
    pop = ~scored
    score[pop] = trend[row[pop]]

    pop_of_row = popularity[row] if popularity is not None and popularity.shape[0] == index.size \
        else _popularity(rec, row)
    order = np.lexsort((pos, -pop_of_row, -trend[row], -score, user))
    ids = index.item_ids(row[order])
    out_score = np.round(score[order], 6).tolist()
    out_src = ["popularity" if s < 0 else SOURCES[s] for s in source[order].tolist()]
    results: list[list[RankedItem]] = [[] for _ in requests]
    for u, item_id, sc, src in zip(user[order].tolist(), ids, out_score, out_src, strict=True):
        results[u].append(RankedItem(item_id, sc, src))
    return [
        RankResult(items, gone, bool(personal))
        for items, gone, personal in zip(results, removed, personalised.tolist(), strict=True)
    ]
