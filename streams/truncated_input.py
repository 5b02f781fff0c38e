"""Input partitions whose log now ends below the offset the group committed.

That happens when an input topic is deleted and created again (its offsets start over at
0), or when a broker truncates a partition (an unclean leader election). The consumer
then resets to the log start (``auto_offset_reset="earliest"``), but Faust hands on no
record below the offset it last read, the old committed one, and drops the others without
a word. Left alone, a recreated topic's first events were lost, as many per partition as
the group had committed on the old one, and a truncated partition's new events were lost
until its log grew past the old offset.

A healthy log never ends below an offset its group committed, so the skipped-input watch
(:mod:`streams.offset_holes`) recognises this state (:func:`is_truncated`) once it has lasted
the watch's timeout, and :func:`restart_truncated` commits the log start, seeks there (which
also resets Faust's read offset), logs an error and reports the partition
(``streamrec_input_log_resets_total``). Reading from the log start is the consumer's own
policy: for a recreated topic those are all new events; for a truncated partition they
include events processed before, which a user's state recognises within its dedup window
(``STREAMREC_DEDUP_WINDOW`` events) and would apply again beyond it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from streams.expired_input import commit_log_start

log = logging.getLogger(__name__)

#: Called with (topic, partition, the old committed offset, the log end found below it).
OnLogReset = Callable[[str, int, int, int], None]


def is_truncated(committed: int | None, log_end: int | None) -> bool:
    """True when the log ends below ``committed``, the next offset the group would process.

    >>> is_truncated(1000, 40), is_truncated(1000, 1000), is_truncated(1000, None), is_truncated(None, 3)
    (True, False, False, False)
    """
    return committed is not None and log_end is not None and log_end < committed


async def restart_truncated(
    consumer: Any, tp: Any, committed: int, log_end: int, on_reset: OnLogReset | None = None,
    timeout_s: float = 30.0,
) -> int | None:
    """Commit ``tp``'s log start and read the partition again from there; return the log start,
    or None when it could not be read or committed (the next check tries again).

    ``consumer`` is the worker's Faust consumer: the commit goes through Faust's own path, so
    its bookkeeping of the committed offset follows, and its seek resets the read offset below
    which Faust drops records. ``committed`` and ``log_end`` are what the caller observed.
    """
    try:
        earliest = await asyncio.wait_for(consumer.earliest_offsets(tp), timeout=timeout_s)
        start = int(earliest[tp])
    except Exception as exc:  # noqa: BLE001 - unknown: try again at the next check
        log.warning("%s[%d]: could not read the log start (%r)", tp.topic, tp.partition, exc)
        return None
    if not await commit_log_start(consumer, tp, start, timeout_s):
        log.error("%s[%d]: the log ends at offset %d, below the committed offset %d, and committing its start %d "
                  "failed; trying again at the next check", tp.topic, tp.partition, log_end, committed, start)
        return None
    # Offsets acknowledged on the old log mean nothing on the new one.
    for bookkeeping in (consumer._acked, consumer._acked_index, consumer._gap):
        bookkeeping.pop(tp, None)
    log.error(
        "%s[%d]: the log ends at offset %d, below offset %d that this consumer group had committed: the topic was "
        "deleted and created again, or the broker truncated the partition. Committed the log start, offset %d, and "
        "reading the partition from there.", tp.topic, tp.partition, log_end, committed, start,
    )
    if on_reset is not None:
        on_reset(tp.topic, tp.partition, committed, log_end)
    try:
        await asyncio.wait_for(consumer.seek_wait({tp: start}), timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - e.g. no longer assigned: the next owner starts at the commit
        log.warning("%s[%d]: seeking to the log start %d failed (%r)", tp.topic, tp.partition, start, exc)
    return start
