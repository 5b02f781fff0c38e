"""Every worker's item-side state: the item index, co-visitation, trending and new items.

A background task reads *all* partitions of the compacted item-vector topic and
of the item-stats topic from the beginning (no consumer group: each worker needs
the whole catalog), applies them to the recommender, and then follows both
topics. ``pipeline.items_ready`` is set once it has caught up with what was
there at start, so no agent ranks or validates item ids against half a catalog.

Every item-vector record registers its item with the new-item statistics
(``recommender.fresh``) at the record's timestamp, which is the same for every
worker that reads it; impressions and clicks from item-stats deltas update them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from aiokafka import ConsumerRecord, TopicPartition

from models.item_embedding import ItemEmbedder
from models.recommender import Recommender
from streams.follower import follow_topics
from streams.internal import AppliedEvents, ItemVector, StatsDelta
from streams.metrics import Metrics
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


class ItemStateHolder(Protocol):
    """What holds item-side state: a worker's pipeline or a serving replica."""

    @property
    def settings(self) -> Settings: ...
    @property
    def recommender(self) -> Recommender: ...
    @property
    def embedder(self) -> ItemEmbedder: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def items_ready(self) -> asyncio.Event: ...


def apply_record(
    p: ItemStateHolder, record: ConsumerRecord, applied: AppliedEvents | None = None
) -> None:
    """Apply one item-vector or item-stats record to the recommender's state (an event's
    item-stats increments once, when ``applied`` remembers the events already applied)."""
    rec = p.recommender
    if record.topic == p.settings.topic_item_vectors:
        if record.value is None:
            item_id = record.key.decode() if record.key else ""
            rec.index.delete(item_id)
            rec.covisitation.forget(item_id)
            rec.together.forget(item_id)
            rec.trending.forget(item_id)
            rec.fresh.remove(item_id)
            return
        iv = ItemVector.from_bytes(record.value)
        if iv.space != p.embedder.version or iv.vector.shape != (rec.index.dim,):
            log.error(
                "item %s was embedded in space %r, this worker uses %r: re-publish the catalog",
                iv.item_id, iv.space, p.embedder.version,
            )
            return
        rec.fresh.add(iv.item_id, record.timestamp / 1000.0)  # the log's time: the same on every worker
        rec.index.upsert(iv.item_id, iv.vector, iv.category, iv.price, iv.title, in_stock=iv.in_stock)
    else:
        delta = StatsDelta.from_bytes(record.value)
        if applied is not None:
            delta = applied.first_time(delta)
        rec.covisitation.learn_many(delta.pairs)
        rec.together.learn_many(delta.bundle_pairs)
        for item_id, weight, ts in delta.counts:
            rec.trending.learn_one(item_id, weight, ts)
        for item_id, n in delta.shown:
            rec.fresh.learn_shown(item_id, n)
        for item_id, n in delta.clicked:
            rec.fresh.learn_one(item_id, 1, n)
        p.metrics.item_stats_applied.inc()


async def follow_item_state(p: ItemStateHolder) -> None:
    """Load, then follow, the item-vector and item-stats topics (runs for the worker's life)."""
    s = p.settings
    tps = [
        TopicPartition(topic, part)
        for topic, n in ((s.topic_item_vectors, s.catalog_partitions), (s.topic_item_stats, 1))
        for part in range(n)
    ]

    applied = AppliedEvents(s.item_stats_dedup_events)

    def apply(records: Sequence[ConsumerRecord]) -> None:
        for record in records:
            apply_record(p, record, applied)
        p.metrics.items.set(len(p.recommender.index))

    await follow_topics(s, tps, apply, p.items_ready, s.item_state_fetch_wait_s, "item state")


def register(p: Pipeline) -> None:
    """Attach the item-state follower as a background task of the app."""

    @p.app.task
    async def item_state() -> None:
        await follow_item_state(p)
