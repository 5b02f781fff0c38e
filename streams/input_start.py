"""Where an input partition the group never committed starts reading, after every rebalance.

After a rebalance, Faust seeks each assigned partition to the group's committed offset
(``Consumer.perform_seek``, through aiokafka's ``seek_to_committed``). A partition with no
committed offset is not sought at all: it keeps whatever position its fetches reached. And
Faust drops records it had already fetched when its flow is suspended or the generation
changes in the middle of a fetched batch (``Consumer.getmany``), relying on that seek to
read them again. So a worker starting on a partition nobody committed yet, whose first
fetch landed during the rebalance, silently skipped that fetch's records: a crashed
worker's successor lost the first ~90 events of every clicks partition that way.

:func:`seek_uncommitted_to_start` closes that path: every input partition without a
committed offset is sought to its log start (the worker reads from the earliest offset
when the group has none) and the offset it was sought to is remembered, so the commit
guard (:func:`streams.offset_holes.head_missing`) also holds for a partition's first
commit: nothing is committed over an unprocessed message at the start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

log = logging.getLogger(__name__)


def uncommitted(
    assigned: Iterable[Any], committed: Mapping[Any, int | None], is_input: Callable[[str], bool]
) -> list[Any]:
    """The input partitions of ``assigned`` that have no committed offset, in order.

    Faust records a committed offset of 0 as None: such a partition starts at its log start
    too, which is where offset 0 is.

    >>> uncommitted([("clicks", 1), ("clicks", 0), ("users-changelog", 0)], {("clicks", 1): 12},
    ...             lambda topic: topic == "clicks")
    [('clicks', 0)]
    """
    return sorted(tp for tp in assigned if is_input(tp[0]) and committed.get(tp) is None)


async def seek_uncommitted_to_start(consumer: Any, starts: MutableMapping[Any, int]) -> dict[Any, int]:
    """Seek every assigned input partition of Faust ``consumer`` that has no committed offset
    to its log start, and record the offsets sought to in ``starts``. Returns them (empty
    when the log starts could not be read: the partitions are then sought to offset 0)."""
    tps = uncommitted(consumer.assignment(), consumer._committed_offset, consumer.app.topics.acks_enabled_for)
    for tp in list(starts):
        if tp not in tps:
            del starts[tp]  # committed since, or no longer assigned
    if not tps:
        return {}
    try:
        earliest = await consumer.earliest_offsets(*tps)
    except Exception as exc:  # noqa: BLE001 - the seek matters more than knowing where it lands
        # Offset 0 is below a truncated log's start: the consumer then resets to the earliest
        # offset itself. The start stays unknown, so the first commit is not guarded.
        log.warning("could not read the log start of %d input partitions (%r): reading them from offset 0",
                    len(tps), exc)
        await consumer.seek_wait(dict.fromkeys(tps, 0))
        for tp in tps:
            starts.pop(tp, None)
        return {}
    sought = {tp: max(int(earliest.get(tp) or 0), 0) for tp in tps}
    await consumer.seek_wait(sought)
    starts.update(sought)
    log.info("input partitions the group never committed read from their log start: %s",
             {f"{tp.topic}[{tp.partition}]": offset for tp, offset in sought.items()})
    return sought
