"""Re-reading input messages the consumer skipped: a watchdog for holes at a partition's head.

Around a rebalance Faust can drop a fetched message without handing it to its stream
and without acknowledging it: its streams skip messages stamped with an older consumer
generation (or read while flow is suspended), and messages fetched while the recovery
seeks a partition back to its committed offset race that seek. The consumer's read
position has already moved past the dropped message, so it is not fetched again, while
the messages after it are processed and acknowledged. The committed offset then stays
at the dropped message (nothing past a gap is committed), which keeps it safe in Kafka,
but the worker never processes it until it restarts: its user's state misses an event
and their list is not refreshed.

A stream can also lose a message it did take: Faust's ``take_events`` buffer has been
seen to keep one message tracked as in flight forever, never processed nor acknowledged,
while the messages after it were processed and acknowledged (and one of them acknowledged
twice). A partition processes its messages in offset order and a batch acknowledges all of
its messages together, so a message still in flight once a later offset of its partition
is acknowledged was overtaken: it is lost in the same way.

Faust itself would commit over a single such message at the head (its gap check is off by
one, see :func:`head_missing`); on the event topics the worker's consumer refuses that
(``streams.faust_app``), so the message stays at the committed offset for this watch. One held with nothing after it
acknowledged (the last message of a partition) is taken to be lost once held far longer
than any batch takes.

:class:`HoleWatch` spots that state from the consumer's own bookkeeping, per input
partition: the log has a message at the committed offset, the consumer has read at or
past it, it is not acknowledged, it is either not held by a stream or held while a later
offset is already acknowledged, and the committed offset has not moved for ``timeout_s``. :func:`watch_holes` then seeks the partition back to its
committed offset, so the skipped message (and the ones after it) are delivered again.
Every input is idempotent in the worker (event ids are deduplicated in the user's state,
catalog upserts replace, impressions are recognised by request id), so the messages
read twice change nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streams.expired_input import OnExpired, skip_expired
from streams.truncated_input import OnLogReset, is_truncated, restart_truncated

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadState:
    """What the consumer knows about one partition's head, at one moment."""

    committed: int | None  # next offset to commit (the first not yet processed)
    read: int | None  # last offset the consumer handed on (or the offset it was sought to)
    highwater: int | None  # the log's end as the last fetch reported it
    acked: bool  # the message at ``committed`` is acknowledged (processed, not yet committed)
    in_flight: bool  # the message at ``committed`` is held by a stream (delivered, not acknowledged)
    overtaken: bool = False  # some later offset of the partition is already acknowledged


class HoleWatch:
    """Decides, from successive :class:`HeadState` readings, which partitions must be re-read.

    A head that is a hole (skipped, or held but overtaken) is re-read once it stayed at the
    same committed offset for ``timeout_s``; a head merely held by a stream, with nothing
    after it acknowledged, once it stayed for ``held_timeout_s`` (default three times
    ``timeout_s``): a batch holds its messages while it is processed, but never for that long
    unless the stream lost the message. Re-reading is safe either way (inputs are idempotent).

    >>> w = HoleWatch(timeout_s=5.0)
    >>> lost = HeadState(committed=68, read=104, highwater=105, acked=False, in_flight=False)
    >>> w.observe("p2", lost, now=0.0), w.observe("p2", lost, now=4.0), w.observe("p2", lost, now=5.5)
    (False, False, True)
    >>> w.observe("p2", HeadState(105, 104, 105, False, False), now=6.0)  # caught up: no hole
    False
    >>> held = HeadState(committed=68, read=104, highwater=105, acked=False, in_flight=True)
    >>> HoleWatch.is_hole(held), HoleWatch.is_hole(HeadState(68, 104, 105, False, True, overtaken=True))
    (False, True)
    >>> w.observe("p1", held, now=0.0), w.observe("p1", held, now=14.0), w.observe("p1", held, now=15.0)
    (False, False, True)
    """

    def __init__(self, timeout_s: float = 10.0, held_timeout_s: float | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if held_timeout_s is not None and held_timeout_s < timeout_s:
            raise ValueError("held_timeout_s must be >= timeout_s")
        self.timeout_s = timeout_s
        self.held_timeout_s = held_timeout_s if held_timeout_s is not None else 3 * timeout_s
        self._since: dict[Any, tuple[int, float]] = {}

    @staticmethod
    def is_pending(h: HeadState) -> bool:
        """True when the message at the committed offset exists, was read, and is not acknowledged."""
        if h.committed is None or h.read is None or h.highwater is None:
            return False
        return h.highwater > h.committed and h.read >= h.committed and not h.acked

    @staticmethod
    def is_hole(h: HeadState) -> bool:
        """True when the head is pending and nobody holds it -- or it is held while a later
        offset was already acknowledged."""
        return HoleWatch.is_pending(h) and (not h.in_flight or h.overtaken)

    def observe(self, tp: Any, head: HeadState, now: float) -> bool:
        """Record ``tp``'s head at ``now``; True when it must be re-read: a hole, or a log that
        ends below the committed offset (:func:`streams.truncated_input.is_truncated`), for
        ``timeout_s``, or pending (held) for ``held_timeout_s``, at the same committed offset."""
        truncated = is_truncated(head.committed, head.highwater)
        if not (truncated or self.is_pending(head)):
            self._since.pop(tp, None)
            return False
        assert head.committed is not None
        first = self._since.get(tp)
        if first is None or first[0] != head.committed:
            self._since[tp] = (head.committed, now)
            return False
        wait = self.timeout_s if truncated or self.is_hole(head) else self.held_timeout_s
        if now - first[1] < wait:
            return False
        del self._since[tp]  # a fresh timeout after the repair
        return True


def head_missing(acked: Iterable[int], committed: int | None) -> bool:
    """True when offsets past ``committed`` (the next offset to process) are acknowledged but
    ``committed`` itself is not: nothing may be committed then. (Faust's own check lets a single
    missing message at the head through.)

    >>> head_missing([31, 32, 33], 30), head_missing([30, 31], 30), head_missing([], 30), head_missing([5], None)
    (True, False, False, False)
    """
    offsets = list(acked)
    return bool(offsets) and committed is not None and min(offsets) > committed


def fetch_state(consumer: Any, tp: Any) -> Any:
    """aiokafka's own state of ``tp`` under Faust ``consumer`` (position, pause flag, ...); None
    when not in its assignment. Raises when ``consumer`` is not backed by aiokafka."""
    return consumer._thread._consumer._subscription.subscription.assignment.state_value(tp)


def fetch_position(consumer: Any, tp: Any) -> int | None:
    """The next offset aiokafka will fetch for ``tp`` under Faust ``consumer`` (None if unknown)."""
    try:
        state = fetch_state(consumer, tp)
        return int(state.position) if state is not None and state.has_valid_position else None
    except Exception:  # noqa: BLE001 - not an aiokafka-backed consumer, or not assigned now
        return None


def start_offset(consumer: Any, tp: Any) -> int | None:
    """Where ``tp``'s processing starts: the committed offset, or for a partition the group never
    committed the offset it was sought to (``consumer.start_offsets``, :mod:`streams.input_start`)."""
    committed = consumer._committed_offset.get(tp)
    return committed if committed is not None else getattr(consumer, "start_offsets", {}).get(tp)


def in_flight(consumer: Any, tp: Any, offset: int) -> bool:
    """Whether the message at ``offset`` of ``tp`` is held by a stream (delivered, not acknowledged)."""
    return any(m.tp == tp and m.offset == offset for m in list(consumer._unacked_messages))


def head_state(consumer: Any, tp: Any) -> HeadState:
    """Read ``tp``'s :class:`HeadState` from a running Faust consumer's bookkeeping.

    A partition the group never committed starts at its log start, where the consumer was
    sought to (``consumer.start_offsets``, see :mod:`streams.input_start`; 0 if unknown).
    The offset read is the later of Faust's and of aiokafka's fetch position: Faust's stays
    behind when it drops records it fetched (a seek during a rebalance set it back while
    aiokafka fetched on), and the message at the committed offset is then a hole all the same.
    """
    committed = start_offset(consumer, tp)
    if committed is None:
        committed = 0
    acked = consumer._acked_index.get(tp, ())
    read = consumer._read_offset.get(tp)
    fetched = fetch_position(consumer, tp)
    if fetched is not None and fetched > 0 and (read is None or fetched - 1 > read):
        read = fetched - 1  # fetched past what Faust handed on: records it dropped after fetching
    return HeadState(
        committed=committed,
        read=read,
        highwater=consumer.highwater(tp),
        acked=committed in acked,
        in_flight=in_flight(consumer, tp, committed),
        overtaken=any(offset > committed for offset in list(acked)),
    )


async def watch_holes(
    app: Any,
    topics: Iterable[str],
    interval_s: float,
    watch: HoleWatch,
    on_repair: Callable[[str, int, int], None],
    clock: Callable[[], float] | None = None,
    seek_timeout_s: float = 30.0,
    on_expired: OnExpired | None = None,
    on_log_reset: OnLogReset | None = None,
) -> None:
    """Check the assigned partitions of ``topics`` every ``interval_s`` (forever) and re-read holes.

    ``on_repair(topic, partition, offset)`` is called for every partition sought back. A
    failure on one partition is logged and the watch goes on; a seek the consumer does not
    confirm within ``seek_timeout_s`` is logged and the partition checked again later. A
    hole that retention deleted is committed over instead of re-read
    (:func:`streams.expired_input.skip_expired`, reported to ``on_expired``). A partition whose
    log ends below its committed offset is read again from its log start
    (:func:`streams.truncated_input.restart_truncated`, reported to ``on_log_reset``).
    """
    names = set(topics)
    loop = asyncio.get_running_loop()
    now = clock or loop.time
    while True:
        await asyncio.sleep(interval_s)
        consumer = app.consumer
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            continue  # the recovery seeks every partition to its committed offset itself
        try:
            assigned = [tp for tp in consumer.assignment() if tp.topic in names]
        except Exception as exc:  # noqa: BLE001 - no consumer yet
            log.debug("no assignment to check yet: %r", exc)
            continue
        for tp in assigned:
            try:
                await _check(consumer, tp, watch, now(), on_repair, seek_timeout_s, on_expired, on_log_reset)
            except Exception:  # the watch must outlive any one partition's trouble
                log.exception("%s[%d]: checking the partition's head failed", tp.topic, tp.partition)


async def _check(
    consumer: Any, tp: Any, watch: HoleWatch, now: float, on_repair: Callable[[str, int, int], None],
    seek_timeout_s: float, on_expired: OnExpired | None = None, on_log_reset: OnLogReset | None = None,
) -> None:
    """Observe ``tp``'s head and, when :class:`HoleWatch` says so, seek it back to its committed offset
    (or past it, to the log start, when retention deleted it; or to the log start when the log
    now ends below it)."""
    head = head_state(consumer, tp)
    if not watch.observe(tp, head, now):
        return
    assert head.committed is not None
    if head.highwater is not None and is_truncated(head.committed, head.highwater):
        await restart_truncated(consumer, tp, head.committed, head.highwater, on_log_reset, seek_timeout_s)
        return
    if await skip_expired(consumer, tp, head.committed, on_expired, seek_timeout_s) is not None:
        return
    how = (
        "skipped by the consumer" if not head.in_flight
        else "held by a stream but overtaken" if head.overtaken
        else f"held by a stream for over {watch.held_timeout_s:.0f}s"
    )
    log.warning(
        "%s[%d]: the message at committed offset %s was %s "
        "(read up to %s, log end %s); reading the partition again from it",
        tp.topic, tp.partition, head.committed, how, head.read, head.highwater,
    )
    try:
        await asyncio.wait_for(consumer.seek_wait({tp: head.committed}), timeout=seek_timeout_s)
    except TimeoutError:
        log.error(
            "%s[%d]: the consumer did not confirm the seek to offset %s within %.0fs; checking again later",
            tp.topic, tp.partition, head.committed, seek_timeout_s,
        )
        return
    on_repair(tp.topic, tp.partition, head.committed)
