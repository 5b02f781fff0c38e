"""The feedback loop through a running worker: propensities and sources on every published item,
impressions joined with clicks updating the user's bandit state in the changelog-backed table,
new catalog items shown within a bounded number of refreshes, bought items never re-shown,
"frequently bought together" bundles in Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from models.candidates import SOURCES
from models.interest import UserState
from models.slate import FRESH
from models.user_bandit import UserBandit
from streams.runtime import EmbeddedRuntime
from streams.topics import changelog_topic
from streams.worker_process import WorkerProcess

#: Event-time seconds a click counts for its impression (short, so the test can close windows).
WINDOW_S = 5.0
#: New items stay fresh this long after they arrive (the test catalog ages out during the module).
FRESH_AGE_S = 20.0


class Loop:
    """A worker with a small catalog, and helpers to drive it."""

    def __init__(self, settings: Any, worker: WorkerProcess, redis: Any, producer: Any, catalog: list[dict[str, Any]],
                 published_at: float) -> None:
        self.settings, self.worker, self.redis, self.producer = settings, worker, redis, producer
        self.catalog, self.published_at = catalog, published_at
        self.clock = time.time()

    def ts(self) -> float:
        """A strictly increasing event time close to the wall clock."""
        self.clock = max(self.clock + 0.01, time.time())
        return self.clock

    def send(self, kind: str, event: dict[str, Any]) -> None:
        from streams.producer import KEY_FIELDS, topic_name

        key = str(event[KEY_FIELDS[kind]]).encode()
        self.producer.send(topic_name(self.settings, kind), key=key, value=json.dumps(event).encode())
        self.producer.flush(timeout=30)

    def click(self, user: str, item: str, kind: str = "click", request_id: str | None = None,
              ts: float | None = None) -> float:
        ts = ts if ts is not None else self.ts()
        event: dict[str, Any] = {"event_id": uuid.uuid4().hex, "user_id": user, "item_id": item, "kind": kind, "ts": ts}
        if request_id is not None:
            event["request_id"] = request_id
        self.send("clicks", event)
        return ts

    def feedback_metrics(self) -> dict[str, float]:
        """The worker's ``streamrec_feedback_events_total`` by outcome."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"{self.worker.base_url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return {
            s.labels["outcome"]: s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "streamrec_feedback_events_total"
        }

    def rec(self, user: str, min_ts: float) -> dict[str, Any]:
        from tests.conftest import wait_for_rec

        return wait_for_rec(self.redis, self.settings, self.worker, user, min_ts, timeout=60)

    def bandit(self, user: str, read_topic: Any) -> UserBandit:
        """The user's bandit record as the changelog holds it (what a recovering worker restores)."""
        state = UserState()
        for r in read_topic(self.settings, changelog_topic(self.settings, "users"), self.settings.partitions):
            if r.value is not None and json.loads(r.key) == user:
                state = UserState.from_bytes(r.value)
        return UserBandit.from_json(state.bandit, self.settings.bandit_policy)


@pytest.fixture(scope="module")
def loop(embedded: EmbeddedRuntime, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    import redis

    from streams.demo.catalog import demo_catalog
    from streams.producer import create_producer
    from streams.topics import ensure_topics
    from tests.conftest import make_settings

    unique_id = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp(f"loop-{unique_id}")
    s = make_settings(embedded, model_dir, tmp / "data", unique_id).model_copy(update={
        "feedback_window_s": WINDOW_S, "fresh_max_age_s": FRESH_AGE_S, "fresh_informed_after": 50,
        "explore_slots": 1, "fresh_slots": 1, "user_rate_limit_per_s": 0.0, "candidates_per_source": 15,
    })
    ensure_topics(s)
    catalog = [i for i in demo_catalog(seed=7) if i["category"] in ("audio", "kitchen", "outdoor")][:45]
    worker = WorkerProcess(s, tmp / "worker.log").start()
    producer = create_producer(s)
    client = redis.Redis.from_url(embedded.url, decode_responses=True, socket_timeout=10)
    try:
        worker.wait_ready(timeout=300)
        for item in catalog:
            producer.send(s.topic_catalog, key=item["item_id"].encode(), value=json.dumps(item).encode())
        producer.flush(timeout=30)
        worker.wait_ready(min_items=len(catalog), timeout=300)
        published_at = time.time()  # every item vector is in the log by now (they arrive as embedded)
        yield Loop(s, worker, client, producer, catalog, published_at)
    finally:
        producer.close(timeout=10)
        worker.stop()
        client.close()


def test_published_items_carry_source_and_propensity_and_the_policy_is_named(loop: Loop) -> None:
    # Items others clicked are trending: a second candidate source besides the user's interest.
    for item in loop.catalog[10:16]:
        ts = loop.click("u-warm", item["item_id"])
    loop.rec("u-warm", ts)
    deadline, n, rec = time.monotonic() + 60, 0, None
    while time.monotonic() < deadline:
        n += 1
        ts = loop.click(f"u-src{n}", loop.catalog[0]["item_id"])
        rec = loop.rec(f"u-src{n}", ts)
        if len({i["source"] for i in rec["items"]} - {FRESH}) >= 2:  # the trending counts have reached the worker
            break
        time.sleep(0.5)
    assert rec is not None and rec["policy"] == "thompson"
    items = rec["items"]
    assert len(items) == loop.settings.top_k
    assert all(i["source"] in (*SOURCES, FRESH) for i in items), items
    assert all(0.0 < i["propensity"] <= 1.0 for i in items), items
    # the exploration slot: a source picked by the user's Thompson policy among several
    assert any(i["propensity"] < 1.0 for i in items), items
    assert isinstance(rec["bundles"], dict)


def test_an_impression_and_a_click_on_its_request_update_the_users_bandit_state(loop: Loop, read_topic: Any) -> None:
    user = "u-feedback"
    ts = loop.click(user, loop.catalog[1]["item_id"])
    rec = loop.rec(user, ts)
    shown = [i["item_id"] for i in rec["items"]]
    explored = next(i for i in rec["items"] if i["source"] in SOURCES)  # an item of one of the bandit's arms
    t_imp = loop.ts()
    loop.send("impressions", {"request_id": rec["request_id"], "user_id": user, "item_ids": shown, "ts": t_imp})
    t_click = loop.click(user, explored["item_id"], request_id=rec["request_id"], ts=t_imp + 1.0)
    loop.rec(user, t_click)  # the click refreshed the list
    bandit = loop.bandit(user, read_topic)
    assert bandit.arm_posteriors()[explored["source"]] == [2.0, 1.0]  # Beta(1, 1) prior + one click
    assert bandit.join.counts["rewards_1"] == 1 and bandit.join.pending() == len(shown)  # its window is open

    # The window closes in the user's event time: every other shown item gets its 0,
    # and counts as shown without a click (frequency capping reads these counts).
    t_late = loop.click(user, loop.catalog[2]["item_id"], ts=t_click + WINDOW_S + 1.0)
    later = loop.rec(user, t_late)
    bandit = loop.bandit(user, read_topic)
    assert bandit.join.counts["rewards_0"] == len(shown) - 1
    assert bandit.shown_counts() == {i: 1 for i in shown if i != explored["item_id"]}
    alpha_beta = bandit.arm_posteriors()
    assert sum(b - 1.0 for _, b in alpha_beta.values()) == sum(i["source"] in SOURCES for i in rec["items"]
                                                                if i["item_id"] != explored["item_id"])
    assert later["request_id"] != rec["request_id"]

    # A redelivered impression and a second click on the same item change nothing.
    loop.send("impressions", {"request_id": rec["request_id"], "user_id": user, "item_ids": shown, "ts": t_imp})
    t_dup = loop.click(user, explored["item_id"], request_id=rec["request_id"], ts=t_late + 0.5)
    loop.rec(user, t_dup)
    again = loop.bandit(user, read_topic)
    assert again.arm_posteriors() == alpha_beta
    assert again.join.counts["duplicate_impressions"] == 1 and again.join.counts["late_clicks"] == 1

    # SREs see the same outcomes on /metrics (other tests' users may add to them).
    outcomes = loop.feedback_metrics()
    assert outcomes["rewards_1"] >= 1 and outcomes["rewards_0"] >= len(shown) - 1
    assert outcomes["duplicate_impressions"] >= 1 and outcomes["late_clicks"] >= 1
    assert outcomes["impressions"] >= 1


def test_the_ope_log_holds_each_shown_exploration_decision_with_its_reward(loop: Loop, tmp_path: Path) -> None:
    from streams.ope_command import run_ope
    from streams.ope_log import write_ope_log

    decisions = {}
    for user, clicks in (("u-ope-click", True), ("u-ope-skip", False)):
        ts = loop.click(user, loop.catalog[3]["item_id"])
        rec = loop.rec(user, ts)
        explored = [i for i in rec["items"] if i.get("arms")]
        assert len(explored) == loop.settings.explore_slots, rec["items"]  # the exploration slot names its arms
        item = explored[0]
        assert item["source"] in item["arms"] and set(item["arms"]) <= set(SOURCES)
        t_imp = loop.ts()
        loop.send("impressions", {"request_id": rec["request_id"], "user_id": user,
                                  "item_ids": [i["item_id"] for i in rec["items"]], "ts": t_imp})
        if clicks:
            loop.click(user, item["item_id"], request_id=rec["request_id"], ts=t_imp + 1.0)
        decisions[rec["request_id"]] = (item, int(clicks))
    loop.click("u-ope-later", loop.catalog[4]["item_id"], ts=loop.ts() + WINDOW_S + 1.0)  # both windows end
    out = tmp_path / "ope.jsonl"
    counts = write_ope_log(loop.settings, out, WINDOW_S, timeout_s=60)
    lines = {x["request_id"]: x for x in map(json.loads, out.read_text().splitlines())}
    for request_id, (item, reward) in decisions.items():
        line = lines[request_id]
        assert (line["item_id"], line["arm"], line["propensity"], line["arms"], line["reward"], line["policy"]) == (
            item["item_id"], item["source"], item["propensity"], item["arms"], reward, "thompson")
    assert counts["decisions"] == len(lines) >= 2 and counts["clicked"] >= 1
    # The log is what `streamrec ope` reads.
    result = run_ope(out, "uniform", 0.95, 0, 0)
    assert result["decisions"] == len(lines) and len(result["estimates"]) == 2


def test_a_bad_impression_goes_to_the_dlq_with_a_reason(loop: Loop, read_topic: Any) -> None:
    loop.send("impressions", {"request_id": "r-bad", "user_id": "u-bad", "item_ids": [], "ts": loop.ts()})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        dlq = [r for r in read_topic(loop.settings, loop.settings.topic_dlq, loop.settings.dlq_partitions)
               if r.key == b"u-bad"]
        if dlq:
            headers = {k: v.decode() for k, v in dlq[0].headers}
            assert headers["streamrec.topic"] == loop.settings.topic_impressions
            assert "item_ids is empty" in headers["streamrec.error"]
            return
        time.sleep(0.5)
    raise AssertionError("the invalid impression did not reach the DLQ")


def test_an_already_bought_item_is_never_shown_again(loop: Loop) -> None:
    user = "u-buyer"
    ts = loop.click(user, loop.catalog[3]["item_id"])
    first = loop.rec(user, ts)
    # buy the item the slate gave the fresh or exploration slot (the deterministic filter must hold there too)
    target = next(i for i in first["items"] if i["source"] == FRESH or i["propensity"] < 1.0)["item_id"]
    loop.click(user, target, kind="purchase")
    for item in loop.catalog[4:10]:
        ts = loop.click(user, item["item_id"])
        rec = loop.rec(user, ts)
        assert target not in [i["item_id"] for i in rec["items"]], rec["items"]


def test_bundles_of_listed_items_are_in_the_list_and_in_redis(loop: Loop) -> None:
    a, b = loop.catalog[20]["item_id"], loop.catalog[21]["item_id"]
    for n in range(3):  # users who buy a together with b make them each other's bundle
        loop.click(f"u-pair{n}", a, kind="purchase")
        loop.click(f"u-pair{n}", b, kind="purchase")
    deadline, n = time.monotonic() + 60, 0
    while time.monotonic() < deadline:
        n += 1  # each new visitor of a gets a list with b from co-visitation, once the pairs are applied
        ts = loop.click(f"u-bundle{n}", a)
        loop.rec(f"u-bundle{n}", ts)
        raw = loop.redis.get(loop.settings.bundle_key(b))
        if raw:
            assert a in json.loads(raw)["items"]
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no {loop.settings.bundle_key(b)} in Redis")
    ts = loop.click("u-bundle-check", a)
    rec = loop.rec("u-bundle-check", ts)
    assert b in [i["item_id"] for i in rec["items"]]
    assert a in rec["bundles"][b]


def test_a_new_catalog_item_is_shown_within_a_bounded_number_of_refreshes(loop: Loop) -> None:
    # Let the module's catalog age out of the fresh pool, then add one item.
    time.sleep(max(0.0, loop.published_at + FRESH_AGE_S + 1.0 - time.time()))
    new = dict(loop.catalog[0], item_id="audio-new-1", title="Brand new studio headphones")
    loop.send("catalog", new)
    loop.worker.wait_ready(min_items=len(loop.catalog) + 1, timeout=120)
    user, shown_at = "u-fresh", None
    for n, item in enumerate(loop.catalog[30:33]):
        ts = loop.click(user, item["item_id"])
        rec = loop.rec(user, ts)
        fresh = [i for i in rec["items"] if i["item_id"] == new["item_id"]]
        if fresh:
            assert fresh[0]["source"] == FRESH and fresh[0]["propensity"] == 1.0
            shown_at = n + 1
            break
    assert shown_at is not None and shown_at <= 3, "the new item was not shown within 3 refreshes"
