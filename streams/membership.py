"""Fencing a worker that may have lost its partitions: no state is written on an unconfirmed membership.

A worker cut off from the broker for longer than the session timeout is dropped from its
consumer group, and another worker takes its partitions. When the link comes back, the cut
worker still believes it owns them until its next heartbeat is refused. Events it fetched
in that window would be processed on its in-memory user states, which stopped at the cut,
and those stale states written to the changelog between the new owner's records. Kafka
fences such a writer with transactions; the embedded broker has none.

:class:`MembershipClock` records when the group last confirmed this worker's membership: a
heartbeat answered, or an assignment received. Once that is a session timeout ago the
broker may have given the partitions away, and :func:`admit_batch` holds a batch back:
it waits briefly for a confirmation, and without one it releases the batch's messages
unprocessed. A released message is neither processed nor acknowledged, so its offset is
never committed: the partition's owner after the rebalance reads it again (or, if this
worker keeps the partition, the skipped-input watch of :mod:`streams.offset_holes` does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from faust.types.tuples import ack_lock


class MembershipClock:
    """When the consumer group last confirmed this worker's membership.

    Written from the consumer's thread (heartbeats), read from the worker's event loop.

    >>> now = [0.0]
    >>> c = MembershipClock(clock=lambda: now[0])
    >>> c.in_doubt(10.0)  # never confirmed: nothing to doubt yet (no partitions either)
    False
    >>> c.confirm(); now[0] = 9.0; c.in_doubt(10.0)
    False
    >>> now[0] = 10.5; c.in_doubt(10.0), round(c.age() or 0, 1)
    (True, 10.5)
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._confirmed_at: float | None = None

    def confirm(self) -> None:
        """The group answered a heartbeat or handed out an assignment: membership confirmed now."""
        self._confirmed_at = self._clock()

    def age(self) -> float | None:
        """Seconds since the last confirmation, or None before the first."""
        return None if self._confirmed_at is None else self._clock() - self._confirmed_at

    def in_doubt(self, session_timeout_s: float) -> bool:
        """True once the last confirmation is ``session_timeout_s`` old: the broker may have dropped us."""
        age = self.age()
        return age is not None and age >= session_timeout_s

    async def wait_confirmed(
        self, session_timeout_s: float, max_wait_s: float, stop: Callable[[], bool], poll_s: float = 0.05
    ) -> bool:
        """Wait up to ``max_wait_s`` for a confirmation; False at the deadline or as soon as ``stop()``."""
        deadline = self._clock() + max_wait_s
        while self.in_doubt(session_timeout_s):
            if stop() or self._clock() >= deadline:
                return False
            await asyncio.sleep(poll_s)
        return True


def release_unprocessed(consumer: Any, events: Iterable[Any]) -> int:
    """Let go of ``events`` without processing them: they are no longer waited for, and
    acknowledging them later (as Faust's ``take_events`` does) commits nothing.

    Their offsets stay uncommitted, so they are read again by whoever owns the partition.
    Returns how many messages were released.
    """
    released = 0
    unacked = getattr(consumer, "_unacked_messages", None)
    with ack_lock:
        for event in events:
            message = event.message
            if message.acked:
                continue
            message.acked = True  # Message.ack() is a no-op from now on: no offset marked safe to commit
            if unacked is not None:
                unacked.discard(message)
            released += 1
    return released


async def admit_batch(
    app: Any,
    membership: MembershipClock,
    events: Sequence[Any],
    session_timeout_s: float,
    max_wait_s: float,
) -> bool:
    """True when ``events`` may be processed; else they are released unprocessed and False.

    A batch is admitted while the membership was confirmed within ``session_timeout_s``, or
    once a confirmation arrives within ``max_wait_s``. A rebalance starting meanwhile, or no
    confirmation in time, releases it (:func:`release_unprocessed`).
    """
    if not membership.in_doubt(session_timeout_s):
        return True
    if await membership.wait_confirmed(session_timeout_s, max_wait_s, stop=lambda: bool(app.rebalancing)):
        return True
    release_unprocessed(app.consumer, events)
    return False
