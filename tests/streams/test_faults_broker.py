"""The broker becomes unreachable for longer than the consumer session timeout, then returns.

The embedded broker keeps its log in memory only, so the outage is a cut network, not a
restarted broker: a dedicated Tansu advertises the port of a loopback proxy
(:mod:`tests.streams.tcp_proxy`) and every client, the worker's and the test's, reaches
it through that proxy. Cutting the proxy closes every connection and refuses new ones.

Two cases. A lone worker loses the broker: every connection is cut. One of two workers
loses the broker (only its own connections are cut, found by PID): the broker drops it
from the group after the session timeout and the other worker takes its partitions; when
the link returns, the cut worker must rejoin the group and take a share again.

In both the same worker process (never restarted by hand) must resume: publish a list
for every user's last event, answer ``/health`` and ``/ready`` with 200 again, and have
every event, including those produced during the outage, in its user's state.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from agents.refresh import recommendation_from_json
from models.interest import UserState
from streams.demo.catalog import demo_catalog, items_by_category
from streams.producer import create_producer
from streams.runtime import EmbeddedBroker, find_free_port
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


def owned(worker: WorkerProcess, topic: str) -> set[int]:
    st = worker.status() or {}
    return set(st.get("assignment", {}).get(topic, []))


@dataclass
class Outage:
    """A dedicated broker behind a proxy, the settings that reach it through the proxy, a producer and Redis."""

    settings: Settings
    proxy: TcpProxy
    catalog: list[dict[str, Any]]
    producer: Any
    redis: Any
    users: list[str] = field(default_factory=lambda: [f"away-{i}" for i in range(USERS)])
    sent: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # user -> event ids in order
    last_ts: dict[str, float] = field(default_factory=dict)

    def send_round(self) -> None:
        """One view per user, of an item of the user's taste."""
        by_cat = items_by_category(self.catalog)
        categories = sorted(by_cat)
        for i, user in enumerate(self.users):
            items = by_cat[categories[i % len(categories)]]
            n = len(self.sent[user])
            ts = time.time()
            ev = {"event_id": f"{user}-{n}", "user_id": user, "item_id": items[n % len(items)], "kind": "view", "ts": ts}
            self.producer.send(self.settings.topic_clicks, key=user.encode(), value=json.dumps(ev).encode())
            self.sent[user].append(ev["event_id"])
            self.last_ts[user] = ts

    def publish_catalog(self, workers: list[WorkerProcess]) -> None:
        for w in workers:
            w.wait_ready(timeout=300)
        for it in self.catalog:
            self.producer.send(self.settings.topic_catalog, key=it["item_id"].encode(), value=json.dumps(it).encode())
        self.producer.flush()
        for w in workers:
            w.wait_ready(min_items=len(self.catalog), timeout=300)

    def wait_all_reflected(self, workers: list[WorkerProcess], timeout: float) -> None:
        """Every user's list in Redis was made for their last event."""
        deadline = time.monotonic() + timeout
        pending = set(self.users)
        while pending and time.monotonic() < deadline:
            for w in workers:
                w.check_alive()
            for u in list(pending):
                raw = self.redis.get(self.settings.rec_key(u))
                if raw and recommendation_from_json(raw)["trigger_event_id"] == self.sent[u][-1]:
                    pending.discard(u)
            time.sleep(0.2)
        assert not pending, f"no list for the last event of {sorted(pending)}\n" + "\n".join(w.log_tail(30) for w in workers)

    def assert_every_event_in_states(self, read_topic: Any, workers: list[WorkerProcess]) -> None:
        """Every event sent, the outage's included, is in its user's state, counted once."""
        total = {u: len(ids) for u, ids in self.sent.items()}
        deadline = time.monotonic() + 90
        while True:
            states = latest_states(self.settings, read_topic)
            if set(states) >= set(self.users) and all(states[u].n_events >= total[u] for u in self.users):
                break
            if time.monotonic() > deadline:
                short = {u for u in self.users if u not in states or states[u].n_events < total[u]}
                history = defaultdict(list)  # (partition, offset, events in the state) of each changelog record
                for r in read_topic(self.settings, changelog_topic(self.settings, "users"), self.settings.partitions):
                    if (u := json.loads(r.key)) in short:
                        history[u].append((r.partition, r.offset, UserState.from_bytes(r.value).n_events if r.value else None))
                raise AssertionError(f"events missing from users' states (want {total}): {dict(history)}\n"
                                     + "\n".join(w.log_tail(30) for w in workers))
            time.sleep(0.5)
        for u in self.users:
            assert states[u].n_events == total[u], u
            assert states[u].last_ts == pytest.approx(self.last_ts[u])


@contextlib.contextmanager
def broker_behind_proxy(settings: Settings) -> Iterator[Outage]:
    """A dedicated embedded broker that advertises a proxy's port: every client goes through the proxy."""
    with TcpProxy() as proxy, EmbeddedBroker(advertised_port=proxy.port, startup_timeout=30) as broker:
        proxy.target_port = broker.port
        s = settings.model_copy(update={"kafka_bootstrap_servers": proxy.address})
        ensure_topics(s)
        producer = create_producer(s)
        client = redis.Redis.from_url(s.redis_url.get_secret_value(), decode_responses=True)  # type: ignore[union-attr]
        try:
            yield Outage(s, proxy, demo_catalog(seed=5, images=False), producer, client)
        finally:
            producer.close(timeout=10)
            client.close()


def ready_again(worker: WorkerProcess, timeout: float = 60.0) -> None:
    """/health answers 200 and /ready turns 200 within ``timeout``."""
    assert http_status(worker.base_url + "/health") == 200
    deadline = time.monotonic() + timeout
    while (code := http_status(worker.base_url + "/ready")) != 200:
        assert time.monotonic() < deadline, f"/ready {code} {timeout:.0f}s after the lists\n{worker.log_tail(30)}"
        time.sleep(0.5)


def test_a_lone_worker_resumes_on_its_own_after_the_broker_was_unreachable(
    settings: Settings, tmp_path: Path, read_topic: Any
) -> None:
    assert OUTAGE_S > settings.kafka_session_timeout_s
    with broker_behind_proxy(settings) as o, WorkerProcess(o.settings, tmp_path / "worker.log") as worker:
        o.publish_catalog([worker])
        pid = worker.pid
        for _ in range(BEFORE):
            o.send_round()
        o.producer.flush()
        o.wait_all_reflected([worker], 120)
        assert http_status(worker.base_url + "/ready") == 200

        # The outage: every connection closed, every new one refused, for longer than the session timeout.
        closed = o.proxy.cut()
        assert closed > 0
        cut_at = time.monotonic()
        health_during: set[int | None] = set()
        ready_during: set[int | None] = set()
        for _ in range(DURING):  # produced while the broker is unreachable: the producer holds and retries them
            o.send_round()
        while time.monotonic() - cut_at < OUTAGE_S:
            worker.check_alive()
            health_during.add(http_status(worker.base_url + "/health"))
            ready_during.add(http_status(worker.base_url + "/ready"))
            time.sleep(0.5)
        o.proxy.restore()
        restored_at = time.monotonic()
        o.producer.flush(timeout=120)
        for _ in range(AFTER):
            o.send_round()
        o.producer.flush(timeout=60)

        o.wait_all_reflected([worker], 180)
        print(f"outage {OUTAGE_S:.0f}s ({closed} connections cut, {o.proxy.refused} refused while cut); "
              f"/health during it {sorted(map(str, health_during))}, /ready {sorted(map(str, ready_during))}; "
              f"every user's last event published {time.monotonic() - restored_at:.1f}s after the restore")
        assert worker.pid == pid  # the same process: nothing restarted it
        ready_again(worker)
        o.assert_every_event_in_states(read_topic, [worker])
        worker.check_alive()
        assert worker.pid == pid


def test_a_worker_cut_off_from_the_broker_rejoins_its_group_and_takes_partitions_again(
    settings: Settings, tmp_path: Path, read_topic: Any
) -> None:
    s0 = settings.model_copy(update={"skipped_input_timeout_s": 3.0})
    with broker_behind_proxy(s0) as o:
        s = o.settings
        workers = [
            WorkerProcess(s.model_copy(update={"web_port": find_free_port()}), tmp_path / f"worker-{i}.log").start()
            for i in range(2)
        ]
        try:
            o.publish_catalog(workers)
            clicks = s.topic_clicks
            deadline = time.monotonic() + 120
            while not (all(owned(w, clicks) for w in workers)
                       and owned(workers[0], clicks) | owned(workers[1], clicks) == set(range(s.partitions))):
                assert time.monotonic() < deadline, [w.status() for w in workers]
                time.sleep(0.5)
            away, other = workers
            pid = away.pid
            for _ in range(BEFORE):
                o.send_round()
            o.producer.flush()
            o.wait_all_reflected(workers, 120)

            # Only the first worker loses the broker; the test's producer and the other worker keep their links.
            assert away.pid is not None
            closed = o.proxy.cut(pid=away.pid)
            assert closed > 0
            cut_at = time.monotonic()
            for _ in range(DURING):
                o.send_round()
            o.producer.flush(timeout=60)
            # The broker drops the silent member after the session timeout; the other worker takes every partition.
            while owned(other, clicks) != set(range(s.partitions)):
                other.check_alive()
                assert time.monotonic() - cut_at < 90, other.status()
                time.sleep(0.5)
            taken_over_s = time.monotonic() - cut_at
            o.wait_all_reflected([other], 120)  # the outage's events, processed by the other worker
            while time.monotonic() - cut_at < OUTAGE_S:
                time.sleep(0.5)
            away.check_alive()
            o.proxy.restore()
            restored_at = time.monotonic()

            # The cut worker rejoins and takes a share of the partitions again.
            deadline = time.monotonic() + 120
            while not (owned(away, clicks) and owned(away, clicks) | owned(other, clicks) == set(range(s.partitions))
                       and not owned(away, clicks) & owned(other, clicks)):
                away.check_alive()
                assert time.monotonic() < deadline, f"{away.status()}\n{away.log_tail(30)}"
                time.sleep(0.5)
            rejoined_s = time.monotonic() - restored_at
            for _ in range(AFTER):
                o.send_round()
            o.producer.flush(timeout=60)
            o.wait_all_reflected(workers, 180)
            fenced = sum(float(line.rsplit(" ", 1)[1]) for line in away.metrics().splitlines()
                         if line.startswith("streamrec_fenced_events_total "))
            print(f"other worker owned every partition {taken_over_s:.1f}s after the cut; the cut worker "
                  f"owned {sorted(owned(away, clicks))} again {rejoined_s:.1f}s after the restore, and left "
                  f"{fenced:.0f} events unprocessed for want of a membership confirmation")
            assert away.pid == pid
            for w in workers:
                ready_again(w)
            o.assert_every_event_in_states(read_topic, workers)
            away.check_alive()
            assert away.pid == pid
        finally:
            for w in workers:
                w.stop()
