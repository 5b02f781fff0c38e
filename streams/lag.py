"""Consumer-group lag: committed offsets against log end offsets, in messages and seconds.

For every partition of the group's input topics, :class:`LagReader` reads the group's
committed offset (OffsetFetch), the log start and end offsets (ListOffsets), and the
record at the committed offset, the oldest event the group has not processed yet. Its
Kafka timestamp gives the lag in seconds, the same definition Burrow and
kafka-lag-exporter use: how long ago the oldest unprocessed event was written.

Log end offsets are taken as the larger of what ListOffsets reports and the high
watermark of a fetch response. On Apache Kafka the two agree. The embedded broker
(Tansu) reports the *base offset of the last record batch* from ListOffsets (883 after
1,000 records written in one partition here), which would hide up to a batch of
unprocessed events; the fetch high watermark is exact there.

>>> p = PartitionLag("events.clicks", 0, committed=900, start=0, end=1000, reported_end=883, oldest_ts=100.0)
>>> p.lag, p.lag_seconds(now=104.5), p.end_trails_log
(100, 4.5, True)
>>> PartitionLag("events.clicks", 1, committed=None, start=10, end=10, reported_end=10).lag
0
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from streams.kafka_config import kafka_python_kwargs

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["GroupLag", "LagError", "LagReader", "Member", "PartitionLag", "input_topics"]


class LagError(RuntimeError):
    """The lag could not be read (broker unreachable, unknown topic); the message says which."""


@dataclass(frozen=True)
class Member:
    """A group member that owns a partition (as DescribeGroups reports it)."""

    consumer_id: str
    host: str
    client_id: str


@dataclass(frozen=True)
class PartitionLag:
    """Lag of one partition of one consumer group."""

    topic: str
    partition: int
    #: The group's committed offset; None when the group never committed on this partition.
    committed: int | None
    #: Log start offset (earliest record still in the log).
    start: int
    #: Log end offset (next offset to be written), see the module docstring.
    end: int
    #: The log end offset ListOffsets reported (may trail ``end`` on some brokers).
    reported_end: int
    #: Kafka timestamp (Unix seconds) of the oldest unprocessed record; None when none or unknown.
    oldest_ts: float | None = None
    member: Member | None = None

    @property
    def position(self) -> int:
        """Where the group resumes: the committed offset, else the log start (offset reset earliest)."""
        return max(self.start, self.committed) if self.committed is not None else self.start

    @property
    def lag(self) -> int:
        """Records written but not yet processed by the group."""
        return max(0, self.end - self.position)

    def lag_seconds(self, now: float) -> float:
        """Age of the oldest unprocessed record (0 when the group is caught up).

        >>> PartitionLag("t", 0, committed=5, start=0, end=5, reported_end=5, oldest_ts=1.0).lag_seconds(9.0)
        0.0
        """
        if self.lag == 0 or self.oldest_ts is None:
            return 0.0
        return max(0.0, now - self.oldest_ts)

    @property
    def end_trails_log(self) -> bool:
        """True when ListOffsets reported less than the log really holds."""
        return self.reported_end < self.end


@dataclass(frozen=True)
class GroupLag:
    """One reading of a group's lag over its input topics."""

    group: str
    partitions: tuple[PartitionLag, ...]
    measured_at: float
    #: False when the broker could not describe the group's members.
    members_known: bool = False
    state: str | None = None

    @property
    def total(self) -> int:
        """Lag in records over every partition."""
        return sum(p.lag for p in self.partitions)

    @property
    def max_seconds(self) -> float:
        """The largest per-partition lag in seconds."""
        return max((p.lag_seconds(self.measured_at) for p in self.partitions), default=0.0)


def input_topics(settings: Settings) -> list[str]:
    """The topics the worker group consumes (and whose lag matters)."""
    return [settings.topic_clicks, settings.topic_searches, settings.topic_catalog]


def parse_members(description: Mapping[str, Any]) -> dict[tuple[str, int], Member]:
    """Owners of partitions from kafka-python's ``describe_groups`` entry of one group.

    >>> d = {"members": [{"member_id": "m-1", "client_id": "c", "client_host": "/10.0.0.7",
    ...       "member_assignment": {"assigned_partitions": [{"topic": "t", "partitions": [0, 2]}]}}]}
    >>> sorted(parse_members(d))
    [('t', 0), ('t', 2)]
    """
    owners: dict[tuple[str, int], Member] = {}
    for m in description.get("members") or ():
        get = m.get if isinstance(m, Mapping) else (lambda k, d=None, _m=m: getattr(_m, k, d))
        member = Member(str(get("member_id", "-")), str(get("client_host", "-")), str(get("client_id", "-")))
        assignment = get("member_assignment")
        if isinstance(assignment, Mapping):
            parts = assignment.get("assigned_partitions") or ()
        else:
            parts = getattr(assignment, "assigned_partitions", None) or ()
        for tp in parts:
            topic = tp["topic"] if isinstance(tp, Mapping) else getattr(tp, "topic", None)
            partitions = tp["partitions"] if isinstance(tp, Mapping) else getattr(tp, "partitions", ())
            for part in partitions or ():
                owners[(str(topic), int(part))] = member
    return owners


@dataclass
class LagReader:
    """Reads a consumer group's lag with kafka-python (admin client plus a group-less consumer).

    Keep one per process and call :meth:`read` as often as needed; :meth:`close` at the end.
    """

    settings: Settings
    group: str
    topics: Sequence[str]
    #: Longest wait for the fetches that give timestamps and high watermarks.
    fetch_timeout_s: float = 3.0
    _admin: Any = field(default=None, init=False, repr=False)
    _consumer: Any = field(default=None, init=False, repr=False)

    def _clients(self) -> tuple[Any, Any]:
        if self._admin is None:
            from kafka import KafkaConsumer
            from kafka.admin import KafkaAdminClient
            from kafka.errors import KafkaError

            kw = kafka_python_kwargs(self.settings, request_timeout_ms=10_000)
            try:
                self._admin = KafkaAdminClient(**kw, client_id=f"{self.group}-lag")
                self._consumer = KafkaConsumer(
                    **kw,
                    client_id=f"{self.group}-lag",
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    fetch_max_wait_ms=50,
                    max_partition_fetch_bytes=8 * 1024,  # only the first record is needed (brokers send at least one batch)
                    allow_auto_create_topics=False,  # asking about a topic must never create it
                )
            except KafkaError as exc:
                self.close()
                raise LagError(f"cannot reach Kafka at {self.settings.kafka_bootstrap_servers}: {exc}") from exc
        return self._admin, self._consumer

    def read(self, now: float | None = None) -> GroupLag:
        """Read the group's lag now (blocking: a few round trips plus one short fetch)."""
        from kafka import TopicPartition
        from kafka.admin import OffsetSpec
        from kafka.errors import KafkaError

        admin, consumer = self._clients()
        try:
            tps = self._partitions(consumer, TopicPartition)
            committed_raw = admin.list_group_offsets({self.group: tps}).get(self.group, {})
            latest = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
            earliest = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
        except KafkaError as exc:
            raise LagError(f"cannot read the offsets of group {self.group!r}: {exc}") from exc
        committed = {
            tp: (om.offset if om is not None and om.offset is not None and om.offset >= 0 else None)
            for tp, om in ((tp, committed_raw.get(tp)) for tp in tps)
        }
        positions = {
            tp: max(earliest[tp].offset, committed[tp]) if committed[tp] is not None else earliest[tp].offset
            for tp in tps
        }
        highwater, oldest = self._fetch_heads(consumer, positions)
        owners, members_known, state = self._members()
        measured = time.time() if now is None else now
        parts = tuple(
            PartitionLag(
                tp.topic,
                tp.partition,
                committed=committed[tp],
                start=earliest[tp].offset,
                end=max(latest[tp].offset, highwater.get(tp, -1), committed[tp] or 0),
                reported_end=latest[tp].offset,
                oldest_ts=oldest.get(tp),
                member=owners.get((tp.topic, tp.partition)),
            )
            for tp in tps
        )
        return GroupLag(self.group, parts, measured, members_known, state)

    def _partitions(self, consumer: Any, tp_class: Any) -> list[Any]:
        tps = []
        missing = []
        for topic in self.topics:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                missing.append(topic)
                continue
            tps += [tp_class(topic, p) for p in sorted(parts)]
        if missing:
            raise LagError(f"unknown topic(s) {', '.join(missing)}: create them with `streamrec topics create`")
        return tps

    def _fetch_heads(self, consumer: Any, positions: Mapping[Any, int]) -> tuple[dict[Any, int], dict[Any, float]]:
        """Fetch from every position: the high watermarks, and the timestamp of each first record."""
        tps = list(positions)
        consumer.assign(tps)  # a fresh assignment: no fetch state left from the last reading
        for tp, offset in positions.items():
            consumer.seek(tp, offset)
        highwater: dict[Any, int] = {}
        oldest: dict[Any, float] = {}
        deadline = time.monotonic() + self.fetch_timeout_s
        while time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=100, max_records=500).items():
                if records and tp not in oldest:
                    oldest[tp] = records[0].timestamp / 1000.0
            for tp in tps:
                hw = consumer.highwater(tp)
                if hw is not None:
                    highwater[tp] = hw
            # Done once every partition answered, and every one with unread records gave its first.
            if len(highwater) == len(tps) and all(tp in oldest for tp in tps if highwater[tp] > positions[tp]):
                break
        consumer.assign([])  # nothing is fetched between readings
        return highwater, oldest

    def _members(self) -> tuple[dict[tuple[str, int], Member], bool, str | None]:
        try:
            description = self._admin.describe_groups([self.group]).get(self.group) or {}
        except Exception as exc:  # noqa: BLE001 - some brokers answer with fields kafka-python cannot parse
            log.debug("DescribeGroups failed for %s: %r", self.group, exc)
            return {}, False, None
        return parse_members(description), True, description.get("group_state") or description.get("state")

    def close(self) -> None:
        """Close the Kafka clients."""
        for client in (self._consumer, self._admin):
            if client is not None:
                try:
                    client.close()
                except Exception:
                    log.debug("error closing lag client", exc_info=True)
        self._admin = self._consumer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_rows(lag: GroupLag) -> list[dict[str, str]]:
    """Rows as ``kafka-consumer-groups --describe`` prints them (plus LAG-SECONDS)."""
    rows = []
    for p in lag.partitions:
        m = p.member
        rows.append(
            {
                "GROUP": lag.group,
                "TOPIC": p.topic,
                "PARTITION": str(p.partition),
                "CURRENT-OFFSET": "-" if p.committed is None else str(p.committed),
                "LOG-END-OFFSET": str(p.end),
                "LAG": str(p.lag),
                "LAG-SECONDS": f"{p.lag_seconds(lag.measured_at):.1f}",
                "CONSUMER-ID": m.consumer_id if m else "-",
                "HOST": m.host if m else "-",
                "CLIENT-ID": m.client_id if m else "-",
            }
        )
    return rows


def format_table(rows: Iterable[Mapping[str, str]]) -> str:
    """Left-aligned columns separated by two spaces, header first.

    >>> print(format_table([{"A": "1", "BB": "22"}]))
    A  BB
    1  22
    """
    rows = list(rows)
    if not rows:
        return ""
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols).rstrip()]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols).rstrip() for r in rows]
    return "\n".join(lines)
