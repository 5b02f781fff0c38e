"""The fence against a stale writer: batches held back while the group's confirmation is overdue."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types.tuples import ConsumerMessage

from streams.membership import MembershipClock, admit_batch, release_unprocessed


class _Consumer:
    """The part of a Faust consumer that acknowledgement touches."""

    def __init__(self) -> None:
        self._unacked_messages: set[Any] = set()
        self.acked: list[int] = []

    def ack(self, message: Any) -> bool:  # what ConsumerMessage.on_final_ack calls
        message.acked = True  # as Faust's Consumer.ack marks it
        self.acked.append(message.offset)
        self._unacked_messages.discard(message)
        return True


def _batch(consumer: _Consumer, offsets: list[int]) -> list[Any]:
    events = []
    for offset in offsets:
        m = ConsumerMessage("events.clicks", 3, offset, 0.0, 0, None, b"u", b"{}", None)
        m.incref()
        consumer._unacked_messages.add(m)
        events.append(SimpleNamespace(message=m))
    return events


def test_a_released_message_is_not_waited_for_and_its_later_ack_marks_nothing_to_commit() -> None:
    consumer = _Consumer()
    events = _batch(consumer, [124, 125, 126])
    assert release_unprocessed(consumer, events[:2]) == 2
    assert consumer._unacked_messages == {events[2].message}  # a rebalance no longer waits for them
    for e in events:  # what take_events does after the loop body, processed or not
        e.message.ack(consumer)
    assert consumer.acked == [126]  # only the one that was processed counts towards a commit
    assert release_unprocessed(consumer, events) == 0  # already acknowledged: nothing to release


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _confirmed_then(age_s: float) -> tuple[_Clock, MembershipClock]:
    """A membership confirmed at t=0, looked at ``age_s`` later."""
    clock = _Clock()
    membership = MembershipClock(clock)
    membership.confirm()
    clock.now = age_s
    return clock, membership


def test_a_batch_is_admitted_while_membership_is_fresh() -> None:
    _, membership = _confirmed_then(9.9)
    consumer = _Consumer()
    events = _batch(consumer, [1])
    app = SimpleNamespace(rebalancing=False, consumer=consumer)
    assert asyncio.run(admit_batch(app, membership, events, 10.0, 3.0))
    assert consumer._unacked_messages  # untouched


def test_an_overdue_membership_confirmed_in_time_admits_the_batch() -> None:
    _, membership = _confirmed_then(15.0)  # a cut longer than the session timeout
    consumer = _Consumer()
    events = _batch(consumer, [1, 2])
    app = SimpleNamespace(rebalancing=False, consumer=consumer)

    async def run() -> bool:
        async def heartbeat_answered() -> None:
            await asyncio.sleep(0.05)
            membership.confirm()  # the broker still counts us in (it kept the member)

        beat = asyncio.ensure_future(heartbeat_answered())
        admitted = await admit_batch(app, membership, events, 10.0, 3.0)
        await beat
        return admitted

    assert asyncio.run(run())
    assert len(consumer._unacked_messages) == 2


def test_an_overdue_membership_releases_the_batch_when_a_rebalance_starts_or_the_wait_ends() -> None:
    clock, membership = _confirmed_then(15.0)
    consumer = _Consumer()
    events = _batch(consumer, [7, 8])
    rebalancing = SimpleNamespace(rebalancing=True, consumer=consumer)
    assert not asyncio.run(admit_batch(rebalancing, membership, events, 10.0, 3.0))
    assert not consumer._unacked_messages and all(e.message.acked for e in events)

    more = _batch(consumer, [9])
    quiet = SimpleNamespace(rebalancing=False, consumer=consumer)

    async def run() -> bool:
        async def time_passes() -> None:
            while True:
                await asyncio.sleep(0.01)
                clock.now += 1.0

        ticking = asyncio.ensure_future(time_passes())
        try:
            return await admit_batch(quiet, membership, more, 10.0, 3.0)
        finally:
            ticking.cancel()

    assert not asyncio.run(asyncio.wait_for(run(), 10))
    assert not consumer._unacked_messages
