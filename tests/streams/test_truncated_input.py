"""A partition whose log ends below the committed offset is read again from its log start.

Unit tests on the consumer's bookkeeping; ``test_input_recreated.py`` deletes and creates a
topic again on the embedded broker with a worker.
"""

from __future__ import annotations

import asyncio
from collections import namedtuple

import pytest

from streams.offset_holes import HeadState, HoleWatch
from streams.truncated_input import restart_truncated
from tests.streams.consumer_events import StandInConsumer, run_watch

TP = namedtuple("TP", "topic partition")
CLICKS0 = TP("clicks", 0)


def _consumer(committed: int, log_end: int, log_start: int = 0, commit_ok: bool = True) -> StandInConsumer:
    """A consumer that read and committed up to ``committed`` on a log now ending at ``log_end``."""
    return StandInConsumer(CLICKS0, committed, log_start=log_start, log_end=log_end, commit_ok=commit_ok,
                           read=committed, acked=(1001, 1002))  # acknowledged on the old log


def test_a_log_ending_below_the_committed_offset_is_read_again_from_its_start() -> None:
    consumer, resets = _consumer(committed=1000, log_end=40), []
    assert asyncio.run(restart_truncated(consumer, CLICKS0, 1000, 40, lambda *a: resets.append(a))) == 0
    assert consumer.commits == [{CLICKS0: 0}] and consumer.sought == [{CLICKS0: 0}]
    assert consumer._read_offset[CLICKS0] is None  # Faust hands on every record again
    assert CLICKS0 not in consumer._acked and CLICKS0 not in consumer._acked_index  # the old log's offsets are gone
    assert resets == [("clicks", 0, 1000, 40)]


def test_a_truncated_partition_restarts_at_its_log_start_not_at_zero() -> None:
    consumer = _consumer(committed=1000, log_end=900, log_start=300)
    assert asyncio.run(restart_truncated(consumer, CLICKS0, 1000, 900)) == 300
    assert consumer.commits == [{CLICKS0: 300}] and consumer.sought == [{CLICKS0: 300}]


def test_a_failed_commit_reports_nothing_and_is_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    consumer, resets = _consumer(committed=1000, log_end=40, commit_ok=False), []
    assert asyncio.run(restart_truncated(consumer, CLICKS0, 1000, 40, lambda *a: resets.append(a))) is None
    assert resets == [] and consumer.sought == [] and "committing its start 0 failed" in caplog.text
    assert consumer._acked[CLICKS0] == [1001, 1002]  # nothing changed


def test_the_watch_waits_its_timeout_before_restarting_a_truncated_partition() -> None:
    w = HoleWatch(timeout_s=5.0)
    truncated = HeadState(committed=1000, read=1000, highwater=40, acked=False, in_flight=False)
    assert [w.observe(CLICKS0, truncated, now) for now in (0.0, 4.0, 5.5)] == [False, False, True]
    healthy = HeadState(committed=1000, read=1000, highwater=1000, acked=False, in_flight=False)
    assert not w.observe(CLICKS0, healthy, 6.0)


def test_the_skipped_input_watch_restarts_a_recreated_partition_once() -> None:
    consumer, resets = _consumer(committed=1000, log_end=40), []
    repaired = run_watch(consumer, on_log_reset=lambda *a: resets.append(a))
    assert resets == [("clicks", 0, 1000, 40)]  # once: the committed offset moved to the log start
    assert consumer.commits == [{CLICKS0: 0}] and consumer.sought[0] == {CLICKS0: 0}
    assert repaired == []  # from the log start on, nothing looks like a skipped message
