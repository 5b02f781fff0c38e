"""A user-state record reflecting less input never replaces a newer one (recovery, standby, replicas)."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from streams.state_version import HEADER, Version, batch_versions, header_version, outdated
from streams.user_table import VersionedTable

TOPICS = ("clicks", "searches", "impressions")


@dataclass
class _Message:
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    partition: int = 0


@dataclass
class _Event:
    """A changelog record as Faust's recovery hands it to a table."""

    key: str
    value: bytes | None
    message: _Message


def record(user: str, value: bytes | None, version: Version | None) -> _Event:
    headers = [(HEADER, version.encode())] if version is not None else None
    return _Event(user, value, _Message(value, headers))


def users_table() -> tuple[VersionedTable, list[int]]:
    app = faust.App("state-version-test", broker="kafka://127.0.0.1:1", store="memory://")
    left_out: list[int] = []
    table = VersionedTable(app, name="users", default=None, beacon=app.tables.beacon, partitions=1,
                           key_type=str, value_type=bytes, on_outdated=left_out.append)
    return table, left_out


def test_a_batch_raises_each_topics_offset_and_keeps_the_rest() -> None:
    held = {"u1": Version((10, 4, -1))}
    got = batch_versions([("u1", "clicks", 12), ("u1", "clicks", 11), ("u2", "impressions", 3), ("u1", "other", 99)],
                         TOPICS, held)
    assert got == {"u1": Version((12, 4, -1)), "u2": Version((-1, -1, 3))}


def test_less_input_is_outdated_more_or_other_input_is_not() -> None:
    held = Version((10, 4, 2))
    assert outdated(Version((9, 4, 2)), held) and outdated(Version((-1, -1, -1)), held)
    assert not outdated(Version((10, 4, 2)), held)  # the same input: the later record applies
    assert not outdated(Version((11, 0, 0)), held)  # more of one topic
    assert not outdated(None, held) and not outdated(held, None)
    assert header_version([("other", b"1"), (HEADER, b"1,2,3")]) == Version((1, 2, 3))
    assert header_version([(HEADER, b"garbage")]) is None and header_version(None) is None


def test_recovery_keeps_the_newest_state_when_a_stale_record_comes_last() -> None:
    table, left_out = users_table()
    table.apply_changelog_batch([
        record("u1", b"state after 5", Version((5, -1, -1))),
        record("u1", b"state after 9", Version((9, 0, -1))),   # the new owner's
        record("u1", b"state after 7", Version((7, -1, -1))),  # the cut-off worker's, delivered late
        record("u2", b"old format", None),
    ])
    assert table.data["u1"] == b"state after 9" and table.data["u2"] == b"old format"
    assert left_out == [1] and table.versions["u1"] == Version((9, 0, -1))
    table.apply_changelog_batch([record("u1", None, None)])  # forgotten: the tombstone always applies
    assert "u1" not in table.data and "u1" not in table.versions
    table.apply_changelog_batch([record("u1", b"a new life", Version((1, -1, -1)))])
    assert table.data["u1"] == b"a new life"


def test_a_forgotten_user_stays_forgotten_when_a_record_of_the_state_before_arrives_late() -> None:
    table, left_out = users_table()
    table.apply_changelog_batch([
        record("u1", b"state after 5", Version((5, 40, -1))),
        record("u1", None, Version((9, 40, -1))),             # the forget request at clicks offset 9
        record("u1", b"state after 7", Version((7, 41, -1))),  # the cut-off worker's, delivered late
        record("u2", b"state after 3", Version((3, -1, -1))),
        record("u2", None, None),                             # erased without a request (expired)
        record("u2", b"late, expired", Version((2, -1, -1))),
    ])
    assert "u1" not in table.data and left_out == [1]
    assert table.versions["u1"] == Version((9, 40, -1), erased=True) and table.erased_in == {"u1": 0}
    assert table.data["u2"] == b"late, expired"  # no request, no version: as before
    table.apply_changelog_batch([record("u1", b"back after the request", Version((10, 40, -1)))])
    assert table.data["u1"] == b"back after the request"
    assert table.versions["u1"] == Version((10, 40, -1)) and table.erased_in == {}


def test_a_forget_keeps_the_highest_offsets_the_erased_state_reflected() -> None:
    held = {"u1": Version((5, 40, 7))}
    forget = batch_versions([("u1", "clicks", 9)], TOPICS, held)["u1"]
    assert forget == Version((9, 40, 7)) and not forget.erased
    erased = forget._replace(erased=True)
    assert outdated(Version((8, 41, 9)), erased)  # does not reflect the request
    assert outdated(Version((9, 40, 7)), erased)  # the erased state's own input, nothing after it
    assert not outdated(Version((9, 41, 7)), erased)  # an event after the request
    assert batch_versions([("u1", "searches", 41)], TOPICS, {"u1": erased})["u1"] == Version((9, 41, 7))



def test_versions_of_partitions_given_away_are_dropped_with_their_states() -> None:
    import asyncio

    from faust.types import TP

    table, _ = users_table()
    table.apply_changelog_batch([record("u1", b"s", Version((1, -1, -1))), record("u9", None, Version((2, -1, -1)))])
    asyncio.run(table.on_recovery_completed({TP(table.changelog_topic.get_topic_name(), 0)}, set()))
    assert "u1" in table.versions and table.versions["u9"].erased  # partition 0 still held
    asyncio.run(table.on_recovery_completed(set(), set()))
    assert "u1" not in table.data and table.versions == {} and table.erased_in == {}
