"""Pipelined, batched Redis writes that survive Redis outages.

Values are "latest wins" per key, so pending writes are coalesced by key: an
outage grows the pending map by at most one entry per user and nothing is lost;
the writer retries with exponential backoff until Redis answers again. A deletion
(a user who asked to be forgotten) is queued the same way, so it survives an outage
too and is never overtaken by an older write of the same key.

The client is a single Redis (``redis://``, ``rediss://`` for TLS) or a Redis Cluster
(:func:`create_redis_client` with ``cluster=True``, any node's URL; redis-py's
``RedisCluster`` splits each pipeline by slot and follows ``MOVED`` redirections).
On a cluster every key takes the user (or item) id as its hash tag
(:meth:`streams.settings.Settings.rec_key`), so one user's keys share a slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

log = logging.getLogger(__name__)


class RedisWriter:
    """Coalesces ``SET key value EX ttl`` writes and flushes them in pipelines."""

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        ttl_s: int,
        max_batch: int = 1000,
        max_backoff_s: float = 5.0,
        on_written: Callable[[float], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._ttl = ttl_s
        self._max_batch = max_batch
        self._max_backoff = max_backoff_s
        self._on_written = on_written
        self._on_error = on_error
        #: key -> (value or None for a deletion, trigger time or None, expire after the TTL)
        self._pending: dict[str, tuple[bytes | None, float | None, bool]] = {}
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Keys not yet written."""
        return len(self._pending)

    def put(self, key: str, value: bytes, trigger_ts: float | None, expire: bool = True) -> None:
        """Queue a write (replacing any queued value of the same key).

        ``trigger_ts`` (the event the value answers) is reported to ``on_written`` once
        written; None reports nothing. ``expire=False`` writes the key with no TTL.
        """
        self._pending[key] = (value, trigger_ts, expire)
        self._idle.clear()
        self._wakeup.set()

    def delete(self, key: str) -> None:
        """Queue the deletion of ``key`` (replacing any queued write of it)."""
        self._pending[key] = (None, None, False)
        self._idle.clear()
        self._wakeup.set()

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def run(self) -> None:
        """Flush loop; run it as a background task for the life of the worker."""
        backoff = 0.05
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                keys = list(self._pending)[: self._max_batch]
                batch = {k: self._pending.pop(k) for k in keys}
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for key, (value, _, expire) in batch.items():
                            if value is None:
                                pipe.delete(key)
                            else:
                                pipe.set(key, value, ex=self._ttl if expire else None)
                        await pipe.execute()
                except (RedisError, RedisClusterException, OSError) as exc:
                    for key, item in batch.items():
                        self._pending.setdefault(key, item)  # a newer value wins
                    if self._on_error:
                        self._on_error()
                    log.warning("Redis write of %d keys failed (%s); retrying in %.2fs", len(batch), exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                backoff = 0.05
                if self._on_written:
                    now = time.time()
                    for value, trigger_ts, _ in batch.values():
                        if value is not None and trigger_ts is not None:
                            self._on_written(now - trigger_ts)
            self._idle.set()

    async def close(self) -> None:
        await self._client.aclose()


def create_sync_redis_client(url: str, cluster: bool = False, **kwargs: Any) -> Any:
    """A blocking client (for commands): ``redis.Redis``, or ``RedisCluster`` with ``cluster``.

    >>> type(create_sync_redis_client("redis://cache:6379/0")).__name__
    'Redis'
    """
    import redis
    from redis.cluster import RedisCluster as SyncRedisCluster

    if cluster:
        return SyncRedisCluster.from_url(url, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def create_redis_client(url: str, cluster: bool = False) -> Any:
    """An asyncio client for ``redis://`` or ``rediss://`` URLs: a single Redis, or with
    ``cluster`` a Redis Cluster found from the node ``url`` names.

    >>> create_redis_client("rediss://cache:6380/0").connection_pool.connection_class.__name__
    'SSLConnection'
    >>> type(create_redis_client("redis://node-1:7000", cluster=True)).__name__
    'RedisCluster'
    """
    if cluster:
        return RedisCluster.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
    return aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
