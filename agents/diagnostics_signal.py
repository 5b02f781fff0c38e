"""``SIGUSR1`` logs a snapshot of the worker's tasks and consumer (see :mod:`streams.diagnostics`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

from streams.diagnostics import consumer_report, consumer_thread_tasks, task_report
from streams.lag import input_topics

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


def register(p: Pipeline) -> None:
    """Install the ``SIGUSR1`` handler once the worker's event loop runs."""
    topics = {*input_topics(p.settings), p.settings.topic_impressions}

    def dump() -> None:
        try:
            report = "\n".join([
                consumer_report(p.app, topics),
                "-- worker event loop --",
                task_report(asyncio.all_tasks()),
                "-- consumer thread event loop --",
                task_report(consumer_thread_tasks(p.app)),
            ])
        except Exception as exc:  # noqa: BLE001 - never take the worker down for a diagnostic
            report = f"diagnostics failed: {exc!r}"
        log.warning("diagnostics (SIGUSR1):\n%s", report)

    @p.app.task
    async def diagnostics_on_sigusr1() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
