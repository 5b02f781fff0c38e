"""Prequential (test-then-train) evaluation of online recommenders, in process.

Events are replayed in time order. The first ``warmup`` share is only learned;
for every later event each recommender first gives its top-K list for that user
(the items the user already interacted with excluded), the list is scored
against the item actually chosen, and then the event is learned (Vinagre et
al., 2014). :class:`ProductRecommender` drives streamrec's own ranking code
(the same calls the events and refresh agents make) so it can be compared with
the baselines of :mod:`models.baselines` on the same stream.

>>> from export.datasets import Dataset, Interaction
>>> from models.baselines import Popularity
>>> ds = Dataset("toy", [Interaction("u1", "a", 1.0), Interaction("u2", "a", 2.0), Interaction("u3", "a", 3.0)])
>>> run_prequential(ds, [Popularity()], k=1, warmup=0.4)["popularity"]["hr"]
1.0
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.datasets import Dataset, Interaction, read_diginetica, read_jsonl, read_movielens
from models.baselines import Baseline, CoVisitationBaseline, InteractionLike, Popularity, RecencyPopularity
from models.covisitation import CoVisitation
from models.interest import InterestLearner, UserState
from models.item_embedding import ItemEmbedder
from models.item_index import ItemIndex
from models.metrics import MetricAccumulator, rank_of
from models.ranking import Scorer
from models.recommender import Recommender
from models.state_updates import apply_events
from models.trending import Trending
from models.types import ItemId, Timestamp, UserId, Vector

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class _Click:
    """The ClickEvent shape :func:`models.state_updates.apply_events` reads."""

    user_id: str
    item_id: str
    kind: str
    ts: float
    session_id: str | None = None


class ProductRecommender:
    """streamrec's recommender (index, interests, co-visitation, trending, blend ranker) in process.

    ``item_vectors`` fills the item index (inserted in an order shuffled by ``seed``,
    so the ranker's last tie-break, the item row, is a fixed random order). Items
    met in the stream without a vector get a zero vector: only co-visitation and
    trending can find them. The recommender's own "recent items" exclusion is off
    (the protocol decides what is excluded); what a user bought stays excluded.
    """

    def __init__(
        self,
        item_vectors: Mapping[ItemId, Vector],
        dim: int | None = None,
        *,
        seed: int = 0,
        name: str = "product",
        learner: InterestLearner | None = None,
        trending_half_life: float = 3600.0,
        max_neighbors: int = 100,
        per_source: int = 100,
        scorer: Scorer | None = None,
    ) -> None:
        ids = list(item_vectors)
        if dim is None:
            if not ids:
                raise ValueError("give dim when there are no item vectors")
            dim = int(np.asarray(item_vectors[ids[0]]).shape[0])
        random.Random(seed).shuffle(ids)
        index = ItemIndex(dim, capacity=max(1024, len(ids)))
        for item_id in ids:
            index.upsert(item_id, np.asarray(item_vectors[item_id], np.float32))
        self.name = name
        self.dim = dim
        self.per_source = per_source
        self.recommender = Recommender(
            index,
            CoVisitation(max_neighbors=max_neighbors),
            Trending(half_life=trending_half_life),
            learner or InterestLearner(),
            scorer,
            per_source=per_source,
            exclude_recent=0,
        )
        self.states: dict[UserId, UserState] = {}
        self._n_events = 0

    @classmethod
    def for_dataset(
        cls, dataset: Dataset, embedder: ItemEmbedder | None = None, zero_dim: int = 8, **kwargs: object
    ) -> ProductRecommender:
        """An adapter whose index holds every item of ``dataset``.

        With item texts and an ``embedder``, all texts are embedded in one batched
        call; otherwise every item gets a zero vector of ``zero_dim`` dimensions.
        """
        items = dataset.item_ids()
        if dataset.item_text and embedder is not None:
            texted = list(dataset.item_text)
            matrix = embedder.embed_items([dataset.item_text[i] for i in texted], [None] * len(texted))
            vectors: dict[ItemId, Vector] = dict(zip(texted, matrix, strict=True))
            dim = embedder.dim
        else:
            vectors, dim = {}, zero_dim
        zero = np.zeros(dim, np.float32)
        vectors.update({i: zero for i in items if i not in vectors})
        return cls(vectors, dim, **kwargs)  # type: ignore[arg-type]

    def learn_one(self, ev: InteractionLike) -> None:
        """Apply one event as the events agent does, and its item-stats deltas as every worker does."""
        rec = self.recommender
        if ev.item_id not in rec.index:
            rec.index.upsert(ev.item_id, np.zeros(self.dim, np.float32))
        click = _Click(ev.user_id, ev.item_id, ev.kind, ev.ts)
        fx = apply_events(self.states, [(str(self._n_events), click)], [], rec.index, rec.learner)
        self._n_events += 1
        rec.covisitation.learn_many(fx.pairs)
        for item_id, weight, ts in fx.counts:
            rec.trending.learn_one(item_id, weight, ts)

    def recommend(
        self, user_id: UserId, k: int, exclude: set[ItemId], now: Timestamp | None = None
    ) -> list[ItemId]:
        """The product's top-``k`` for ``user_id`` at ``now``, without ``exclude``.

        Each source is widened to ``k + len(exclude)`` candidates (at least
        ``per_source``) so a long history cannot leave the list short.
        """
        rec = self.recommender
        state = self.states.get(user_id) or UserState()
        when = state.last_ts if now is None else now
        want = k + len(exclude)
        rec.per_source = max(self.per_source, want)
        (scored,) = rec.recommend([(user_id, state, when)], k=want)
        return [s.item_id for s in scored if s.item_id not in exclude][:k]


def run_prequential(
    dataset: Dataset | Sequence[Interaction],
    recommenders: Sequence[Baseline | ProductRecommender],
    k: int = 10,
    warmup: float = 0.2,
    progress: Progress | None = None,
    progress_every: int = 1000,
) -> dict[str, dict[str, float | int]]:
    """Test-then-train every recommender over the same stream in one pass.

    Returns, per recommender name: ``hr``, ``mrr``, ``ndcg`` (at ``k``), ``n`` (scored
    events) and ``seconds`` (time spent in its own recommend and learn calls).
    ``progress(done, total)`` is called every ``progress_every`` events and at the end.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if not 0.0 <= warmup < 1.0:
        raise ValueError("warmup must be in [0, 1)")
    names = [r.name for r in recommenders]
    if len(set(names)) != len(names):
        raise ValueError(f"recommender names must be unique, got {names}")
    events = dataset.interactions if isinstance(dataset, Dataset) else list(dataset)
    n_warm = int(warmup * len(events))
    accs = {name: MetricAccumulator() for name in names}
    seconds = dict.fromkeys(names, 0.0)
    seen: dict[UserId, set[ItemId]] = {}
    for t, ev in enumerate(events):
        history = seen.setdefault(ev.user_id, set())
        if t >= n_warm:
            for rec in recommenders:
                start = time.perf_counter()
                ranked = rec.recommend(ev.user_id, k, history, now=ev.ts)
                seconds[rec.name] += time.perf_counter() - start
                if len(ranked) > k or len(set(ranked)) != len(ranked) or not history.isdisjoint(ranked):
                    raise ValueError(f"{rec.name} returned an invalid top-{k} list: {ranked}")
                accs[rec.name].add(rank_of(ev.item_id, ranked))
        for rec in recommenders:
            start = time.perf_counter()
            rec.learn_one(ev)
            seconds[rec.name] += time.perf_counter() - start
        history.add(ev.item_id)
        if progress is not None and ((t + 1) % progress_every == 0 or t + 1 == len(events)):
            progress(t + 1, len(events))
    return {name: {**accs[name].summary(), "seconds": round(seconds[name], 3)} for name in names}


READERS: dict[str, Callable[[Path], Dataset]] = {
    "movielens": read_movielens,
    "diginetica": read_diginetica,
    "jsonl": read_jsonl,
}


def evaluate(
    dataset: Dataset,
    embedder: ItemEmbedder | None,
    k: int = 10,
    warmup: float = 0.2,
    product: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, dict[str, float | int]]:
    """The baselines (popularity, recency-decayed popularity, co-visitation of the last 5
    items) and, with ``product``, streamrec's own ranking, over ``dataset`` in one pass."""
    recommenders: list[Baseline | ProductRecommender] = [
        Popularity(seed=seed),
        RecencyPopularity(seed=seed),
        CoVisitationBaseline(window=5, seed=seed),
    ]
    if product:
        recommenders.append(ProductRecommender.for_dataset(dataset, embedder, seed=seed))
    return run_prequential(dataset, recommenders, k=k, warmup=warmup, progress=progress)
