"""Measuring event-to-Redis latency from the reader's side, with keyspace notifications.

Every time a ``rec:*`` key is written, Redis notifies this probe; it reads the
value and records ``now - trigger_ts``: how long after the triggering event its
recommendation could be read from Redis.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import redis


class LatencyProbe:
    """A background thread that records the latency of every recommendation written to Redis."""

    def __init__(self, client: redis.Redis, key_prefix: str = "") -> None:
        self._client = client
        self._pattern = f"__keyspace@{client.connection_pool.connection_kwargs.get('db', 0)}__:{key_prefix}rec:*"
        self._prefix_len = len(f"__keyspace@{client.connection_pool.connection_kwargs.get('db', 0)}__:")
        self.latencies: list[float] = []
        self.last_trigger: dict[str, float] = {}  # Redis key -> newest trigger_ts seen
        self.last_write_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> LatencyProbe:
        try:
            self._client.config_set("notify-keyspace-events", "K$")
        except redis.RedisError as exc:
            self.error = f"Redis refused keyspace notifications ({exc}); latency not measured"
            return self
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        pubsub.psubscribe(self._pattern)
        self._thread = threading.Thread(target=self._run, args=(pubsub,), name="latency-probe", daemon=True)
        self._thread.start()
        return self

    def _run(self, pubsub: redis.client.PubSub) -> None:
        while not self._stop.is_set():
            msg = pubsub.get_message(timeout=0.2)
            if not msg or msg.get("data") not in (b"set", "set"):
                continue
            channel = msg["channel"]
            key = (channel.decode() if isinstance(channel, bytes) else channel)[self._prefix_len :]
            raw = self._client.get(key)
            now = time.time()
            if raw is None:
                continue
            trigger = float(json.loads(raw)["trigger_ts"])
            if trigger > self.last_trigger.get(key, 0.0):
                self.latencies.append(now - trigger)
                self.last_trigger[key] = trigger
            self.last_write_at = now
        pubsub.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def percentiles(self) -> dict[str, float]:
        """p50/p95/p99 in milliseconds over everything measured so far."""
        if not self.latencies:
            return {}
        arr = np.array(self.latencies) * 1000.0
        return {f"p{q}": float(np.percentile(arr, q)) for q in (50, 95, 99)}
