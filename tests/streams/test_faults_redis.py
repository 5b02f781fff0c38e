"""Redis down for a while: writes queue and retry, nothing is lost; Redis rebuilt from the topic."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis

from agents.refresh import recommendation_payload
from models.recommender import ScoredItem
from streams.producer import create_producer
from streams.redis_rebuild import rebuild_redis
from streams.redis_sink import RedisWriter, create_redis_client
from streams.runtime import EmbeddedRedis, find_free_port
from streams.settings import Settings
from streams.state_version import HEADER
from streams.topics import changelog_topic, ensure_topics

pytestmark = pytest.mark.integration


def test_writes_during_an_outage_are_queued_retried_and_all_land_when_redis_returns() -> None:
    port = find_free_port()
    server = EmbeddedRedis(port=port).start()
    errors: list[int] = []

    async def scenario() -> tuple[int, int]:
        writer = RedisWriter(create_redis_client(f"redis://127.0.0.1:{port}"), ttl_s=600, max_backoff_s=0.5,
                             on_error=lambda: errors.append(1))
        task = asyncio.create_task(writer.run())
        writer.put("rec:a", b"a-1", time.time())
        assert await writer.drain(10)
        server.stop()  # Redis goes away
        for n in range(500):
            writer.put(f"rec:u{n % 100}", f"v{n}".encode(), time.time())  # latest value per user wins
        writer.delete("rec:a")
        await asyncio.sleep(2.0)
        pending_during = writer.pending
        server.start()  # same port, empty (a restarted cache)
        assert await writer.drain(30)
        task.cancel()
        await writer.close()
        return pending_during, writer.pending

    try:
        pending_during, pending_after = asyncio.run(scenario())
        client = redis.Redis(port=port)
        assert pending_during == 101 and pending_after == 0  # one entry per key, however many writes
        assert errors  # failures were counted, with retries
        for u in range(100):
            assert client.get(f"rec:u{u}") == f"v{400 + u}".encode()  # every user's latest value
            assert 0 < client.ttl(f"rec:u{u}") <= 600
        assert client.get("rec:a") is None
        client.close()
    finally:
        server.stop()


def test_redis_rebuild_restores_every_users_latest_list_from_the_topic(settings: Settings, redis_client: object) -> None:
    from click.testing import CliRunner

    from streams.cli import main as cli

    ensure_topics(settings)
    producer = create_producer(settings)
    now = time.time()
    for n in range(3):
        for u in range(20):
            raw = recommendation_payload(f"u{u}", (now + n, f"e{n}"), [ScoredItem(f"i{n}", 1.0, "interest")], "blend-1")
            producer.send(settings.topic_recommendations, key=f"u{u}".encode(), value=raw)
    producer.send(settings.topic_recommendations, key=b"u7", value=None)  # u7 was forgotten
    for n in range(2):  # the search surface's lists of u0..u4, on their own topic
        for u in range(5):
            raw = recommendation_payload(f"u{u}", (now + n, f"s{n}"), [ScoredItem(f"j{n}", 1.0, "search")], "blend-1",
                                         surface="search")
            producer.send(settings.topic_surface_recommendations, key=f"search:u{u}".encode(), value=raw)
    producer.send(settings.topic_surface_recommendations, key=b"search:u4", value=None)  # forgotten
    producer.send(settings.topic_surface_recommendations, key=b"retired:u1", value=raw)  # a surface no longer set
    producer.flush()
    producer.close()
    client = redis_client
    client.set(settings.rec_key("u7"), "stale")  # type: ignore[attr-defined]
    newer = recommendation_payload("u3", (now + 9, "e9"), [ScoredItem("i9", 1.0, "search")], "blend-1")
    client.set(settings.rec_key("u3"), newer)  # type: ignore[attr-defined]  # a worker wrote a newer one

    result = CliRunner().invoke(cli, ["redis-rebuild"], env=settings.to_env())
    assert result.exit_code == 0, result.output
    assert "for 20 user(s) and 6 surface list(s)" in result.output, result.output
    assert "22 list(s) written, 1 already in Redis" in result.output and "2 forgotten" in result.output
    for u in range(5):
        raw = client.get(settings.rec_key(f"u{u}", "search"))  # type: ignore[attr-defined]
        assert (raw is None) if u == 4 else json.loads(raw)["trigger_event_id"] == "s1"
    assert not client.keys("*retired*")  # type: ignore[attr-defined]
    for u in range(20):
        raw = client.get(settings.rec_key(f"u{u}"))  # type: ignore[attr-defined]
        if u == 7:
            assert raw is None
        elif u == 3:
            assert json.loads(raw)["trigger_event_id"] == "e9"  # NX: the newer list was kept
        else:
            assert json.loads(raw)["trigger_event_id"] == "e2"
            assert 0 < client.ttl(settings.rec_key(f"u{u}")) <= settings.rec_ttl_s  # type: ignore[attr-defined]

    report = rebuild_redis(settings, redis.Redis.from_url(settings.redis_url.get_secret_value()), overwrite=True)  # type: ignore[union-attr]
    assert report.written == 23 and report.deleted == 2
    old = rebuild_redis(settings, redis.Redis.from_url(settings.redis_url.get_secret_value()),  # type: ignore[union-attr]
                        overwrite=True, now=now + settings.rec_ttl_s + 100)
    assert old.expired == 23 and old.written == 0  # lists past their TTL are not brought back


def test_redis_rebuild_does_not_bring_back_a_user_forgotten_before_a_late_list(
    settings: Settings, redis_client: object
) -> None:
    """A cut-off worker's list from before a forget request, delivered after it, stays out of Redis."""
    ensure_topics(settings)
    producer = create_producer(settings)
    users = changelog_topic(settings, "users")
    now = time.time()

    def state(user: str, value: bytes | None, version: bytes) -> None:
        producer.send(users, key=json.dumps(user).encode(), value=value, headers=[(HEADER, version)],
                      partition=0)

    def lists(user: str, event: str) -> None:
        producer.send(settings.topic_recommendations, key=user.encode(),
                      value=recommendation_payload(user, (now, event), [ScoredItem("i1", 1.0, "interest")], "blend-1"))
        producer.send(settings.topic_surface_recommendations, key=f"search:{user}".encode(),
                      value=recommendation_payload(user, (now, event), [ScoredItem("j1", 1.0, "search")], "blend-1",
                                                   surface="search"))

    for user in ("gone", "back", "kept"):
        state(user, b"state", b"5,1,-1")
        lists(user, "before")
    for user in ("gone", "back"):  # forget requests at clicks offset 9
        state(user, None, b"9,1,-1")
        producer.send(settings.topic_recommendations, key=user.encode(), value=None)
        producer.send(settings.topic_surface_recommendations, key=f"search:{user}".encode(), value=None)
    state("gone", b"late, from before the request", b"7,2,-1")
    lists("gone", "late, from before the request")
    state("back", b"after the request", b"10,1,-1")
    lists("back", "after the request")
    producer.flush()
    producer.close()

    report = rebuild_redis(settings, redis.Redis.from_url(settings.redis_url.get_secret_value()))  # type: ignore[union-attr]
    client = redis_client
    assert client.get(settings.rec_key("gone")) is None  # type: ignore[attr-defined]
    assert client.get(settings.rec_key("gone", "search")) is None  # type: ignore[attr-defined]
    for user, event in (("back", "after the request"), ("kept", "before")):
        for surface in ("home", "search"):
            raw = client.get(settings.rec_key(user, surface))  # type: ignore[attr-defined]
            assert raw is not None and json.loads(raw)["trigger_event_id"] == event, (user, surface)
    assert report.written == 4 and report.deleted == 2
