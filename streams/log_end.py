"""True log-end offsets, for brokers whose ListOffsets answer trails the log.

Faust restores a table from its changelog up to the end offsets the broker reports
(ListOffsets). The embedded broker (Tansu) reports the base offset of a partition's
last batch rather than the offset after its last record, so a worker taking over a
partition would stop restoring one batch short and lose the latest states written
there. A fetch's high watermark is right on that broker, so :func:`log_ends` fetches
from just before each reported end and keeps the larger of the two. On a broker whose
ListOffsets is right (any Kafka), both agree and nothing changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import aiokafka

log = logging.getLogger(__name__)

TP = TypeVar("TP")


async def log_ends(
    client_kwargs: Mapping[str, Any], reported: Mapping[TP, int | None], timeout_s: float = 3.0
) -> dict[TP, int | None]:
    """``reported`` end offsets raised to the high watermark a fetch sees.

    ``reported`` maps topic-partitions (any ``(topic, partition)`` tuples) to the end
    offsets ListOffsets gave. A partition whose fetch does not answer within
    ``timeout_s`` keeps its reported offset (logged).
    """
    if not reported:
        return {}
    tps = {aiokafka.TopicPartition(tp[0], tp[1]): tp for tp in reported}  # type: ignore[index]
    consumer = aiokafka.AIOKafkaConsumer(
        **client_kwargs,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=8 * 1024,
    )
    await consumer.start()
    ends = dict(reported)
    try:
        consumer.assign(list(tps))
        for tp, original in tps.items():
            consumer.seek(tp, max((reported[original] or 0) - 1, 0))
        pending = set(tps)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100, max_records=1)
            for tp in list(pending):
                high = consumer.highwater(tp)
                if high is not None:
                    original = tps[tp]
                    before = ends[original]
                    ends[original] = max(before or 0, high)
                    if before is not None and high > before:
                        log.info("%s: log end %d, ListOffsets said %d", original, high, before)
                    pending.discard(tp)
        if pending:
            log.warning("no fetch answer for %s within %.1fs: using the reported end offsets", sorted(pending), timeout_s)
    finally:
        await asyncio.shield(consumer.stop())
    return ends
