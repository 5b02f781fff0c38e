"""Consumer-group lag: the reader against a real broker, and the ``streamrec lag`` command."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from streams.cli import main
from streams.kafka_config import kafka_python_kwargs
from streams.lag import GroupLag, LagReader, PartitionLag, input_topics
from streams.lag_command import EXIT_OVER_THRESHOLD, Thresholds
from streams.settings import Settings
from streams.topics import ensure_topics


def test_partition_lag_counts_from_log_start_without_a_commit() -> None:
    p = PartitionLag("t", 0, committed=None, start=40, end=100, reported_end=90, oldest_ts=10.0)
    assert (p.position, p.lag, p.end_trails_log) == (40, 60, True)
    assert p.lag_seconds(now=15.0) == 5.0


def test_committed_offset_below_log_start_counts_only_what_is_left() -> None:
    # Retention deleted records the group never read: they cannot be processed any more.
    assert PartitionLag("t", 0, committed=5, start=50, end=60, reported_end=60).lag == 10


def test_thresholds_name_what_was_exceeded() -> None:
    lag = GroupLag("g", (PartitionLag("t", 0, 0, 0, 50, 50, oldest_ts=100.0),), measured_at=130.0)
    assert Thresholds().violations(lag) == []
    assert Thresholds(max_lag=50, max_lag_seconds=30).violations(lag) == []
    assert Thresholds(max_lag=49).violations(lag) == ["total lag 50 > --max-lag 49"]
    assert Thresholds(max_lag_seconds=29.5).violations(lag) == ["lag 30.0s > --max-lag-seconds 29.5"]


def _produce(settings: Settings, per_partition: dict[int, int], ts_ms: int) -> None:
    producer = KafkaProducer(**kafka_python_kwargs(settings), linger_ms=5)
    for partition, n in per_partition.items():
        for i in range(n):
            producer.send(settings.topic_clicks, key=b"u", value=b"{}", partition=partition, timestamp_ms=ts_ms + i)
    producer.flush()
    producer.close()


def _commit(settings: Settings, offsets: dict[int, int]) -> None:
    consumer = KafkaConsumer(**kafka_python_kwargs(settings), group_id=settings.app_id, enable_auto_commit=False)
    consumer.commit({TopicPartition(settings.topic_clicks, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    consumer.close()


@pytest.fixture
def lagging(settings: Settings) -> dict[str, Any]:
    """Clicks on 3 of 4 partitions, written 2 minutes ago, with the group part way through."""
    ensure_topics(settings)
    written = int((time.time() - 120) * 1000)
    _produce(settings, {0: 1000, 1: 30, 2: 5}, written)
    _commit(settings, {0: 900, 1: 30})
    return {"written_s": written / 1000}


def test_reader_reports_lag_offsets_and_age_of_oldest_unprocessed_event(settings: Settings, lagging: Any) -> None:
    with LagReader(settings, settings.app_id, [settings.topic_clicks]) as reader:
        lag = reader.read()
        # A long-lived reader (as in the worker) gives the same answer every time.
        again = [reader.read() for _ in range(3)]
    for later in again:
        assert [(p.end, p.committed, p.lag, p.oldest_ts) for p in later.partitions] == [
            (p.end, p.committed, p.lag, p.oldest_ts) for p in lag.partitions
        ]
    by_part = {p.partition: p for p in lag.partitions}
    assert sorted(by_part) == [0, 1, 2, 3]
    # The log end is exact even where the broker's ListOffsets trails the log.
    assert [by_part[i].end for i in range(4)] == [1000, 30, 5, 0]
    assert [by_part[i].committed for i in range(4)] == [900, 30, None, None]
    assert [by_part[i].lag for i in range(4)] == [100, 0, 5, 0]
    assert lag.total == 105
    # Partition 0's oldest unprocessed record is number 900 (timestamps are written + i ms).
    assert by_part[0].oldest_ts == pytest.approx(lagging["written_s"] + 0.9, abs=1e-3)
    assert by_part[2].oldest_ts == pytest.approx(lagging["written_s"], abs=1e-3)
    assert by_part[1].lag_seconds(lag.measured_at) == 0.0
    assert 119 < by_part[0].lag_seconds(lag.measured_at) < 180
    assert lag.max_seconds == pytest.approx(by_part[2].lag_seconds(lag.measured_at))


def test_lag_command_prints_describe_table_and_exits_3_over_thresholds(settings: Settings, lagging: Any) -> None:
    env = settings.to_env()
    runner = CliRunner()
    out = runner.invoke(main, ["lag", "--topic", settings.topic_clicks], env=env)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split()[:7] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "LAG-SECONDS"]
    rows = {int(line.split()[2]): line.split() for line in lines[1:5]}
    assert rows[0][:6] == [settings.app_id, settings.topic_clicks, "0", "900", "1000", "100"]
    assert rows[2][3:6] == ["-", "5", "5"]
    assert "total lag 105 records" in out.output

    over = runner.invoke(main, ["lag", "--topic", settings.topic_clicks, "--max-lag", "104"], env=env)
    assert over.exit_code == EXIT_OVER_THRESHOLD, over.output
    assert "OVER THRESHOLD: total lag 105 > --max-lag 104" in over.output
    old = runner.invoke(main, ["lag", "--topic", settings.topic_clicks, "--max-lag-seconds", "60"], env=env)
    assert old.exit_code == EXIT_OVER_THRESHOLD, old.output
    within = runner.invoke(main, ["lag", "--topic", settings.topic_clicks, "--max-lag", "105",
                                  "--max-lag-seconds", "3600"], env=env)
    assert within.exit_code == 0, within.output


def test_lag_command_watch_and_json(settings: Settings, lagging: Any) -> None:
    out = CliRunner().invoke(
        main, ["lag", "--topic", settings.topic_clicks, "--watch", "--count", "2", "--interval", "0.2", "--json"],
        env=settings.to_env(),
    )
    assert out.exit_code == 0, out.output
    readings = [json.loads(line) for line in out.output.splitlines()]
    assert len(readings) == 2
    assert readings[1]["measured_at"] > readings[0]["measured_at"]
    assert readings[0]["total_lag"] == 105
    part0 = readings[0]["partitions"][0]
    assert (part0["committed"], part0["log_end"], part0["lag"]) == (900, 1000, 100)


def test_lag_command_default_topics_are_the_workers_inputs(settings: Settings, lagging: Any) -> None:
    out = CliRunner().invoke(main, ["lag", "--json"], env=settings.to_env())
    assert out.exit_code == 0, out.output
    topics = {p["topic"] for p in json.loads(out.output)["partitions"]}
    assert topics == set(input_topics(settings))


def test_lag_command_errors_say_what_to_do(settings: Settings) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["lag", "--topic", "no-such-topic-here"], env=settings.to_env())
    assert missing.exit_code == 1
    assert "unknown topic(s) no-such-topic-here" in missing.output and "streamrec topics create" in missing.output
    unset = runner.invoke(main, ["lag"], env={"STREAMREC_KAFKA_BOOTSTRAP_SERVERS": "", "STREAMREC_REDIS_URL": ""})
    assert unset.exit_code == 2
    assert "STREAMREC_KAFKA_BOOTSTRAP_SERVERS" in unset.output


def test_repeated_readings_of_a_busy_topic_agree(settings: Settings) -> None:
    """Every partition holds unread records: each reading fetches from all of them."""
    ensure_topics(settings)
    _produce(settings, {p: 400 for p in range(settings.partitions)}, int(time.time() * 1000))
    with LagReader(settings, settings.app_id, input_topics(settings)) as reader:
        readings = [reader.read() for _ in range(4)]
    for lag in readings:
        clicks = [p for p in lag.partitions if p.topic == settings.topic_clicks]
        assert [(p.end, p.lag) for p in clicks] == [(400, 400)] * settings.partitions
        assert all(p.oldest_ts is not None for p in clicks)
