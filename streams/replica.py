"""A serving replica: answers ``/v1/rank`` from a copy of every user's state, off the stream.

A worker answers ``/v1/rank`` on the event loop that also runs its stream, so under a
heavy stream requests wait behind micro-batches. A replica (``streamrec serve``) is a
separate process that does nothing but answer requests. It holds:

* every user's state, read from the ``users`` table's changelog (all partitions, from
  the beginning, then followed): the same bytes the workers write, a few fetch waits
  later; a forget tombstone removes the user here too;
* the item-side state (catalog vectors, co-visitation, trending, new items), read from
  the same compacted topics every worker reads (:mod:`agents.item_state`);
* the newest ranker bundle, hot-swapped like a worker's (:mod:`agents.model_swap`).

It answers with the same code as a worker (:func:`agents.rank_api.answer_locally`), so
an answer differs from the owning worker's only by how far the copy trails the
changelog (``streamrec_replica_state_delay_seconds``). It joins no consumer group and
commits nothing; replicas scale out independently of the workers, and each holds all
users' states in memory (the sum of the workers' tables).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from models.item_embedding import ItemEmbedder
from models.recommender import Recommender
from streams.follower import follow_topics
from streams.kafka_config import aiokafka_kwargs
from streams.metrics import LATENCY_BUCKETS, Metrics
from streams.settings import Settings
from streams.state_version import Version, header_version, keep_newer
from streams.topics import changelog_topic

log = logging.getLogger(__name__)

UserId = str


class ReplicaMetrics(Metrics):
    """A worker's metrics plus the replica's own: users held, copy delay and requests."""

    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.replica_users = Gauge("streamrec_replica_users", "User states held by this replica", registry=r)
        self.changelog_applied = Counter(
            "streamrec_replica_changelog_records", "User-state changelog records applied", registry=r
        )
        self.state_delay = Histogram(
            "streamrec_replica_state_delay_seconds",
            "From a user state's write to the changelog to this replica applying it (after loading)",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.rank_requests = Counter(
            "streamrec_rank_requests", "Rank requests answered, by HTTP status", ["status"], registry=r
        )


def apply_changelog(
    users: MutableMapping[UserId, bytes], key: bytes | None, value: bytes | None,
    version: Version | None = None, versions: MutableMapping[UserId, Version] | None = None,
) -> bool:
    """Apply one ``users`` changelog record: a state replaces the copy, a tombstone removes it.
    With ``versions`` (the copies' versions), a state reflecting less input than the copy held
    (``version``, from the record's header) is left out. Returns whether it was applied.

    Faust writes the table's keys as JSON strings and its values as raw bytes.

    >>> users, versions = {}, {}
    >>> apply_changelog(users, b'"u1"', b"new", Version((5, 2, -1)), versions)
    True
    >>> apply_changelog(users, b'"u1"', b"stale", Version((4, 2, -1)), versions), users
    (False, {'u1': b'new'})
    >>> apply_changelog(users, b'"u1"', None, None, versions), users
    (True, {})

    A forget request's tombstone (with a version) keeps a late record of the state before it out:

    >>> apply_changelog(users, b'"u1"', b"new", Version((5, 2, -1)), versions)
    True
    >>> apply_changelog(users, b'"u1"', None, Version((9, 2, -1)), versions), users
    (True, {})
    >>> apply_changelog(users, b'"u1"', b"before the request", Version((6, 3, -1)), versions), users
    (False, {})
    >>> apply_changelog(users, b'"u1"', b"after it", Version((10, 2, -1)), versions), users
    (True, {'u1': b'after it'})
    """
    if key is None:
        return False
    try:
        user_id = json.loads(key)
    except ValueError:
        user_id = None
    if not isinstance(user_id, str):
        log.error("users changelog key %r is not a JSON string; record ignored", key[:100])
        return False
    if versions is not None and not keep_newer(versions, user_id, value, version):
        return False
    if value is None:
        users.pop(user_id, None)
    else:
        users[user_id] = value
    return True


@dataclass
class Replica:
    """A replica's state; answers rank requests like a worker (see :class:`agents.rank_api.RankState`)."""

    settings: Settings
    recommender: Recommender
    embedder: ItemEmbedder
    metrics: ReplicaMetrics
    users: dict[UserId, bytes] = field(default_factory=dict)
    #: The input each state in ``users`` reflects (see :mod:`streams.state_version`).
    versions: dict[UserId, Version] = field(default_factory=dict)
    items_ready: asyncio.Event = field(default_factory=asyncio.Event)
    users_ready: asyncio.Event = field(default_factory=asyncio.Event)
    producer: AIOKafkaProducer | None = None

    def user_bytes(self, user_id: str) -> bytes | None:
        """The user's state as the owning worker last wrote it, or None."""
        return self.users.get(user_id)

    async def send_impression(self, key: bytes, value: bytes) -> None:
        """Queue a shown list on the impressions topic (a failed delivery is counted and logged)."""
        if self.producer is None:
            raise RuntimeError("the replica's producer is not started")
        delivery = await self.producer.send(self.settings.topic_impressions, value, key=key)
        delivery.add_done_callback(self._on_delivery)

    def _on_delivery(self, delivery: asyncio.Future[object]) -> None:
        if delivery.cancelled() or delivery.exception() is None:
            return
        self.metrics.publish_errors.inc()
        log.error("an impression could not be published: %r", delivery.exception())

    def readiness(self) -> dict[str, bool]:
        """Each readiness check by name; the replica is ready when all pass."""
        return {"item_state_loaded": self.items_ready.is_set(), "user_states_loaded": self.users_ready.is_set()}

    def status(self) -> dict[str, object]:
        """A JSON summary (``/status``)."""
        return {
            "role": "replica", "items_ready": self.items_ready.is_set(), "users_ready": self.users_ready.is_set(),
            "items": len(self.recommender.index), "users": len(self.users),
            "model_version": self.recommender.model_version, "embedding_space": self.embedder.version,
        }


def build_replica(settings: Settings, embedder: ItemEmbedder, metrics: ReplicaMetrics | None = None) -> Replica:
    """A replica with empty state and the newest usable ranker bundle; nothing is read until :func:`serve`."""
    from streams.pipeline import build_recommender

    metrics = metrics or ReplicaMetrics()
    return Replica(settings, build_recommender(settings, embedder, metrics), embedder, metrics)


async def follow_users(r: Replica) -> None:
    """Load, then follow, the ``users`` changelog into ``r.users`` (runs for the replica's life)."""
    s = r.settings
    topic = changelog_topic(s, "users")
    tps = [TopicPartition(topic, part) for part in range(s.partitions)]

    def apply(records: Sequence[ConsumerRecord]) -> None:
        now = time.time()
        for record in records:
            version = header_version(record.headers)
            if not apply_changelog(r.users, record.key, record.value, version, r.versions):
                if version is not None and record.value is not None:
                    r.metrics.outdated_states.inc()  # (or a key that is not a JSON string, logged)
                continue
            if r.users_ready.is_set():
                r.metrics.state_delay.observe(max(0.0, now - record.timestamp / 1000.0))
        r.metrics.changelog_applied.inc(len(records))
        r.metrics.replica_users.set(len(r.users))

    await follow_topics(s, tps, apply, r.users_ready, s.item_state_fetch_wait_s, "user states")


async def _freeze_after_load(r: Replica) -> None:
    """Once the state is loaded, move it out of the collector's sight (``gc.freeze``): a full
    collection then walks only what requests allocate, not the whole catalog and co-visitation
    graph, which otherwise stalls requests for tens of milliseconds."""
    await r.items_ready.wait()
    await r.users_ready.wait()
    gc.collect()
    gc.freeze()
    log.info("state loaded; %d objects frozen out of garbage collection", gc.get_freeze_count())


async def serve(r: Replica, stop: asyncio.Event | None = None) -> None:
    """Follow the state, answer HTTP on ``web_host:web_port`` until ``stop`` (or SIGINT/SIGTERM).

    Raises when a follower fails, so a supervisor restarts the replica.
    """
    from aiohttp import web

    from agents.item_state import follow_item_state
    from agents.model_swap import watch_bundles
    from streams.replica_web import web_app

    s = r.settings
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    r.producer = AIOKafkaProducer(**aiokafka_kwargs(s), linger_ms=5)
    await r.producer.start()
    tasks = [asyncio.create_task(follow_item_state(r), name="item-state"),
             asyncio.create_task(follow_users(r), name="user-states")]
    if s.ranker_poll_s > 0:
        tasks.append(asyncio.create_task(watch_bundles(r, s.ranker_poll_s), name="ranker-watch"))
    runner = web.AppRunner(web_app(r), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, s.web_host, s.web_port).start()
    log.info("replica answering on http://%s:%d (model %s)", s.web_host, s.web_port, r.recommender.model_version)
    asyncio.create_task(_freeze_after_load(r), name="gc-freeze")
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopping and task.exception() is not None:
                raise RuntimeError(f"the replica's {task.get_name()} follower failed") from task.exception()
    finally:
        for task in (stopping, *tasks):
            task.cancel()
        await asyncio.gather(stopping, *tasks, return_exceptions=True)
        await runner.cleanup()
        await r.producer.stop()
        log.info("replica stopped")


def run_replica(settings: Settings) -> None:
    """Load the models and serve until SIGINT/SIGTERM (addresses must be set)."""
    import os

    from streams.model_loading import load_embedder

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    metrics = ReplicaMetrics()
    replica = build_replica(settings, load_embedder(settings, metrics), metrics)
    asyncio.run(serve(replica))
