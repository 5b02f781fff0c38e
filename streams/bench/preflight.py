"""What must hold before a benchmark starts: sane options and reachable servers.

Every failure is a :class:`BenchError` whose message says what was wrong and how to fix it.

>>> parse_rates("2000, 500,500")
(500.0, 2000.0)
>>> parse_rates("fast")
Traceback (most recent call last):
...
ValueError: 'fast' is not a number of events per second; give them comma-separated, e.g. --rates 500,2000,5000
"""

from __future__ import annotations

import urllib.parse

from streams.settings import Settings

#: Highest offered rate accepted (one generator process cannot send more).
MAX_RATE = 1_000_000.0


class BenchError(RuntimeError):
    """The benchmark cannot run or could not finish; the message says why and what to do."""


def parse_rates(text: str) -> tuple[float, ...]:
    """Offered rates from ``"500,2000,..."``: positive numbers, deduplicated, ascending."""
    rates: set[float] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            rate = float(part)
        except ValueError:
            raise ValueError(
                f"{part!r} is not a number of events per second; give them comma-separated, e.g. --rates 500,2000,5000"
            ) from None
        if not 0 < rate <= MAX_RATE:
            raise ValueError(f"rate {part} is out of range: each rate must be above 0 and at most {MAX_RATE:,.0f} events/s")
        rates.add(rate)
    if not rates:
        raise ValueError("no rate given; e.g. --rates 500,2000,5000")
    return tuple(sorted(rates))


def check_bootstrap(servers: str) -> None:
    """``host:port[,host:port]`` or a ValueError saying what is wrong.

    >>> check_bootstrap("kafka-1:9092,kafka-2:9092")
    >>> check_bootstrap("kafka://k:9092")
    Traceback (most recent call last):
    ...
    ValueError: 'kafka://k:9092' is not host:port; give the broker as host:port[,host:port], without a scheme
    """
    for entry in servers.split(","):
        entry = entry.strip()
        host, sep, port = entry.rpartition(":")
        if not sep or not host or "/" in entry or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{entry!r} is not host:port; give the broker as host:port[,host:port], without a scheme")


def redacted_url(url: str) -> str:
    """``url`` with any password masked, for messages.

    >>> redacted_url("redis://:hunter2@cache:6379/0"), redacted_url("redis://cache:6379")
    ('redis://:***@cache:6379/0', 'redis://cache:6379')
    """
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_reachable(settings: Settings, timeout_s: float = 5.0) -> None:
    """Connect to the configured Kafka and Redis once; a :class:`BenchError` if either does not answer."""
    import redis
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    from streams.kafka_config import kafka_python_kwargs

    assert settings.kafka_bootstrap_servers is not None and settings.redis_url is not None
    try:
        check_bootstrap(settings.kafka_bootstrap_servers)
    except ValueError as exc:
        raise BenchError(f"--broker / STREAMREC_KAFKA_BOOTSTRAP_SERVERS: {exc}") from None
    try:
        admin = KafkaAdminClient(**kafka_python_kwargs(
            settings, client_id="streamrec-bench-check", request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        ))
        admin.close()
    except (KafkaError, OSError, ValueError) as exc:
        raise BenchError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} ({type(exc).__name__}: {exc}). Check --broker "
            "(or STREAMREC_KAFKA_BOOTSTRAP_SERVERS) and STREAMREC_KAFKA_SECURITY_PROTOCOL, and that the broker is "
            "running; leave both --broker and --redis out to use the embedded broker and Redis."
        ) from None
    url = settings.redis_url.get_secret_value()
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise BenchError(
            f"cannot reach Redis at {redacted_url(url)} ({exc}). Check --redis (or STREAMREC_REDIS_URL; "
            "redis://[:password@]host:port/db or rediss:// for TLS) and that the server is running."
        ) from None
