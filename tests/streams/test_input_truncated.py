"""A partition whose log ends below the offset its worker committed: its new events are processed.

Deleting an input topic and creating it again under a running worker leaves that state (so
does a broker truncating a partition). The consumer resets to the log start, but Faust drops
every record below the offset it last read on the old log, so without the reset guard
(:mod:`streams.truncated_input`) the new topic's events were silently skipped: measured here,
none of 8 new users' 24 events processed within 60 s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient

from streams.partitioning import partition_of_key
from streams.producer import create_producer
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess
from tests.streams.test_faults_crash import CATALOG, committed_offsets, metric, publish_catalog, send, states

pytestmark = pytest.mark.integration

OLD_PER_PARTITION, OLD_PER_USER = 2, 20  # users per partition, events per user
NEW_PER_PARTITION, NEW_PER_USER = 2, 3


def users(prefix: str, per_partition: int, partitions: int) -> list[str]:
    """``per_partition`` user ids on each partition (the producers' murmur2 partitioner)."""
    picked: dict[int, list[str]] = {p: [] for p in range(partitions)}
    n = 0
    while any(len(v) < per_partition for v in picked.values()):
        uid = f"{prefix}{n}"
        part = picked[partition_of_key(uid.encode(), partitions)]
        if len(part) < per_partition:
            part.append(uid)
        n += 1
    return [u for p in sorted(picked) for u in picked[p]]


def clicks(user_ids: list[str], per_user: int, base_ts: float) -> list[dict[str, Any]]:
    items = [it["item_id"] for it in CATALOG]
    return [{"event_id": f"{uid}-{k}", "user_id": uid, "item_id": items[(u * 11 + k * 5) % len(items)],
             "kind": "click", "ts": base_ts + k + u * 0.01}
            for k in range(per_user) for u, uid in enumerate(user_ids)]


def wait_states(settings: Settings, read_topic: Any, worker: WorkerProcess, user_ids: list[str], per_user: int,
                timeout: float = 180) -> None:
    """Until every one of ``user_ids`` has a state holding ``per_user`` events."""
    deadline = time.monotonic() + timeout
    while True:
        worker.check_alive()
        st = {u: s for u, s in states(settings, read_topic).items() if u in user_ids}
        if len(st) == len(user_ids) and all(s.n_events >= per_user for s in st.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not every event processed: {sorted((u, s.n_events) for u, s in st.items())} "
                                 f"of {len(user_ids)} users\n{worker.log_tail()}")
        time.sleep(1)


def recreate(settings: Settings, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        admin.delete_topics([topic])
        deadline = time.monotonic() + 30
        while topic in admin.list_topics():
            assert time.monotonic() < deadline, f"{topic} was not deleted"
            time.sleep(0.2)
    finally:
        admin.close()
    ensure_topics(settings)  # creates it again, with its partition count


def test_a_topic_created_again_under_a_running_worker_has_its_new_events_processed(
    settings: Settings, tmp_path: Path, read_topic: Any
) -> None:
    ensure_topics(settings)
    producer = create_producer(settings)
    base = time.time() - 3000
    old_users = users("old-", OLD_PER_PARTITION, settings.partitions)
    old = clicks(old_users, OLD_PER_USER, base)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        worker.wait_ready(timeout=300)
        publish_catalog(producer, settings)
        worker.wait_ready(min_items=len(CATALOG), timeout=300)
        send(producer, settings, old)
        wait_states(settings, read_topic, worker, old_users, OLD_PER_USER)
        deadline = time.monotonic() + 60
        while sum(committed_offsets(settings).values()) < len(old):
            assert time.monotonic() < deadline, f"offsets not committed: {committed_offsets(settings)}"
            time.sleep(0.5)
        before = committed_offsets(settings)

        recreate(settings, settings.topic_clicks)
        new_users = users("new-", NEW_PER_PARTITION, settings.partitions)
        new = clicks(new_users, NEW_PER_USER, base + 1000)
        send(producer, settings, new)
        ends = dict.fromkeys(range(settings.partitions), 0)
        for r in read_topic(settings, settings.topic_clicks, settings.partitions):
            ends[r.partition] = max(ends[r.partition], r.offset + 1)
        assert sum(ends.values()) == len(new)
        # The premise: every new partition ends below the offset the worker had read on the old one.
        assert all(ends[p] < before[p] for p in ends), (ends, before)

        wait_states(settings, read_topic, worker, new_users, NEW_PER_USER, timeout=120)
        deadline = time.monotonic() + 60
        while committed_offsets(settings) != ends:  # the commits follow the new log
            assert time.monotonic() < deadline, (committed_offsets(settings), ends)
            time.sleep(0.5)
        resets = metric(worker, "streamrec_input_log_resets_total")
    producer.close()
    assert resets == settings.partitions  # each partition once
