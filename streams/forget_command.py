"""``streamrec forget USER``: erase a user everywhere, through Kafka.

Sends the forget request (see :mod:`agents.forget`: a tombstone with the forget control
header on the clicks topic, keyed by the user, so it lands in the user's partition after
their earlier clicks). The worker that owns the user erases the table state and its
changelog, the Redis list and the published lists. The command also deletes the Redis
list itself at once, so it is gone even while no worker runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agents.forget import forget_headers
from streams.records import MAX_ID

if TYPE_CHECKING:
    from streams.settings import Settings


class ForgetError(RuntimeError):
    """The request could not be sent; the message says why and what to do."""


@dataclass(frozen=True)
class ForgetReceipt:
    """Where the request went."""

    user_id: str
    topic: str
    partition: int
    offset: int
    redis_deleted: bool | None  # None: Redis not reachable (the worker deletes it later)


def check_user_id(user_id: str) -> str:
    """The user id, or ValueError saying what is wrong with it.

    >>> check_user_id("u-42")
    'u-42'
    """
    if not user_id or len(user_id) > MAX_ID:
        raise ValueError(f"a user id has 1 to {MAX_ID} characters (got {len(user_id)})")
    return user_id


def send_forget(settings: Settings, user_id: str, redis_client: object | None = None) -> ForgetReceipt:
    """Send the forget request for ``user_id`` and wait until the broker has it."""
    from kafka.errors import KafkaError

    from streams.producer import create_producer

    check_user_id(user_id)
    try:
        producer = create_producer(settings, acks="all")
    except KafkaError as exc:
        raise ForgetError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}") from None
    try:
        future = producer.send(settings.topic_clicks, key=user_id.encode(), value=None, headers=forget_headers())
        meta = future.get(timeout=30)
    except KafkaError as exc:
        raise ForgetError(f"the forget request for {user_id!r} was not accepted by Kafka: {exc}; nothing changed, "
                          "run the command again") from None
    finally:
        producer.close(timeout=10)
    deleted: bool | None = None
    if redis_client is not None:
        import redis

        try:
            keys = [settings.rec_key(user_id, surface) for surface in settings.surfaces]
            redis_client.delete(*keys)  # type: ignore[attr-defined]  # one slot on a cluster (hash tag)
            deleted = True
        except redis.RedisError:
            deleted = None
    return ForgetReceipt(user_id, meta.topic, meta.partition, meta.offset, deleted)
