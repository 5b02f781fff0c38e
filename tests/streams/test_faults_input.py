"""Bad input and abuse against a real worker, broker and Redis.

Garbage of every kind on every input topic ends in the DLQ with a reason while the
good events around it are processed; a click flood cannot drag a user's state;
redelivered events do not count twice; ``streamrec forget`` erases a user everywhere;
the web port serves no state and changes none.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from models.interest import UserState
from streams.cli import main as cli
from streams.demo.catalog import items_by_category
from streams.state_version import header_version
from streams.topics import changelog_topic

pytestmark = pytest.mark.integration


def _click(user: str, item: str, ts: float, n: int, kind: str = "click") -> dict[str, Any]:
    return {"event_id": f"{user}-{n}", "user_id": user, "item_id": item, "kind": kind, "ts": ts}


def _garbage(rng: np.random.Generator, now: float, item: str) -> list[tuple[str, bytes | None, bytes | None]]:
    """(kind, key, value) of bad messages: random bytes and mutations of valid events."""
    good = json.dumps(_click("g", item, now, 0)).encode()
    search = json.dumps({"event_id": "q", "user_id": "g", "query": "lamp", "ts": now}).encode()
    out: list[tuple[str, bytes | None, bytes | None]] = []
    for n in range(400):
        kind = ("clicks", "searches", "catalog")[n % 3]
        base = search if kind == "searches" else good
        form = n % 8
        if form == 0:
            value = rng.bytes(int(rng.integers(1, 200)))
        elif form == 1:
            value = base[: int(rng.integers(0, len(base)))]  # truncated
        elif form == 2:
            b = bytearray(base)
            for _ in range(3):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
            value = bytes(b)
        elif form == 3:
            d = json.loads(base)
            d[str(rng.choice(list(d)))] = [None, {"a": 1}, "", -1, 1e308, True][n % 6]
            value = json.dumps(d).encode()
        elif form == 4:
            d = json.loads(base)
            d["ts"] = [now * 1000, now + 10 * 86400, 1.0, -now][n % 4]
            value = json.dumps(d).encode()
        elif form == 5:
            value = b'{"pad": "' + b"x" * 70_000 + b'"}'  # oversized
        elif form == 6:
            value = b"\xc3\x28" + base  # invalid UTF-8
        else:
            value = b"[" * 50_000  # deep nesting
        if kind == "catalog" and form == 3 and value is not None:
            value = value.replace(b'"kind"', b'"price"')
        out.append((kind, b"g", value))
    out.append(("clicks", b"g", json.dumps(_click("g", "no-such-item", now, 1)).encode()))  # unknown item
    out.append(("clicks", b"g", json.dumps(_click("g", item, now, 2, kind="teleport")).encode()))  # unknown kind
    out.append(("clicks", None, good))  # no key
    out.append(("clicks", b"g", None))  # a null value that is not a forget request
    return out


def _dlq_records(live: Any, read_topic: Any, want: int, timeout: float = 120.0) -> list[Any]:
    s = live.settings
    deadline = time.monotonic() + timeout
    got: list[Any] = []
    while time.monotonic() < deadline:
        got = read_topic(s, s.topic_dlq, s.dlq_partitions)
        if len(got) >= want:
            break
        time.sleep(1)
    return got


def _states(live: Any, read_topic: Any) -> dict[str, UserState | None]:
    s = live.settings
    latest: dict[str, UserState | None] = {}
    for r in read_topic(s, changelog_topic(s, "users"), s.partitions):
        latest[json.loads(r.key)] = UserState.from_bytes(r.value) if r.value is not None else None  # JSON str keys
    return latest


def test_fuzz_over_the_broker_every_bad_message_reaches_the_dlq_and_the_worker_stays_up(
    live_pipeline: Any, read_topic: Any
) -> None:
    live = live_pipeline
    audio = items_by_category(live.catalog)["audio"]
    now = time.time()
    rng = np.random.default_rng(11)
    bad = _garbage(rng, now, audio[0])
    before = len(read_topic(live.settings, live.settings.topic_dlq, live.settings.dlq_partitions))
    goods = []
    for n, (kind, key, value) in enumerate(bad):  # good events interleaved with the garbage
        topic = {"clicks": live.settings.topic_clicks, "searches": live.settings.topic_searches,
                 "catalog": live.settings.topic_catalog}[kind]
        live.producer.send(topic, key=key, value=value)
        if n % 40 == 0:
            ev = _click(f"fuzz-good-{n}", audio[n % len(audio)], now + n * 0.001, n)
            live.send("clicks", ev)
            goods.append(ev)
    live.flush()
    for ev in goods:
        live.wait_for_rec(ev["user_id"], ev["ts"], timeout=120)

    dlq = _dlq_records(live, read_topic, before + len(bad))[before:]
    assert len(dlq) == len(bad)  # every bad message, once; nothing dropped
    assert sorted((r.value or b"") for r in dlq) == sorted((v or b"") for _, _, v in bad)  # unchanged bytes
    reasons = Counter(dict(r.headers)["streamrec.reason"].decode() for r in dlq)
    assert {"malformed_json", "invalid_utf8", "oversized", "bad_timestamp", "wrong_type", "unknown_item",
            "invalid_value", "key_mismatch", "empty"} <= set(reasons), reasons
    metrics = live.worker.metrics()
    total = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                if line.startswith("streamrec_dlq_total{"))
    assert total >= len(bad)
    live.worker.check_alive()
    assert live.worker.status()["items"] == len(live.catalog)  # catalog garbage changed no item


def test_a_click_flood_cannot_drag_a_users_state(live_pipeline: Any, read_topic: Any) -> None:
    live = live_pipeline
    by_cat = items_by_category(live.catalog)
    now = time.time()
    for n, item in enumerate(by_cat["books"][:8]):  # an honest history
        live.send("clicks", _click("flooded", item, now - 600 + n * 30, n, "add_to_cart"))
    live.flush()
    live.wait_for_rec("flooded", now - 600 + 7 * 30)
    burst = live.settings.user_rate_burst
    flood = [_click("flooded", by_cat["toys"][n % 3], now + n * 1e-4, 1000 + n, "purchase") for n in range(3000)]
    for ev in flood:
        live.send("clicks", ev)
    live.send("clicks", _click("flood-marker", by_cat["audio"][0], now + 1, 0))
    live.flush()
    live.wait_for_rec("flood-marker", now + 1, timeout=120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = _states(live, read_topic).get("flooded")
        if state is not None and state.rl_ts >= flood[-1]["ts"] - 1e-6:
            break
        time.sleep(1)
    assert state is not None
    taken = state.n_events - 8
    assert 0 < taken <= burst + 1, taken  # 0.3 s of event time: the burst and not much more
    metrics = live.worker.metrics()
    limited = [line for line in metrics.splitlines() if line.startswith('streamrec_guarded_events_total{reason="rate_limited"}')]
    assert limited and float(limited[0].rsplit(" ", 1)[1]) >= 3000 - taken


def test_redelivered_events_count_once(live_pipeline: Any, read_topic: Any) -> None:
    live = live_pipeline
    audio = items_by_category(live.catalog)["audio"]
    now = time.time()
    events = [_click("twice", audio[n], now + n * 0.01, n) for n in range(5)]
    for ev in events + events + events[:2]:  # a producer that retried
        live.send("clicks", ev)
    live.flush()
    live.wait_for_rec("twice", events[-1]["ts"])
    deadline = time.monotonic() + 30
    while (st := _states(live, read_topic).get("twice")) is None or len(st.seen) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    time.sleep(2)
    st = _states(live, read_topic)["twice"]
    assert st is not None and st.n_events == 5 and len(st.seen) == 5
    assert 'streamrec_guarded_events_total{reason="duplicate"}' in live.worker.metrics()


def test_forget_erases_the_user_everywhere_and_keeps_no_search_text(live_pipeline: Any, read_topic: Any) -> None:
    live = live_pipeline
    s = live.settings
    kitchen = items_by_category(live.catalog)["kitchen"]
    now = time.time()
    for n, item in enumerate(kitchen[:4]):
        live.send("clicks", _click("leaving", item, now + n * 0.01, n, "purchase"))
    live.send("searches", {"event_id": "leaving-q", "user_id": "leaving", "query": "cast iron skillet secret",
                           "ts": now + 0.1})
    live.flush()
    live.wait_for_rec("leaving", now + 0.1)
    state = _states(live, read_topic)["leaving"]
    assert state is not None and state.bought
    raw = [r.value for r in read_topic(s, changelog_topic(s, "users"), s.partitions) if json.loads(r.key) == "leaving"]
    assert raw and not any(b"skillet" in v for v in raw if v)  # the query lives on as a vector only

    result = CliRunner().invoke(cli, ["forget", "leaving"], env=s.to_env())
    assert result.exit_code == 0, result.output
    assert "forget request" in result.output
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        latest = _states(live, read_topic)
        if "leaving" in latest and latest["leaving"] is None:
            break
        time.sleep(0.5)
    assert latest["leaving"] is None  # a tombstone in the changelog: compaction removes the rest
    # The tombstone carries the request's clicks offset: no late record of the state before it applies.
    (request,) = [r for r in read_topic(s, s.topic_clicks, s.partitions) if r.key == b"leaving" and r.value is None]
    (tombstone,) = [r for r in read_topic(s, changelog_topic(s, "users"), s.partitions)
                    if json.loads(r.key) == "leaving" and r.value is None]
    forgotten_at = header_version(tombstone.headers)
    assert forgotten_at is not None and forgotten_at.offsets[0] == request.offset
    assert tombstone.partition == request.partition
    assert live.redis.get(s.rec_key("leaving")) is None
    recs = [r for r in read_topic(s, s.topic_recommendations, s.partitions) if r.key == b"leaving"]
    assert recs[-1].value is None  # a rebuild of Redis will not bring the list back
    assert 'streamrec_users_forgotten_total{reason="forget"} 1.0' in live.worker.metrics()

    later = time.time()
    live.send("clicks", _click("leaving", kitchen[5], later, 99))  # coming back starts from nothing
    live.flush()
    live.wait_for_rec("leaving", later)
    deadline = time.monotonic() + 30
    while (st := _states(live, read_topic).get("leaving")) is None:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert st.n_events == 1 and st.bought == [] and st.query.total is None

    bad = CliRunner().invoke(cli, ["forget", "x" * 200], env=s.to_env())
    assert bad.exit_code != 0 and "1 to 128 characters" in bad.output


def test_web_port_serves_no_user_state_and_changes_nothing(live_pipeline: Any) -> None:
    base = live_pipeline.worker.base_url
    for path in ("/table/users/", "/table/users/twice/", "/router/", "/router/users/twice/"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + path, timeout=5)
        assert err.value.code == 404, path
    for path in ("/metrics", "/status", "/health", "/ready", "/ui", "/"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            req = urllib.request.Request(base + path, data=b"{}", method=method)
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=5)
            assert err.value.code in (404, 405), (method, path, err.value.code)
