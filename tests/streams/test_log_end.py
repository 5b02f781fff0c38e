"""Table recovery reads to the log's real end, even where ListOffsets trails it."""

from __future__ import annotations

import asyncio

import aiokafka

from streams.kafka_config import aiokafka_kwargs
from streams.log_end import log_ends
from streams.producer import create_producer
from streams.settings import Settings
from streams.topics import ensure_topics


def test_log_ends_reach_every_written_record(settings: Settings) -> None:
    ensure_topics(settings)
    topic, written = settings.topic_clicks, 1_000
    producer = create_producer(settings)
    for _ in range(10):  # several produce batches: the broker's last one is what ListOffsets may miss
        for _ in range(written // 10):
            producer.send(topic, key=b"k", value=b"x" * 50, partition=0)
        producer.flush()
    producer.close()

    async def ends() -> tuple[int, dict[tuple[str, int], int | None]]:
        consumer = aiokafka.AIOKafkaConsumer(**aiokafka_kwargs(settings), group_id=None)
        await consumer.start()
        try:
            tp = aiokafka.TopicPartition(topic, 0)
            reported = (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
        fixed = await log_ends(aiokafka_kwargs(settings), {(topic, 0): reported, (topic, 1): 0})
        return reported, fixed

    reported, fixed = asyncio.run(ends())
    assert fixed[(topic, 0)] == written, (reported, fixed)  # every record, whatever ListOffsets said
    assert fixed[(topic, 1)] == 0  # an empty partition stays at 0
    assert reported <= written
