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

Each record carries the input it reflects (:mod:`streams.state_version`), and
:class:`VersionedTable` applies a changelog record only when it does not reflect less
input than the state it holds for the user, so a cut-off worker's late records cannot
replace the newer states of the partition's new owner. A forget request's tombstone
carries the request's version, which the table keeps for the erased user, so such a late
record cannot bring a forgotten user back either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

import faust

from models.types import UserId
from streams.state_version import HEADER, Version, header_version, keep_newer

log = logging.getLogger(__name__)


class VersionedTable(faust.Table):
    """Faust's table, recovering (and standing by) only the newest state of each user.

    ``versions`` holds the :class:`~streams.state_version.Version` of every state this
    worker holds, and the ``erased`` version of every user forgotten in its partitions
    (``erased_in`` maps those users to their partition); ``on_outdated`` is called with
    the number of changelog records of a batch left out as older than it.
    """

    def __init__(self, *args: Any, on_outdated: Callable[[int], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.versions: dict[Any, Version] = {}
        self.erased_in: dict[Any, int] = {}
        self.on_outdated = on_outdated

    def apply_changelog_batch(self, batch: Any) -> None:
        events = list(batch)
        kept = []
        for e in events:
            key, value = self._to_key(e.key), e.message.value
            if keep_newer(self.versions, key, value, header_version(e.message.headers)):
                kept.append(e)
                self._note_erasure(key, value, e.message.partition)
        if len(kept) < len(events):
            log.warning("users changelog: %d records older than the states held left out", len(events) - len(kept))
            if self.on_outdated is not None:
                self.on_outdated(len(events) - len(kept))
        super().apply_changelog_batch(kept)

    def _note_erasure(self, key: Any, value: bytes | None, partition: int) -> None:
        version = self.versions.get(key)
        if value is None and version is not None and version.erased:
            self.erased_in[key] = partition
        else:
            self.erased_in.pop(key, None)

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        """Faust drops the states of partitions no longer held (the in-memory store keeps only
        active ones); their versions, and those of their forgotten users, go with them."""
        await super().on_recovery_completed(active_tps, standby_tps)
        held = {partition for _, partition in active_tps}
        gone = [k for k in self.versions
                if k not in self.data and self.erased_in.get(k, -1) not in held]
        for key in gone:
            del self.versions[key]
            self.erased_in.pop(key, None)


class KafkaProducer(Protocol):
    """The part of Faust's producer used here (``app.producer``)."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        timestamp: float | None, headers: Any,
    ) -> Awaitable[Any]: ...


async def save_states(
    table: faust.Table,
    producer: KafkaProducer,
    states: Mapping[UserId, bytes],
    partitions: Mapping[UserId, int],
    on_error: Callable[[BaseException], None],
    versions: Mapping[UserId, Version] | None = None,
) -> None:
    """Store ``states`` in ``table`` and append them to its changelog, one record per user.

    ``partitions[user]`` is the partition of the user's events in this batch;
    ``versions[user]``, the input the state reflects, goes into the record's header (and,
    for a :class:`VersionedTable`, into its ``versions``).
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
    held = getattr(table, "versions", None)
    versions = versions or {}
    for user_id, raw in states.items():
        key, _ = topic.prepare_key(user_id, key_serializer)
        value, _ = topic.prepare_value(raw, value_serializer)
        store[user_id] = raw
        version = versions.get(user_id)
        headers = [(HEADER, version.encode())] if version is not None else None
        if held is not None and version is not None:
            held[user_id] = version
            getattr(table, "erased_in", {}).pop(user_id, None)
        delivery = cast("asyncio.Future[Any]", await producer.send(name, key, value, partitions[user_id], None, headers))
        delivery.add_done_callback(delivered)


async def delete_states(
    table: faust.Table,
    producer: KafkaProducer,
    partitions: Mapping[UserId, int],
    on_error: Callable[[BaseException], None],
    versions: Mapping[UserId, Version] | None = None,
) -> None:
    """Erase users from ``table``: drop them from its store and append a tombstone (a null
    value) to its changelog in ``partitions[user]``, so compaction removes every earlier
    state and a worker recovering the partition never sees them again.

    ``versions[user]`` (a forget request's) goes into the tombstone's header and, for a
    :class:`VersionedTable`, stays as the user's ``erased`` version; without one the
    user's version is dropped."""

    def delivered(delivery: asyncio.Future[Any]) -> None:
        if not delivery.cancelled() and (exc := delivery.exception()) is not None:
            on_error(exc)

    topic = table.changelog_topic
    name = topic.get_topic_name()
    store = table.data
    held = getattr(table, "versions", {})
    erased_in = getattr(table, "erased_in", {})
    versions = versions or {}
    for user_id, partition in partitions.items():
        key, _ = topic.prepare_key(user_id, table.key_serializer)
        store.pop(user_id, None)
        version = versions.get(user_id)
        keep_newer(held, user_id, None, version)
        if version is not None:
            erased_in[user_id] = partition
        else:
            erased_in.pop(user_id, None)
        headers = [(HEADER, version.encode())] if version is not None else None
        delivery = cast("asyncio.Future[Any]", await producer.send(name, key, None, partition, None, headers))
        delivery.add_done_callback(delivered)
