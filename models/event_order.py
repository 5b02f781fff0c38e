"""Bounded lists kept in event-time order, so the order events arrive in does not matter.

A worker applies events at least once and, after a crash or a re-read, sometimes late:
an event can reach a user's state after events that happened after it. The state's
recent items and purchases are therefore ordered by the events' own timestamps, ties
broken by the entry itself, and trimmed by time: folding the same events in any order
gives the same list. (The dedup window in :mod:`models.user_guard` is kept the same way.)

>>> items, times = insert_latest([], [], "b", 2.0, keep=2)
>>> items, times = insert_latest(items, times, "c", 3.0, keep=2)
>>> insert_latest(items, times, "a", 1.0, keep=2)   # late and older than the two kept
(['b', 'c'], [2.0, 3.0])
>>> insert_latest(items, times, "b", 4.0, keep=2)   # seen again: moves to its latest time
(['c', 'b'], [3.0, 4.0])
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T", str, int)


def _insert(items: Sequence[T], times: Sequence[float], item: T, ts: float, keep: int) -> tuple[list[T], list[float]]:
    """``item`` at ``ts`` added to the (time, item)-sorted pairs, the newest ``keep`` kept."""
    pairs = list(zip(times, items, strict=True))
    insort(pairs, (ts, item))
    del pairs[: max(0, len(pairs) - keep)]
    return [i for _, i in pairs], [t for t, _ in pairs]


def insert_latest(
    items: Sequence[T], times: Sequence[float], item: T, ts: float, keep: int
) -> tuple[list[T], list[float]]:
    """One entry per item, at the latest time it was seen; the ``keep`` newest entries kept."""
    if item in items:
        k = list(items).index(item)
        if times[k] >= ts:
            return list(items), list(times)
        items = [x for j, x in enumerate(items) if j != k]
        times = [t for j, t in enumerate(times) if j != k]
    return _insert(items, times, item, ts, keep)


def times_for(n: int, last_ts: float) -> list[float]:
    """Times for ``n`` entries stored without them (older states): in their stored order,
    the last at ``last_ts``, a microsecond apart.

    >>> times_for(3, 10.0)
    [9.999998, 9.999999, 10.0]
    """
    return [round(last_ts - (n - 1 - k) * 1e-6, 6) for k in range(n)]
