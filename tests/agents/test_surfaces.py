"""Surfaces (rec:{surface}:{user_id}) and similar:{item_id}: pure parts, then on a real worker."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from agents.surfaces import surface_lists
from models.covisitation import CoVisitation
from models.interest import InterestLearner, UserState
from models.item_activity import ItemActivity
from models.item_index import ItemIndex
from models.recommender import Recommender
from models.similar_items import affected_items, catalog_view, nearest_items
from streams.settings import Settings


def _recommender() -> Recommender:
    rng = np.random.default_rng(3)
    idx = ItemIndex(dim=16)
    for c in "ABC":
        centre = rng.normal(size=16)
        for i in range(12):
            idx.upsert(f"{c}{i}", (centre + 0.3 * rng.normal(size=16)).astype(np.float32), category=c,
                       price=float(i), in_stock=i % 2 == 0)
    rec = Recommender(idx, CoVisitation(), ItemActivity(), InterestLearner(), top_k=10, per_source=5)
    for n in range(40):  # trending: C items are hot
        rec.trending.learn_one(f"C{n % 12}", 1.0, ts=50.0 + n)
    return rec


def test_each_surface_has_its_own_k_sources_and_filter() -> None:
    rec = _recommender()
    s = UserState()
    for i in range(3):
        s = rec.learner.learn_interaction(s, f"A{i}", rec.index.vector(f"A{i}"), "click", ts=100.0 + i)
    settings = Settings(surfaces={
        "home": {}, "search": {"top_k": 4, "sources": ["search", "interest"]},
        "deals": {"top_k": 6, "sources": ["trending"], "filter": {"in_stock": True, "max_price": 8}},
    })
    lists = surface_lists(rec, [("u", s, 110.0)], settings)
    assert set(lists) == {"search", "deals"}  # home is the refresh's own list
    (search,), (deals,) = lists["search"], lists["deals"]
    assert len(search) == 4 and {x.source for x in search} <= {"search", "interest"}
    assert all(x.item_id.startswith("A") for x in search)
    assert deals and len(deals) <= 6 and {x.source for x in deals} == {"trending"}
    for x in deals:
        r = rec.index.row(x.item_id)
        assert rec.index.in_stock[r] and rec.index.prices[r] <= 8


def test_similar_items_follow_upserts_and_deletes() -> None:
    rec = _recommender()
    before = catalog_view(rec.index)
    (near,) = nearest_items(before, ["A3"], k=5)
    assert len(near) == 5 and "A3" not in [i for i, _ in near] and all(i.startswith("A") for i, _ in near)
    twin = rec.index.vector("A3")
    after = catalog_view(rec.index, upserts={"A3-twin": twin}, deleted=[near[0][0]])
    (now,) = nearest_items(after, ["A3"], k=5)
    assert now[0][0] == "A3-twin" and near[0][0] not in [i for i, _ in now]
    touched = affected_items(before, after, ["A3-twin", near[0][0]], k=5)
    assert "A3" in touched and "A3-twin" in touched and near[0][0] not in touched


@pytest.mark.integration
def test_worker_publishes_surfaces_and_similar_items(live_pipeline: Any, read_topic: Any) -> None:
    live = live_pipeline
    s = live.settings
    cats: dict[str, list[str]] = {}
    for item in live.catalog:
        cats.setdefault(item["category"], []).append(item["item_id"])
    # similar:{item_id} for every catalog item, nearest first, never the item itself.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and live.redis.get(s.similar_key(cats["books"][-1])) is None:
        time.sleep(0.2)
    for item_id in (cats["books"][0], cats["toys"][5]):
        sim = json.loads(live.redis.get(s.similar_key(item_id)))
        ids = [x["item_id"] for x in sim["items"]]
        assert len(ids) == s.similar_k and item_id not in ids
        scores = [x["score"] for x in sim["items"]]
        assert scores == sorted(scores, reverse=True)
        assert sum(i.split("-")[0] == item_id.split("-")[0] for i in ids[:5]) >= 4
        assert live.redis.ttl(s.similar_key(item_id)) == -1  # kept as long as the item

    # A new item that is a copy of an existing one becomes its nearest; deleting it takes it out again.
    original = next(i for i in live.catalog if i["item_id"] == cats["kitchen"][2])
    live.send("catalog", {**original, "item_id": "kitchen-twin"})
    live.flush()
    deadline = time.monotonic() + 120
    first = None
    while time.monotonic() < deadline and first != "kitchen-twin":
        raw = live.redis.get(s.similar_key(original["item_id"]))
        first = json.loads(raw)["items"][0]["item_id"] if raw else None
        time.sleep(0.3)
    assert first == "kitchen-twin"
    assert json.loads(live.redis.get(s.similar_key("kitchen-twin")))["items"][0]["item_id"] == original["item_id"]
    live.send("catalog", {"item_id": "kitchen-twin", "title": "x", "deleted": True})
    live.flush()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and live.redis.get(s.similar_key("kitchen-twin")) is not None:
        time.sleep(0.3)
    assert live.redis.get(s.similar_key("kitchen-twin")) is None
    ids = [x["item_id"] for x in json.loads(live.redis.get(s.similar_key(original["item_id"])))["items"]]
    assert "kitchen-twin" not in ids and len(ids) == s.similar_k

    # A searching user gets rec:search:{user_id} beside rec:{user_id}, from the search surface's sources.
    now = time.time()
    live.send("clicks", {"event_id": "sf-1", "user_id": "surfer", "item_id": cats["outdoor"][0], "kind": "click",
                         "ts": now})
    live.send("searches", {"event_id": "sf-2", "user_id": "surfer", "query": "trail running shoes", "ts": now + 0.1})
    live.flush()
    home = live.wait_for_rec("surfer", now + 0.1)
    assert home["surface"] == "home"
    deadline = time.monotonic() + 30
    search = None
    while time.monotonic() < deadline:
        raw = live.redis.get(s.rec_key("surfer", "search"))
        search = json.loads(raw) if raw else None
        if search and search["trigger_ts"] >= now + 0.1 - 1e-6:
            break
        time.sleep(0.1)
    assert search is not None and search["surface"] == "search" and search["user_id"] == "surfer"
    assert len(search["items"]) == s.top_k
    # the surface's candidate sources (the slate may add a slot for a new item); never trending
    assert {x["source"] for x in search["items"]} <= {"search", "covisit", "interest", "fresh"}
    assert search["items"][0]["item_id"] in cats["running"]

    # Forgetting the user deletes every surface's list, not only home's.
    from streams.forget_command import send_forget

    receipt = send_forget(s, "surfer", live.redis)
    assert receipt.redis_deleted
    assert live.redis.get(s.rec_key("surfer")) is None and live.redis.get(s.rec_key("surfer", "search")) is None

    # The search lists are on their own topic (what `redis-rebuild` restores them from), and the
    # worker's erasure ends that log with a tombstone.
    deadline = time.monotonic() + 60
    logged: list[Any] = []
    while time.monotonic() < deadline and not (logged and logged[-1].value is None):
        logged = [r for r in read_topic(s, s.topic_surface_recommendations, s.partitions) if r.key == b"search:surfer"]
        time.sleep(0.3)
    assert logged and logged[-1].value is None, logged
    lists = [json.loads(r.value) for r in logged[:-1]]
    assert lists and lists[-1]["surface"] == "search" and lists[-1]["user_id"] == "surfer"
    assert lists[-1]["request_id"] == search["request_id"] or any(x["request_id"] == search["request_id"] for x in lists)
