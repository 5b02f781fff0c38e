"""The worker's web endpoints on a real worker process: /health, /ready, /metrics, /status, /ui."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.lag import LagReader, input_topics
from streams.producer import create_producer
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int | None, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return None, b""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics text by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def lag_series(text: str, name: str) -> dict[tuple[str, int], float]:
    return {
        (dict(labels)["topic"], int(dict(labels)["partition"])): v
        for (n, labels), v in samples(text).items()
        if n == name
    }


def test_ready_is_503_until_state_is_loaded_then_metrics_show_lag_and_live_state(
    settings: Settings, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"lag_interval_s": 0.5})
    ensure_topics(s)
    worker = WorkerProcess(s, tmp_path / "worker.log").start()
    try:
        ready_seen: list[tuple[int, dict[str, Any]]] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            worker.check_alive()
            status, body = get(worker.base_url + "/ready")
            if status is not None and (not ready_seen or ready_seen[-1][0] != status):
                ready_seen.append((status, json.loads(body)))
            if status == 200:
                break
            time.sleep(0.05)
        # Not ready while the item state and tables load (the group join alone takes the rebalance timeout).
        assert ready_seen[0][0] == 503, ready_seen
        assert ready_seen[0][1]["ready"] is False and not all(ready_seen[0][1]["checks"].values())
        assert ready_seen[-1] == (200, {"ready": True, "checks": {
            "models_loaded": True, "item_state_loaded": True, "tables_recovered": True}})
        assert get(worker.base_url + "/health") == (200, b'{"status":"ok"}')

        # Events the worker cannot process yet (unknown items go to the DLQ) move the offsets.
        producer = create_producer(s)
        for i in range(40):
            ev = {"event_id": f"w-{i}", "user_id": f"u{i}", "item_id": "nope", "kind": "click", "ts": time.time()}
            producer.send(s.topic_clicks, key=f"u{i}".encode(), value=json.dumps(ev).encode())
        producer.flush()
        producer.close()

        with LagReader(s, s.app_id, input_topics(s)) as reader:
            deadline = time.monotonic() + 60
            while True:
                truth = reader.read()
                metrics = worker.metrics()
                committed = lag_series(metrics, "kafka_consumergroup_current_offset")
                clicks_done = sum(v for (t, _), v in committed.items() if t == s.topic_clicks)
                if clicks_done == 40 and sum(lag_series(metrics, "kafka_consumergroup_lag").values()) == 0:
                    break
                assert time.monotonic() < deadline, metrics
                time.sleep(0.3)
        ends = lag_series(metrics, "kafka_topic_partition_current_offset")
        assert {k: int(v) for k, v in ends.items()} == {(p.topic, p.partition): p.end for p in truth.partitions}
        assert {k: int(v) for k, v in committed.items()} == {
            (p.topic, p.partition): p.committed for p in truth.partitions if p.committed is not None
        }
        assert set(lag_series(metrics, "kafka_consumergroup_lag_seconds").values()) == {0.0}
        m = samples(metrics)
        assert m[("streamrec_events_total", (("outcome", "dlq"), ("topic", s.topic_clicks)))] == 40
        assert m[("streamrec_ready", ())] == 1
        assert m[("streamrec_assigned_partitions", (("topic", s.topic_clicks),))] == s.partitions
        assert m[("streamrec_assigned_partitions", (("topic", s.topic_catalog),))] == s.catalog_partitions
        info = [labels for (name, labels), v in m.items() if name == "streamrec_model_info" and v == 1]
        assert len(info) == 1 and dict(info[0])["model_version"]
        assert m[("streamrec_execution_provider", (("model", "text"), ("provider", "CPUExecutionProvider")))] == 1
        assert ("streamrec_redis_write_retries_total", ()) in m
        assert m[("streamrec_lag_read_errors_total", ())] == 0

        st = worker.status()
        assert st is not None and st["ready"] is True and st["lag"]["total"] == 0
        assert st["assigned_partitions"][s.topic_clicks] == s.partitions
        for path, ctype in (("/ui", "text/html"), ("/ui/status.js", "application/javascript"),
                            ("/ui/status.css", "text/css")):
            with urllib.request.urlopen(worker.base_url + path, timeout=3) as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith(ctype)
                body = resp.read().decode()
            assert "http://" not in body.replace("http://www.w3.org/2000/svg", "")  # no CDN, no external asset
            assert "https://" not in body
    finally:
        assert worker.stop() == 0
    # Once stopped, both probes fail (nothing answers).
    assert get(worker.base_url + "/health")[0] is None
