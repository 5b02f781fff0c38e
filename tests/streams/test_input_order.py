"""A partition's messages are processed in offset order: none overtakes one the consumer skipped."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from typing import Any

import pytest
from intervaltree import IntervalTree

from streams.input_order import InputOrder, first_unprocessed, in_offset_order, keep_in_order
from tests.streams.consumer_events import Event

TP = namedtuple("TP", "topic partition")
CLICKS0, CLICKS1 = TP("clicks", 0), TP("clicks", 1)


@pytest.mark.parametrize(
    ("offsets", "first", "keep", "missing"),
    [
        ([5, 6, 7], 5, [True, True, True], None),
        ([6, 7], 5, [False, False], 5),  # the head was skipped
        ([5, 6, 8, 9], 5, [True, True, False, False], 7),  # one skipped in the middle
        ([5, 7, 6], 5, [True, False, False], 6),  # out of order within the batch
        ([2, 3, 5], 5, [True, True, True], None),  # re-deliveries of processed messages
        ([], 5, [], None),
    ],
)
def test_in_offset_order(offsets: list[int], first: int, keep: list[bool], missing: int | None) -> None:
    assert in_offset_order(offsets, first) == (keep, missing)


def test_known_gaps_are_not_missing() -> None:
    assert in_offset_order([5, 8], 5, is_gap=lambda o: o in (6, 7)) == ([True, True], None)
    assert in_offset_order([5, 8], 5, is_gap=lambda o: o == 6) == ([True, False], 7)


def test_a_missing_message_holds_its_partition_until_the_timeout() -> None:
    order = InputOrder(timeout_s=5.0, reseek_s=1.0)
    assert [order.hold(CLICKS0, 5, t) for t in (0.0, 0.9, 1.0, 1.5, 4.9, 5.0, 60.0)] == [
        "seek", "hold", "seek", "hold", "seek", "process", "process"]
    assert order.hold(CLICKS1, 5, 0.0) == "seek"  # partitions are apart
    assert order.hold(CLICKS0, 6, 61.0) == "seek"  # another missing offset starts a fresh wait
    order.filled(CLICKS0)
    assert order.hold(CLICKS0, 6, 62.0) == "seek"


def test_settings_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        InputOrder(timeout_s=0.0)


class _Consumer:
    """The bits of a Faust consumer's bookkeeping :func:`keep_in_order` reads and the seek it makes."""

    def __init__(self, committed: dict[TP, int], acked: dict[TP, set[int]] | None = None,
                 gaps: dict[TP, IntervalTree] | None = None, fail_seek: bool = False) -> None:
        self._committed_offset: dict[TP, int | None] = dict(committed)
        self._acked_index = acked or {}
        self._gap = gaps or {}
        self._unacked_messages: set[Any] = set()
        self.sought: list[dict[TP, int]] = []
        self.fail_seek = fail_seek

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        if self.fail_seek:
            raise RuntimeError("partition not assigned")
        self.sought.append(offsets)


def run(consumer: _Consumer, order: InputOrder, batch: list[Event], now: float = 0.0) -> tuple[list[Event], list[tuple]]:
    for e in batch:
        consumer._unacked_messages.add(e.message)
    seeks: list[tuple] = []
    kept = asyncio.run(keep_in_order(consumer, order, batch, lambda *a: seeks.append(a), clock=lambda: now))
    return kept, seeks


def test_messages_past_a_skipped_one_are_released_and_the_partition_read_again() -> None:
    consumer = _Consumer({CLICKS0: 5, CLICKS1: 3})
    batch = [Event(CLICKS1, 3), Event(CLICKS0, 6), Event(CLICKS1, 4), Event(CLICKS0, 7)]
    kept, seeks = run(consumer, InputOrder(), batch)
    assert [(e.message.partition, e.message.offset) for e in kept] == [(1, 3), (1, 4)]
    assert consumer.sought == [{CLICKS0: 5}] and seeks == [("clicks", 0, 5, 2)]
    held = [e.message for e in batch if e.message.partition == 0]
    # Released: acknowledging them later commits nothing, and nobody waits for them.
    assert all(m.acked for m in held) and not consumer._unacked_messages & set(held)
    assert not any(e.message.acked for e in kept)


def test_processed_and_gap_offsets_continue_the_prefix() -> None:
    consumer = _Consumer({CLICKS0: 5}, acked={CLICKS0: {5, 6}}, gaps={CLICKS0: IntervalTree.from_tuples([(7, 9)])})
    assert first_unprocessed(consumer, CLICKS0) == 9
    kept, seeks = run(consumer, InputOrder(), [Event(CLICKS0, 9), Event(CLICKS0, 10)])
    assert len(kept) == 2 and not seeks


def test_a_partition_never_committed_starts_where_it_was_sought_to() -> None:
    consumer = _Consumer({CLICKS0: None})  # type: ignore[dict-item]
    assert first_unprocessed(consumer, CLICKS0) is None  # nothing known: nothing held
    consumer.start_offsets = {CLICKS0: 0}  # type: ignore[attr-defined]
    kept, seeks = run(consumer, InputOrder(), [Event(CLICKS0, 1)])
    assert kept == [] and seeks == [("clicks", 0, 0, 1)]


def test_after_the_timeout_the_partition_goes_on_out_of_order() -> None:
    consumer, order = _Consumer({CLICKS0: 5}), InputOrder(timeout_s=2.0)
    assert run(consumer, order, [Event(CLICKS0, 6)], now=0.0)[0] == []
    assert run(consumer, order, [Event(CLICKS0, 6)], now=0.5) == ([], [])  # held, the seek under way
    kept, seeks = run(consumer, order, [Event(CLICKS0, 6), Event(CLICKS0, 7)], now=2.0)
    assert len(kept) == 2 and not seeks
    assert consumer.sought == [{CLICKS0: 5}]


def test_a_failed_seek_is_logged_and_its_messages_left_to_the_partitions_owner(caplog: pytest.LogCaptureFixture) -> None:
    consumer = _Consumer({CLICKS0: 5}, fail_seek=True)
    kept, seeks = run(consumer, InputOrder(), [Event(CLICKS0, 6)])
    assert kept == [] and seeks == []
    assert "seeking back to offset 5 failed" in caplog.text


def test_the_partition_is_sought_back_again_until_the_missing_message_comes() -> None:
    consumer, order = _Consumer({CLICKS0: 5}), InputOrder(timeout_s=30.0, reseek_s=0.02)
    seeks: list[tuple] = []

    async def scenario() -> None:
        event = Event(CLICKS0, 6)
        consumer._unacked_messages.add(event.message)
        assert await keep_in_order(consumer, order, [event], lambda *a: seeks.append(a)) == []
        await asyncio.sleep(0.1)  # the first seek was undone (its messages dropped): sought again
        assert len(consumer.sought) >= 3 and all(s == {CLICKS0: 5} for s in consumer.sought)
        assert order.watched(CLICKS0)
        consumer._acked_index[CLICKS0] = {5, 6}  # the message came and was processed
        await asyncio.sleep(0.1)
        assert not order.watched(CLICKS0) and not order.waiting(CLICKS0, asyncio.get_running_loop().time())

    asyncio.run(scenario())
    n = len(consumer.sought)
    assert seeks[0] == ("clicks", 0, 5, 1) and seeks[1:] == [("clicks", 0, 5, 0)] * (n - 1)


@pytest.mark.parametrize(
    ("acked", "first"),
    [(set(), 5), ({5, 6, 7}, 8), ({5, 6, 8}, 7), ({6, 7}, 5), ({3, 4, 5, 6}, 7)],
)
def test_first_unprocessed_follows_the_acknowledged_offsets(acked: set[int], first: int) -> None:
    assert first_unprocessed(_Consumer({CLICKS0: 5}, acked={CLICKS0: acked}), CLICKS0) == first
