"""Secrets never show in reprs or logs; Redis AUTH works against a real Valkey; no pickle or eval on input paths."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from streams.faust_app import create_app
from streams.kafka_config import (
    aiokafka_kwargs,
    faust_broker_credentials,
    kafka_python_kwargs,
)
from streams.redis_sink import RedisWriter, create_redis_client
from streams.runtime import EmbeddedRedis
from streams.settings import Settings

KAFKA_SECRET = "kafka-pw-5f3b9e"
REDIS_SECRET = "redis-pw-8c1d2a"
WEB_SECRET = "web-token-3e7a41"


def _secure_settings() -> Settings:
    return Settings(
        kafka_bootstrap_servers="kafka-1:9093",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr(KAFKA_SECRET),
        redis_url=SecretStr(f"rediss://:{REDIS_SECRET}@cache:6380/0"),
        web_token=SecretStr(WEB_SECRET),
    )


def test_secrets_are_masked_in_settings_kwargs_and_faust_config(caplog: pytest.LogCaptureFixture) -> None:
    s = _secure_settings()
    caplog.set_level(logging.DEBUG)
    texts = [repr(s), str(s), repr(s.model_dump()), repr(kafka_python_kwargs(s)), repr(aiokafka_kwargs(s)),
             repr(faust_broker_credentials(s))]
    logging.getLogger("streamrec.test").info("settings %s kwargs %s", s, kafka_python_kwargs(s))
    app = create_app(s)
    texts.append(repr(app.conf.broker_credentials))
    texts.append(caplog.text)
    for text in texts:
        assert KAFKA_SECRET not in text and REDIS_SECRET not in text and WEB_SECRET not in text, text[:300]
    # ...while the clients get the real values.
    assert kafka_python_kwargs(s)["sasl_plain_password"] == KAFKA_SECRET
    assert s.redis_url is not None and REDIS_SECRET in s.redis_url.get_secret_value()
    assert s.to_env()["STREAMREC_KAFKA_SASL_PASSWORD"] == KAFKA_SECRET  # only for child processes' environments
    assert s.to_env()["STREAMREC_WEB_TOKEN"] == WEB_SECRET


def test_sasl_without_credentials_is_refused_with_the_variables_to_set() -> None:
    with pytest.raises(ValueError, match="STREAMREC_KAFKA_SASL_PASSWORD"):
        Settings(kafka_bootstrap_servers="k:9092", kafka_security_protocol="SASL_SSL")


def test_tls_settings_reach_every_client(tmp_path: Path) -> None:
    import ssl

    s = Settings(kafka_bootstrap_servers="k:9093", kafka_security_protocol="SSL")
    assert isinstance(aiokafka_kwargs(s)["ssl_context"], ssl.SSLContext)
    assert aiokafka_kwargs(s)["ssl_context"].check_hostname
    assert isinstance(faust_broker_credentials(s), ssl.SSLContext)
    client = create_redis_client(f"rediss://:{REDIS_SECRET}@cache:6380/0")
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    assert REDIS_SECRET not in repr(client)


@pytest.mark.integration
def test_redis_auth_against_a_real_valkey_and_the_password_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    server = EmbeddedRedis().start()
    try:
        admin = redis.Redis(port=server.port)
        admin.config_set("requirepass", REDIS_SECRET)
        caplog.set_level(logging.DEBUG)
        errors: list[int] = []

        async def write(url: str) -> bool:
            writer = RedisWriter(create_redis_client(url), ttl_s=60, max_backoff_s=0.1, on_error=lambda: errors.append(1))
            task = asyncio.create_task(writer.run())
            writer.put("rec:x", b"1", time.time())
            ok = await writer.drain(3)
            task.cancel()
            await writer.close()
            return ok

        assert asyncio.run(write(f"redis://:{REDIS_SECRET}@127.0.0.1:{server.port}/0"))
        assert not errors
        assert not asyncio.run(write(f"redis://:wrong-{REDIS_SECRET[::-1]}@127.0.0.1:{server.port}/0"))
        assert errors  # refused, counted, retried: never silently dropped
        assert redis.Redis(port=server.port, password=REDIS_SECRET).get("rec:x") == b"1"
        assert REDIS_SECRET not in caplog.text and REDIS_SECRET[::-1] not in caplog.text
    finally:
        server.stop()


def test_no_pickle_or_eval_on_any_code_path() -> None:
    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"\b(import pickle|from pickle|pickle\.loads?|marshal\.loads|(?<![\w.])eval\(|(?<![\w.])exec\(|"
                         r"yaml\.load\(|shelve\.)")
    offenders = []
    for package in ("streams", "agents", "models", "export"):
        for path in (root / package).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and "torch.load" not in line:
                    offenders.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not offenders, offenders
