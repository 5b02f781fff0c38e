"""Input partitions the group never committed are read again from their log start after a rebalance."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiokafka
import pytest

from streams.input_start import seek_uncommitted_to_start
from streams.kafka_config import aiokafka_kwargs
from streams.offset_holes import head_missing
from streams.producer import create_producer
from streams.settings import Settings
from streams.topics import ensure_topics

pytestmark = pytest.mark.integration


class _FaustView:
    """A real aiokafka consumer behind the part of Faust's consumer interface the seek uses:
    its assignment, the group's committed offsets as Faust records them, which topics its
    agents acknowledge, ListOffsets and a seek that waits for the position."""

    def __init__(self, consumer: aiokafka.AIOKafkaConsumer, committed: dict[Any, int | None], inputs: set[str]) -> None:
        self._consumer = consumer
        self._committed_offset = committed
        topics = type("Topics", (), {"acks_enabled_for": staticmethod(inputs.__contains__)})()
        self.app = type("App", (), {"topics": topics})()

    def assignment(self) -> set[Any]:
        return set(self._consumer.assignment())

    async def earliest_offsets(self, *tps: Any) -> Mapping[Any, int]:
        return await self._consumer.beginning_offsets(list(tps))  # type: ignore[no-any-return]

    async def seek_wait(self, offsets: Mapping[Any, int]) -> None:
        for tp, offset in offsets.items():
            self._consumer.seek(tp, offset)
        await asyncio.gather(*(self._consumer.position(tp) for tp in offsets))


def test_partitions_without_a_committed_offset_go_back_to_their_start(settings: Settings) -> None:
    ensure_topics(settings)
    producer = create_producer(settings)
    for n in range(30):
        for p in (0, 1):
            producer.send(settings.topic_clicks, key=b"u", value=b"x%d" % n, partition=p)
        producer.send(settings.topic_catalog, key=b"i", value=b"y", partition=0)
    producer.flush()
    producer.close()

    async def run() -> tuple[dict[Any, int], dict[Any, int], dict[Any, int]]:
        consumer = aiokafka.AIOKafkaConsumer(**aiokafka_kwargs(settings), group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        try:
            clicks0, clicks1 = (aiokafka.TopicPartition(settings.topic_clicks, p) for p in (0, 1))
            catalog0 = aiokafka.TopicPartition(settings.topic_catalog, 0)
            consumer.assign([clicks0, clicks1, catalog0])
            # Records fetched and dropped during a rebalance: every position has moved past them.
            for tp in (clicks0, clicks1, catalog0):
                consumer.seek(tp, 20)
            view = _FaustView(consumer, {clicks1: 12}, {settings.topic_clicks})  # only clicks[1] committed
            starts: dict[Any, int] = {clicks1: 0}  # left from an earlier rebalance, committed since
            sought = await seek_uncommitted_to_start(view, starts)
            positions = {tp: await consumer.position(tp) for tp in (clicks0, clicks1, catalog0)}
            return sought, starts, positions
        finally:
            await consumer.stop()

    sought, starts, positions = asyncio.run(run())
    clicks0, clicks1 = (aiokafka.TopicPartition(settings.topic_clicks, p) for p in (0, 1))
    catalog0 = aiokafka.TopicPartition(settings.topic_catalog, 0)
    assert sought == {clicks0: 0} and starts == {clicks0: 0}  # the uncommitted input partition, from its start
    # a committed partition (Faust seeks it) and a non-input one are left alone
    assert positions == {clicks0: 0, clicks1: 20, catalog0: 20}
    # and its first commit is then guarded like any other: nothing over an unprocessed start
    assert head_missing([1, 2, 3], starts[clicks0]) and not head_missing([0, 1], starts[clicks0])
