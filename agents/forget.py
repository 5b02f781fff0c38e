"""Erasing users: on request (``streamrec forget USER``) and when their state expires.

A forget request is a Kafka tombstone on the clicks topic: key the user_id, no value,
and the header ``streamrec.control: forget`` (a null value without that header is bad
input and goes to the DLQ). Riding the user's own clicks partition, it is ordered after
every click the user sent before it, is processed by whichever worker owns the user, and
survives a crash like any event (its offset is committed only after it took effect).

Erasing a user means: the state leaves the table's store and a tombstone goes to the
table's changelog (compaction then drops every earlier state, and no recovering worker
sees it again; a request's tombstone carries its version, so a late record of the state
before it, from a worker cut off from the broker, is not applied after it); ``rec:{user_id}`` is deleted from Redis (queued, so an outage delays it
but never loses it); and a tombstone goes to the recommendations topic (and one per other
surface to the surface-recommendations topic), so that ``streamrec redis-rebuild`` does not
bring the lists back.

Expired states (no event for ``user_state_ttl_s``) are erased the same way by a
periodic sweep of the worker's own partitions, and ignored on load before that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from faust.types import EventT

from agents.surfaces import surface_key
from models.interest import UserState
from streams.partitioning import partition_of_key
from streams.state_version import Version
from streams.user_table import delete_states

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)

CONTROL_HEADER = "streamrec.control"
FORGET = b"forget"


def forget_headers() -> list[tuple[str, bytes]]:
    """Headers of a forget request."""
    return [(CONTROL_HEADER, FORGET)]


def _header(headers: Any, name: str) -> bytes | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key == name:
            return cast(bytes, value)
    return None


def is_forget(event: EventT) -> bool:
    """True for a forget request: a null value with the forget control header."""
    return event.value is None and _header(event.message.headers, CONTROL_HEADER) == FORGET


async def erase_users(
    p: Pipeline, partitions: Mapping[str, int], reason: str, versions: Mapping[str, Version] | None = None
) -> None:
    """Erase ``partitions``' users (user_id -> partition of their table state) everywhere.

    ``versions`` (of forget requests: see :mod:`streams.state_version`) go with the
    changelog tombstones, so that no record of the state before a request brings it back."""
    if not partitions:
        return

    def failed(exc: BaseException) -> None:
        # The erasure must not count as done: stop, so the request is processed again.
        log.critical("a user's tombstone could not be written (%r); stopping the worker", exc)
        p.metrics.publish_errors.inc()
        asyncio.ensure_future(p.app.crash(exc))

    await delete_states(p.users, p.app.producer, partitions, failed, versions)
    producer, topic = p.app.producer, p.settings.topic_recommendations
    for user_id in partitions:
        for surface in p.settings.surfaces:  # rec:{user_id} and every rec:{surface}:{user_id}
            p.redis.delete(p.settings.rec_key(user_id, surface))
        delivery = cast("asyncio.Future[Any]", await producer.send(topic, user_id.encode(), None, None, None, None))
        delivery.add_done_callback(p.on_delivery)
        for surface in p.settings.surfaces:
            if surface != "home":
                delivery = cast("asyncio.Future[Any]", await producer.send(
                    p.settings.topic_surface_recommendations, surface_key(surface, user_id), None, None, None, None))
                delivery.add_done_callback(p.on_delivery)
    p.metrics.forgotten.labels(reason).inc(len(partitions))
    log.info("erased %d user(s) (%s)", len(partitions), reason)




def expired_users(
    items: Iterable[tuple[str, bytes | None]], now: float, ttl_s: float
) -> list[str]:
    """Users whose stored state saw no event for longer than ``ttl_s`` at ``now``.

    >>> old, new = UserState(last_ts=100.0).to_bytes(), UserState(last_ts=990.0).to_bytes()
    >>> expired_users([("a", old), ("b", new), ("c", None)], now=1000.0, ttl_s=500.0)
    ['a']
    """
    out = []
    for user_id, raw in items:
        if not raw:
            continue
        last = UserState.from_bytes(raw).last_ts
        if last > 0 and now - last > ttl_s:
            out.append(user_id)
    return out


def register(p: Pipeline) -> None:
    """Attach the sweep that erases expired user states from this worker's partitions."""
    s = p.settings
    if not s.user_state_ttl_s:
        return

    @p.app.timer(s.state_sweep_interval_s, on_leader=False)
    async def sweep_expired_states() -> None:
        if p.app.in_recovery:
            return
        owned = {tp.partition for tp in p.app.consumer.assignment() if tp.topic == s.topic_clicks}
        candidates = expired_users(list(p.users.data.items()), time.time(), s.user_state_ttl_s)
        due = {}
        for user_id in candidates:
            partition = partition_of_key(user_id.encode(), s.partitions)
            if partition in owned:  # never erase a partition this worker only holds a copy of
                due[user_id] = partition
        await erase_users(p, due, "ttl")
