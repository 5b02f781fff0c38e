"""The refresh path as one pure function over a micro-batch of users.

:class:`Recommender` bundles the derived, rebuildable state every worker keeps in
memory (item index, co-visitation, trending) with the learner and the scorer, and
turns many users' states into their top-K lists in one vectorised pass.

With ``slate`` settings, the final list is built by :class:`~models.slate.SlateBuilder`
(bought filter, frequency capping from the user's shown-without-click counts, MMR
and a per-category cap, exploration slots whose candidate source the user's bandit
policy picks, fresh-item slots); without, it is the plain top-K by score. Every item
carries its ``source`` and the ``propensity`` with which it was chosen. In a slate the
source is the candidate generator that found the item (search, co-visitation, interest,
trending, in that priority), which are also the bandit's arms; in a plain top-K it is
the signal that contributed most to the item's score.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from models.bandit import CONTEXTUAL, DEFAULT_POLICY, Policy, user_context
from models.bundles import Bundles
from models.candidates import SOURCES, Candidates, Retrieval, UserContext, generate_candidates
from models.covisitation import CoVisitation
from models.fresh_items import FreshItems
from models.interest import InterestLearner, UserState
from models.item_activity import ItemActivity
from models.item_index import ItemIndex
from models.ranking import BlendScorer, Scorer, ScoringContext, top_k_per_user
from models.slate import ScoredPairs, SlateBuilder, SlateSettings
from models.trending import Trending
from models.types import ItemId, Timestamp, UserId
from models.user_bandit import UserBandit

#: Users whose slates are built in one block (bounds the (users, pool, dim) embedding block).
SLATE_BLOCK = 256


class ScoredItem(NamedTuple):
    """One recommended item: its score, candidate source and the probability it was chosen with
    (and, when a bandit chose its source, the sources it chose among)."""

    item_id: ItemId
    score: float
    source: str
    propensity: float = 1.0
    arms: tuple[str, ...] = ()


def user_seed(user_id: UserId) -> int:
    """A user's bandit seed: stable across workers and restarts.

    >>> user_seed("u1") == user_seed("u1"), user_seed("u1") == user_seed("u2")
    (True, False)
    """
    return zlib.crc32(user_id.encode("utf-8"))


@dataclass(frozen=True)
class RankingBatch:
    """One micro-batch's candidates and what they are scored against, before scoring."""

    users: Sequence[tuple[UserId, UserState, Timestamp]]
    candidates: Candidates
    context: ScoringContext


class Recommender:
    """Scores candidates for batches of users against shared item-side state.

    ``scorer`` may be replaced at any time between calls (a hot swap of the ranker):
    each call reads it once. When ``trending`` is an :class:`ItemActivity`, its item
    statistics are handed to the scorer too. ``slate`` turns on the slate builder
    (see the module docstring); ``bandit_policy`` names every user's exploration
    policy, ``fresh`` holds the new items' statistics (every worker's copy is fed
    from the item-stats topic), ``together`` holds the "frequently bought together" counts
    (fed from the same topic) and ``bundle_size`` is how many items :meth:`bundles` gives per item.
    ``retrieval`` runs candidate generation's nearest-item search (e.g. on a GPU; None: numpy).
    """

    def __init__(
        self,
        index: ItemIndex,
        covisitation: CoVisitation,
        trending: Trending,
        learner: InterestLearner,
        scorer: Scorer | None = None,
        top_k: int = 10,
        per_source: int = 100,
        exclude_recent: int = 5,
        *,
        slate: SlateSettings | None = None,
        bandit_policy: str = DEFAULT_POLICY,
        feedback_window_s: float = 1800.0,
        fresh: FreshItems | None = None,
        bundle_size: int = 3,
        together: Bundles | None = None,
        retrieval: Retrieval | None = None,
    ) -> None:
        self.index = index
        self.covisitation = covisitation
        self.trending = trending
        self.learner = learner
        self.scorer: Scorer = scorer or BlendScorer()
        self.top_k = top_k
        self.per_source = per_source
        self.exclude_recent = exclude_recent
        self.slate = slate
        self.bandit_policy = bandit_policy
        self.feedback_window_s = feedback_window_s
        self.fresh = fresh if fresh is not None else FreshItems()
        self.bundle_size = bundle_size
        self.together = together if together is not None else Bundles()
        self._slates = SlateBuilder(slate, SOURCES) if slate is not None else None
        self.retrieval = retrieval

    @property
    def policy_name(self) -> str:
        """What published lists call their policy: the bandit's name, or ``greedy`` without exploration."""
        if self.slate is None or self.slate.explore_slots == 0:
            return "greedy"
        return self.bandit_policy

    def user_bandit(self, user_id: UserId, state: UserState) -> UserBandit:
        """The user's bandit record (a new one for a user without)."""
        return UserBandit.from_json(state.bandit, self.bandit_policy, user_seed(user_id), self.feedback_window_s)

    def bandit_context(self, state: UserState, now: Timestamp) -> dict[str, float] | None:
        """The context the user's policy decides on at ``now`` (None for a policy that reads none)."""
        if self.bandit_policy not in CONTEXTUAL:
            return None
        _, c_short, c_query = self.learner.confidences(state, now)
        return user_context(state.n_events, c_short, c_query)

    def bundles(self, item_ids: Sequence[ItemId]) -> dict[ItemId, list[ItemId]]:
        """"Frequently bought together": each item's strongest partners in :attr:`together`
        (clicked or bought by the same users, purchases counting most) that are still in the
        catalog, for the items that have any (see :mod:`models.bundles`)."""
        return self.together.of(item_ids, self.bundle_size, keep=self.index.__contains__)

    @property
    def model_version(self) -> str:
        return self.scorer.version

    def context(self, user_id: UserId, state: UserState, now: Timestamp) -> UserContext:
        """Ranking view of a user's state at ``now``."""
        c_long, c_short, c_query = self.learner.confidences(state, now)
        return UserContext(
            user_id=user_id,
            long=self.learner.long_vector(state),
            short=self.learner.short_vector(state),
            query=state.query.direction(),
            conf_long=c_long,
            conf_short=c_short,
            conf_query=c_query,
            recent=tuple(state.recent),
            bought=tuple(state.bought),
        )

    def candidates(self, users: Sequence[tuple[UserId, UserState, Timestamp]]) -> RankingBatch | None:
        """Candidates of a micro-batch of ``(user_id, state, now)`` (None when there are none)."""
        contexts = [self.context(uid, state, now) for uid, state, now in users]
        if not contexts or len(self.index) == 0:
            return None
        cands = generate_candidates(
            contexts,
            self.index,
            self.covisitation,
            self.trending,
            per_source=self.per_source,
            exclude_recent=self.exclude_recent,
            retrieval=self.retrieval,
        )
        if len(cands) == 0:
            return None
        activity = self.trending if isinstance(self.trending, ItemActivity) else None
        now = np.array([float(now) for _, _, now in users], np.float64)
        return RankingBatch(users, cands, ScoringContext(contexts, now, self.index, activity))

    def rank(self, batch: RankingBatch, scorer: Scorer | None = None, k: int | None = None) -> list[list[ScoredItem]]:
        """Score a batch's candidates (with ``scorer``, default this recommender's) and cut to ``k``
        items per user: the plain top ``k``, or the slate when slate settings are set."""
        k = k or self.top_k
        scorer = scorer or self.scorer
        cands = batch.candidates
        out: list[list[ScoredItem]] = [[] for _ in batch.users]
        scores, reasons = scorer.score(cands, batch.context)
        if self._slates is not None:
            return self._build_slates(batch, scores, reasons, k)
        keep = top_k_per_user(cands.user, cands.row, scores, cands.trending, k)
        ids = self.index.item_ids(cands.row[keep])
        owners: list[int] = cands.user[keep].tolist()
        kept_scores = np.round(scores[keep].astype(np.float64), 6).tolist()
        sources = [SOURCES[r] for r in reasons[keep].tolist()]
        for u, item_id, score, source in zip(owners, ids, kept_scores, sources, strict=True):
            out[u].append(ScoredItem(item_id, score, source))
        return out

    def _build_slates(self, batch: RankingBatch, scores: np.ndarray, reasons: np.ndarray, k: int) -> list[list[ScoredItem]]:
        """The slate builder over the batch, in blocks of :data:`SLATE_BLOCK` users."""
        assert self._slates is not None and self.slate is not None
        builder = self._slates if k == self.slate.k else SlateBuilder(replace(self.slate, k=k), SOURCES)
        cands = batch.candidates
        index = self.index
        embeddings = index.matrix
        categories = index.category_codes
        explore = self.slate.explore_slots > 0
        now = max(float(t) for _, _, t in batch.users)
        row_of: dict[str, int] | None = None
        if self.slate.fresh_slots > 0:
            row_of = {i: r for i in self.fresh.fresh(now) if (r := index.row(i)) is not None}
        out: list[list[ScoredItem]] = []
        for lo in range(0, len(batch.users), SLATE_BLOCK):
            users = batch.users[lo: lo + SLATE_BLOCK]
            mask = (cands.user >= lo) & (cands.user < lo + len(users))
            pairs = ScoredPairs(cands.user[mask] - lo, cands.row[mask], scores[mask].astype(np.float32),
                                cands.source[mask].astype(np.int64))
            bought_u: list[int] = []
            bought_r: list[int] = []
            shown_u: list[int] = []
            shown_r: list[int] = []
            shown_n: list[int] = []
            policies: list[Policy | None] = []
            contexts: list[dict[str, float] | None] = []
            for u, (uid, state, ts) in enumerate(users):
                for r in index.rows(state.bought).tolist():
                    bought_u.append(u)
                    bought_r.append(r)
                bandit = self.user_bandit(uid, state)
                counts = bandit.shown_counts()
                if counts:
                    rows = index.rows(counts)
                    known = [c for i, c in counts.items() if i in index]
                    shown_u += [u] * len(known)
                    shown_r += rows.tolist()
                    shown_n += known
                if explore:
                    bandit.policy.at_decision(state.n_events)
                    policies.append(bandit.policy)
                    contexts.append(self.bandit_context(state, ts))

            def arr(xs: list[int]) -> NDArray[np.int64]:
                return np.asarray(xs, np.int64)

            slates = builder.build(
                pairs, len(users), embeddings, categories,
                bought=(arr(bought_u), arr(bought_r)),
                shown=(arr(shown_u), arr(shown_r), arr(shown_n)),
                policies=policies if explore else None,
                contexts=contexts if explore else None,
                fresh=self.fresh if row_of else None,
                row_of=row_of,
                tiebreak=cands.trending[mask],
                now=now,
            )
            for slate in slates:
                ids = index.item_ids([x.row for x in slate])
                out.append([ScoredItem(i, x.score, x.source, x.propensity, x.arms)
                            for i, x in zip(ids, slate, strict=True)])
        return out

    def recommend(
        self, users: Sequence[tuple[UserId, UserState, Timestamp]], k: int | None = None
    ) -> list[list[ScoredItem]]:
        """Top-``k`` lists for a micro-batch of ``(user_id, state, now)``, in the order given.

        ``now`` is the time the list is for (the triggering event's time in the
        stream), which sets how much the decaying interests still count.
        """
        batch = self.candidates(users)
        if batch is None:
            return [[] for _ in users]
        return self.rank(batch, k=k)
