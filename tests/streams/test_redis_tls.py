"""The Redis writer over ``rediss://`` against a real TLS-only Redis (AUTH, verified certificate)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis

from streams.redis_sink import RedisWriter, create_redis_client
from streams.settings import Settings

pytestmark = pytest.mark.integration


def test_writer_lands_recommendations_over_tls(tls_redis: Any) -> None:
    s = Settings(redis_key_prefix="tls:")
    users = [f"user-{n}" for n in range(20)]

    async def write() -> bool:
        writer = RedisWriter(create_redis_client(tls_redis.url), ttl_s=600, max_backoff_s=0.2)
        task = asyncio.create_task(writer.run())
        for u in users:
            writer.put(s.rec_key(u), json.dumps({"u": u}).encode(), time.time())
        ok = await writer.drain(30)
        writer.delete(s.rec_key(users[0]))
        ok = ok and await writer.drain(30)
        task.cancel()
        await writer.close()
        return ok

    assert asyncio.run(write())
    client = redis.Redis.from_url(tls_redis.url, decode_responses=True, socket_timeout=10)
    try:
        assert client.get(s.rec_key(users[0])) is None
        for u in users[1:]:
            assert json.loads(client.get(s.rec_key(u))) == {"u": u}
            assert 0 < client.ttl(s.rec_key(u)) <= 600
    finally:
        client.close()


def test_tls_is_required_verified_and_authenticated(tls_redis: Any) -> None:
    plain = redis.Redis(host="127.0.0.1", port=tls_redis.port, password=tls_redis.password, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):  # no TLS: the server only speaks TLS
        plain.ping()
    unverified = create_redis_client(f"rediss://:{tls_redis.password}@127.0.0.1:{tls_redis.port}/0")

    async def ping(client: Any) -> Any:
        try:
            return await client.ping()
        finally:
            await client.aclose()

    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):  # no CA: not trusted
        asyncio.run(ping(unverified))
    wrong = tls_redis.url.replace(tls_redis.password, "not-the-password")
    with pytest.raises(redis.AuthenticationError):
        asyncio.run(ping(create_redis_client(wrong)))
    assert asyncio.run(ping(create_redis_client(tls_redis.url))) is True
