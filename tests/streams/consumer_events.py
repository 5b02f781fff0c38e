"""Micro-batch events for tests of the consumer's bookkeeping: the message fields the input
guards read (topic, partition, offset, acknowledged)."""

from __future__ import annotations

from typing import Any


class Message:
    """A consumed message's position, and whether it was acknowledged."""

    def __init__(self, tp: Any, offset: int) -> None:
        self.tp, self.topic, self.partition, self.offset, self.acked = tp, tp.topic, tp.partition, offset, False


class Event:
    """A stream event holding a :class:`Message`."""

    def __init__(self, tp: Any, offset: int) -> None:
        self.message = Message(tp, offset)
