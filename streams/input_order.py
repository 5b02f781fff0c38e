"""Processing each input partition in offset order when the consumer skipped a message.

The consumer sometimes skips a message it fetched around a rebalance or a worker's start
(see :mod:`streams.offset_holes`) and hands on the ones after it. Processed then, those
later events come *before* the skipped one, which arrives late once the partition is read
again. A user's state does not mind (late events are put in event-time order), but the
co-visitation and bundle increments do when the events were processed once before, by a
worker that crashed after sending their increments and before writing their user states:

- every reader applies an event's increments once, the first version it saw
  (:class:`streams.internal.AppliedEvents`), computed *with* the skipped event before it;
- the successor pairs the later event *without* it, and the skipped event, arriving late,
  then corrects the later event's pairs as if that second version had been applied
  (:mod:`models.pair_history`), so the counts every worker sums drift from an in-order run.

Re-processed in offset order from the restored state, every event pairs exactly as it did
the first time, and its repeated increments are dropped as they should be. So a micro-batch
is cut at a partition's first message that is neither processed nor part of it:
:func:`in_offset_order` keeps the messages up to that point, the rest are released
unprocessed and uncommitted (:func:`streams.membership.release_unprocessed`), and the
partition is sought back to the missing offset at once, and again every second until the
message comes, instead of after the skipped-input watch's timeout. :class:`InputOrder`
bounds this: a message still missing ``timeout_s`` after it was first missed (one that
never comes again) no longer holds its partition back, which then goes on out of order as
before, the skipped-input watch still re-reading it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.expired_input import OnExpired, skip_expired
from streams.membership import release_unprocessed
from streams.offset_holes import in_flight, start_offset

log = logging.getLogger(__name__)


def in_offset_order(
    offsets: Sequence[int], first: int, is_gap: Callable[[int], bool] = lambda _: False
) -> tuple[list[bool], int | None]:
    """Which of a partition's ``offsets`` (in delivery order) continue its processed prefix.

    ``first`` is the partition's first offset neither processed nor a known gap (a
    transaction marker, a compacted record: ``is_gap``). A message is kept when its offset
    is below the next expected one (a re-delivery of a processed message, recognised as a
    duplicate) or equal to it; from the first offset past it, the rest is not. Returns the
    mask and the first missing offset (None when every message is kept).

    >>> in_offset_order([5, 6, 7], first=5)
    ([True, True, True], None)
    >>> in_offset_order([6, 7], first=5)              # 5 was skipped: nothing may overtake it
    ([False, False], 5)
    >>> in_offset_order([5, 7, 6, 8], first=5)       # 6 came after 7: from 7 on it waits
    ([True, False, False, False], 6)
    >>> in_offset_order([3, 5, 7], first=5, is_gap=lambda o: o == 6)  # 3 processed, 6 a marker
    ([True, True, True], None)
    """
    keep: list[bool] = []
    expected = first
    missing: int | None = None
    for offset in offsets:
        if missing is None and offset == expected:
            expected += 1
            while is_gap(expected):
                expected += 1
        elif missing is None and offset > expected:
            missing = expected
        keep.append(missing is None)
    return keep, missing


@dataclass
class _Missing:
    offset: int
    since: float  # when the message was first missed
    sought: float  # when the partition was last sought back to it


class InputOrder:
    """Decides, per partition, whether a message missing ahead of a batch holds it back.

    A missing offset holds its partition back for ``timeout_s`` from when it was first
    missed; the partition is sought back to it then, and again every ``reseek_s`` while it
    is still missing: a seek made while the consumer is still handing on messages it fetched
    before is undone by them (Faust then drops the messages read again as already read).

    >>> order = InputOrder(timeout_s=10.0, reseek_s=1.0)
    >>> order.hold("p0", 5, now=0.0), order.hold("p0", 5, now=0.5), order.hold("p0", 5, now=1.5)
    ('seek', 'hold', 'seek')
    >>> order.hold("p0", 5, now=10.5)   # never came again: go on without it
    'process'
    >>> order.filled("p0"); order.hold("p0", 9, now=11.0)
    'seek'
    """

    def __init__(self, timeout_s: float = 10.0, reseek_s: float = 1.0) -> None:
        if timeout_s <= 0 or reseek_s <= 0:
            raise ValueError("timeout_s and reseek_s must be > 0")
        self.timeout_s = timeout_s
        self.reseek_s = reseek_s
        self._missing: dict[Any, _Missing] = {}
        self._watchers: dict[Any, Any] = {}  # partition -> the task seeking it back until filled

    def hold(self, tp: Any, offset: int, now: float) -> str:
        """``offset`` of ``tp`` is missing ahead of a batch: 'seek' (hold back and seek to it),
        'hold' (hold back, a seek is under way) or 'process' (waited long enough: go on)."""
        m = self._missing.get(tp)
        if m is None or m.offset != offset:
            self._missing[tp] = _Missing(offset, now, now)
            return "seek"
        if now - m.since >= self.timeout_s:
            return "process"
        if now - m.sought >= self.reseek_s:
            m.sought = now
            return "seek"
        return "hold"

    def due(self, tp: Any, now: float) -> int | None:
        """The offset ``tp`` must be sought back to again at ``now``, if any: still missing,
        not waited for ``timeout_s`` yet, and last sought ``reseek_s`` ago or more.

        >>> order = InputOrder(timeout_s=10.0, reseek_s=1.0)
        >>> order.hold("p0", 5, now=0.0)
        'seek'
        >>> order.due("p0", now=0.5), order.due("p0", now=1.0), order.due("p0", now=1.5), order.due("p0", now=10.0)
        (None, 5, None, None)
        """
        m = self._missing.get(tp)
        if m is None or now - m.since >= self.timeout_s or now - m.sought < self.reseek_s:
            return None
        m.sought = now
        return m.offset

    def waiting(self, tp: Any, now: float) -> bool:
        """Whether ``tp`` still waits for a missing offset at ``now``."""
        m = self._missing.get(tp)
        return m is not None and now - m.since < self.timeout_s

    def filled(self, tp: Any) -> None:
        """``tp`` continues its processed prefix again."""
        self._missing.pop(tp, None)

    def watched(self, tp: Any) -> bool:
        """Whether a task is seeking ``tp`` back until its missing message comes."""
        return self._watchers.get(tp) is not None

    def watch(self, tp: Any, task: Any) -> None:
        """Record ``tp``'s re-seeking task (None: it ended)."""
        if task is None:
            self._watchers.pop(tp, None)
        else:
            self._watchers[tp] = task


def first_unprocessed(consumer: Any, tp: Any) -> int | None:
    """``tp``'s first offset a running Faust ``consumer`` has neither committed, nor acknowledged,
    nor marked as a gap (None when it does not know where the partition stands)."""
    first = start_offset(consumer, tp)
    if first is None:
        return None
    acked = consumer._acked_index.get(tp, ())
    if acked and first in acked and min(acked) == first and max(acked) - first + 1 == len(acked):
        first += len(acked)  # the usual case, contiguous: no walk over every acknowledged offset
    gaps = consumer._gap.get(tp)
    while first in acked or (gaps and gaps.overlaps(first)):
        first += 1
    return int(first)


async def keep_in_order(
    consumer: Any,
    order: InputOrder,
    events: Sequence[Any],
    on_seek: Callable[[str, int, int, int], None],
    clock: Callable[[], float] | None = None,
    seek_timeout_s: float = 30.0,
    on_expired: OnExpired | None = None,
) -> list[Any]:
    """``events`` (a micro-batch of a Faust stream) without the messages that would overtake
    a missing one of their partition; those are released unprocessed and the partition is
    sought back to the missing offset (see :class:`InputOrder`). ``on_seek(topic, partition,
    offset, held)`` is called for every seek made for a batch; until the missing message comes,
    a task seeks the partition back again every ``order.reseek_s`` (``clock``: the event
    loop's by default). A missing offset that retention deleted is committed over instead
    (:func:`streams.expired_input.skip_expired`, reported to ``on_expired``)."""
    clock = clock or asyncio.get_running_loop().time
    now = clock()
    by_tp: dict[Any, list[int]] = {}
    for i, e in enumerate(events):
        by_tp.setdefault(e.message.tp, []).append(i)
    dropped: set[int] = set()
    for tp, idx in by_tp.items():
        first = first_unprocessed(consumer, tp)
        if first is None:
            continue
        offsets = [events[i].message.offset for i in idx]
        gaps = consumer._gap.get(tp)

        def is_gap(offset: int, g: Any = gaps) -> bool:
            return bool(g and g.overlaps(offset))

        keep, missing = in_offset_order(offsets, first, is_gap)
        if missing is None:
            order.filled(tp)
            continue
        decision = order.hold(tp, missing, now)
        start = (await skip_expired(consumer, tp, missing, on_expired, seek_timeout_s, seek=False)
                 if decision == "seek" else None)
        if start is not None:  # deleted by retention: it never comes; the log start was committed instead
            order.filled(tp)
            now_first = first_unprocessed(consumer, tp)
            keep, missing = in_offset_order(offsets, start if now_first is None else now_first, is_gap)
            if missing is None:
                continue
            decision = order.hold(tp, missing, now)
        if decision == "process":
            continue
        held = [i for i, k in zip(idx, keep, strict=True) if not k]
        release_unprocessed(consumer, [events[i] for i in held])
        dropped.update(held)
        if decision == "seek":
            log.warning("%s[%d]: the message at offset %d was skipped by the consumer; %d later messages held back "
                        "and the partition read again from it", tp.topic, tp.partition, missing, len(held))
            if await _seek(consumer, tp, missing, seek_timeout_s):
                on_seek(tp.topic, tp.partition, missing, len(held))
            if not order.watched(tp):
                order.watch(tp, asyncio.ensure_future(
                    _reseek_until_filled(consumer, order, tp, on_seek, seek_timeout_s, clock)))
    return [e for i, e in enumerate(events) if i not in dropped]


async def _seek(consumer: Any, tp: Any, offset: int, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(consumer.seek_wait({tp: offset}), timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - e.g. no longer assigned: the next owner reads it
        log.warning("%s[%d]: seeking back to offset %d failed (%r)", tp.topic, tp.partition, offset, exc)
        return False
    return True


async def _reseek_until_filled(consumer: Any, order: InputOrder, tp: Any, on_seek: Callable[[str, int, int, int], None],
                               seek_timeout_s: float, clock: Callable[[], float]) -> None:
    """Seek ``tp`` back to its missing offset every ``order.reseek_s`` until the message there
    is delivered (held by a stream, or processed) or ``order.timeout_s`` has passed."""
    try:
        while order.waiting(tp, clock()):
            await asyncio.sleep(order.reseek_s)
            offset = order.due(tp, clock())
            if offset is None:
                continue
            first = first_unprocessed(consumer, tp)
            if first is None or first > offset:
                order.filled(tp)
                return
            if in_flight(consumer, tp, offset):
                continue  # delivered: on its way to the stream
            log.info("%s[%d]: the message at offset %d is still missing; reading the partition again from it",
                     tp.topic, tp.partition, offset)
            if not await _seek(consumer, tp, offset, seek_timeout_s):
                return
            on_seek(tp.topic, tp.partition, offset, 0)
    finally:
        order.watch(tp, None)
