"""The demo catalog and shopper simulator produce valid, deterministic, signal-bearing data."""

from __future__ import annotations

import base64
import collections
import io
import itertools
import json
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image

from streams.demo.catalog import CATEGORIES, CATEGORY_QUERIES, demo_catalog, items_by_category
from streams.demo.shoppers import Shopper, ShopperSimulator, bad_events, make_shoppers
from streams.records import ClickEvent, ItemEvent, SearchEvent
from streams.validation import InvalidEvent, Limits, decode_event

MIN_TS = 788918400.0
N_EVENTS = 4000


def _limits(max_bytes: int) -> Limits:
    return Limits(max_bytes=max_bytes, min_ts=MIN_TS, max_ts=time.time() + 3600)


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


@pytest.fixture(scope="module")
def catalog() -> list[dict[str, Any]]:
    return demo_catalog(seed=7, images=True)


@pytest.fixture(scope="module")
def shoppers(catalog: list[dict[str, Any]]) -> list[Shopper]:
    return make_shoppers(40, catalog, seed=11)


@pytest.fixture(scope="module")
def events(catalog: list[dict[str, Any]], shoppers: list[Shopper]) -> list[tuple[str, dict[str, Any]]]:
    sim = ShopperSimulator(catalog, shoppers, seed=11, start_ts=time.time() - 86400)
    return list(sim.events(N_EVENTS))


# --- catalog ------------------------------------------------------------------------------


def test_every_catalog_item_validates(catalog: list[dict[str, Any]]) -> None:
    limits = _limits(8 * 1024 * 1024)
    fields = set(ItemEvent._options.fields)
    for item in catalog:
        assert set(item) == fields, item["item_id"]
        record = decode_event(ItemEvent, _encode(item), limits)
        assert record.item_id == item["item_id"]
        assert not record.deleted


def test_catalog_size_ids_and_titles(catalog: list[dict[str, Any]]) -> None:
    assert 160 <= len(catalog) <= 240
    ids = [item["item_id"] for item in catalog]
    assert len(set(ids)) == len(ids)
    assert len({item["title"] for item in catalog}) == len(catalog)
    for item in catalog:
        prefix, number = item["item_id"].rsplit("-", 1)
        assert prefix == item["category"] and len(number) == 3 and number.isdigit()
    assert len(json.dumps(catalog).encode()) < 2 * 1024 * 1024


def test_categories_present_and_balanced(catalog: list[dict[str, Any]]) -> None:
    groups = items_by_category(catalog)
    assert set(groups) == set(CATEGORIES) and len(CATEGORIES) == 8
    counts = [len(ids) for ids in groups.values()]
    assert min(counts) >= 15 and max(counts) <= 1.5 * min(counts)
    assert sum(counts) == len(catalog)


def test_items_look_like_products(catalog: list[dict[str, Any]]) -> None:
    for item in catalog:
        assert item["title"].strip() and item["description"].strip()
        assert item["description"].rstrip().endswith(".")
        assert 2 <= len(item["tags"]) <= 4 and len(set(item["tags"])) == len(item["tags"])
        assert isinstance(item["price"], float) and 0 < item["price"] < 2000
        assert item["ts"] is None and item["deleted"] is False
    by_category = collections.defaultdict(list)
    for item in catalog:
        by_category[item["category"]].append(item["price"])
    assert max(by_category["beauty"]) < min(max(by_category["kitchen"]), max(by_category["gaming"]))


def test_audio_has_wireless_earbuds(catalog: list[dict[str, Any]]) -> None:
    earbuds = [
        item
        for item in catalog
        if item["category"] == "audio" and "wireless earbuds" in f"{item['title']} {item['description']}".lower()
    ]
    assert len(earbuds) >= 3
    assert not [item for item in catalog if item["category"] != "audio" and "earbuds" in item["description"].lower()]


def test_images_are_small_category_coloured_pngs(catalog: list[dict[str, Any]]) -> None:
    mean_colour: dict[str, list[tuple[float, ...]]] = collections.defaultdict(list)
    for item in catalog:
        assert item["image"].startswith("data:image/png;base64,")
        raw = base64.b64decode(item["image"].split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(raw)) as image:
            assert image.format == "PNG" and image.size == (64, 64)
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
        mean_colour[item["category"]].append(tuple(pixels.reshape(-1, 3).mean(axis=0)))
    assert len({item["image"] for item in catalog}) == len(catalog)
    # Each category's average colour is closer to its own centroid than to any other's.
    centroids = {c: tuple(sum(m[k] for m in ms) / len(ms) for k in range(3)) for c, ms in mean_colour.items()}
    hits = total = 0
    for category, means in mean_colour.items():
        for m in means:
            nearest = min(centroids, key=lambda c: sum((m[k] - centroids[c][k]) ** 2 for k in range(3)))
            hits += nearest == category
            total += 1
    assert hits / total >= 0.9


def test_catalog_is_deterministic(catalog: list[dict[str, Any]]) -> None:
    assert demo_catalog(seed=7, images=True) == catalog
    text_only = demo_catalog(seed=7, images=False)
    assert all(item["image"] is None for item in text_only)
    assert [{**item, "image": None} for item in catalog] == text_only
    assert demo_catalog(seed=8, images=False) != text_only


# --- shoppers -----------------------------------------------------------------------------


def test_make_shoppers(catalog: list[dict[str, Any]], shoppers: list[Shopper]) -> None:
    assert [s.user_id for s in shoppers] == [f"shopper-{i:04d}" for i in range(1, 41)]
    singles = [s for s in shoppers if len(s.tastes) == 1]
    mixes = [s for s in shoppers if len(s.tastes) == 2]
    assert len(singles) + len(mixes) == len(shoppers)
    assert len(singles) > len(shoppers) / 2 and mixes
    for s in shoppers:
        assert abs(sum(s.tastes.values()) - 1.0) < 1e-9
        assert set(s.tastes) <= set(CATEGORIES)
        assert s.queries and all(q.strip() for q in s.queries)
        own = {q for c in s.tastes for q in CATEGORY_QUERIES[c]}
        assert set(s.queries) <= own
    for s in mixes:
        assert sorted(s.tastes.values()) == pytest.approx([0.3, 0.7])
    assert {s.top_category for s in singles} == set(CATEGORIES)
    assert make_shoppers(40, catalog, seed=11) == shoppers
    assert make_shoppers(40, catalog, seed=12) != shoppers


def test_every_simulated_event_validates(events: list[tuple[str, dict[str, Any]]]) -> None:
    limits = _limits(64 * 1024)
    click_fields, search_fields = set(ClickEvent._options.fields), set(SearchEvent._options.fields)
    for kind, event in events:
        assert kind in ("clicks", "searches")
        model = ClickEvent if kind == "clicks" else SearchEvent
        assert set(event) <= (click_fields if kind == "clicks" else search_fields)
        decode_event(model, _encode(event), limits)
    kinds = collections.Counter(kind for kind, _ in events)
    assert 0.05 < kinds["searches"] / len(events) < 0.3


def test_event_ids_unique_and_ts_increasing(events: list[tuple[str, dict[str, Any]]]) -> None:
    ids = [event["event_id"] for _, event in events]
    assert len(set(ids)) == len(ids)
    stamps = [event["ts"] for _, event in events]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    span = stamps[-1] - stamps[0]
    assert 0.5 * 2.0 * N_EVENTS < span < 1.5 * 2.0 * N_EVENTS  # mean gap about 2 s


def test_click_funnel(events: list[tuple[str, dict[str, Any]]]) -> None:
    kinds = collections.Counter(event["kind"] for topic, event in events if topic == "clicks")
    assert kinds["view"] > 2 * kinds["click"] > 0
    assert kinds["click"] > 2 * kinds["add_to_cart"] > 0
    assert kinds["add_to_cart"] > kinds["purchase"] > 0
    # Every purchase follows an add_to_cart of the same item by the same user.
    carted: set[tuple[str, str]] = set()
    for topic, event in events:
        if topic == "clicks" and event["kind"] == "add_to_cart":
            carted.add((event["user_id"], event["item_id"]))
        if topic == "clicks" and event["kind"] == "purchase":
            assert (event["user_id"], event["item_id"]) in carted


def test_sessions(events: list[tuple[str, dict[str, Any]]]) -> None:
    per_user: dict[str, list[str]] = collections.defaultdict(list)
    last_ts: dict[str, float] = {}
    for _, event in events:
        user, session = event["user_id"], event["session_id"]
        assert session.startswith(user)
        if per_user[user] and per_user[user][-1] == session:
            assert event["ts"] - last_ts[user] <= 1800.0  # a session never spans an inactivity gap
        per_user[user].append(session)
        last_ts[user] = event["ts"]
    sessions = {s for ss in per_user.values() for s in ss}
    assert len(sessions) > len(per_user)  # shoppers come back for new sessions
    assert len(events) / len(sessions) > 3  # and do several things per session


def test_single_category_shoppers_click_in_their_category(
    events: list[tuple[str, dict[str, Any]]], shoppers: list[Shopper]
) -> None:
    tastes = {s.user_id: s.tastes for s in shoppers}
    inside = total = 0
    for topic, event in events:
        user_tastes = tastes[event["user_id"]]
        if topic == "clicks" and len(user_tastes) == 1:
            total += 1
            inside += event["item_id"].rsplit("-", 1)[0] in user_tastes
    assert total > 500
    assert inside / total >= 0.95


def test_mixed_shoppers_follow_their_weights(events: list[tuple[str, dict[str, Any]]], shoppers: list[Shopper]) -> None:
    tastes = {s.user_id: s.tastes for s in shoppers if len(s.tastes) == 2}
    counts: collections.Counter[str] = collections.Counter()
    for topic, event in events:
        if topic == "clicks" and event["user_id"] in tastes:
            t = tastes[event["user_id"]]
            category = event["item_id"].rsplit("-", 1)[0]
            assert category in t
            counts["major" if t[category] == 0.7 else "minor"] += 1
    assert counts["major"] > counts["minor"] > 0


def test_popularity_is_skewed(events: list[tuple[str, dict[str, Any]]], catalog: list[dict[str, Any]]) -> None:
    views = collections.Counter(event["item_id"] for topic, event in events if topic == "clicks")
    for category, ids in items_by_category(catalog).items():
        counts = sorted((views[i] for i in ids), reverse=True)
        assert counts[0] >= 4 * max(counts[len(counts) // 2], 1), category


def test_simulator_is_deterministic(catalog: list[dict[str, Any]], shoppers: list[Shopper]) -> None:
    def run(seed: int) -> list[tuple[str, dict[str, Any]]]:
        return list(ShopperSimulator(catalog, shoppers, seed=seed, start_ts=1.7e9).events(500))

    assert run(3) == run(3)
    assert run(3) != run(4)
    # A second events() call continues the stream rather than restarting it.
    sim = ShopperSimulator(catalog, shoppers, seed=3, start_ts=1.7e9)
    assert list(sim.events(200)) + list(sim.events(300)) == run(3)


def test_events_live_stamps_wall_clock(catalog: list[dict[str, Any]], shoppers: list[Shopper]) -> None:
    sim = ShopperSimulator(catalog, shoppers, seed=5, start_ts=1.7e9)
    limits = _limits(64 * 1024)
    for kind, event in sim.events_live(200):
        now = time.time()
        assert now - 1.0 <= event["ts"] <= now + 0.01
        decode_event(ClickEvent if kind == "clicks" else SearchEvent, _encode(event), limits)


def test_simulator_rejects_unknown_tastes(catalog: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError):
        ShopperSimulator(catalog, [Shopper("u", {"pets": 1.0})], seed=1, start_ts=1.7e9)


# --- bad events ---------------------------------------------------------------------------


def test_bad_events_all_rejected() -> None:
    limits = _limits(64 * 1024)
    codes: dict[str, set[str]] = {"clicks": set(), "searches": set()}
    payloads = list(bad_events(100, seed=9))
    assert len(payloads) == 100 and all(isinstance(p, bytes) for p in payloads)
    for payload in payloads:
        for topic, model in (("clicks", ClickEvent), ("searches", SearchEvent)):
            with pytest.raises(InvalidEvent) as info:
                decode_event(model, payload, limits)
            codes[topic].add(info.value.code)
    assert {
        "malformed_json",
        "wrong_type",
        "missing_field",
        "invalid_value",
        "bad_timestamp",
        "invalid_utf8",
        "unknown_field",
        "not_an_object",
    } <= codes["clicks"]
    assert {"too_long", "bad_timestamp", "missing_field", "invalid_value"} <= codes["searches"]


def test_bad_events_are_deterministic() -> None:
    assert list(bad_events(50, seed=2)) == list(bad_events(50, seed=2))
    assert list(bad_events(50, seed=2)) != list(bad_events(50, seed=3))
