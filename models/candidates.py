"""Candidate generation for a micro-batch of users, fully vectorised.

Sources: nearest items to the user's interest (long + short term), nearest items
to the latest search, co-visitation neighbours of the user's recent items, and
trending items. Each (user, item) pair appears once, labelled with the source
that found it first in priority order (search, covisit, interest, trending), and
carries the features the ranker needs.

The nearest items come from matrix products over the whole catalog, in numpy, or,
given a :class:`Retrieval` (:class:`models.onnx_retrieval.OnnxRetrieval` on a GPU),
from one call that returns only each user's top rows; the features of the chosen
pairs are then computed from their gathered rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from models.covisitation import CoVisitation
from models.item_index import ItemIndex
from models.trending import Trending
from models.types import ItemId, UserId, Vector

SOURCES: tuple[str, ...] = ("search", "covisit", "interest", "trending")
SEARCH, COVISIT, INTEREST, TRENDING = range(4)

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class UserContext:
    """What ranking needs to know about one user at refresh time."""

    user_id: UserId
    long: Vector | None = None
    short: Vector | None = None
    query: Vector | None = None
    conf_long: float = 0.0
    conf_short: float = 0.0
    conf_query: float = 0.0
    recent: tuple[ItemId, ...] = ()
    bought: tuple[ItemId, ...] = ()


@dataclass(frozen=True)
class Candidates:
    """Flat arrays over all (user, item) candidate pairs of a micro-batch."""

    user: IntArray  # index into the users sequence
    row: IntArray  # item row in the ItemIndex
    source: IntArray  # index into SOURCES
    sim_long: FloatArray
    sim_short: FloatArray
    sim_query: FloatArray
    conf_long: FloatArray
    conf_short: FloatArray
    conf_query: FloatArray
    covisit: FloatArray
    trending: FloatArray

    def __len__(self) -> int:
        return int(self.user.shape[0])


@dataclass(frozen=True)
class Retrieved:
    """Per user, the nearest rows (best first) and their scores, for the interest and search sources.
    Arrays of shape ``(users, k)``; a masked row (dead, or with a zero vector) scores -inf."""

    interest_rows: IntArray
    interest_scores: FloatArray
    search_rows: IntArray
    search_scores: FloatArray


class Retrieval(Protocol):
    """Nearest-item retrieval for a micro-batch, run outside numpy (e.g. on a GPU)."""

    #: Catalogs (item index rows) smaller than this are searched in numpy instead.
    min_items: int

    def top_rows(self, index: ItemIndex, user_vectors: FloatArray, weights: FloatArray, k: int) -> Retrieved:
        """Per user (``user_vectors`` ``(U, 3, D)``: long, short, query), the ``k`` rows of ``index``
        with the highest interest score (``weights`` ``(U, 2)`` times the long and short
        similarities) and the ``k`` nearest to the query."""
        ...


def _stack(vectors: Sequence[Vector | None], dim: int) -> FloatArray:
    out = np.zeros((len(vectors), dim), dtype=np.float32)
    for i, v in enumerate(vectors):
        if v is not None:
            out[i] = v
    return out


def _top_rows(scores: FloatArray, k: int, valid: NDArray[np.bool_],
              columns: IntArray | None = None) -> tuple[IntArray, IntArray]:
    """(user, row) pairs of the top-k columns of each valid row of ``scores`` (its columns are
    the rows ``columns`` when given, else ``0..n-1``). A column scored -inf (masked) is never
    returned, even when fewer than ``k`` columns of a row are left.

    >>> scores = np.array([[0.2, -np.inf, 0.9], [0.5, 0.1, 0.3]], np.float32)
    >>> _top_rows(scores, 2, np.array([True, False]))
    (array([0, 0]), array([2, 0]))
    >>> _top_rows(scores, 3, np.array([True, True]))[0].tolist()
    [0, 0, 1, 1, 1]
    """
    n = scores.shape[1]
    k = min(k, n)
    if k == 0 or not valid.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    users = np.flatnonzero(valid)
    picked = scores if users.shape[0] == scores.shape[0] else scores[users]
    part = np.argpartition(-picked, k - 1, axis=1)[:, :k]
    found = np.isfinite(np.take_along_axis(picked, part, axis=1)).reshape(-1)
    rows = part.reshape(-1).astype(np.int64)[found]
    return np.repeat(users, k)[found], rows if columns is None else columns[rows]


def _pair_similarities(vectors: FloatArray, matrix: FloatArray, user: IntArray, row: IntArray) -> FloatArray:
    """``(N, K)``: each pair's item row times its user's ``K`` vectors (``vectors`` ``(U, K, D)``).

    The pairs' rows are gathered once, grouped by user, and each user's group takes one small
    matrix product: a Python step per user, never per pair, and no per-pair copy of the
    user's vectors.

    >>> vectors = np.array([[[1.0, 0.0]], [[0.0, 2.0]]], np.float32)  # 2 users, 1 vector each
    >>> matrix = np.array([[1.0, 1.0], [3.0, 5.0]], np.float32)
    >>> _pair_similarities(vectors, matrix, np.array([1, 0, 1]), np.array([0, 1, 1])).tolist()
    [[2.0], [3.0], [10.0]]
    """
    sims = np.zeros((user.shape[0], vectors.shape[1]), np.float32)
    if user.shape[0] == 0:
        return sims
    order = np.argsort(user, kind="stable")
    rows = matrix[row[order]]
    bounds = np.searchsorted(user[order], np.arange(vectors.shape[0] + 1))
    grouped = np.empty_like(sims)
    for u in np.flatnonzero(np.diff(bounds)):
        start, end = bounds[u], bounds[u + 1]
        grouped[start:end] = rows[start:end] @ vectors[u].T
    sims[order] = grouped
    return sims


def _first_allowed(
    rows: IntArray, scores: FloatArray, valid: NDArray[np.bool_], blocked_keys: IntArray, n_rows: int, k: int
) -> tuple[IntArray, IntArray]:
    """(user, row) pairs of the first ``k`` rows of each valid user's best-first ``rows`` that are
    alive (finite score) and not blocked (``user * n_rows + row`` in ``blocked_keys``).

    >>> rows = np.array([[3, 1, 2], [0, 2, 1]]); scores = np.array([[.9, .8, .7], [.9, -np.inf, -np.inf]])
    >>> _first_allowed(rows, scores, np.array([True, True]), np.array([0 * 4 + 3]), 4, 1)
    (array([0, 1]), array([1, 0]))
    """
    if rows.shape[1] == 0 or not valid.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    users = np.broadcast_to(np.arange(rows.shape[0], dtype=np.int64)[:, None], rows.shape)
    ok = np.isfinite(scores) & valid[:, None] & ~np.isin(users * n_rows + rows, blocked_keys)
    ok &= np.cumsum(ok, axis=1) <= k
    return users[ok], rows[ok].astype(np.int64)


def generate_candidates(
    users: Sequence[UserContext],
    index: ItemIndex,
    covisitation: CoVisitation,
    trending: Trending,
    per_source: int = 100,
    exclude_recent: int = 5,
    retrieval: Retrieval | None = None,
) -> Candidates:
    """All candidate pairs with features for ``users`` (matrix products over the whole catalog, or
    one ``retrieval`` call for the batch when the index has at least ``retrieval.min_items`` rows)."""
    n_users, n_rows = len(users), index.size
    matrix, alive, has_vector = index.matrix, index.alive, index.has_vector
    long = _stack([u.long for u in users], index.dim)
    short = _stack([u.short for u in users], index.dim)
    query = _stack([u.query for u in users], index.dim)
    conf_long = np.array([u.conf_long for u in users], np.float32)
    conf_short = np.array([u.conf_short for u in users], np.float32)
    conf_query = np.array([u.conf_query for u in users], np.float32)

    # Nearest-item retrieval skips rows that are dead or have a zero vector (behaviour-only
    # items: a zero vector is no nearer to anyone than any other row).
    unfindable = ~has_vector

    # What each user must not be shown: bought items (always) and, optionally, the
    # latest ``exclude_recent`` items. Masked before every per-source top-k, so a
    # long history never crowds a source's candidates out.
    seen_sets: list[set[int]] = []
    ex_user: list[int] = []
    ex_row: list[int] = []
    for ui, u in enumerate(users):
        seen = list(u.bought) + (list(u.recent)[-exclude_recent:] if exclude_recent > 0 else [])
        rows = index.rows(seen).tolist()
        seen_sets.append(set(rows))
        ex_user.extend([ui] * len(rows))
        ex_row.extend(rows)
    blocked = (np.array(ex_user, np.int64), np.array(ex_row, np.int64))

    # Trending: one dense score per row, normalised to [0, 1]; only the hot rows are non-zero.
    trend = np.zeros(n_rows, np.float32)
    hot = trending.top(max(per_source, 1) * 4)
    for item_id, score in hot:
        r = index.row(item_id)
        if r is not None:
            trend[r] = score

    # A zero vector (a user whose items are all behaviour-only, an empty query) is near nothing.
    weighted = conf_long[:, None] * long + conf_short[:, None] * short  # the interest score is linear in it
    wants_search = (conf_query > 0.05) & query.any(axis=1)
    wants_interest = ((conf_long + conf_short) > 0) & weighted.any(axis=1)
    vectors = np.stack([long, short, query], axis=1)  # (U, 3, D)
    # Each vector's similarity with every item, when computed for the whole catalog (None:
    # the chosen pairs' similarities are computed from their gathered rows at the end).
    full: tuple[FloatArray, FloatArray, FloatArray] | None = None
    if retrieval is None or n_rows < retrieval.min_items:
        if n_users == 1:
            # The interest score is linear in the vectors: two matrix-vector products (the
            # weighted interest vector, the query) instead of three (BENCHMARKS.md).
            interest = weighted @ matrix.T
            searched = query @ matrix.T
        else:
            # One product for the three vector kinds: the catalog matrix is read once, and the
            # pairs' similarities are then looked up, cheaper than gathering many item rows.
            sims = (matrix @ np.concatenate([long, short, query]).T).T
            full = (sims[:n_users], sims[n_users:2 * n_users], sims[2 * n_users:])
            interest = conf_long[:, None] * full[0] + conf_short[:, None] * full[1]
            # Masked in place when that is safe: a dead or blocked pair is never kept, so never
            # looked up. A live row without a vector can still come from co-visitation or
            # trending, so its similarity must stay readable.
            searched = full[2] if not (alive & unfindable).any() else full[2].copy()
        for scores in (interest, searched):
            scores[:, unfindable] = -np.inf
            scores[blocked] = -np.inf
        search_pairs = _top_rows(searched, per_source, wants_search)
        interest_pairs = _top_rows(interest, per_source, wants_interest)
    else:
        most_blocked = max((len(x) for x in seen_sets), default=0)
        found = retrieval.top_rows(index, vectors, np.stack([conf_long, conf_short], axis=1),
                                   per_source + most_blocked)
        blocked_keys = blocked[0] * n_rows + blocked[1]
        search_pairs = _first_allowed(found.search_rows, found.search_scores, wants_search, blocked_keys,
                                      n_rows, per_source)
        interest_pairs = _first_allowed(found.interest_rows, found.interest_scores, wants_interest, blocked_keys,
                                        n_rows, per_source)
    hot_rows = np.flatnonzero((trend > 0) & alive)  # at most 4 * per_source of them
    trend_scores = np.broadcast_to(trend[hot_rows], (n_users, hot_rows.shape[0])).copy()
    hot_blocked = np.isin(blocked[1], hot_rows)
    if hot_blocked.any():
        trend_scores[blocked[0][hot_blocked], np.searchsorted(hot_rows, blocked[1][hot_blocked])] = -np.inf
    parts_user: list[IntArray] = []
    parts_row: list[IntArray] = []
    parts_src: list[IntArray] = []

    def add(u: IntArray, r: IntArray, src: int) -> None:
        parts_user.append(u)
        parts_row.append(r)
        parts_src.append(np.full(u.shape[0], src, np.int64))

    add(*search_pairs, SEARCH)

    # Co-visitation for the whole batch in one pass; each user asks for as many more
    # than ``per_source`` as it has blocked items, which are then dropped.
    wanted = per_source + np.fromiter((len(x) for x in seen_sets), np.int64, count=n_users)
    cu, cv_rows, cv_score = covisitation.scores_for_many([u.recent for u in users], wanted)
    distinct, inverse = np.unique(cv_rows, return_inverse=True)
    in_index = np.array([-1 if (r := index.row(i)) is None else r for i in covisitation.item_ids(distinct)], np.int64)
    cr = in_index[inverse] if distinct.shape[0] else np.zeros(0, np.int64)
    known = cr >= 0
    known[known] &= ~np.isin(cu[known] * max(n_rows, 1) + cr[known], blocked[0] * max(n_rows, 1) + blocked[1])
    cu, cr, cov_score = cu[known], cr[known], cv_score[known]
    add(cu, cr, COVISIT)
    add(*interest_pairs, INTEREST)
    add(*_top_rows(trend_scores, per_source, np.ones(n_users, bool), hot_rows), TRENDING)

    user = np.concatenate(parts_user) if parts_user else np.zeros(0, np.int64)
    row = np.concatenate(parts_row) if parts_row else np.zeros(0, np.int64)
    src = np.concatenate(parts_src) if parts_src else np.zeros(0, np.int64)

    # One pair per (user, item): the first occurrence wins (sources are in priority order).
    keys = user * max(n_rows, 1) + row
    _, first = np.unique(keys, return_index=True)
    first.sort()
    user, row, src, keys = user[first], row[first], src[first], keys[first]

    # Co-visitation and trending neighbours may be dead or blocked: drop them.
    excluded = blocked[0] * n_rows + blocked[1]
    keep = alive[row] & ~np.isin(keys, excluded)
    keep &= (src != TRENDING) | (trend[row] > 0)
    user, row, src, keys = user[keep], row[keep], src[keep], keys[keep]

    cov_feat = np.zeros(user.shape[0], np.float32)
    if cu.shape[0]:
        ckeys = cu * n_rows + cr
        order = np.argsort(ckeys)
        ckeys_sorted = ckeys[order]
        pos = np.clip(np.searchsorted(ckeys_sorted, keys), 0, ckeys_sorted.shape[0] - 1)
        hit = ckeys_sorted[pos] == keys
        cov_feat[hit] = cov_score.astype(np.float32)[order][pos[hit]]

    if full is not None:
        sim_long, sim_short, sim_query = (s[user, row] for s in full)
    else:  # only the chosen pairs' similarities, from their gathered item rows
        sims = _pair_similarities(vectors, matrix, user, row)
        sim_long, sim_short, sim_query = (np.ascontiguousarray(sims[:, j]) for j in range(3))
    return Candidates(
        user=user,
        row=row,
        source=src,
        sim_long=sim_long,
        sim_short=sim_short,
        sim_query=sim_query,
        conf_long=conf_long[user],
        conf_short=conf_short[user],
        conf_query=conf_query[user],
        covisit=cov_feat,
        trending=trend[row],
    )

