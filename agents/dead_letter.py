"""Decoding a batch of raw events, sending each invalid one to the dead-letter topic.

The DLQ message keeps the original key and value bytes untouched; where it came
from and why it was rejected travel in headers (``streamrec.topic``,
``streamrec.partition``, ``streamrec.offset``, ``streamrec.error``,
``streamrec.reason``), the convention Kafka Connect uses for its DLQs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from faust.types import EventT

from streams.records import Event
from streams.validation import InvalidEvent, Limits, decode_event

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)
E = TypeVar("E", bound=Event)


async def send_to_dlq(p: Pipeline, event: EventT, error: InvalidEvent) -> None:
    """Publish ``event`` unchanged to the DLQ with the reason in its headers."""
    msg = event.message
    headers = {
        "streamrec.topic": msg.topic.encode(),
        "streamrec.partition": str(msg.partition).encode(),
        "streamrec.offset": str(msg.offset).encode(),
        "streamrec.reason": error.code.encode(),
        "streamrec.error": str(error).encode()[:2000],
        "streamrec.ts": f"{time.time():.3f}".encode(),
    }
    await p.topics.dlq.send(key=event.key, value=event.value, headers=headers)
    p.metrics.dlq.labels(msg.topic, error.code).inc()
    p.metrics.events.labels(msg.topic, "dlq").inc()
    log.info("DLQ %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, error)


async def decode_batch(
    p: Pipeline, events: Sequence[EventT], model: type[E], limits: Limits, key_field: str
) -> list[tuple[EventT, E]]:
    """Valid (event, record) pairs of ``events``; the others go to the DLQ.

    The message key must equal the record's ``key_field``: topics are partitioned by
    it, and per-key state lives on the worker that owns the key's partition.
    """
    good: list[tuple[EventT, E]] = []
    for ev in events:
        try:
            record = decode_event(model, ev.value, limits)
            expected = getattr(record, key_field)
            key = ev.key.decode("utf-8", "replace") if isinstance(ev.key, bytes) else ev.key
            if key != expected:
                raise InvalidEvent(
                    "key_mismatch",
                    f"message key {key!r} must equal {key_field} {expected!r} (topics are partitioned by it)",
                )
        except InvalidEvent as exc:
            await send_to_dlq(p, ev, exc)
            continue
        except Exception as exc:  # noqa: BLE001 - no input may stop the worker
            log.warning("undecodable %s event: %r", events[0].message.topic, exc)
            await send_to_dlq(p, ev, InvalidEvent("undecodable", f"{type(exc).__name__}: {exc}"))
            continue
        good.append((ev, record))
    if good:
        p.metrics.events.labels(events[0].message.topic, "ok").inc(len(good))
    return good
