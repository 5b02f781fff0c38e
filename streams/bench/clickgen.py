"""Valid click events over N users for the benchmark, and a fast loader for a backlog.

Users are ``bench-000000`` ... drawn uniformly (a large shop: one user's events are
seconds apart, so nearly every event is its user's only one in a debounce window);
items are drawn with Zipf-like popularity from the catalog; kinds follow a funnel.
Every event is a ClickEvent the worker accepts, keyed by its user_id.

>>> gen = ClickGenerator(["a-1", "a-2", "a-3"], users=10, seed=1, run="r1")
>>> key, value = gen.next(1795370000.25)
>>> import json; event = json.loads(value)
>>> sorted(event), key == event["user_id"].encode(), event["ts"]
(['event_id', 'item_id', 'kind', 'ts', 'user_id'], True, 1795370000.25)
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.kafka_config import aiokafka_kwargs
from streams.partitioning import partition_of_key
from streams.settings import Settings

#: Click kinds and their shares (a view-heavy funnel).
KINDS: tuple[tuple[str, float], ...] = (("view", 0.70), ("click", 0.20), ("add_to_cart", 0.07), ("purchase", 0.03))


def user_id(index: int) -> str:
    """The id of benchmark user ``index``.

    >>> user_id(42)
    'bench-000042'
    """
    return f"bench-{index:06d}"


class ClickGenerator:
    """Click-event JSON over ``users`` users and ``items``, deterministic for a ``seed``."""

    def __init__(self, items: Sequence[str], users: int, seed: int, run: str, zipf_s: float = 1.0) -> None:
        if not items:
            raise ValueError("no items to click on")
        if users < 1:
            raise ValueError("users must be at least 1")
        self._rng = random.Random(f"streamrec-bench:{seed}:{run}")
        shuffled = list(items)
        self._rng.shuffle(shuffled)  # popularity rank independent of catalog order
        self._items = shuffled
        self._item_cum = list(itertools.accumulate(1.0 / (rank + 1) ** zipf_s for rank in range(len(shuffled))))
        self._kinds = [kind for kind, _ in KINDS]
        self._kind_cum = list(itertools.accumulate(share for _, share in KINDS))
        self._users = [user_id(i) for i in range(users)]
        self._keys = [u.encode() for u in self._users]
        self._run = run
        self._count = 0

    @property
    def count(self) -> int:
        """Events generated so far."""
        return self._count

    def next(self, ts: float) -> tuple[bytes, bytes]:
        """The next event as ``(key, JSON value)`` with timestamp ``ts``."""
        rng = self._rng
        u = rng.randrange(len(self._users))
        item = self._items[min(bisect.bisect_right(self._item_cum, rng.random() * self._item_cum[-1]), len(self._items) - 1)]
        kind = self._kinds[min(bisect.bisect_right(self._kind_cum, rng.random() * self._kind_cum[-1]), len(self._kinds) - 1)]
        self._count += 1
        value = (
            f'{{"event_id":"{self._run}-{self._count}","user_id":"{self._users[u]}",'
            f'"item_id":"{item}","kind":"{kind}","ts":{ts:.6f}}}'
        )
        return self._keys[u], value.encode()


class CachedPartitioner:
    """murmur2 key partitioning (as the JVM client and kafka-python do), computed once per key.

    The pure-Python murmur2 costs microseconds per message; a benchmark sends to a
    fixed set of users, so each key is hashed once.

    >>> from aiokafka.partitioner import DefaultPartitioner
    >>> part = CachedPartitioner()
    >>> part(b"bench-000042", list(range(8)), []) == DefaultPartitioner()(b"bench-000042", list(range(8)), [])
    True
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, int], int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        slot = (key, len(all_partitions))
        index = self._cache.get(slot)
        if index is None:
            index = self._cache[slot] = partition_of_key(key, len(all_partitions))
        return all_partitions[index]


def create_fast_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """An aiokafka producer (call inside a running event loop) with cached key partitioning."""
    options: dict[str, Any] = {"acks": 1, "linger_ms": 5, "max_batch_size": 256 << 10, "partitioner": CachedPartitioner()}
    options.update(overrides)
    return AIOKafkaProducer(**aiokafka_kwargs(settings), **options)


async def _preload(
    settings: Settings, topic: str, n_events: int, generator: ClickGenerator, progress: Callable[[int], None] | None
) -> None:
    producer = create_fast_producer(settings, linger_ms=50, max_batch_size=1 << 20)
    await producer.start()
    errors: list[BaseException] = []

    def check(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            errors.append(fut.exception())  # type: ignore[arg-type]

    try:
        for i in range(n_events):
            key, value = generator.next(time.time())
            (await producer.send(topic, value=value, key=key)).add_done_callback(check)
            if progress is not None and i % 5000 == 4999:
                progress(i + 1)
        await producer.flush()
    finally:
        await producer.stop()
    if errors:
        raise RuntimeError(f"{len(errors)} of {n_events} backlog events were not accepted by the broker: {errors[0]!r}")


def preload(
    settings: Settings,
    topic: str,
    n_events: int,
    generator: ClickGenerator,
    progress: Callable[[int], None] | None = None,
) -> float:
    """Produce ``n_events`` as fast as the broker takes them (large batches); returns seconds taken.

    Every event's ``ts`` is the time it was generated. Raises ``RuntimeError`` if any send failed.
    """
    t0 = time.monotonic()
    asyncio.run(_preload(settings, topic, n_events, generator, progress))
    if progress is not None:
        progress(n_events)
    return time.monotonic() - t0
