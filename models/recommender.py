"""The refresh path as one pure function over a micro-batch of users.

:class:`Recommender` bundles the derived, rebuildable state every worker keeps in
memory (item index, co-visitation, trending) with the learner and the scorer, and
turns many users' states into their top-K lists in one vectorised pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from models.candidates import SOURCES, Candidates, UserContext, generate_candidates
from models.covisitation import CoVisitation
from models.interest import InterestLearner, UserState
from models.item_activity import ItemActivity
from models.item_index import ItemIndex
from models.ranking import BlendScorer, Scorer, ScoringContext, top_k_per_user
from models.trending import Trending
from models.types import ItemId, Timestamp, UserId


class ScoredItem(NamedTuple):
    """One recommended item."""

    item_id: ItemId
    score: float
    source: str


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
    statistics are handed to the scorer too.
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
    ) -> None:
        self.index = index
        self.covisitation = covisitation
        self.trending = trending
        self.learner = learner
        self.scorer: Scorer = scorer or BlendScorer()
        self.top_k = top_k
        self.per_source = per_source
        self.exclude_recent = exclude_recent

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
        )
        if len(cands) == 0:
            return None
        activity = self.trending if isinstance(self.trending, ItemActivity) else None
        now = np.array([float(now) for _, _, now in users], np.float64)
        return RankingBatch(users, cands, ScoringContext(contexts, now, self.index, activity))

    def rank(self, batch: RankingBatch, scorer: Scorer | None = None, k: int | None = None) -> list[list[ScoredItem]]:
        """Score a batch's candidates (with ``scorer``, default this recommender's) and cut to top ``k``."""
        k = k or self.top_k
        scorer = scorer or self.scorer
        cands = batch.candidates
        out: list[list[ScoredItem]] = [[] for _ in batch.users]
        scores, reasons = scorer.score(cands, batch.context)
        keep = top_k_per_user(cands.user, cands.row, scores, cands.trending, k)
        ids = self.index.item_ids(cands.row[keep])
        owners: list[int] = cands.user[keep].tolist()
        kept_scores = np.round(scores[keep].astype(np.float64), 6).tolist()
        sources = [SOURCES[r] for r in reasons[keep].tolist()]
        for u, item_id, score, source in zip(owners, ids, kept_scores, sources, strict=True):
            out[u].append(ScoredItem(item_id, score, source))
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
