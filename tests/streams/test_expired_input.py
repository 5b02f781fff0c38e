"""Input messages deleted by retention before they were processed are committed over, not waited for.

The embedded broker applies no retention and has no DeleteRecords, so these tests give the
consumer's bookkeeping a log start past its committed offset, as a Kafka broker reports after
retention deleted the oldest segments.
"""

from __future__ import annotations

import asyncio
from collections import namedtuple

import pytest

from streams.expired_input import expired_count, skip_expired
from streams.input_order import InputOrder, keep_in_order
from tests.streams.consumer_events import Event, StandInConsumer, run_watch

TP = namedtuple("TP", "topic partition")
CLICKS0 = TP("clicks", 0)


def _consumer(committed: int, log_start: int, commit_ok: bool = True, read: int | None = None) -> StandInConsumer:
    """A consumer whose log starts past offsets it has not processed: retention deleted them."""
    return StandInConsumer(CLICKS0, committed, log_start=log_start, log_end=900, commit_ok=commit_ok, read=read)


def test_expired_count() -> None:
    assert [expired_count(o, 500) for o in (0, 499, 500, 501)] == [500, 1, 0, 0]
    assert expired_count(10, None) == 0


def test_an_offset_below_the_log_start_is_committed_over_and_reported() -> None:
    consumer, lost = _consumer(committed=120, log_start=500), []
    start = asyncio.run(skip_expired(consumer, CLICKS0, 120, lambda *a: lost.append(a)))
    assert start == 500
    assert consumer.commits == [{CLICKS0: 500}] and consumer.sought == [{CLICKS0: 500}]
    assert lost == [("clicks", 0, 380)]


def test_an_offset_the_log_still_has_changes_nothing() -> None:
    consumer, lost = _consumer(committed=500, log_start=500), []
    assert asyncio.run(skip_expired(consumer, CLICKS0, 500, lambda *a: lost.append(a))) is None
    assert consumer.commits == [] and consumer.sought == [] and lost == []


def test_a_failed_commit_counts_nothing_and_is_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    consumer, lost = _consumer(committed=120, log_start=500, commit_ok=False), []
    assert asyncio.run(skip_expired(consumer, CLICKS0, 120, lambda *a: lost.append(a))) is None
    assert lost == [] and consumer.sought == []
    assert "committing the log start 500 failed" in caplog.text
    consumer.commit_ok = True
    assert asyncio.run(skip_expired(consumer, CLICKS0, 120, lambda *a: lost.append(a))) == 500
    assert lost == [("clicks", 0, 380)]


def test_an_unreadable_log_start_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    consumer = _consumer(committed=120, log_start=500)

    async def fails(*tps: TP) -> dict[TP, int]:
        raise TimeoutError

    consumer.earliest_offsets = fails  # type: ignore[method-assign]
    assert asyncio.run(skip_expired(consumer, CLICKS0, 120)) is None
    assert consumer.commits == [] and "could not read the log start" in caplog.text


def _keep(consumer: StandInConsumer, offsets: list[int], lost: list[tuple]) -> tuple[list[int], list[tuple]]:
    batch = [Event(CLICKS0, o) for o in offsets]
    for e in batch:
        consumer._unacked_messages.add(e.message)
    seeks: list[tuple] = []
    kept = asyncio.run(keep_in_order(consumer, InputOrder(), batch, lambda *a: seeks.append(a), clock=lambda: 0.0,
                                     on_expired=lambda *a: lost.append(a)))
    return [e.message.offset for e in kept], seeks


def test_a_batch_from_the_log_start_is_processed_when_retention_deleted_what_came_before() -> None:
    # The worker was down past the retention: its committed offset 120 is gone, the consumer read from 500.
    consumer, lost = _consumer(committed=120, log_start=500), []
    kept, seeks = _keep(consumer, [500, 501, 502], lost)
    assert kept == [500, 501, 502] and seeks == []  # nothing held back, nothing sought back to 120
    assert consumer.commits == [{CLICKS0: 500}] and consumer.sought == []
    assert lost == [("clicks", 0, 380)]


def test_a_message_skipped_at_the_log_start_is_still_waited_for() -> None:
    consumer, lost = _consumer(committed=120, log_start=500), []
    kept, seeks = _keep(consumer, [501, 502], lost)
    assert kept == [] and seeks == [("clicks", 0, 500, 2)]  # 500 exists: the partition is read again from it
    assert consumer.commits == [{CLICKS0: 500}] and lost == [("clicks", 0, 380)]


def test_the_skipped_input_watch_commits_over_a_deleted_head_instead_of_reading_it_again() -> None:
    consumer, lost = _consumer(committed=120, log_start=500, read=899), []
    repaired = run_watch(consumer, on_expired=lambda *a: lost.append(a))
    assert lost == [("clicks", 0, 380)]  # once: the committed offset moved to the log start
    assert consumer.commits == [{CLICKS0: 500}] and consumer.sought[0] == {CLICKS0: 500}
    # Nothing processes the stand-in's messages: the watch goes on re-reading from the log start, never from 120.
    assert all(offset == 500 for _, _, offset in repaired)
