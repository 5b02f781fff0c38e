"""The echo reference: the least a consume-to-Redis service can do, as a yardstick.

It consumes the clicks topic in a consumer group (aiokafka, the same short fetch
wait as the worker), keeps only each user's latest event of every fetched batch,
and writes those with one pipelined ``SET rec:{user_id} ... EX ttl`` per batch to
the worker's key scheme (``settings.rec_key``). No state, no scoring, no output
topic. The value carries the event's timestamp as ``trigger_ts`` so the same
latency probe reads it::

    {"trigger_ts": 1795370000.5, "event": {...the click event...}}

Run as ``python -m streams.bench.echo`` with ``STREAMREC_*`` settings, like a
worker: ``topic_clicks`` is consumed by group ``app_id``; ``/metrics`` is served on
``web_host:web_port`` with the worker's names (``streamrec_events_total``,
``streamrec_refreshes_total``, ``streamrec_event_to_recommendation_seconds``) plus
``streamrec_echo_assigned_partitions``, so both are measured the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from dataclasses import dataclass

from aiokafka import (
    AIOKafkaConsumer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from streams.kafka_config import aiokafka_kwargs
from streams.metrics import LATENCY_BUCKETS
from streams.redis_sink import create_redis_client
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class EchoMetrics:
    """The echo's counters, on a registry of its own."""

    registry: CollectorRegistry
    events: Counter
    refreshes: Counter
    latency: Histogram
    assigned: Gauge

    @classmethod
    def create(cls) -> EchoMetrics:
        r = CollectorRegistry()
        return cls(
            registry=r,
            events=Counter("streamrec_events", "Input events by topic and outcome", ["topic", "outcome"], registry=r),
            refreshes=Counter("streamrec_refreshes", "Keys written to Redis", registry=r),
            latency=Histogram(
                "streamrec_event_to_recommendation_seconds",
                "From the event's timestamp to its value being written to Redis",
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            assigned=Gauge("streamrec_echo_assigned_partitions", "Partitions assigned to this echo", registry=r),
        )


class _Assignment(ConsumerRebalanceListener):
    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._gauge.set(0)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._gauge.set(len(assigned))


def echo_value(raw: bytes, ts: float) -> bytes:
    """The Redis value written for an event: its timestamp as ``trigger_ts`` and the event itself.

    >>> json.loads(echo_value(b'{"user_id": "u1", "ts": 12.5}', 12.5))
    {'trigger_ts': 12.5, 'event': {'user_id': 'u1', 'ts': 12.5}}
    """
    return b'{"trigger_ts":' + repr(ts).encode() + b',"event":' + raw + b"}"


async def run_echo(settings: Settings, metrics: EchoMetrics, stop: asyncio.Event) -> None:
    """Consume, coalesce per user per batch, write to Redis, until ``stop`` is set."""
    assert settings.redis_url is not None
    topic = settings.topic_clicks
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings),
        group_id=settings.app_id,
        client_id=f"{settings.app_id}-echo",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        fetch_max_wait_ms=int(settings.kafka_fetch_max_wait_s * 1000),
        session_timeout_ms=int(settings.kafka_session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.kafka_heartbeat_interval_s * 1000),
        rebalance_timeout_ms=int(settings.kafka_rebalance_timeout_s * 1000),
    )
    consumer.subscribe([topic], listener=_Assignment(metrics.assigned))
    client = create_redis_client(settings.redis_url.get_secret_value())
    ok, invalid = metrics.events.labels(topic, "ok"), metrics.events.labels(topic, "invalid")
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=settings.event_batch_size)
            latest: dict[bytes | None, bytes] = {}
            n = 0
            for records in batches.values():
                for record in records:
                    latest[record.key] = record.value
                    n += 1
            if not n:
                continue
            written: list[float] = []
            async with client.pipeline(transaction=False) as pipe:
                for key, raw in latest.items():
                    try:
                        event = json.loads(raw)
                        ts = float(event["ts"])
                        user = key.decode() if key is not None else str(event["user_id"])
                    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                        invalid.inc()
                        n -= 1
                        continue
                    pipe.set(settings.rec_key(user), echo_value(raw, ts), ex=settings.rec_ttl_s)
                    written.append(ts)
                if written:
                    await pipe.execute()
            now = time.time()
            for ts in written:
                metrics.latency.observe(now - ts)
            ok.inc(n)
            metrics.refreshes.inc(len(written))
    finally:
        await consumer.stop()
        await client.aclose()


async def _main(settings: Settings) -> None:
    metrics = EchoMetrics.create()
    start_http_server(settings.web_port, addr=settings.web_host, registry=metrics.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_echo(settings, metrics, stop)


def main() -> int:
    """Entry point of the echo process (settings from ``STREAMREC_*``)."""
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.kafka_bootstrap_servers is None or settings.redis_url is None:
        raise SystemExit("the echo needs STREAMREC_KAFKA_BOOTSTRAP_SERVERS and STREAMREC_REDIS_URL")
    asyncio.run(_main(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
