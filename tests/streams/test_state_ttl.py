"""The state TTL sweep through a running worker: expired users are erased, recent ones kept.

A worker runs with a short ``user_state_ttl_s`` and a one-second sweep. One user's newest
event is old enough to expire a few seconds after it is processed, another's is recent.
The sweep must erase the first like a forget request (a tombstone in the users changelog,
``rec:{user}`` deleted, a tombstone on the recommendations topic, counted as
``streamrec_users_forgotten_total{reason="ttl"}``) and leave the second untouched.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from models.interest import UserState
from streams.demo.catalog import demo_catalog, items_by_category
from streams.producer import create_producer
from streams.settings import Settings
from streams.topics import changelog_topic, ensure_topics
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

TTL_S = 40.0
STALE_AGE_S = 30.0  # the stale user's events are this old when sent: they expire TTL_S - STALE_AGE_S later


def changelog(settings: Settings, read_topic: Any) -> list[tuple[str, UserState | None]]:
    """Every users-changelog record in partition order: (user, state or None for a tombstone)."""
    return [
        (json.loads(r.key), UserState.from_bytes(r.value) if r.value is not None else None)
        for r in read_topic(settings, changelog_topic(settings, "users"), settings.partitions)
    ]


def forgotten(metrics: str, reason: str) -> float:
    prefix = f'streamrec_users_forgotten_total{{reason="{reason}"}} '
    return sum(float(line[len(prefix):]) for line in metrics.splitlines() if line.startswith(prefix))


def test_the_sweep_erases_expired_states_everywhere_and_keeps_recent_ones(
    settings: Settings, tmp_path: Path, read_topic: Any, wait_for_rec: Any
) -> None:
    s = settings.model_copy(update={"user_state_ttl_s": TTL_S, "state_sweep_interval_s": 1.0})
    ensure_topics(s)
    catalog = demo_catalog(seed=11, images=False)
    kitchen = items_by_category(catalog)["kitchen"]
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    producer = create_producer(s)
    client = redis.Redis.from_url(s.redis_url.get_secret_value(), decode_responses=True)  # type: ignore[union-attr]

    def click(user: str, n: int, ts: float) -> None:
        ev = {"event_id": f"{user}-{n}", "user_id": user, "item_id": kitchen[n], "kind": "click", "ts": ts}
        producer.send(s.topic_clicks, key=user.encode(), value=json.dumps(ev).encode())

    try:
        worker.wait_ready(timeout=300)
        for it in catalog:
            producer.send(s.topic_catalog, key=it["item_id"].encode(), value=json.dumps(it).encode())
        producer.flush()
        worker.wait_ready(min_items=len(catalog), timeout=300)

        now = time.time()
        for n in range(3):
            click("stale", n, now - STALE_AGE_S + n * 0.01)
            click("recent", n, now + n * 0.01)
        producer.flush()
        sent_at = time.monotonic()
        # Both users get a list and a state first: the stale one's expires TTL_S - STALE_AGE_S after its last event.
        wait_for_rec(client, s, worker, "stale", now - STALE_AGE_S + 0.02, timeout=TTL_S - STALE_AGE_S - 1)
        wait_for_rec(client, s, worker, "recent", now + 0.02, timeout=30)
        assert forgotten(worker.metrics(), "ttl") == 0

        deadline = time.monotonic() + 60
        while client.exists(s.rec_key("stale")) or not any(u == "stale" and st is None for u, st in changelog(s, read_topic)):
            worker.check_alive()
            assert time.monotonic() < deadline, f"the expired user was not erased\n{worker.log_tail(30)}"
            time.sleep(0.5)
        erased_after = time.monotonic() - sent_at
        print(f"expired user erased {erased_after:.1f}s after its events were sent (expiry due after "
              f"{TTL_S - STALE_AGE_S:.0f}s, sweep every {s.state_sweep_interval_s:.0f}s)")
        assert erased_after >= TTL_S - STALE_AGE_S - 1  # not before it expired

        records = changelog(s, read_topic)
        stale = [st for u, st in records if u == "stale"]
        # The state was in the changelog with its three events, then a tombstone: compaction drops the state.
        assert stale[-1] is None and any(st is not None and st.n_events == 3 for st in stale[:-1])
        recs = [r for r in read_topic(s, s.topic_recommendations, s.partitions) if r.key == b"stale"]
        assert recs and recs[-1].value is None  # a Redis rebuild will not bring the list back
        assert forgotten(worker.metrics(), "ttl") == 1

        # The recent user is kept through several more sweeps (and well inside their TTL).
        time.sleep(3 * s.state_sweep_interval_s)
        assert time.time() - now < TTL_S - 5
        latest = dict(changelog(s, read_topic))
        assert latest["recent"] is not None and latest["recent"].n_events == 3
        assert client.exists(s.rec_key("recent"))
        assert forgotten(worker.metrics(), "ttl") == 1
        status = worker.status()
        assert status is not None and status["users_in_memory"] == 1
        worker.check_alive()
    finally:
        producer.close(timeout=10)
        client.close()
        worker.stop()
