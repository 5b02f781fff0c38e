"""Training examples for the ranker, from an event log replayed in time order.

The log is replayed through :class:`export.prequential.ProductRecommender`, the
in-process copy of what the workers run: users' states, co-visitation and item
statistics change event by event, and after every micro-batch each touched user's
candidates are generated and their features assembled exactly as a worker would
(:class:`models.ranker_features.FeatureAssembler`). Those candidates are what the
user was served. When the user's next event comes, it labels them: the chosen item
is the positive (when it was among the candidates), the others are negatives. So
every feature is the one the pipeline had at serving time, nothing from later.

Events at positions ``[0, val_start)`` give training groups (the positive plus
``negatives`` candidates sampled without replacement); those in
``[val_start, events)`` give validation groups with every candidate, so validation
ranks the whole served candidate set. An event whose item the user already had
(excluded from every list) is neither.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from export.datasets import Dataset
from export.prequential import ProductRecommender
from models.item_embedding import ItemEmbedder
from models.ranker_features import DENSE_FEATURES, FeatureAssembler
from models.ranking import BlendScorer
from models.recommender import RankingBatch
from models.types import ItemId, UserId

Progress = Callable[[int, int], None]


@dataclass
class _Served:
    """What one user was last served: candidates and their features."""

    user_vectors: NDArray[np.float32]  # (3, D)
    rows: NDArray[np.int64]
    dense: NDArray[np.float32]
    blend: NDArray[np.float32]
    tiebreak: NDArray[np.float32]


@dataclass
class GroupSet:
    """Labelled candidate groups in flat form: group ``g`` owns pairs ``offsets[g]:offsets[g + 1]``.

    Within a group the positive (if any) comes first; ``label`` marks it.
    """

    user_vectors: NDArray[np.float32]  # (G, 3, D)
    offsets: NDArray[np.int64]  # (G + 1,)
    rows: NDArray[np.int64]  # (P,)
    dense: NDArray[np.float32]  # (P, F)
    label: NDArray[np.float32]  # (P,)
    blend: NDArray[np.float32]  # (P,) the blend's score, for comparison
    tiebreak: NDArray[np.float32]  # (P,) trending, the serving tie-break
    misses: int = 0  # labelled events whose item was not among the candidates (or no list yet)

    @property
    def n_groups(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def group_of_pair(self) -> NDArray[np.int64]:
        return np.repeat(np.arange(self.n_groups), np.diff(self.offsets))


@dataclass
class Examples:
    """Training and validation groups, the item matrix they index, and their provenance."""

    train: GroupSet
    val: GroupSet
    item_vectors: NDArray[np.float32]
    dim: int
    text_dim: int
    embedding_space: str | None
    info: dict[str, Any] = field(default_factory=dict)


class _Collector:
    """Accumulates the groups of one split (sliced when added, so memory is per kept pair)."""

    def __init__(self, negatives: int | None, rng: np.random.Generator) -> None:
        self.negatives = negatives
        self.rng = rng
        self.users: list[NDArray[np.float32]] = []
        self.pairs: list[tuple[NDArray[Any], ...]] = []
        self.misses = 0

    def add(self, served: _Served, positive: int) -> None:
        n = served.rows.shape[0]
        others = np.delete(np.arange(n), positive)
        if self.negatives is not None and others.shape[0] > self.negatives:
            others = np.sort(self.rng.choice(others, self.negatives, replace=False))
        take = np.concatenate([[positive], others]).astype(np.int64)
        self.users.append(served.user_vectors)
        self.pairs.append((served.rows[take], served.dense[take], served.blend[take], served.tiebreak[take]))

    def build(self, dim: int) -> GroupSet:
        sizes = [p[0].shape[0] for p in self.pairs]
        offsets = np.zeros(len(sizes) + 1, np.int64)
        offsets[1:] = np.cumsum(sizes)
        label = np.zeros(int(offsets[-1]), np.float32)
        if not self.pairs:
            z = np.zeros(0, np.float32)
            return GroupSet(np.zeros((0, 3, dim), np.float32), offsets, np.zeros(0, np.int64),
                            np.zeros((0, len(DENSE_FEATURES)), np.float32), label, z, z, self.misses)
        label[offsets[:-1]] = 1.0
        rows, dense, blend, tiebreak = (np.concatenate(col) for col in zip(*self.pairs, strict=True))
        return GroupSet(np.stack(self.users).astype(np.float32), offsets, rows.astype(np.int64),
                        dense.astype(np.float32), label, blend.astype(np.float32), tiebreak.astype(np.float32),
                        self.misses)


def fingerprint_events(dataset: Dataset, n_events: int) -> str:
    """SHA-256 over the first ``n_events`` interactions and the item texts (the training data's identity)."""
    h = hashlib.sha256()
    for ev in dataset.interactions[:n_events]:
        h.update(f"{ev.user_id}\t{ev.item_id}\t{ev.ts!r}\t{ev.kind}\n".encode())
    for item_id in sorted(dataset.item_text):
        h.update(f"{item_id}\t{dataset.item_text[item_id]}\n".encode())
    return h.hexdigest()


def build_examples(
    dataset: Dataset,
    embedder: ItemEmbedder | None,
    *,
    events: int,
    val_share: float = 0.1,
    negatives: int = 50,
    batch: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
) -> Examples:
    """Replay the first ``events`` interactions of ``dataset`` and label what was served.

    The last ``val_share`` of them give the validation groups. Deterministic for a
    ``seed`` (the item row order and the negative sampling).
    """
    if not 0 < events <= len(dataset.interactions):
        raise ValueError(f"events must be in [1, {len(dataset.interactions)}], got {events}")
    if not 0.0 < val_share < 1.0:
        raise ValueError(f"val_share must be in (0, 1), got {val_share}")
    if negatives < 1:
        raise ValueError("negatives must be at least 1")
    assemble = FeatureAssembler()
    blend = BlendScorer()
    served: dict[UserId, _Served] = {}

    def capture(rb: RankingBatch) -> None:
        c = rb.candidates
        x = assemble(c, rb.context)
        blend_scores, _ = blend.score(c)
        order = np.argsort(c.user, kind="stable")
        bounds = np.searchsorted(c.user[order], np.arange(len(rb.users) + 1))
        for i, (uid, _, _) in enumerate(rb.users):  # one slice per refreshed user
            sel = order[bounds[i] : bounds[i + 1]]
            served[uid] = _Served(x.user_vectors[i].copy(), c.row[sel], x.dense[sel], blend_scores[sel], c.trending[sel])

    product = ProductRecommender.for_dataset(dataset, embedder, seed=seed, on_refresh=capture)
    index = product.recommender.index
    rng = np.random.default_rng(seed)
    val_start = round(events * (1.0 - val_share))
    train, val = _Collector(negatives, rng), _Collector(None, rng)
    seen: dict[UserId, set[ItemId]] = {}
    for t, ev in enumerate(dataset.interactions[:events]):
        history = seen.setdefault(ev.user_id, set())
        if ev.item_id not in history:
            split = train if t < val_start else val
            s = served.get(ev.user_id)
            row = index.row(ev.item_id)
            hit = np.flatnonzero(s.rows == row) if s is not None and row is not None else np.zeros(0, np.int64)
            if hit.shape[0]:
                split.add(s, int(hit[0]))  # type: ignore[arg-type]
            else:
                split.misses += 1
        product.learn_one(ev)
        history.add(ev.item_id)
        if (t + 1) % batch == 0 or t + 1 == events:
            product.end_batch()
        if progress is not None and ((t + 1) % 1000 == 0 or t + 1 == events):
            progress(t + 1, events)
    dim = index.dim
    text_dim = embedder.text.dim if (embedder is not None and dataset.item_text) else dim
    space = embedder.version if (embedder is not None and dataset.item_text) else None
    train_set, val_set = train.build(dim), val.build(dim)
    info = {
        "dataset": dataset.name,
        "events_used": events,
        "events_total": len(dataset.interactions),
        "first_ts": dataset.interactions[0].ts,
        "last_ts": dataset.interactions[events - 1].ts,
        "val_start_event": val_start,
        "fingerprint": fingerprint_events(dataset, events),
        "negatives": negatives,
        "batch": batch,
        "seed": seed,
        "train_groups": train_set.n_groups,
        "train_misses": train_set.misses,
        "val_groups": val_set.n_groups,
        "val_misses": val_set.misses,
    }
    return Examples(train_set, val_set, index.matrix.copy(), dim, text_dim, space, info)
