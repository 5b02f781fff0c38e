"""The broker becomes unreachable for longer than the consumer session timeout, then returns.

The embedded broker keeps its log in memory only, so the outage is a cut network, not a
restarted broker: a dedicated Tansu advertises the port of a loopback proxy
(:mod:`tests.streams.tcp_proxy`) and every client, the worker's and the test's, reaches
it through that proxy. Cutting the proxy closes every connection and refuses new ones.

The same worker process (never restarted by hand) must resume: publish a list for every
user's last event, answer ``/health`` and ``/ready`` with 200 again, and have every event,
including those produced during the outage, in its user's state.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import redis

from agents.refresh import recommendation_from_json
from models.interest import UserState
from streams.demo.catalog import demo_catalog, items_by_category
from streams.producer import create_producer
from streams.runtime import EmbeddedBroker
from streams.settings import Settings
from streams.topics import changelog_topic, ensure_topics
from streams.worker_process import WorkerProcess
from tests.streams.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

USERS = 12
BEFORE, DURING, AFTER = 3, 2, 1  # events per user before, during and after the outage
OUTAGE_S = 15.0


def http_status(url: str) -> int | None:
    """The HTTP status of a GET (None when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return None


def latest_states(settings: Settings, read_topic: Any) -> dict[str, UserState]:
    """The last changelog record of every user: what a recovering worker restores."""
    states: dict[str, UserState] = {}
    for rec in read_topic(settings, changelog_topic(settings, "users"), settings.partitions):
        if rec.value is not None:
            states[json.loads(rec.key)] = UserState.from_bytes(rec.value)
    return states


def test_worker_resumes_on_its_own_after_the_broker_was_unreachable(
    settings: Settings, tmp_path: Path, read_topic: Any
) -> None:
    assert OUTAGE_S > settings.kafka_session_timeout_s  # the broker drops the worker from its group
    with TcpProxy() as proxy, EmbeddedBroker(advertised_port=proxy.port, startup_timeout=30) as broker:
        proxy.target_port = broker.port
        s = settings.model_copy(update={"kafka_bootstrap_servers": proxy.address})
        ensure_topics(s)
        catalog = demo_catalog(seed=5, images=False)
        by_cat = items_by_category(catalog)
        categories = sorted(by_cat)
        users = [f"away-{i}" for i in range(USERS)]
        taste = {u: categories[i % len(categories)] for i, u in enumerate(users)}
        sent: dict[str, list[str]] = defaultdict(list)  # user -> event ids in order
        last_ts: dict[str, float] = {}

        worker = WorkerProcess(s, tmp_path / "worker.log").start()
        producer = create_producer(s)
        client = redis.Redis.from_url(s.redis_url.get_secret_value(), decode_responses=True)  # type: ignore[union-attr]

        def send(user: str) -> None:
            n = len(sent[user])
            item = by_cat[taste[user]][n % len(by_cat[taste[user]])]
            ts = time.time()
            ev = {"event_id": f"{user}-{n}", "user_id": user, "item_id": item, "kind": "view", "ts": ts}
            producer.send(s.topic_clicks, key=user.encode(), value=json.dumps(ev).encode())
            sent[user].append(ev["event_id"])
            last_ts[user] = ts

        def wait_all_reflected(timeout: float) -> float:
            t0 = time.monotonic()
            pending = set(users)
            while pending and time.monotonic() - t0 < timeout:
                worker.check_alive()
                for u in list(pending):
                    raw = client.get(s.rec_key(u))
                    if raw and recommendation_from_json(raw)["trigger_event_id"] == sent[u][-1]:
                        pending.discard(u)
                time.sleep(0.2)
            assert not pending, f"no list for the last event of {sorted(pending)}\n{worker.log_tail(40)}"
            return time.monotonic() - t0

        try:
            worker.wait_ready(timeout=300)
            for it in catalog:
                producer.send(s.topic_catalog, key=it["item_id"].encode(), value=json.dumps(it).encode())
            producer.flush()
            worker.wait_ready(min_items=len(catalog), timeout=300)
            pid = worker.pid
            for _ in range(BEFORE):
                for u in users:
                    send(u)
            producer.flush()
            wait_all_reflected(120)
            base = worker.base_url
            assert http_status(base + "/ready") == 200

            # The outage: every connection closed, every new one refused, for longer than the session timeout.
            closed = proxy.cut()
            assert closed > 0
            cut_at = time.monotonic()
            health_during: set[int | None] = set()
            ready_during: set[int | None] = set()
            for _ in range(DURING):  # produced while the broker is unreachable: the producer holds and retries them
                for u in users:
                    send(u)
            while time.monotonic() - cut_at < OUTAGE_S:
                worker.check_alive()
                health_during.add(http_status(base + "/health"))
                ready_during.add(http_status(base + "/ready"))
                time.sleep(0.5)
            proxy.restore()
            restored_at = time.monotonic()
            producer.flush(timeout=120)
            for _ in range(AFTER):
                for u in users:
                    send(u)
            producer.flush(timeout=60)

            recovered_s = wait_all_reflected(180)
            print(f"outage {OUTAGE_S:.0f}s ({closed} connections cut, {proxy.refused} refused while cut); "
                  f"/health during it {sorted(map(str, health_during))}, /ready {sorted(map(str, ready_during))}; "
                  f"every user's last event published {time.monotonic() - restored_at:.1f}s after the restore "
                  f"(waited {recovered_s:.1f}s after the last send)")
            worker.check_alive()
            assert worker.pid == pid  # the same process: nothing restarted it
            assert http_status(base + "/health") == 200
            deadline = time.monotonic() + 60
            while (code := http_status(base + "/ready")) != 200:
                assert time.monotonic() < deadline, f"/ready {code} a minute after the lists\n{worker.log_tail(30)}"
                time.sleep(0.5)

            # Every event, the outage's included, is in its user's state, counted once.
            total = BEFORE + DURING + AFTER
            deadline = time.monotonic() + 90
            while True:
                states = latest_states(s, read_topic)
                if set(states) >= set(users) and all(states[u].n_events >= total for u in users):
                    break
                if time.monotonic() > deadline:
                    have = {u: states[u].n_events if u in states else None for u in users}
                    raise AssertionError(f"events missing from users' states (want {total}): {have}\n"
                                         + worker.log_tail(30))
                time.sleep(0.5)
            for u in users:
                assert states[u].n_events == total, u
                assert states[u].last_ts == pytest.approx(last_ts[u])
            worker.check_alive()
            assert worker.pid == pid
        finally:
            producer.close(timeout=10)
            client.close()
            worker.stop()
