"""Reading a whole topic, from its beginning to its end, outside a worker (command-line tools).

:func:`read_to_end` assigns every partition of a topic to a group-less kafka-python
consumer, reads from the beginning up to the end offsets found at the start, and goes
on until a poll comes back empty: some brokers report end offsets that trail the log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from streams.kafka_config import kafka_python_kwargs

if TYPE_CHECKING:
    from streams.settings import Settings


class TopicReadError(RuntimeError):
    """The topic could not be read; the message says which and why."""


def read_to_end(
    settings: Settings, topic: str, timeout_s: float, *, required: bool = True, setting: str = "", purpose: str = "read"
) -> Iterator[Any]:
    """Every record of ``topic`` up to its end, partition by partition in offset order.

    A missing topic yields nothing unless ``required``; then it is an error naming
    ``setting`` (the setting holding the topic's name). ``purpose`` names the tool in
    the consumer's client id.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            **kafka_python_kwargs(settings, client_id=f"{settings.app_id}-{purpose}"),
            enable_auto_commit=False,
            group_id=None,
        )
    except KafkaError as exc:
        raise TopicReadError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}") from None
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions and not required:
            return
        if not partitions:
            named = f" ({setting})" if setting else ""
            raise TopicReadError(f"topic {topic!r}{named} does not exist; nothing to read")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > consumer.position(tp)}
        deadline = time.monotonic() + timeout_s
        quiet = 0  # end offsets can trail the log: read on until a poll comes back empty
        while remaining or quiet < 2:
            if time.monotonic() > deadline:
                raise TopicReadError(f"reading {topic!r} did not reach its end within {timeout_s:.0f}s")
            batch = consumer.poll(timeout_ms=500, max_records=10_000)
            quiet = 0 if batch else quiet + 1
            for tp, records in batch.items():
                yield from records
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if not batch:
                remaining = {tp for tp in remaining if consumer.position(tp) < end[tp]}
    finally:
        consumer.close()
