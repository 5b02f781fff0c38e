"""Writing a micro-batch of user states to the changelog-backed ``users`` table.

``table[key] = value`` sends one changelog record through Faust's producer buffer,
which publishes one message per event-loop turn and makes every offset commit wait
until that buffer has drained. Under a backlog that buffer never drains, commits stall
for tens of seconds and the stream waits with them. :func:`save_states` writes the
batch's states straight to the table's store and its changelog records straight to the
Kafka producer, keyed and serialised exactly as Faust would, into the partition of the
events that produced them (the table is co-partitioned with the events). Faust flushes
that producer before it commits offsets, so a state is in the changelog before the
events that produced it count as processed: a crashed worker's successor recovers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

import faust

from models.types import UserId

log = logging.getLogger(__name__)


class KafkaProducer(Protocol):
    """The part of Faust's producer used here (``app.producer``)."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        timestamp: float | None, headers: Any,
    ) -> asyncio.Future[Any]: ...


async def save_states(
    table: faust.types.TableT,
    producer: KafkaProducer,
    states: Mapping[UserId, bytes],
    partitions: Mapping[UserId, int],
    on_error: Callable[[BaseException], None],
) -> None:
    """Store ``states`` in ``table`` and append them to its changelog, one record per user.

    ``partitions[user]`` is the partition of the user's events in this batch.
    ``on_error`` is called with the exception of a record the producer could not
    deliver (after its own retries): the caller must not let offsets be committed past it.
    """

    def delivered(delivery: asyncio.Future[Any]) -> None:
        if not delivery.cancelled() and (exc := delivery.exception()) is not None:
            on_error(exc)

    topic = table.changelog_topic
    name = topic.get_topic_name()
    key_serializer, value_serializer = table.key_serializer, table.value_serializer
    store = table.data
    for user_id, raw in states.items():
        key, _ = topic.prepare_key(user_id, key_serializer)
        value, _ = topic.prepare_value(raw, value_serializer)
        store[user_id] = raw
        delivery = cast("asyncio.Future[Any]", await producer.send(name, key, value, partitions[user_id], None, None))
        delivery.add_done_callback(delivered)


async def delete_states(
    table: faust.types.TableT,
    producer: KafkaProducer,
    partitions: Mapping[UserId, int],
    on_error: Callable[[BaseException], None],
) -> None:
    """Erase users from ``table``: drop them from its store and append a tombstone (a null
    value) to its changelog in ``partitions[user]``, so compaction removes every earlier
    state and a worker recovering the partition never sees them again."""

    def delivered(delivery: asyncio.Future[Any]) -> None:
        if not delivery.cancelled() and (exc := delivery.exception()) is not None:
            on_error(exc)

    topic = table.changelog_topic
    name = topic.get_topic_name()
    store = table.data
    for user_id, partition in partitions.items():
        key, _ = topic.prepare_key(user_id, table.key_serializer)
        store.pop(user_id, None)
        delivery = cast("asyncio.Future[Any]", await producer.send(name, key, None, partition, None, None))
        delivery.add_done_callback(delivered)
