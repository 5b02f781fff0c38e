"""Input messages that retention deleted before the group processed them.

A worker that was down longer than the input topics' retention (``retention.ms``,
``retention.bytes``), or that fell that far behind, finds the next offset it has to
process below its partition's log start: the broker deleted those messages. The consumer
then reads from the log start (``auto_offset_reset="earliest"``), but the messages between
can never come. Left alone, nothing past them would ever be committed (Faust sees a gap
at the head of what it acknowledged, and so does :func:`streams.offset_holes.head_missing`),
the partition would be held back for the in-order guard's timeout, and the skipped-input
watch would seek it back to the deleted offset every time, re-reading all of it.

:func:`skip_expired` recognises that state before a partition is sought back to a missing
offset: when the offset lies below the log start, it commits the log start instead (the
deleted messages are lost to every worker alike), reads on from there, logs an error
saying how many events were lost, and reports them (``streamrec_input_expired_total``).
Size the retention of the input topics well above the longest outage a worker may have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Called with (topic, partition, number of messages deleted before they were processed).
OnExpired = Callable[[str, int, int], None]


def expired_count(offset: int, log_start: int | None) -> int:
    """How many messages from ``offset`` on the log no longer has: 0 when ``offset`` is at or
    past the log start (or the log start is unknown).

    >>> expired_count(120, 500), expired_count(500, 500), expired_count(700, 500), expired_count(3, None)
    (380, 0, 0, 0)
    """
    return 0 if log_start is None or offset >= log_start else log_start - offset


async def commit_log_start(consumer: Any, tp: Any, start: int, timeout_s: float) -> bool:
    """Commit offset ``start`` of ``tp`` through Faust ``consumer``'s own path (so its bookkeeping of
    the committed offset follows); False, logged, when the commit failed."""
    try:
        return bool(await asyncio.wait_for(consumer._commit_offsets({tp: start}), timeout=timeout_s))
    except Exception as exc:  # noqa: BLE001 - the caller reports it; its next check tries again
        log.warning("%s[%d]: committing the log start %d failed (%r)", tp.topic, tp.partition, start, exc)
        return False


async def skip_expired(
    consumer: Any, tp: Any, offset: int, on_expired: OnExpired | None = None, timeout_s: float = 30.0,
    seek: bool = True,
) -> int | None:
    """If ``offset`` of ``tp`` (the next one its worker must process) lies below the partition's
    log start, commit the log start, seek there (unless ``seek`` is false) and return it;
    otherwise, or when the log start cannot be read or committed, return None.
    ``on_expired`` hears of the lost messages once they are committed over.

    ``consumer`` is the worker's Faust consumer. The commit goes through Faust's own path, so its
    bookkeeping of the committed offset follows, and commits resume from the log start on.
    """
    try:
        earliest = await asyncio.wait_for(consumer.earliest_offsets(tp), timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - unknown: the caller goes on as if nothing expired
        log.warning("%s[%d]: could not read the log start (%r)", tp.topic, tp.partition, exc)
        return None
    log_start = earliest.get(tp)
    lost = expired_count(offset, None if log_start is None else int(log_start))
    if not lost:
        return None
    assert log_start is not None
    start = int(log_start)
    if not await commit_log_start(consumer, tp, start, timeout_s):
        log.error("%s[%d]: messages from offset %d to %d were deleted by the topic's retention before they were "
                  "processed, and committing the log start %d failed; trying again at the next check",
                  tp.topic, tp.partition, offset, start - 1, start)
        return None
    log.error(
        "%s[%d]: %d messages (offsets %d to %d) were deleted by the topic's retention before this consumer group "
        "processed them: those events are lost. Committed the log start, offset %d, and reading the partition from "
        "there. Keep the input topics' retention well above the longest time a worker may be down or behind.",
        tp.topic, tp.partition, lost, offset, start - 1, start,
    )
    if on_expired is not None:
        on_expired(tp.topic, tp.partition, lost)
    if not seek:
        return start
    try:
        await asyncio.wait_for(consumer.seek_wait({tp: start}), timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - e.g. no longer assigned: the next owner starts at the commit
        log.warning("%s[%d]: seeking to the log start %d failed (%r)", tp.topic, tp.partition, start, exc)
    return start
