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

import logging
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.internal import ItemVector, StatsDelta
from streams.kafka_config import aiokafka_kwargs

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


def apply_record(p: Pipeline, record: ConsumerRecord) -> None:  # type: ignore[type-arg]
    """Apply one item-vector or item-stats record to the recommender's state."""
    rec = p.recommender
    if record.topic == p.settings.topic_item_vectors:
        if record.value is None:
            item_id = record.key.decode() if record.key else ""
            rec.index.delete(item_id)
            rec.covisitation.forget(item_id)
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
        rec.covisitation.learn_many(delta.pairs)
        for item_id, weight, ts in delta.counts:
            rec.trending.learn_one(item_id, weight, ts)
        for item_id, n in delta.shown:
            rec.fresh.learn_shown(item_id, n)
        for item_id, n in delta.clicked:
            rec.fresh.learn_one(item_id, 1, n)
        p.metrics.item_stats_applied.inc()


async def follow_item_state(p: Pipeline) -> None:
    """Load, then follow, the item-vector and item-stats topics (runs for the worker's life)."""
    s = p.settings
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(s),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=int(s.item_state_fetch_wait_s * 1000),
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, part)
            for topic, n in ((s.topic_item_vectors, s.catalog_partitions), (s.topic_item_stats, 1))
            for part in range(n)
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        loaded = 0
        if not pending:
            p.items_ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for record in records:
                    apply_record(p, record)
                loaded += len(records)
            p.metrics.items.set(len(p.recommender.index))
            if pending:
                pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
                if not pending:
                    log.info("item state loaded: %d items, %d records", len(p.recommender.index), loaded)
                    p.items_ready.set()
    finally:
        await consumer.stop()


def register(p: Pipeline) -> None:
    """Attach the item-state follower as a background task of the app."""

    @p.app.task
    async def item_state() -> None:
        await follow_item_state(p)
