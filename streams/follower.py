"""Load, then follow, whole topics without a consumer group.

Each worker needs the whole catalog (the item-vector and item-stats topics), and a
serving replica needs every user's state (the ``users`` table's changelog). Both read
*all* partitions of compacted topics from the beginning, apply each batch of records
to an in-memory copy, set an event once they have caught up with what was there at
start, and then keep applying what arrives. Nothing is committed: a restart reads
the topics again, which compaction keeps short.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.kafka_config import aiokafka_kwargs
from streams.settings import Settings

log = logging.getLogger(__name__)

#: Applies one fetched batch of records (all partitions) to the in-memory copy.
ApplyBatch = Callable[[Sequence[ConsumerRecord]], None]


async def follow_topics(
    settings: Settings,
    partitions: Sequence[TopicPartition],
    apply: ApplyBatch,
    loaded: asyncio.Event,
    fetch_wait_s: float,
    what: str,
) -> None:
    """Read ``partitions`` from the beginning into ``apply``; set ``loaded`` once caught up
    with the end offsets seen at start. Runs until cancelled."""
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=max(1, int(fetch_wait_s * 1000)),
    )
    await consumer.start()
    try:
        tps = list(partitions)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        read = 0
        if not pending:
            loaded.set()
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            records = [r for rs in batches.values() for r in rs]
            if records:
                apply(records)
                read += len(records)
            if pending:
                pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
                if not pending:
                    log.info("%s loaded: %d records", what, read)
                    loaded.set()
    finally:
        await consumer.stop()
