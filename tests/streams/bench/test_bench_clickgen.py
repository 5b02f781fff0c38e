"""Benchmark events are valid ClickEvents, keyed and partitioned like the JVM client does."""

from __future__ import annotations

import json
import time
from collections import Counter

from kafka.partitioner.default import murmur2  # type: ignore[import-untyped]

from streams.bench.clickgen import KINDS, CachedPartitioner, ClickGenerator, user_id
from streams.records import ClickEvent
from streams.validation import Limits, decode_event


def test_every_event_passes_the_workers_validation() -> None:
    items = [f"audio-{i:03d}" for i in range(1, 26)]
    gen = ClickGenerator(items, users=50, seed=3, run="t1")
    now = time.time()
    limits = Limits(64 * 1024, 788918400.0, now + 3600)
    seen_ids = set()
    kinds: Counter[str] = Counter()
    for i in range(2000):
        key, raw = gen.next(now + i * 0.001)
        event = decode_event(ClickEvent, raw, limits)
        assert key.decode() == event.user_id and event.item_id in items
        assert event.ts == round(now + i * 0.001, 6)
        seen_ids.add(event.event_id)
        kinds[event.kind] += 1
    assert len(seen_ids) == 2000 and gen.count == 2000
    assert set(kinds) == {kind for kind, _ in KINDS}
    assert 0.6 < kinds["view"] / 2000 < 0.8


def test_same_seed_same_stream_and_users_spread_evenly() -> None:
    a = ClickGenerator(["x", "y"], users=20, seed=1, run="r")
    b = ClickGenerator(["x", "y"], users=20, seed=1, run="r")
    stream_a = [a.next(1.0) for _ in range(4000)]
    assert stream_a == [b.next(1.0) for _ in range(4000)]
    per_user = Counter(json.loads(v)["user_id"] for _, v in stream_a)
    assert set(per_user) == {user_id(i) for i in range(20)}
    assert max(per_user.values()) < 2 * min(per_user.values())


def test_cached_partitioner_matches_murmur2() -> None:
    part = CachedPartitioner()
    for n in (1, 4, 8, 24):
        for i in range(500):
            key = user_id(i).encode()
            expected = (murmur2(key) & 0x7FFFFFFF) % n
            assert part(key, list(range(n)), []) == expected
            assert part(key, list(range(n)), []) == expected  # cached
    assert part(None, [0, 1, 2], [1]) == 1
