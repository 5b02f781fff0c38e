"""Micro-batch events for tests of the consumer's bookkeeping: the message fields the input
guards read (topic, partition, offset, acknowledged)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any


class Message:
    """A consumed message's position, and whether it was acknowledged."""

    def __init__(self, tp: Any, offset: int) -> None:
        self.tp, self.topic, self.partition, self.offset, self.acked = tp, tp.topic, tp.partition, offset, False


class Event:
    """A stream event holding a :class:`Message`."""

    def __init__(self, tp: Any, offset: int) -> None:
        self.message = Message(tp, offset)


class StandInConsumer:
    """The bits of a Faust consumer the input guards read and change, for one partition ``tp``:
    its bookkeeping (committed, read and acknowledged offsets), the log's start and end, the
    commit and the seek (which, as Faust's, also moves the read offset)."""

    def __init__(self, tp: Any, committed: int | None, log_start: int = 0, log_end: int = 900,
                 commit_ok: bool = True, read: int | None = None, acked: tuple[int, ...] = ()) -> None:
        self.tp = tp
        self._committed_offset: dict[Any, int | None] = {tp: committed}
        self._read_offset: dict[Any, int | None] = {tp: read}
        self._acked: defaultdict[Any, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[Any, set[int]] = defaultdict(set)
        if acked:
            self._acked[tp], self._acked_index[tp] = list(acked), set(acked)
        self._gap: defaultdict[Any, list[Any]] = defaultdict(list)
        self._unacked_messages: set[Any] = set()
        self.log_start, self.log_end, self.commit_ok = log_start, log_end, commit_ok
        self.commits: list[dict[Any, int]] = []
        self.sought: list[dict[Any, int]] = []

    async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
        return dict.fromkeys(tps, self.log_start)

    async def _commit_offsets(self, offsets: dict[Any, int]) -> bool:
        if not self.commit_ok:
            raise RuntimeError("coordinator not available")
        self.commits.append(dict(offsets))
        self._committed_offset.update(offsets)
        return True

    async def seek_wait(self, offsets: dict[Any, int]) -> None:
        self.sought.append(dict(offsets))
        for tp, offset in offsets.items():
            self._read_offset[tp] = offset or None

    def assignment(self) -> set[Any]:
        return {self.tp}

    def highwater(self, tp: Any) -> int:
        return self.log_end


def run_watch(consumer: StandInConsumer, seconds: float = 0.2, **callbacks: Any) -> list[tuple[Any, ...]]:
    """Run the skipped-input watch over ``consumer``'s partition for ``seconds`` (its clock ticking a
    second per check, timeout 1 s), passing ``callbacks`` on; the partitions it re-read."""
    from streams.offset_holes import HoleWatch, watch_holes

    repaired: list[tuple[Any, ...]] = []
    app = SimpleNamespace(consumer=consumer, rebalancing=False,
                          tables=SimpleNamespace(recovery=SimpleNamespace(completed=SimpleNamespace(is_set=lambda: True))))
    ticks = iter(range(100_000))

    async def run() -> None:
        task = asyncio.ensure_future(watch_holes(app, [consumer.tp.topic], 0.001, HoleWatch(timeout_s=1.0),
                                                 lambda *a: repaired.append(a), clock=lambda: float(next(ticks)),
                                                 **callbacks))
        await asyncio.sleep(seconds)
        task.cancel()

    asyncio.run(run())
    return repaired
