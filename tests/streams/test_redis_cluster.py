"""The Redis writer and a real worker against a real three-node Valkey cluster (hash-tagged keys)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from streams.redis_sink import RedisWriter, create_redis_client
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def cluster_client(cluster: Any) -> RedisCluster:
    return RedisCluster.from_url(cluster.url, decode_responses=True, socket_timeout=10)


def test_rediss_cluster_client_uses_tls() -> None:
    client = create_redis_client("rediss://:secret@node-1:7000/0", cluster=True)
    assert client.connection_kwargs["connection_class"].__name__ == "SSLConnection"
    assert "secret" not in repr(client)


def test_writer_lands_every_key_across_the_nodes_with_each_users_keys_in_one_slot(valkey_cluster: Any) -> None:
    s = Settings(redis_cluster=True, redis_key_prefix="w:")
    users = [f"user-{n}" for n in range(60)]

    async def write() -> bool:
        writer = RedisWriter(create_redis_client(valkey_cluster.url, cluster=True), ttl_s=600, max_backoff_s=0.2)
        task = asyncio.create_task(writer.run())
        for u in users:
            writer.put(s.rec_key(u), json.dumps({"u": u, "surface": "home"}).encode(), time.time())
            writer.put(s.rec_key(u, "search"), json.dumps({"u": u, "surface": "search"}).encode(), time.time())
        ok = await writer.drain(30)
        for u in users[:10]:
            writer.delete(s.rec_key(u))
        ok = ok and await writer.drain(30)
        task.cancel()
        await writer.close()
        return ok

    assert asyncio.run(write())
    client = cluster_client(valkey_cluster)
    try:
        for u in users:
            assert s.rec_key(u) == f"w:rec:{{{u}}}"
            home, search = client.get(s.rec_key(u)), client.get(s.rec_key(u, "search"))
            assert json.loads(search) == {"u": u, "surface": "search"}
            assert home is None if u in users[:10] else json.loads(home) == {"u": u, "surface": "home"}
            assert client.keyslot(s.rec_key(u)) == client.keyslot(s.rec_key(u, "search")) == client.keyslot(u)
            assert 0 < client.ttl(s.rec_key(u, "search")) <= 600
        per_node = [redis.Redis(port=p).dbsize() for p in valkey_cluster.ports]
        assert sum(per_node) == 2 * len(users) - 10 and all(n > 0 for n in per_node), per_node
    finally:
        client.close()


def test_a_workers_recommendations_land_in_the_cluster(
    settings: Settings, valkey_cluster: Any, tmp_path: Path, read_topic: Any
) -> None:
    from streams.demo.catalog import demo_catalog
    from streams.producer import create_producer

    s = settings.model_copy(update={"redis_url": settings.redis_url.__class__(valkey_cluster.url),
                                    "redis_cluster": True})
    ensure_topics(s)
    catalog = [i for i in demo_catalog(seed=7) if i["category"] in ("audio", "books")]
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    producer = create_producer(s)
    client = cluster_client(valkey_cluster)
    try:
        worker.wait_ready(timeout=300)
        for item in catalog:
            producer.send(s.topic_catalog, key=item["item_id"].encode(), value=json.dumps(item).encode())
        producer.flush()
        worker.wait_ready(min_items=len(catalog), timeout=300)
        now = time.time()
        users = [f"cluster-user-{n}" for n in range(12)]
        for n, u in enumerate(users):
            for k in range(3):
                ev = {"event_id": f"c{n}-{k}", "user_id": u, "item_id": catalog[(n * 3 + k) % len(catalog)]["item_id"],
                      "kind": "click", "ts": now + k * 0.01}
                producer.send(s.topic_clicks, key=u.encode(), value=json.dumps(ev).encode())
        producer.flush()
        deadline = time.monotonic() + 120
        missing = set(users)
        while missing and time.monotonic() < deadline:
            worker.check_alive()
            missing = {u for u in missing if client.get(s.rec_key(u)) is None}
            time.sleep(0.2)
        assert not missing, f"no list in the cluster for {sorted(missing)}\n{worker.log_tail()}"
        for u in users:
            rec = json.loads(client.get(s.rec_key(u)))
            assert rec["user_id"] == u and rec["items"] and rec["trigger_ts"] >= now
        nodes = {client.get_node_from_key(s.rec_key(u)).port for u in users}
        assert len(nodes) >= 2, nodes  # the users' keys are spread over the cluster
        assert "Redis write" not in worker.log_tail(400)  # no failed writes on the way

        # The recs command reads the cluster too.
        from click.testing import CliRunner

        from streams.cli import main

        out = CliRunner().invoke(main, ["recs", users[0], "--json"], env=s.to_env())
        assert out.exit_code == 0, out.output
        assert json.loads(out.output)["user_id"] == users[0]
    finally:
        producer.close(timeout=10)
        worker.stop()
        client.close()


def test_redis_rebuild_writes_into_the_cluster(settings: Settings, valkey_cluster: Any) -> None:
    from click.testing import CliRunner

    from agents.refresh import recommendation_payload
    from models.recommender import ScoredItem
    from streams.cli import main as cli
    from streams.producer import create_producer

    s = settings.model_copy(update={"redis_url": settings.redis_url.__class__(valkey_cluster.url),  # type: ignore[union-attr]
                                    "redis_cluster": True})
    ensure_topics(s)
    producer = create_producer(s)
    now = time.time()
    users = [f"rebuilt-{u}" for u in range(30)]
    for u in users:
        raw = recommendation_payload(u, (now, f"{u}-e1"), [ScoredItem("audio-001", 1.0, "interest")], "blend-1")
        producer.send(s.topic_recommendations, key=u.encode(), value=raw)
    producer.flush()
    producer.close()
    result = CliRunner().invoke(cli, ["redis-rebuild"], env=s.to_env())
    assert result.exit_code == 0, result.output
    assert "30 list(s) written" in result.output
    client = cluster_client(valkey_cluster)
    try:
        for u in users:
            assert json.loads(client.get(s.rec_key(u)))["trigger_event_id"] == f"{u}-e1"
        nodes = {client.keyslot(s.rec_key(u)) // 5462 for u in users}  # 3 nodes share the 16,384 slots
        assert len(nodes) > 1  # the keys really spread over the cluster
    finally:
        client.close()
