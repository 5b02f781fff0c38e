"""/v1/rank with two workers: a request sent to the worker that does not own the user is
answered from the owner's state (forwarded to it), for single and batch requests."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams.demo.catalog import demo_catalog
from streams.partitioning import partition_of_key
from streams.producer import create_producer
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def post(url: str, body: Any) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return json.loads(resp.read())  # type: ignore[no-any-return]


def partition(user: str, n: int) -> int:
    return partition_of_key(user.encode(), n)


def test_requests_reach_the_worker_that_owns_the_user(settings: Settings, tmp_path: Path) -> None:
    from tests.conftest import _free_port

    s = settings.model_copy(update={"kafka_session_timeout_s": 6.0})
    ensure_topics(s)
    catalog = [i for i in demo_catalog(seed=7, images=False) if i["category"] in ("audio", "toys", "books")]
    a = WorkerProcess(s, tmp_path / "a.log").start()
    b = WorkerProcess(s.model_copy(update={"web_port": _free_port(), "data_dir": tmp_path / "b"}),
                      tmp_path / "b.log").start()
    producer = create_producer(s)
    try:
        a.wait_ready(timeout=300)
        for item in catalog:
            producer.send(s.topic_catalog, key=item["item_id"].encode(), value=json.dumps(item).encode())
        producer.flush()
        for w in (a, b):
            w.wait_ready(min_items=len(catalog), timeout=300)
        # Both workers own partitions of the clicks topic.
        deadline = time.monotonic() + 120
        owned: dict[str, set[int]] = {}
        while time.monotonic() < deadline:
            owned = {name: set((w.status() or {}).get("assignment", {}).get(s.topic_clicks, []))
                     for name, w in (("a", a), ("b", b))}
            if owned["a"] and owned["b"] and len(owned["a"] | owned["b"]) == s.partitions:
                break
            time.sleep(0.5)
        assert owned["a"] and owned["b"], owned
        users = [f"route-{n}" for n in range(24)]
        a_users = [u for u in users if partition(u, s.partitions) in owned["a"]]
        b_users = [u for u in users if partition(u, s.partitions) in owned["b"]]
        assert a_users and b_users
        audio = [i["item_id"] for i in catalog if i["category"] == "audio"]
        now = time.time()
        for n, u in enumerate(users):
            for k in range(3):
                ev = {"event_id": f"{u}-{k}", "user_id": u, "item_id": audio[(n + k) % len(audio)], "kind": "click",
                      "ts": now + k * 0.01}
                producer.send(s.topic_clicks, key=u.encode(), value=json.dumps(ev).encode())
        producer.flush()
        mixed = [i["item_id"] for i in catalog if i["category"] in ("toys", "books")][:10] + audio[-5:]
        # Once the owners have the users' state, every user is personalised whichever worker is asked.
        deadline = time.monotonic() + 120
        answers: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            answers = {u: post(b.base_url + "/v1/rank", {"user_id": u, "items": mixed}) for u in a_users}
            if all(r["personalised"] for r in answers.values()):
                break
            time.sleep(0.5)
        for u, r in answers.items():
            assert r["personalised"], (u, r, b.log_tail())  # b holds no state for a's users: a answered
            assert {x["item_id"] for x in r["items"][:5]} == set(audio[-5:])
        batch = post(a.base_url + "/v1/rank/batch", {"requests": [{"user_id": u, "items": mixed}
                                                                  for u in [a_users[0], b_users[0], "nobody"]]})
        got = [(r["user_id"], r["personalised"]) for r in batch["responses"]]
        assert got == [(a_users[0], True), (b_users[0], True), ("nobody", False)]
    finally:
        producer.close(timeout=10)
        b.stop()
        a.stop()
