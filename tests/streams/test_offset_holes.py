"""The skipped-input watch: which partition heads count as holes, and when one is re-read."""

from __future__ import annotations

import pytest

from streams.offset_holes import HeadState, HoleWatch


def head(committed: int | None = 68, read: int | None = 104, highwater: int | None = 105,
         acked: bool = False, in_flight: bool = False, overtaken: bool = False) -> HeadState:
    return HeadState(committed, read, highwater, acked, in_flight, overtaken)


@pytest.mark.parametrize(
    ("state", "hole"),
    [
        (head(), True),  # the message at 68 was read past, nobody holds it
        (head(acked=True), False),  # processed, waiting for the next commit
        (head(in_flight=True), False),  # held by a stream (e.g. a batch in progress)
        (head(in_flight=True, overtaken=True), True),  # held, but a later offset is already processed
        (head(acked=True, overtaken=True), False),  # processed with the ones after it
        (head(overtaken=True), True),
        (head(committed=105, read=104), False),  # everything processed
        (head(read=67), False),  # not read that far yet: still to be fetched
        (head(highwater=68), False),  # nothing at the committed offset (idle partition after a seek)
        (head(committed=None), False),  # nothing committed yet
        (head(read=None), False),  # nothing read yet
        (head(highwater=None), False),  # no fetch yet
    ],
)
def test_is_hole(state: HeadState, hole: bool) -> None:
    assert HoleWatch.is_hole(state) is hole


def test_a_hole_is_reread_only_once_it_persisted_at_the_same_offset() -> None:
    w = HoleWatch(timeout_s=10.0)
    assert not w.observe("tp", head(), 0.0)
    assert not w.observe("tp", head(committed=70), 8.0)  # the commit moved: a new hole, a new clock
    assert not w.observe("tp", head(committed=70), 17.9)
    assert w.observe("tp", head(committed=70), 18.0)
    assert not w.observe("tp", head(committed=70), 19.0)  # after a repair the clock starts again
    assert w.observe("tp", head(committed=70), 29.0)


def test_a_held_message_waits_the_longer_timeout() -> None:
    w = HoleWatch(timeout_s=10.0)
    assert w.held_timeout_s == 30.0
    assert not w.observe("tp", head(in_flight=True), 0.0)
    assert not w.observe("tp", head(in_flight=True), 29.0)
    assert w.observe("tp", head(in_flight=True), 30.0)


def test_a_processed_head_resets_the_clock() -> None:
    w = HoleWatch(timeout_s=10.0)
    assert not w.observe("tp", head(), 0.0)
    assert not w.observe("tp", head(acked=True), 5.0)
    assert not w.observe("tp", head(), 12.0)  # counts from here again
    assert w.observe("tp", head(), 22.0)


def test_held_timeout_is_not_shorter_than_timeout() -> None:
    with pytest.raises(ValueError, match="held_timeout_s"):
        HoleWatch(timeout_s=10.0, held_timeout_s=5.0)


def test_partitions_are_watched_apart() -> None:
    w = HoleWatch(timeout_s=1.0)
    assert not w.observe("a", head(), 0.0)
    assert not w.observe("b", head(), 0.5)
    assert w.observe("a", head(), 1.0)
    assert not w.observe("b", head(), 1.0)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        HoleWatch(timeout_s=0)


def test_a_message_held_while_later_ones_were_processed_is_reread() -> None:
    w = HoleWatch(timeout_s=10.0)
    assert not w.observe("tp", head(in_flight=True, overtaken=True), 0.0)
    assert not w.observe("tp", head(in_flight=True, overtaken=True), 9.0)
    assert w.observe("tp", head(in_flight=True, overtaken=True), 10.0)


class _Consumer:
    """The few bits of a Faust consumer's bookkeeping that :func:`head_state` reads."""

    def __init__(self, committed: int, acked: set[int], unacked: list[tuple[str, int]]) -> None:
        self._committed_offset = {"tp": committed}
        self._acked_index = {"tp": acked}
        self._unacked_messages = [type("M", (), {"tp": tp, "offset": o})() for tp, o in unacked]
        self._read_offset = {"tp": 104}

    def highwater(self, tp: str) -> int:
        return 105


def test_head_state_reads_overtaken_from_the_acknowledged_offsets() -> None:
    from streams.offset_holes import head_state

    held = head_state(_Consumer(68, {69, 70}, [("tp", 68)]), "tp")
    assert held.in_flight and held.overtaken and not held.acked and HoleWatch.is_hole(held)
    batch = head_state(_Consumer(68, set(), [("tp", 68), ("tp", 69)]), "tp")
    assert batch.in_flight and not batch.overtaken and not HoleWatch.is_hole(batch)


@pytest.mark.parametrize(
    ("acked", "committed", "missing"),
    [
        ([31, 32, 44], 30, True),  # 30, the next to process, is not acknowledged: commit nothing
        ([30, 31], 30, False),
        ([32, 31], 30, True),  # unsorted, as Faust appends them
        ([], 30, False),
        ([5], None, False),  # never committed: the head is unknown
    ],
)
def test_head_missing(acked: list[int], committed: int | None, missing: bool) -> None:
    from streams.offset_holes import head_missing

    assert head_missing(acked, committed) is missing


def test_the_watch_outlives_a_failing_partition_and_a_seek_that_never_returns(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    from types import SimpleNamespace

    from streams.offset_holes import watch_holes

    TP = __import__("collections").namedtuple("TP", "topic partition")
    broken, stuck, fine = TP("t", 0), TP("t", 1), TP("t", 2)

    class Consumer:
        def __init__(self) -> None:
            self._committed_offset = {stuck: 5, fine: 7}
            self._acked_index: dict[object, set[int]] = {}
            self._unacked_messages: list[object] = []
            self._read_offset = {stuck: 9, fine: 9}
            self.sought: list[object] = []

        def assignment(self) -> set[object]:
            return {broken, stuck, fine}

        def highwater(self, tp: object) -> int:
            if tp == broken:
                raise KeyError("partition no longer assigned")
            return 10

        async def seek_wait(self, offsets: dict[object, int]) -> None:
            if stuck in offsets:
                await asyncio.sleep(3600)  # a seek the consumer thread never confirms
            self.sought.append(offsets)

    consumer = Consumer()
    app = SimpleNamespace(consumer=consumer, rebalancing=False,
                          tables=SimpleNamespace(recovery=SimpleNamespace(completed=SimpleNamespace(is_set=lambda: True))))
    repaired: list[tuple[str, int, int]] = []
    ticks = iter(range(1000))

    async def run() -> None:
        task = asyncio.ensure_future(watch_holes(app, ["t"], 0.001, HoleWatch(timeout_s=1.0), lambda *a: repaired.append(a),
                                                 clock=lambda: float(next(ticks)), seek_timeout_s=0.05))
        await asyncio.sleep(0.5)
        task.cancel()

    asyncio.run(run())
    assert ("t", 2, 7) in repaired and ("t", 1, 5) not in repaired  # the others were still repaired
    assert "checking the partition's head failed" in caplog.text and "did not confirm the seek" in caplog.text


def test_head_state_takes_the_fetch_position_when_faust_dropped_what_it_fetched() -> None:
    from types import SimpleNamespace

    from streams.offset_holes import head_state

    consumer = _Consumer(59, set(), [])
    consumer._read_offset = {"tp": 20}  # set back by a seek, while aiokafka fetched on to the log end
    state = SimpleNamespace(position=75, has_valid_position=True)
    assignment = SimpleNamespace(state_value=lambda tp: state)
    consumer._thread = SimpleNamespace(_consumer=SimpleNamespace(
        _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))))
    head = head_state(consumer, "tp")
    assert head.read == 74 and HoleWatch.is_hole(head)
    consumer._read_offset = {"tp": 20}
    state.has_valid_position = False  # no position known: Faust's own read offset stands
    assert head_state(consumer, "tp").read == 20 and not HoleWatch.is_hole(head_state(consumer, "tp"))
