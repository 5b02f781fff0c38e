"""The Faust application class and its factory.

:class:`StreamrecApp` changes these things in Faust:

* the longest time a fetch waits for data, which Faust hard-codes to 1.5 s (brokers that
  hold a fetch for its whole max wait, as the embedded one does, would add that to every hop);
* the end offsets tables are recovered up to, which must be the log's end even where the
  broker's ListOffsets answer trails it (:mod:`streams.log_end`);
* the size of the producer buffer that queues table writes;
* on the event topics, no committing over a jump in the offsets read (``_Consumer._add_gap``)
  nor over a missing message at the head of the acknowledged ones (``_Consumer._new_offset``),
  including a partition's first commit;
* after every rebalance, input partitions the group never committed are sought to their log
  start, where Faust leaves them wherever its dropped fetches got to (:mod:`streams.input_start`);
* an acknowledged message is always forgotten as in flight (``_Consumer.ack``).

It also records every answered heartbeat and every assignment as a confirmation of the
worker's group membership (:mod:`streams.membership`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import ProducerT, TransportT
from faust.types.tuples import ack_lock

from streams.input_start import seek_uncommitted_to_start
from streams.kafka_config import (
    aiokafka_kwargs,
    faust_broker_credentials,
    faust_broker_url,
)
from streams.log_end import log_ends
from streams.membership import MembershipClock
from streams.offset_holes import head_missing
from streams.settings import Settings

log = logging.getLogger(__name__)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = int(self.app.conf.streamrec_fetch_max_wait_ms)
        consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts its fetcher
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # Every answered heartbeat confirms the group still counts this worker as a member
        # (see streams.membership). aiokafka looks the method up on every beat.
        coordinator = getattr(self._consumer, "_coordinator", None)
        membership: MembershipClock | None = getattr(self.app, "membership", None)
        if coordinator is None or membership is None:
            return
        beat = coordinator._do_heartbeat

        async def heartbeat_confirming_membership() -> bool:
            ok = bool(await beat())
            if ok:
                membership.confirm()
            return ok

        coordinator._do_heartbeat = heartbeat_confirming_membership

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        # Table recovery reads changelogs up to these offsets: make sure they are the
        # log's end, not a ListOffsets answer that trails it (see streams.log_end).
        reported = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return reported
        kwargs = self.app.conf.streamrec_client_kwargs
        return await log_ends(kwargs, reported)  # type: ignore[return-value]


class _Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Input partitions without a committed offset: the offset they were sought to (their
        #: log start) at the last rebalance (see streams.input_start).
        self.start_offsets: dict[Any, int] = {}

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # Faust counts a jump in the offsets it reads as a gap that may be committed (records
        # a compacted topic no longer has). On the event topics (never compacted) a jump only
        # comes from a prefetched message read after a seek back to the committed offset, and
        # the messages it jumped over are then dropped as "already read": committing over
        # them would lose them. They stay uncommitted instead, and streams.offset_holes reads
        # the partition again from there.
        if tp.topic in getattr(self.app.conf, "streamrec_gapless_topics", ()):
            return
        await super()._add_gap(tp, offset_from, offset_to)

    async def on_partitions_assigned(self, assigned: set[Any], generation_id: int = 0) -> None:
        membership: MembershipClock | None = getattr(self.app, "membership", None)
        if membership is not None:
            membership.confirm()  # the group just handed this worker an assignment
        await super().on_partitions_assigned(assigned, generation_id)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        # Faust seeks only partitions with a committed offset; the others would keep the
        # position of records it fetched and dropped during the rebalance (streams.input_start).
        await seek_uncommitted_to_start(self, self.start_offsets)
        gapless = getattr(self.app.conf, "streamrec_gapless_topics", ())
        resume = {f"{tp.topic}[{tp.partition}]": self._resume_offset(tp)
                  for tp in sorted(self.assignment()) if tp.topic in gapless}
        log.info("event partitions resume at offsets %s", resume)

    def ack(self, message: Any) -> bool:
        with ack_lock:
            counted = bool(super().ack(message))
            # Faust forgets an in-flight message only when it counts its acknowledgement: one
            # read again below the committed offset (after a seek back) or acknowledged twice
            # would stay "in flight" forever and hold up the next rebalance, which waits for
            # every in-flight message to be acknowledged.
            if message.acked:
                self._unacked_messages.discard(message)
            return counted

    def _resume_offset(self, tp: Any) -> int | None:
        """The next offset of ``tp`` to process: the committed one, else where it was sought to."""
        committed = self._committed_offset.get(tp)
        return self.start_offsets.get(tp) if committed is None else committed

    def _new_offset(self, tp: Any) -> int | None:
        # Faust's check for a missing message at the head of the acknowledged offsets is off
        # by one: with the committed offset at 30 (the next to process) and 31.. acknowledged,
        # it sees no gap and commits 45, over the unprocessed 30. A message the consumer
        # dropped around a rebalance was lost that way. On the event topics, nothing is
        # committed while the message at the committed offset is not acknowledged; the
        # skipped-input watch (streams.offset_holes) reads it again.
        gapless = tp.topic in getattr(self.app.conf, "streamrec_gapless_topics", ())
        # A partition never committed starts where it was sought to (streams.input_start).
        if gapless and head_missing(self._acked[tp], self._resume_offset(tp)):
            return None
        return super()._new_offset(tp)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class StreamrecApp(faust.App):
    """A Faust app whose worker consumer uses a configurable fetch wait, whose producer
    buffer holds whole batches of table writes, and which knows when the group last
    confirmed its membership (``membership``, see :mod:`streams.membership`)."""

    membership: MembershipClock

    def _new_transport(self) -> TransportT:
        return _Transport(url=self.conf.broker_consumer, app=self, loop=self.loop)

    def _new_producer(self) -> ProducerT:
        producer = super()._new_producer()
        # Table writes are queued in this buffer; past ``max_messages`` (100 by default) Faust
        # drains it one message at a time before delivering the next event, which throttles a
        # batch that writes one changelog record per user. Allow a few whole batches instead.
        producer.buffer.max_messages = int(self.conf.streamrec_producer_buffer_max)
        return producer


def create_app(settings: Settings) -> StreamrecApp:
    """A configured (not yet started) Faust app for ``settings``."""
    app = StreamrecApp(
        settings.app_id,
        broker=faust_broker_url(settings),
        broker_credentials=faust_broker_credentials(settings),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=False,  # topics are created explicitly, with their partition counts
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_rebalance_timeout=settings.kafka_rebalance_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        broker_request_timeout=max(40.0, settings.kafka_session_timeout_s + 5),
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        web_tables_enabled=False,  # Faust's /table pages would serve users' state to anyone on the port
        web_router_enabled=False,  # and /router the cluster's layout; streamrec routes nothing over HTTP
        datadir=str(settings.data_dir),
        producer_linger=0.005,  # a few ms of batching: far fewer produce requests under load
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
    )
    app.membership = MembershipClock()
    app.conf.streamrec_fetch_max_wait_ms = int(settings.kafka_fetch_max_wait_s * 1000)
    app.conf.streamrec_client_kwargs = aiokafka_kwargs(settings)
    app.conf.streamrec_producer_buffer_max = 4 * settings.event_batch_size
    app.conf.streamrec_gapless_topics = frozenset(
        {settings.topic_clicks, settings.topic_searches, settings.topic_impressions}
    )
    return app
