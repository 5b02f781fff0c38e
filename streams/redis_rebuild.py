"""Rebuilding Redis from the ``recommendations`` topics (the source of truth).

The topic holds one message per refresh, keyed by user_id; the newest message of a
user (within its partition) is that user's current list, and a tombstone (no value)
means the user was forgotten. :func:`rebuild_redis` reads every partition from the
beginning up to the end offsets it found at the start, and writes each user's newest
list with the TTL it has left (lists older than ``rec_ttl_s`` are not restored; a
forgotten user's key is deleted). The other surfaces' lists come the same way from the
surface-recommendations topic (key ``{surface}:{user_id}``) to ``rec:{surface}:{user_id}``.

A user whose forget request is the last word in the ``users`` changelog (its tombstone
carries the request's version, and no state reflecting more input followed it: see
:mod:`streams.state_version`) has every key deleted, whatever list the recommendations
topics hold for them: a worker cut off from the broker may deliver a list it published
before the request after the request's tombstone.

By default a key is written only where Redis has none (``SET NX``), so running workers
may keep writing while it runs: a newer list a worker wrote is never replaced by an
older one from the topic. ``overwrite=True`` replaces every key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streams.state_version import Version, header_version, keep_newer
from streams.topic_reader import TopicReadError, read_to_end
from streams.topics import changelog_topic

if TYPE_CHECKING:
    from streams.settings import Settings


class RebuildError(RuntimeError):
    """The topic or Redis could not be read or written; the message says which and why."""


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild did."""

    messages: int
    users: int
    surface_lists: int  # (surface, user) keys on the surface-recommendations topic
    written: int
    kept: int  # NX: Redis already had a (newer) value
    expired: int
    deleted: int

    def __str__(self) -> str:
        return (
            f"read {self.messages} message(s) for {self.users} user(s) and {self.surface_lists} surface list(s): "
            f"{self.written} list(s) written, "
            f"{self.kept} already in Redis, {self.expired} expired, {self.deleted} forgotten user(s) deleted"
        )


def latest_per_user(records: Iterator[Any], counter: list[int] | None = None) -> dict[bytes, bytes | None]:
    """The newest value per key (None for a tombstone), records in offset order per partition.

    >>> class R:
    ...     def __init__(self, k, v): self.key, self.value = k, v
    >>> latest_per_user(iter([R(b"a", b"1"), R(b"b", b"2"), R(b"a", b"3"), R(b"b", None), R(None, b"x")]))
    {b'a': b'3', b'b': None}
    """
    latest: dict[bytes, bytes | None] = {}
    for r in records:
        if counter is not None:
            counter[0] += 1
        if r.key is not None:
            latest[r.key] = r.value
    return latest


def forgotten_users(records: Iterator[Any]) -> set[str]:
    """Users of ``users`` changelog records (in offset order per partition) whose forget
    request is the last word: its tombstone was not followed by a state reflecting more input.

    >>> from streams.state_version import HEADER
    >>> class R:
    ...     def __init__(self, user, value, version=b""):
    ...         self.key, self.value = f'"{user}"'.encode(), value
    ...         self.headers = [(HEADER, version)] if version else []
    >>> sorted(forgotten_users(iter([
    ...     R("gone", b"s", b"5,1,-1"), R("gone", None, b"9,1,-1"), R("gone", b"late", b"7,2,-1"),
    ...     R("back", b"s", b"5,1,-1"), R("back", None, b"9,1,-1"), R("back", b"new", b"10,1,-1"),
    ...     R("expired", b"s", b"3,-1,-1"), R("expired", None)])))
    ['gone']
    """
    versions: dict[str, Version] = {}
    for r in records:
        try:
            user = json.loads(r.key) if r.key is not None else None
        except ValueError:
            continue
        if isinstance(user, str):
            keep_newer(versions, user, r.value, header_version(r.headers))
    return {user for user, version in versions.items() if version.erased}


def _read_topic(settings: Settings, topic: str, timeout_s: float, required: bool = True,
                setting: str = "STREAMREC_TOPIC_RECOMMENDATIONS") -> Iterator[Any]:
    """Every record of ``topic`` up to its end; nothing when it does not exist and is not ``required``."""
    try:
        yield from read_to_end(settings, topic, timeout_s, required=required, setting=setting,
                               purpose="redis-rebuild")
    except TopicReadError as exc:
        raise RebuildError(str(exc)) from None


def rebuild_redis(
    settings: Settings, client: Any, *, overwrite: bool = False, now: float | None = None, timeout_s: float = 300.0,
    batch: int = 1000,
) -> RebuildReport:
    """Write every user's newest list from the recommendations topic to Redis (``client``: redis-py's
    ``Redis``, or ``RedisCluster``: the pipeline then splits by slot)."""
    import redis

    from agents.surfaces import split_surface_key

    counter = [0]
    latest = latest_per_user(_read_topic(settings, settings.topic_recommendations, timeout_s), counter)
    surfaces = latest_per_user(
        _read_topic(settings, settings.topic_surface_recommendations, timeout_s, required=False), counter
    )
    messages = counter[0]
    forgotten = forgotten_users(_read_topic(settings, changelog_topic(settings, "users"), timeout_s, required=False,
                                            setting="STREAMREC_APP_ID"))
    now = time.time() if now is None else now
    written = kept = expired = deleted = 0
    items: list[tuple[str, bytes | None]] = []
    for k, v in latest.items():
        user_id = k.decode("utf-8", "replace")
        items.append((settings.rec_key(user_id), None if user_id in forgotten else v))
    for key, value in surfaces.items():
        surface, user_id = split_surface_key(key)
        if surface in settings.surfaces and surface != "home":  # a surface since removed is not restored
            items.append((settings.rec_key(user_id, surface), None if user_id in forgotten else value))
    try:
        for start in range(0, len(items), batch):
            pipe = client.pipeline(transaction=False)
            ops: list[str] = []
            for rkey, value in items[start : start + batch]:
                if value is None:
                    pipe.delete(rkey)
                    ops.append("delete")
                    continue
                generated = float(json.loads(value).get("generated_at", now))
                ttl = int(settings.rec_ttl_s - (now - generated))
                if ttl <= 0:
                    expired += 1
                    continue
                pipe.set(rkey, value, ex=ttl, nx=not overwrite)
                ops.append("set")
            for op, result in zip(ops, pipe.execute(), strict=True):
                if op == "delete":
                    deleted += 1
                elif result:
                    written += 1
                else:
                    kept += 1
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        raise RebuildError(f"cannot write to Redis: {exc}") from None
    return RebuildReport(messages, len(latest), len(surfaces), written, kept, expired, deleted)
