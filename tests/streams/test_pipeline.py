"""End to end on the real embedded broker and Redis: events in, fresh recommendations out."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from agents.refresh import recommendation_from_json
from streams.demo.catalog import items_by_category

pytestmark = pytest.mark.integration


def _click(user: str, item: str, ts: float, kind: str = "click", n: int = 0) -> dict[str, Any]:
    return {"event_id": f"{user}-{n}-{ts}", "user_id": user, "item_id": item, "kind": kind, "ts": ts, "session_id": f"{user}-s"}


def _category(live: Any, item_id: str) -> str:
    return next(it["category"] for it in live.catalog if it["item_id"] == item_id)


def test_users_with_distinct_tastes_get_matching_lists_in_topic_and_redis(live_pipeline: Any, read_topic: Any) -> None:
    live = live_pipeline
    by_cat = items_by_category(live.catalog)
    now = time.time()
    users = {"fan-audio": "audio", "fan-kitchen": "kitchen", "fan-books": "books"}
    last_ts: dict[str, float] = {}
    for u, cat in users.items():
        for i, item in enumerate(by_cat[cat][:8]):
            ts = now + i * 0.01
            live.send("clicks", _click(u, item, ts, kind="view" if i % 2 else "click", n=i))
            last_ts[u] = ts
    live.send("searches", {"event_id": "q-1", "user_id": "searcher", "query": "wireless earbuds", "ts": now})
    live.flush()

    recs = {u: live.wait_for_rec(u, last_ts[u]) for u in users}
    for u, cat in users.items():
        items = [i["item_id"] for i in recs[u]["items"]]
        assert len(items) == live.settings.top_k
        in_cat = sum(_category(live, i) == cat for i in items)
        assert in_cat >= 7, f"{u} got {in_cat}/10 from {cat}: {items}"
        assert recs[u]["trigger_ts"] == pytest.approx(last_ts[u])
        assert recs[u]["model_version"] and recs[u]["policy"]

    search = live.wait_for_rec("searcher", now)
    top = [_category(live, i["item_id"]) for i in search["items"]]
    assert top[:3] == ["audio"] * 3 and top.count("audio") >= 6, top
    assert search["items"][0]["source"] == "search"

    # The topic carries the same latest list as Redis, one message per refresh.
    published = [r for r in read_topic(live.settings, live.settings.topic_recommendations, live.settings.partitions)]
    latest: dict[str, dict[str, Any]] = {}
    for r in published:
        rec = recommendation_from_json(r.value)
        assert r.key.decode() == rec["user_id"]
        latest[rec["user_id"]] = rec
    for u in [*users, "searcher"]:
        redis_rec = recommendation_from_json(live.redis.get(live.settings.rec_key(u)))
        assert latest[u]["request_id"] == redis_rec["request_id"]
    assert live.redis.ttl(live.settings.rec_key("fan-audio")) > 0


def test_bought_items_are_not_recommended(live_pipeline: Any) -> None:
    live = live_pipeline
    kitchen = items_by_category(live.catalog)["kitchen"]
    now = time.time()
    events = [_click("buyer", item, now + i * 0.01, n=i) for i, item in enumerate(kitchen[:6])]
    events.append(_click("buyer", kitchen[0], now + 1, kind="purchase", n=99))
    events += [_click("buyer", item, now + 2 + i * 0.01, kind="view", n=100 + i) for i, item in enumerate(kitchen[6:12])]
    for ev in events:
        live.send("clicks", ev)
    live.flush()
    rec = live.wait_for_rec("buyer", events[-1]["ts"])
    assert kitchen[0] not in [i["item_id"] for i in rec["items"]]


def test_bad_events_go_to_the_dlq_with_reasons_and_the_worker_continues(live_pipeline: Any, read_topic: Any) -> None:
    live = live_pipeline
    s = live.settings
    audio = items_by_category(live.catalog)["audio"]
    now = time.time()
    bad: list[tuple[str, bytes]] = [
        ("clicks", b"{not json"),
        ("clicks", b'{"event_id":"e","user_id":"bad-1","item_id":"x","kind":"view"}'),  # no ts
        ("clicks", json.dumps(_click("bad-2", audio[0], now, kind="like")).encode()),
        ("clicks", json.dumps(_click("bad-3", "no-such-item", now)).encode()),
        ("clicks", json.dumps(_click("bad-4", audio[0], now * 1000)).encode()),  # milliseconds
        ("searches", json.dumps({"event_id": "q", "user_id": "bad-5", "query": "x" * 600, "ts": now}).encode()),
        ("clicks", b"\xff\xfe\x00garbage"),
        ("clicks", json.dumps(_click("someone-else", audio[0], now)).encode()),  # key is not the user_id
    ]
    for kind, raw in bad:
        key = "bad-3" if b"no-such-item" in raw else "bad-user"  # right key, so the item check is reached
        live.send(kind, raw, key=key)
    live.flush()
    # A good event after the garbage is still processed.
    live.send("clicks", _click("after-bad", audio[1], now + 5))
    live.flush()
    live.wait_for_rec("after-bad", now + 5)

    deadline = time.monotonic() + 30
    dlq: list[Any] = []
    while time.monotonic() < deadline and len(dlq) < len(bad):
        dlq = [r for r in read_topic(s, s.topic_dlq, s.dlq_partitions) if r.key in (b"bad-user", b"bad-3")]
    assert sorted(r.value for r in dlq) == sorted(raw for _, raw in bad)  # original bytes, nothing lost
    headers = [dict(r.headers) for r in dlq]
    reasons = {h["streamrec.reason"].decode() for h in headers}
    assert {"malformed_json", "missing_field", "invalid_value", "unknown_item", "bad_timestamp", "too_long",
            "invalid_utf8", "key_mismatch"} <= reasons
    for h in headers:
        assert h["streamrec.topic"].decode() in (s.topic_clicks, s.topic_searches)
        assert int(h["streamrec.offset"]) >= 0 and h["streamrec.error"]
    metrics = live.worker.metrics()
    assert 'streamrec_dlq_total{reason="unknown_item"' in metrics
    assert live.worker.status()["items"] == len(live.catalog)


def test_a_failed_recommendation_delivery_is_counted_not_silent() -> None:
    import asyncio

    from streams.metrics import Metrics
    from streams.pipeline import Pipeline

    metrics = Metrics()
    p = Pipeline(settings=None, app=None, topics=None, users=None, embedder=None, recommender=None,  # type: ignore[arg-type]
                 metrics=metrics, redis=None)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    try:
        ok, failed = loop.create_future(), loop.create_future()
        ok.set_result(None)
        failed.set_exception(RuntimeError("broker gone"))
        p.on_delivery(ok)
        p.on_delivery(failed)
    finally:
        loop.close()
    assert metrics.publish_errors._value.get() == 1.0


def test_sigusr1_logs_the_consumer_offsets_and_the_tasks(live_pipeline: Any) -> None:
    """What an operator gets from ``kill -USR1`` on a worker that does not progress."""
    report = live_pipeline.worker.diagnose(wait_s=2.0)
    assert "diagnostics (SIGUSR1)" in report
    assert f"{live_pipeline.settings.topic_clicks}[0] committed=" in report  # per input partition
    # Faust's flow sets and aiokafka's own fetch state for it: why a partition is not fetched.
    line = next(x for x in report.splitlines() if x.startswith(f"{live_pipeline.settings.topic_clicks}[0] "))
    assert "active=True" in line and "buffered=False" in line, line
    assert "fetch_state=(position=" in line and "paused=False" in line.split("fetch_state=")[1], line
    assert "-- consumer thread event loop --" in report and "task " in report
    assert 'streamrec_events_total{outcome="ok"' in report  # the counters come with it
    live_pipeline.worker.check_alive()  # and the worker goes on


def test_heartbeats_keep_confirming_the_workers_group_membership(live_pipeline: Any) -> None:
    """Each answered heartbeat counts (streams/membership.py): a long-running worker is never fenced."""
    import time

    session = live_pipeline.settings.kafka_session_timeout_s
    deadline = time.monotonic() + session + 5  # long enough for an assignment alone to go stale
    ages = []
    while time.monotonic() < deadline:
        ages.append(live_pipeline.worker.status()["membership_confirmed_s_ago"])
        time.sleep(1.0)
    assert all(a is not None and a < session / 2 for a in ages), ages
    assert 'streamrec_fenced_events_total 0.0' in live_pipeline.worker.metrics()
