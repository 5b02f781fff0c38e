"""A running worker swaps in a newer ranker bundle without a restart and without losing an event."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agents.refresh import recommendation_from_json
from streams.demo.catalog import demo_catalog
from streams.producer import create_producer
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess
from tests.export.ranker_logs import tiny_bundle

pytestmark = pytest.mark.integration

TEXT_DIM = 384  # MiniLM


def test_new_bundle_is_hot_swapped_under_a_running_stream_with_no_event_lost(
    settings: Settings, tmp_path: Path, read_topic: Any
) -> None:
    ranker_dir = tmp_path / "rankers"
    s = settings.model_copy(update={"ranker_dir": ranker_dir, "ranker_poll_s": 0.5})
    ensure_topics(s)
    catalog = demo_catalog(seed=5, images=False)
    items = [it["item_id"] for it in catalog]
    producer = create_producer(s)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    sent: list[str] = []

    def wave(w: int, users: int = 15) -> None:
        now = time.time()
        for j in range(users):  # one event per user: every event must give exactly one refresh
            ev = {"event_id": f"e-{w}-{j}", "user_id": f"u-{w}-{j}", "item_id": items[(w * users + j) % len(items)],
                  "kind": "click", "ts": now + j * 0.001}
            producer.send(s.topic_clicks, key=ev["user_id"].encode(), value=json.dumps(ev).encode())
            sent.append(ev["event_id"])
        producer.flush()

    try:
        worker.wait_ready(timeout=300)
        for it in catalog:
            producer.send(s.topic_catalog, key=it["item_id"].encode(), value=json.dumps(it).encode())
        producer.flush()
        status = worker.wait_ready(min_items=len(catalog), timeout=300)
        assert status["model_version"] == "blend-2"  # no bundle yet: the transparent blend ranks

        for w in range(4):
            wave(w)
            time.sleep(0.3)
        bundle, _ = tiny_bundle(ranker_dir, dim=TEXT_DIM + s.image_embedding_dim, text_dim=TEXT_DIM,
                                space=status["embedding_space"])  # appears while events keep flowing
        for w in range(4, 16):
            wave(w)
            time.sleep(0.3)

        deadline = time.monotonic() + 90
        by_trigger: dict[str, list[dict[str, Any]]] = {}
        while time.monotonic() < deadline:
            worker.check_alive()
            by_trigger = {}
            for r in read_topic(s, s.topic_recommendations, s.partitions):
                rec = recommendation_from_json(r.value)
                by_trigger.setdefault(str(rec["trigger_event_id"]), []).append(rec)
            if set(sent) <= set(by_trigger):
                break
            time.sleep(0.5)
        missing = set(sent) - set(by_trigger)
        assert not missing, f"{len(missing)} events never got their recommendation: {sorted(missing)[:5]}\n" \
                            f"{worker.log_tail()}"
        assert all(len(recs) == 1 for recs in by_trigger.values())  # none scored twice either
        versions = [by_trigger[e][0]["model_version"] for e in sent]
        assert versions[0] == "blend-2" and versions[-1] == bundle.version
        switch = versions.index(bundle.version)
        assert set(versions[:switch]) == {"blend-2"} and set(versions[switch:]) == {bundle.version}, versions
        assert all(len(by_trigger[e][0]["items"]) == s.top_k for e in sent[switch:])

        st = worker.status()
        assert st is not None and st["model_version"] == bundle.version
        metrics = worker.metrics()
        assert 'streamrec_execution_provider{model="ranker",provider="CPUExecutionProvider"} 1.0' in metrics
        assert 'streamrec_ranker_loads_total{outcome="ok"} 1.0' in metrics
        assert "ranker swapped without a restart: blend-2 -> " + bundle.version in worker.log_tail(400)
    finally:
        worker.stop()
        producer.close()


def test_worker_starts_on_the_newest_bundle_and_refuses_one_of_another_item_space(
    settings: Settings, tmp_path: Path
) -> None:
    ranker_dir = tmp_path / "rankers"
    s = settings.model_copy(update={"ranker_dir": ranker_dir, "ranker_poll_s": 0.3})
    ensure_topics(s)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        status = worker.wait_ready(timeout=300)
        good, _ = tiny_bundle(ranker_dir, dim=TEXT_DIM + s.image_embedding_dim, text_dim=TEXT_DIM,
                              space=status["embedding_space"], created_at=1_767_000_000.0)
        deadline = time.monotonic() + 30
        while (worker.status() or {}).get("model_version") != good.version and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.status()["model_version"] == good.version  # type: ignore[index]
        bad, _ = tiny_bundle(ranker_dir, dim=8, text_dim=6, space="another-space", created_at=1_767_000_100.0)
        deadline = time.monotonic() + 30
        while 'streamrec_ranker_loads_total{outcome="error"} 1.0' not in worker.metrics() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert 'streamrec_ranker_loads_total{outcome="error"} 1.0' in worker.metrics()
        time.sleep(1.0)  # several more polls: refused once, not reloaded on every poll
        assert 'streamrec_ranker_loads_total{outcome="error"} 1.0' in worker.metrics()
        assert worker.status()["model_version"] == good.version  # type: ignore[index]
        assert f"ranker bundle {bad.path} not used" in worker.log_tail(400)
    finally:
        worker.stop()
