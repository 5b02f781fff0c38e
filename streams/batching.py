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
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max_events)
    loop = asyncio.get_running_loop()

    async def pump() -> None:
        async for event in manual.events():
            await queue.put(event)

    reader = asyncio.ensure_future(pump())
    first: asyncio.Future[Any] | None = None
    try:
        while True:
            first = asyncio.ensure_future(queue.get())
            await asyncio.wait({first, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not first.done():  # the stream ended (or failed): nothing more to batch
                first.cancel()
                reader.result()
                return
            batch = [first.result()]
            deadline = loop.time() + within_s
            while len(batch) < max_events:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0 or reader.done():
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            yield batch
            for event in batch:  # reached only when the consumer came back for more
                await manual.ack(event)
    finally:
        if first is not None:
            first.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
