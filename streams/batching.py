"""Micro-batches of a Faust stream's events, acknowledged only after they were processed.

Faust's ``Stream.take_events`` fills its buffer from a processor that looks the event up
afterwards (``stream.current_event``) and acknowledges the buffer in a ``finally``: a
batch whose processing is interrupted (a stopping worker cancels its agents) is
acknowledged as if done, and around a rebalance its buffer was seen to hold a message
that was never handed on nor acknowledged (and to acknowledge another twice, which stalls
Faust's commit at one offset per commit interval). :func:`take_batches` instead reads the
stream's events (manual acknowledgement) into a bounded queue from a task of its own, and
acknowledges a batch only when the consumer asks for the next one: an interrupted batch
stays unacknowledged, so it is delivered again after a restart or a rebalance (the worker's
updates are idempotent), and every event handed on is acknowledged exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any


async def take_batches(stream: Any, max_events: int, within_s: float) -> AsyncIterator[list[Any]]:
    """Yield lists of up to ``max_events`` events: the first that arrives, then whatever else
    arrives within ``within_s`` of it. Each list is acknowledged when the next one is requested.
    """
    if max_events < 1 or within_s < 0:
        raise ValueError("max_events must be >= 1 and within_s >= 0")
    manual = stream.noack()
    buffer: list[Any] = []
    ready = asyncio.Event()  # at least one event is buffered
    full = asyncio.Event()  # max_events are buffered
    room = asyncio.Event()  # the buffer may take more
    room.set()

    async def pump() -> None:
        async for event in manual.events():
            buffer.append(event)
            ready.set()
            if len(buffer) >= max_events:
                full.set()
                room.clear()
                await room.wait()

    reader = asyncio.ensure_future(pump())
    waiters: set[asyncio.Future[Any]] = set()
    try:
        while True:
            waiters = {asyncio.ensure_future(ready.wait())}
            await asyncio.wait(waiters | {reader}, return_when=asyncio.FIRST_COMPLETED)
            if not buffer:  # the stream ended (or failed): nothing more to batch
                reader.result()
                return
            if not full.is_set() and within_s > 0 and not reader.done():
                waiters = {asyncio.ensure_future(full.wait())}
                await asyncio.wait(waiters | {reader}, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            batch = buffer[:max_events]
            del buffer[:max_events]
            if not buffer:
                ready.clear()
            if len(buffer) < max_events:
                full.clear()
                room.set()
            yield batch
            for event in batch:  # reached only when the consumer came back for more
                await manual.ack(event)
    finally:
        for w in waiters:
            w.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
