"""Producing JSON-lines events to their topics, keyed the way the workers partition them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kafka import KafkaProducer

from streams.kafka_config import kafka_python_kwargs
from streams.records import INPUT_RECORDS
from streams.settings import Settings
from streams.validation import InvalidEvent, Limits, decode_event

#: Field that is the message key on each input topic.
KEY_FIELDS: dict[str, str] = {"catalog": "item_id", "clicks": "user_id", "searches": "user_id", "impressions": "user_id"}


class ProduceError(ValueError):
    """Input lines that cannot be sent; the message lists them with line numbers."""


def topic_name(settings: Settings, kind: str) -> str:
    """The configured topic for an input kind (catalog, clicks, searches, impressions)."""
    return {
        "catalog": settings.topic_catalog,
        "clicks": settings.topic_clicks,
        "searches": settings.topic_searches,
        "impressions": settings.topic_impressions,
    }[kind]


def classify(event: dict[str, Any]) -> str:
    """Which input topic an event belongs to, from its fields.

    >>> classify({"user_id": "u", "query": "shoes"}), classify({"item_id": "i", "title": "Shoe"})
    ('searches', 'catalog')
    """
    if "query" in event:
        return "searches"
    if "item_ids" in event:
        return "impressions"
    if "user_id" in event and "item_id" in event:
        return "clicks"
    if "item_id" in event:
        return "catalog"
    raise ValueError("cannot tell the topic: expected a click (user_id, item_id, kind), a search (query), "
                     "an impression (item_ids) or a catalog item (item_id, title); or pass --topic")


def create_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer for ``settings`` (murmur2 key partitioning, like the JVM client)."""
    return KafkaProducer(**kafka_python_kwargs(settings), **{"linger_ms": 5, "acks": 1, **overrides})


def produce_lines(settings: Settings, lines: Iterable[bytes], topic: str = "auto", validate: bool = True) -> dict[str, int]:
    """Validate then send every non-blank line; returns counts per topic.

    With ``validate``, nothing is sent unless every line is valid, and the error
    names each bad line. Without it, lines go out as they are (the worker sends
    invalid ones to the dead-letter topic).
    """
    limits = Limits(settings.max_catalog_event_bytes, settings.min_event_ts, settings.max_event_ts())
    planned: list[tuple[str, bytes | None, bytes]] = []
    errors: list[str] = []
    for lineno, raw in enumerate(lines, start=1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("a line must be a JSON object")
            kind = classify(data) if topic == "auto" else topic
            if validate:
                max_bytes = settings.max_catalog_event_bytes if kind == "catalog" else settings.max_event_bytes
                decode_event(INPUT_RECORDS[kind], raw, Limits(max_bytes, limits.min_ts, limits.max_ts))
            key = data.get(KEY_FIELDS[kind])
        except (ValueError, InvalidEvent) as exc:
            if validate:
                errors.append(f"line {lineno}: {exc}")
                continue
            kind, key = (topic if topic != "auto" else "clicks"), None
        planned.append((kind, str(key).encode() if key is not None else None, raw))
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ProduceError(f"{len(errors)} invalid line(s), nothing sent (use --no-validate to send anyway):\n  {shown}{more}")
    counts: dict[str, int] = {}
    producer = create_producer(settings)
    try:
        for kind, key, value in planned:
            name = topic_name(settings, kind)
            producer.send(name, key=key, value=value)
            counts[name] = counts.get(name, 0) + 1
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return counts
