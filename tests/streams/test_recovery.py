"""A restarted worker recovers per-user state from the table changelog and item state from topics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from streams.demo.catalog import demo_catalog, items_by_category
from streams.producer import create_producer
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def test_restarted_worker_recovers_user_state_and_catalog(settings: Settings, tmp_path: Path, wait_for_rec: Any) -> None:
    ensure_topics(settings)
    catalog = demo_catalog(seed=5, images=False)
    category = {it["item_id"]: it["category"] for it in catalog}
    kitchen, audio = items_by_category(catalog)["kitchen"], items_by_category(catalog)["audio"]
    producer = create_producer(settings)
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())  # type: ignore[union-attr]

    def click(item: str, ts: float, n: int) -> None:
        ev = {"event_id": f"r-{n}", "user_id": "loyal", "item_id": item, "kind": "add_to_cart", "ts": ts}
        producer.send(settings.topic_clicks, key=b"loyal", value=json.dumps(ev).encode())
        producer.flush()

    first = WorkerProcess(settings, tmp_path / "first.log").start()
    try:
        first.wait_ready(timeout=300)
        for it in catalog:
            producer.send(settings.topic_catalog, key=it["item_id"].encode(), value=json.dumps(it).encode())
        producer.flush()
        first.wait_ready(min_items=len(catalog), timeout=300)
        now = time.time()
        for i, item in enumerate(kitchen[:10]):
            click(item, now + i * 0.01, i)
        wait_for_rec(client, settings, first, "loyal", now + 0.09)
    finally:
        assert first.stop() == 0  # graceful: offsets and changelog flushed

    second = WorkerProcess(settings, tmp_path / "second.log").start()
    try:
        status = second.wait_ready(min_items=len(catalog), timeout=300)  # catalog rebuilt from the topic
        assert status["items"] == len(catalog)
        deadline = time.monotonic() + 60
        while (second.status() or {}).get("users_in_memory", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)  # the users table is recovered from its changelog
        assert second.status()["users_in_memory"] == 1  # type: ignore[index]
        later = time.time()
        click(audio[0], later, 100)
        rec = wait_for_rec(client, settings, second, "loyal", later)
    finally:
        second.stop()
    cats = [category[i["item_id"]] for i in rec["items"]]
    # Ten kitchen add-to-carts before the restart outweigh one audio one after it: the state survived.
    assert cats.count("kitchen") >= 5, cats
    producer.close()
