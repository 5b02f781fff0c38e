"""A background task that re-reads input messages the consumer skipped (see :mod:`streams.offset_holes`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.lag import input_topics
from streams.offset_holes import HoleWatch, watch_holes

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def register(p: Pipeline) -> None:
    """Attach the skipped-input watch to the app: every input topic, checked every ``skipped_input_check_s``."""
    s = p.settings

    def repaired(topic: str, partition: int, offset: int) -> None:
        p.metrics.reread.labels(topic, str(partition)).inc()

    def expired(topic: str, partition: int, lost: int) -> None:
        p.metrics.expired.labels(topic, str(partition)).inc(lost)

    def log_reset(topic: str, partition: int, committed: int, log_end: int) -> None:
        p.metrics.log_resets.labels(topic, str(partition)).inc()

    @p.app.task
    async def skipped_input_watch() -> None:
        topics = {*input_topics(s), s.topic_impressions}
        await watch_holes(p.app, topics, s.skipped_input_check_s, HoleWatch(s.skipped_input_timeout_s), repaired,
                          on_expired=expired, on_log_reset=log_reset)
