"""A background task that reads the consumer group's lag every ``lag_interval_s``.

The reading (committed and end offsets, lag in records and seconds per partition) is
published on ``/metrics`` through :meth:`streams.metrics.Metrics.set_lag`. Every worker
reads the whole group, not only its own partitions, so a partition whose owner is stuck
or gone is still seen; dashboards and alerts take ``max by (group, topic, partition)``.
The Kafka calls are blocking (kafka-python) and run on a thread of their own, never on
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from streams.lag import LagError, LagReader, input_topics

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


async def monitor_lag(p: Pipeline) -> None:
    """Read the lag forever (runs for the worker's life); failures are counted and logged."""
    s = p.settings
    reader = LagReader(s, s.app_id, input_topics(s))
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lag-reader")
    failing = False
    try:
        while True:
            t0 = time.perf_counter()
            try:
                lag = await loop.run_in_executor(executor, reader.read)
            except Exception as exc:
                p.metrics.lag_read_errors.inc()
                if not failing:
                    log.warning("cannot read consumer lag (retrying every %.0fs): %s", s.lag_interval_s, exc,
                                exc_info=not isinstance(exc, LagError))
                failing = True
                await loop.run_in_executor(executor, reader.close)  # reconnect on the next attempt
            else:
                if failing:
                    log.info("consumer lag readable again")
                failing = False
                p.metrics.set_lag(lag)
                p.metrics.lag_read_seconds.observe(time.perf_counter() - t0)
            await asyncio.sleep(s.lag_interval_s)
    finally:
        await loop.run_in_executor(executor, reader.close)
        executor.shutdown(wait=False)


def register(p: Pipeline) -> None:
    """Attach the lag monitor as a background task of the app."""

    @p.app.task
    async def lag_monitor() -> None:
        await monitor_lag(p)
