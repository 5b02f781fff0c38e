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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from export.datasets import (
    Dataset,
    Interaction,
    read_diginetica,
    read_jsonl,
    read_movielens,
)
from models.baselines import (
    Baseline,
    CoVisitationBaseline,
    InteractionLike,
    Popularity,
    RecencyPopularity,
)
from models.covisitation import CoVisitation
from models.interest import InterestLearner, UserState
from models.item_activity import ItemActivity
from models.item_embedding import ItemEmbedder, item_text
from models.item_index import ItemIndex
from models.metrics import MetricAccumulator, rank_of
from models.ranking import Scorer
from models.recommender import RankingBatch, Recommender
from models.slate import SlateSettings
from models.state_updates import apply_events, apply_feedback
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
    request_id: str | None = None


@dataclass(slots=True)
class _Impression:
    """The ImpressionEvent shape :func:`models.state_updates.apply_feedback` reads."""

    request_id: str
    user_id: str
    item_ids: list[str]
    ts: float


class BatchLearner(Protocol):
    """A recommender that folds events in micro-batches, as the pipeline does.

    :func:`run_prequential` calls ``end_batch`` after every ``batch`` events (and
    at the end); until then ``learn_one`` may only queue the event.
    """

    def end_batch(self) -> None:
        """Apply the queued events and refresh the lists of the users they touched."""
        ...


class ProductRecommender:
    """streamrec's recommender (index, interests, co-visitation, trending, blend ranker) in process.

    It serves what the pipeline serves: ``recommend`` returns the list computed
    when the user's state was last refreshed (none before the user's first event),
    not a list recomputed at the moment of the event. Events are applied in
    micro-batches (:meth:`end_batch`), exactly as the events agent applies them:
    users' states first, then one batched refresh of the touched users, then the
    batch's co-visitation and trending increments (which reach the workers
    through a topic, after the refresh).

    Besides its own ``scorer`` (the blend by default), ``extra_scorers`` rank the same
    candidates in the same refresh (the lists differ only by their ranking, since no
    list changes what is learned); :meth:`views` gives one recommender per extra
    scorer for :func:`run_prequential`. ``on_refresh`` sees every refresh's
    candidates before they are scored (training examples are built from it).

    With ``slate`` settings the lists are built as the worker builds them (MMR,
    category cap, exploration slots picked by each user's ``bandit_policy``). With
    ``feedback`` the loop is closed as the site closes it: every list counts as shown
    when it is published, and a user's next event on an item of their current list is
    a click on it (carrying the list's request id), so the policies learn as in the
    worker; without, the policies keep their prior (as a worker that gets no impressions).

    ``item_vectors`` fills the item index (inserted in an order shuffled by ``seed``,
    so the ranker's last tie-break, the item row, is a fixed random order), with their
    ``categories`` (what the category cap reads; none: uncategorised). Items
    met in the stream without a vector get a zero vector: only co-visitation and
    trending can find them. ``history_size`` items per user are remembered and
    excluded from their lists (what they bought always is).
    """

    def __init__(
        self,
        item_vectors: Mapping[ItemId, Vector],
        dim: int | None = None,
        *,
        categories: Mapping[ItemId, str] | None = None,
        seed: int = 0,
        name: str = "product",
        k: int = 10,
        history_size: int = 10_000,
        learner: InterestLearner | None = None,
        trending_half_life: float = 3600.0,
        max_neighbors: int = 100,
        per_source: int = 100,
        scorer: Scorer | None = None,
        extra_scorers: Mapping[str, Scorer] | None = None,
        on_refresh: Callable[[RankingBatch], None] | None = None,
        slate: SlateSettings | None = None,
        bandit_policy: str = "thompson",
        feedback: bool = True,
    ) -> None:
        ids = list(item_vectors)
        if dim is None:
            if not ids:
                raise ValueError("give dim when there are no item vectors")
            dim = int(np.asarray(item_vectors[ids[0]]).shape[0])
        random.Random(seed).shuffle(ids)
        index = ItemIndex(dim, capacity=max(1024, len(ids)))
        categories = categories or {}
        for item_id in ids:
            index.upsert(item_id, np.asarray(item_vectors[item_id], np.float32), categories.get(item_id, ""))
        self.name = name
        self.dim = dim
        self.recommender = Recommender(
            index,
            CoVisitation(max_neighbors=max_neighbors),
            ItemActivity(half_life=trending_half_life),
            learner or InterestLearner(max_recent=history_size),
            scorer,
            top_k=k,
            per_source=per_source,
            exclude_recent=history_size,
            slate=slate,
            bandit_policy=bandit_policy,
        )
        self.states: dict[UserId, UserState] = {}
        self.live: dict[UserId, list[ItemId]] = {}
        self.extra_scorers = dict(extra_scorers or {})
        if name in self.extra_scorers:
            raise ValueError(f"extra scorer name {name!r} is the recommender's own name")
        self.extra_live: dict[str, dict[UserId, list[ItemId]]] = {n: {} for n in self.extra_scorers}
        self.on_refresh = on_refresh
        self._pending: list[tuple[str, _Click]] = []
        self._impressions: list[_Impression] = []
        self._request: dict[UserId, str] = {}  # the request id of each user's current list
        self.feedback = feedback
        self._n_events = 0

    @classmethod
    def for_dataset(
        cls, dataset: Dataset, embedder: ItemEmbedder | None = None, zero_dim: int = 8, **kwargs: object
    ) -> ProductRecommender:
        """An adapter whose index holds every item of ``dataset``, with its category.

        With item texts and an ``embedder``, all texts are embedded in one batched
        call, each as the catalog agent embeds an item with that text as its title
        (:func:`models.item_embedding.item_text`), so in-process vectors are the
        worker's; otherwise every item gets a zero vector of ``zero_dim`` dimensions.
        """
        items = dataset.item_ids()
        if dataset.item_text and embedder is not None:
            texted = list(dataset.item_text)
            matrix = embedder.embed_items([item_text(dataset.item_text[i]) for i in texted], [None] * len(texted))
            vectors: dict[ItemId, Vector] = dict(zip(texted, matrix, strict=True))
            dim = embedder.dim
        else:
            vectors, dim = {}, zero_dim
        zero = np.zeros(dim, np.float32)
        vectors.update({i: zero for i in items if i not in vectors})
        return cls(vectors, dim, categories=dataset.item_category, **kwargs)  # type: ignore[arg-type]

    def learn_one(self, ev: InteractionLike) -> None:
        """Queue one event for the current micro-batch."""
        if ev.item_id not in self.recommender.index:
            self.recommender.index.upsert(ev.item_id, np.zeros(self.dim, np.float32))
        request_id = self._request.get(ev.user_id) if ev.item_id in self.live.get(ev.user_id, ()) else None
        self._pending.append((str(self._n_events), _Click(ev.user_id, ev.item_id, ev.kind, ev.ts, None, request_id)))
        self._n_events += 1

    def end_batch(self) -> None:
        """Apply the queued events as the events agent does, refresh their users, then
        apply the batch's item-stats increments as every worker does."""
        if not self._pending:
            return
        rec = self.recommender
        fx = apply_events(self.states, self._pending, [], rec.index, rec.learner)
        if rec.slate is not None:
            apply_feedback(self.states, self._impressions, [c for _, c in self._pending], rec.user_bandit)
        self._pending, self._impressions = [], []
        batch = [(uid, self.states[uid], ts) for uid, (ts, _) in fx.triggers.items()]
        ranking = rec.candidates(batch)
        if ranking is not None and self.on_refresh is not None:
            self.on_refresh(ranking)
        targets = [(rec.scorer, self.live), *((sc, self.extra_live[n]) for n, sc in self.extra_scorers.items())]
        for scorer, live in targets:
            lists = rec.rank(ranking, scorer) if ranking is not None else [[] for _ in batch]
            for (uid, _, _), items in zip(batch, lists, strict=True):
                live[uid] = [s.item_id for s in items]
            if live is self.live and rec.slate is not None and self.feedback:
                self._publish(batch, lists)
        rec.covisitation.learn_many(fx.pairs)
        rec.together.learn_many(fx.bundle_pairs)
        for item_id, weight, ts in fx.counts:
            rec.trending.learn_one(item_id, weight, ts)

    def _publish(self, batch: Sequence[tuple[UserId, UserState, Timestamp]], lists: Sequence[Sequence[Any]]) -> None:
        """Remember each published slate in its user's bandit record and queue its impression."""
        rec = self.recommender
        for (uid, state, ts), items in zip(batch, lists, strict=True):
            if not items:
                continue
            request_id = f"r{self._n_events}-{uid}"
            bandit = rec.user_bandit(uid, self.states[uid])
            bandit.published(request_id, [x.item_id for x in items], [x.source for x in items],
                             [x.propensity for x in items], ts, rec.bandit_context(state, ts))
            self.states[uid] = replace(self.states[uid], bandit=bandit.to_json())
            self._request[uid] = request_id
            self._impressions.append(_Impression(request_id, uid, [x.item_id for x in items], ts))

    def recommend(
        self, user_id: UserId, k: int, exclude: set[ItemId], now: Timestamp | None = None
    ) -> list[ItemId]:
        """The list served to ``user_id`` now (from its last refresh), without ``exclude``."""
        return [i for i in self.live.get(user_id, ()) if i not in exclude][:k]

    def views(self) -> list[ScorerView]:
        """One recommender per extra scorer, serving that scorer's lists (learning happens here)."""
        return [ScorerView(self, name) for name in self.extra_scorers]


class ScorerView:
    """The lists one extra scorer of a :class:`ProductRecommender` served (it learns nothing itself)."""

    def __init__(self, owner: ProductRecommender, name: str) -> None:
        self.name = name
        self._live = owner.extra_live[name]

    def learn_one(self, ev: InteractionLike) -> None:
        """Nothing to do: the owning recommender learns every event."""

    def recommend(
        self, user_id: UserId, k: int, exclude: set[ItemId], now: Timestamp | None = None
    ) -> list[ItemId]:
        """The list this scorer ranked at the user's last refresh, without ``exclude``."""
        return [i for i in self._live.get(user_id, ()) if i not in exclude][:k]


def run_prequential(
    dataset: Dataset | Sequence[Interaction],
    recommenders: Sequence[Baseline | ProductRecommender | ScorerView],
    k: int = 10,
    warmup: float = 0.2,
    batch: int = 1,
    progress: Progress | None = None,
    progress_every: int = 1000,
    curve_points: int = 50,
) -> dict[str, dict[str, Any]]:
    """Test-then-train every recommender over the same stream in one pass.

    An event whose item the user already interacted with is not scored (that
    item is excluded from every list, so it could never be a hit) but is learned;
    such events are counted as ``repeats``. Recommenders with an ``end_batch``
    method (:class:`BatchLearner`) get it after every ``batch`` events.

    Returns, per recommender name: ``hr``, ``mrr``, ``ndcg`` (at ``k``), ``n`` (scored
    events), ``coverage`` (share of the stream's items ever in a scored list), ``repeats``,
    ``seconds`` (time spent in its own calls) and ``curve``:
    ``[events replayed, HR@k over the preceding window of scored events]`` pairs.
    ``progress(done, total)`` is called every ``progress_every`` events and at the end.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if not 0.0 <= warmup < 1.0:
        raise ValueError("warmup must be in [0, 1)")
    names = [r.name for r in recommenders]
    if len(set(names)) != len(names):
        raise ValueError(f"recommender names must be unique, got {names}")
    events = dataset.interactions if isinstance(dataset, Dataset) else list(dataset)
    n_warm = int(warmup * len(events))
    accs = {name: MetricAccumulator() for name in names}
    hits: dict[str, list[int]] = {name: [] for name in names}
    positions: list[int] = []
    seconds = dict.fromkeys(names, 0.0)
    batchers = [r for r in recommenders if callable(getattr(r, "end_batch", None))]
    seen: dict[UserId, set[ItemId]] = {}
    listed: dict[str, set[ItemId]] = {name: set() for name in names}
    repeats = 0
    for t, ev in enumerate(events):
        history = seen.setdefault(ev.user_id, set())
        if t >= n_warm and ev.item_id in history:
            repeats += 1
        elif t >= n_warm:
            positions.append(t + 1)
            for rec in recommenders:
                start = time.perf_counter()
                ranked = rec.recommend(ev.user_id, k, history, now=ev.ts)
                seconds[rec.name] += time.perf_counter() - start
                if len(ranked) > k or len(set(ranked)) != len(ranked) or not history.isdisjoint(ranked):
                    raise ValueError(f"{rec.name} returned an invalid top-{k} list: {ranked}")
                rank = rank_of(ev.item_id, ranked)
                listed[rec.name].update(ranked)
                accs[rec.name].add(rank)
                hits[rec.name].append(rank is not None)
        for rec in recommenders:
            start = time.perf_counter()
            rec.learn_one(ev)
            seconds[rec.name] += time.perf_counter() - start
        history.add(ev.item_id)
        if (t + 1) % batch == 0 or t + 1 == len(events):
            for rec in batchers:
                start = time.perf_counter()
                rec.end_batch()  # type: ignore[attr-defined]
                seconds[rec.name] += time.perf_counter() - start
        if progress is not None and ((t + 1) % progress_every == 0 or t + 1 == len(events)):
            progress(t + 1, len(events))
    n_items = len({ev.item_id for ev in events}) or 1
    return {
        name: {
            **accs[name].summary(),
            "coverage": round(len(listed[name]) / n_items, 4),
            "repeats": repeats,
            "seconds": round(seconds[name], 3),
            "curve": hit_rate_curve(positions, hits[name], curve_points),
        }
        for name in names
    }


def hit_rate_curve(positions: Sequence[int], hits: Sequence[bool | int], points: int = 50) -> list[list[float]]:
    """HR over consecutive windows of scored events: ``[last event position, HR]`` per window.

    >>> hit_rate_curve([3, 4, 5, 6], [1, 0, 1, 1], points=2)
    [[4, 0.5], [6, 1.0]]
    """
    if not hits:
        return []
    size = max(1, -(-len(hits) // max(points, 1)))
    out: list[list[float]] = []
    for start in range(0, len(hits), size):
        window = hits[start : start + size]
        out.append([positions[start + len(window) - 1], round(sum(window) / len(window), 6)])
    return out


READERS: dict[str, Callable[[Path], Dataset]] = {
    "movielens": read_movielens,
    "diginetica": read_diginetica,
    "jsonl": read_jsonl,
}


def baselines(seed: int = 0) -> list[Baseline]:
    """Global popularity, recency-decayed popularity and co-visitation of the last 5 items."""
    return [Popularity(seed=seed), RecencyPopularity(seed=seed), CoVisitationBaseline(window=5, seed=seed)]


def evaluate(
    dataset: Dataset,
    embedder: ItemEmbedder | None,
    k: int = 10,
    warmup: float = 0.2,
    product: bool = True,
    seed: int = 0,
    batch: int = 1,
    progress: Progress | None = None,
    extra: Sequence[Baseline] = (),
    rankers: Mapping[str, Scorer] | None = None,
    slate: SlateSettings | None = None,
    bandit_policy: str = "thompson",
    feedback: bool = True,
) -> dict[str, dict[str, Any]]:
    """The baselines and, with ``product``, streamrec's own ranking (plus ``extra``
    recommenders, e.g. the live pipeline), over ``dataset`` in one pass.

    ``rankers`` (name -> scorer, e.g. a learned ranker) rank the product's own
    candidates at every refresh next to its blend, each reported under its name. ``slate``
    and ``bandit_policy`` build the product's lists as the worker does, with simulated
    ``feedback`` (see :class:`ProductRecommender`); without, they are the plain top-K."""
    recommenders: list[Baseline | ProductRecommender | ScorerView] = [*baselines(seed)]
    if product:
        prod = ProductRecommender.for_dataset(dataset, embedder, seed=seed, k=k, extra_scorers=rankers, slate=slate,
                                              bandit_policy=bandit_policy, feedback=feedback)
        recommenders += [prod, *prod.views()]
    elif rankers:
        raise ValueError("rankers rank the product's candidates: they need product=True")
    recommenders.extend(extra)
    return run_prequential(dataset, recommenders, k=k, warmup=warmup, batch=batch, progress=progress)
