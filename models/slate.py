"""The final slate of K items per user: filters, frequency capping, MMR, category cap, exploration.

:class:`SlateBuilder` turns the scored candidate pairs of a micro-batch (flat
arrays, as :mod:`models.candidates` and :mod:`models.ranking` produce them) into
each user's list, in one vectorised pass for every user at once:

1. **never an already-bought item**: pairs in ``bought`` are dropped;
2. **relevance**: each user's scores are min-max normalised to [0, 1], then
   **frequency capping** multiplies an item's relevance by
   ``freq_decay ** max(0, shown - freq_free)``, where ``shown`` is how often the user
   was shown it without clicking (``freq_decay`` 1, the default, switches capping off);
3. the ``pool`` most relevant candidates per user go to **MMR** (maximal marginal
   relevance on the unit item embeddings): each next item maximises
   ``mmr_lambda * rel - (1 - mmr_lambda) * max cosine to the items already chosen``,
   skipping items whose category already has ``category_cap`` items (items
   without a category are never capped);
4. **exploration**: ``explore_slots`` slots are filled by the user's bandit policy,
   which picks a candidate *source* among those with candidates left; the slot gets
   that source's best remaining candidate by the same MMR score, and records the
   probability with which the policy picked the source among the available ones;
   ``fresh_slots`` slots go to new items from :class:`models.fresh_items.FreshItems`
   (source ``fresh``) while any are not yet informed.

Every item carries its source and propensity: 1.0 for the deterministic
(MMR) slots, the policy's choice probability for the exploration slots, so
policies can be compared off-policy from the logs (:mod:`models.ope`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.bandit import Context, Policy
from models.fresh_items import FreshItems

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.int64]

FRESH = "fresh"


@dataclass(frozen=True)
class SlateSettings:
    """How slates are built (see the module docstring)."""

    k: int = 10
    mmr_lambda: float = 0.7
    category_cap: int = 3  # 0: no cap
    pool: int = 50
    freq_free: int = 2
    freq_decay: float = 1.0  # 1: no frequency capping
    explore_slots: int = 1
    fresh_slots: int = 1
    explore_positions: tuple[int, ...] = (4, 9)  # where exploration items go (in the order chosen)
    min_propensity: float = 1e-3  # floor of a logged Monte-Carlo propensity

    def __post_init__(self) -> None:
        if self.k < 1 or self.pool < 1:
            raise ValueError("k and pool must be at least 1")
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda must be in [0, 1] (got {self.mmr_lambda})")
        if not 0.0 < self.freq_decay <= 1.0:
            raise ValueError(f"freq_decay must be in (0, 1] (got {self.freq_decay})")
        if min(self.category_cap, self.freq_free, self.explore_slots, self.fresh_slots) < 0:
            raise ValueError("category_cap, freq_free, explore_slots and fresh_slots must not be negative")


@dataclass(frozen=True)
class SlateItem:
    """One published item: its row in the item index, score, source and propensity (and, for an
    exploration slot's item, the sources its policy chose among)."""

    row: int
    score: float
    source: str
    propensity: float
    arms: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScoredPairs:
    """Scored candidate pairs of a micro-batch: user index, item row, score, source index."""

    user: IntArray
    row: IntArray
    score: FloatArray
    source: IntArray


def _lookup(keys: IntArray, table_keys: IntArray, table_values: NDArray[np.float64]) -> NDArray[np.float64]:
    """``table_values`` at ``keys`` (0 where a key is absent)."""
    out = np.zeros(keys.shape[0], np.float64)
    if table_keys.shape[0] == 0:
        return out
    order = np.argsort(table_keys)
    sk = table_keys[order]
    pos = np.clip(np.searchsorted(sk, keys), 0, sk.shape[0] - 1)
    hit = sk[pos] == keys
    out[hit] = table_values[order][pos[hit]]
    return out


class SlateBuilder:
    """Builds every user's slate of a micro-batch (pure: all state comes in as arguments).

    Parameters
    ----------
    settings
        :class:`SlateSettings`.
    sources
        Names of the candidate sources, indexed by ``ScoredPairs.source``; they are
        also the arms of the exploration policy.
    """

    def __init__(self, settings: SlateSettings | None = None, sources: Sequence[str] = ()) -> None:
        self.settings = settings or SlateSettings()
        self.sources = tuple(sources)

    def relevance(self, pairs: ScoredPairs, n_users: int, n_rows: int,
                  shown: tuple[IntArray, IntArray, IntArray] | None = None) -> NDArray[np.float64]:
        """Per-user min-max normalised score, times the frequency-capping factor."""
        s = self.settings
        score = pairs.score.astype(np.float64)
        lo = np.full(n_users, np.inf)
        hi = np.full(n_users, -np.inf)
        np.minimum.at(lo, pairs.user, score)
        np.maximum.at(hi, pairs.user, score)
        span = (hi - lo)[pairs.user]
        rel = np.where(span > 0, (score - lo[pairs.user]) / np.where(span > 0, span, 1.0), 1.0)
        if shown is not None and shown[0].shape[0]:
            count = _lookup(pairs.user * n_rows + pairs.row, shown[0] * n_rows + shown[1], shown[2].astype(np.float64))
            rel = rel * s.freq_decay ** np.maximum(0.0, count - s.freq_free)
        return rel

    def build(
        self,
        pairs: ScoredPairs,
        n_users: int,
        embeddings: FloatArray,
        categories: IntArray,
        bought: tuple[IntArray, IntArray] | None = None,
        shown: tuple[IntArray, IntArray, IntArray] | None = None,
        policies: Sequence[Policy | None] | None = None,
        contexts: Sequence[Context | None] | None = None,
        fresh: FreshItems | None = None,
        row_of: dict[str, int] | None = None,
        tiebreak: NDArray[np.floating] | None = None,
        now: float | None = None,
    ) -> list[list[SlateItem]]:
        """Every user's slate, best first.

        ``embeddings`` and ``categories`` are indexed by item row (unit vectors;
        category code, -1 for none). ``bought`` is (user, row) pairs never to show;
        ``shown`` is (user, row, impressions without a click). ``policies[u]`` picks
        the exploration source for user ``u`` (None: no exploration slot), on the
        user's ``contexts[u]`` when the policy reads one (LinUCB). ``fresh``
        and ``row_of`` (item id to row) fill the fresh slots, with the items fresh at
        ``now``. ``tiebreak`` (one value per pair, e.g. popularity) orders pairs of
        equal relevance, higher first, then the item row. Slots reserved for
        exploration or fresh items that find none are filled by MMR, so a user with
        enough candidates always gets ``k`` items.
        """
        s = self.settings
        n_rows = embeddings.shape[0]
        keys = pairs.user * n_rows + pairs.row
        keep = np.ones(keys.shape[0], bool)
        bought_keys = np.zeros(0, np.int64)
        if bought is not None and bought[0].shape[0]:
            bought_keys = bought[0] * n_rows + bought[1]
            keep &= ~np.isin(keys, bought_keys)
        p = ScoredPairs(pairs.user[keep], pairs.row[keep], pairs.score[keep], pairs.source[keep])
        rel = self.relevance(p, n_users, n_rows, shown)
        tie = np.zeros(rel.shape[0]) if tiebreak is None else np.asarray(tiebreak, np.float64)[keep]

        # The ``pool`` most relevant candidates of each user, padded to one (users, pool) block.
        order = np.lexsort((p.row, -tie, -rel, p.user))
        u_sorted = p.user[order]
        starts = np.searchsorted(u_sorted, np.arange(n_users))
        rank = np.arange(order.shape[0]) - starts[u_sorted]
        take = rank < s.pool
        order, rank, u_sorted = order[take], rank[take], u_sorted[take]
        m = int(rank.max()) + 1 if rank.shape[0] else 1
        valid = np.zeros((n_users, m), bool)
        rows = np.zeros((n_users, m), np.int64)
        rel_p = np.zeros((n_users, m))
        src_p = np.zeros((n_users, m), np.int64)
        score_p = np.zeros((n_users, m))
        valid[u_sorted, rank] = True
        rows[u_sorted, rank] = p.row[order]
        rel_p[u_sorted, rank] = rel[order]
        src_p[u_sorted, rank] = p.source[order]
        score_p[u_sorted, rank] = p.score[order]

        emb = embeddings[rows]  # (users, pool, d)
        sim = np.einsum("upd,uqd->upq", emb, emb, dtype=np.float64)
        cats = np.where(valid, categories[rows], -1)
        cat_codes, cat_local = np.unique(cats, return_inverse=True)
        cat_local = cat_local.reshape(cats.shape)
        uncapped = cats < 0
        cat_count = np.zeros((n_users, cat_codes.shape[0]), np.int64)
        max_sim = np.full((n_users, m), -np.inf)
        chosen = np.zeros((n_users, m), bool)
        users = np.arange(n_users)
        picks: list[list[SlateItem]] = [[] for _ in range(n_users)]

        def mmr() -> NDArray[np.float64]:
            penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
            value = s.mmr_lambda * rel_p - (1.0 - s.mmr_lambda) * penalty
            open_ = valid & ~chosen
            if s.category_cap > 0:
                open_ &= uncapped | (np.take_along_axis(cat_count, cat_local, axis=1) < s.category_cap)
            return np.where(open_, value, -np.inf)

        def choose(u: IntArray, j: IntArray) -> None:
            chosen[u, j] = True
            max_sim[u] = np.maximum(max_sim[u], sim[u, j])
            np.add.at(cat_count, (u, cat_local[u, j]), 1)

        n_explore = s.explore_slots if policies is not None else 0
        n_fresh = s.fresh_slots if fresh is not None and row_of is not None else 0
        def mmr_round(need: NDArray[np.bool_]) -> bool:
            value = mmr()
            j = np.argmax(value, axis=1)
            ok = np.isfinite(value[users, j]) & need
            if not ok.any():
                return False
            choose(users[ok], j[ok])
            for u, jj in zip(users[ok].tolist(), j[ok].tolist(), strict=True):
                picks[u].append(SlateItem(int(rows[u, jj]), round(float(score_p[u, jj]), 6), self._source(src_p[u, jj]), 1.0))
            return True

        everyone = np.ones(n_users, bool)
        for _ in range(max(0, s.k - n_explore - n_fresh)):
            if not mmr_round(everyone):
                break

        extras: list[list[SlateItem]] = [[] for _ in range(n_users)]
        for _ in range(n_explore):
            value = mmr()
            assert policies is not None
            for u in range(n_users):
                policy = policies[u]
                if policy is None:
                    continue
                open_ = np.isfinite(value[u])
                arms = sorted({self.sources[x] for x in src_p[u][open_].tolist()}, key=self.sources.index)
                if not arms:
                    continue
                ctx = contexts[u] if contexts is not None else None
                props = policy.propensities(arms, ctx)
                arm = policy.pull(arms, ctx)
                source = self.sources.index(arm)
                masked = np.where(open_ & (src_p[u] == source), value[u], -np.inf)
                j = int(np.argmax(masked))
                choose(np.array([u]), np.array([j]))
                prop = max(float(props[arms.index(arm)]), s.min_propensity)
                extras[u].append(SlateItem(int(rows[u, j]), round(float(score_p[u, j]), 6), str(arm), prop,
                                           tuple(str(a) for a in arms)))
        if n_fresh:
            assert fresh is not None and row_of is not None
            blocked: dict[int, set[int]] = {}
            for bu, br in zip(*(bought if bought is not None else (np.zeros(0, np.int64),) * 2), strict=True):
                blocked.setdefault(int(bu), set()).add(int(br))
            pool = [(row_of[i], i) for i in fresh.fresh(now) if i in row_of]  # one ordering for the batch
            for u in range(n_users):
                if not pool:
                    break
                skip = blocked.get(u, set()) | {x.row for x in picks[u] + extras[u]}
                for r, _ in [x for x in pool if x[0] not in skip][:n_fresh]:
                    extras[u].append(SlateItem(r, 0.0, FRESH, 1.0))
                    chosen[u] |= valid[u] & (rows[u] == r)  # never picked again as a candidate
        for _ in range(n_explore + n_fresh):  # reserved slots nothing filled go back to MMR
            need = np.array([len(picks[u]) + len(extras[u]) < s.k for u in range(n_users)], bool)
            if not need.any() or not mmr_round(need):
                break
        return [self._place(picks[u], extras[u]) for u in range(n_users)]

    def _source(self, index: int) -> str:
        return self.sources[index] if 0 <= index < len(self.sources) else str(index)

    def _place(self, main: list[SlateItem], extra: list[SlateItem]) -> list[SlateItem]:
        out = list(main)
        positions = list(self.settings.explore_positions)
        for i, item in enumerate(extra):
            pos = positions[i] if i < len(positions) else len(out)
            out.insert(min(pos, len(out)), item)
        return out[: self.settings.k]
