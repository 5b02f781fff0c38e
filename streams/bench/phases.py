"""Names for one benchmark run: topics, consumer groups, Redis key prefixes, ports, data dirs.

Every run gets a random id and every phase (``live``, ``live-echo``, ``catchup``,
``catchup-echo``, or ``catalog`` when only the catch-up runs) its own topics, group
(``app_id``) and key prefix, so phases never see each other's messages, offsets,
tables or keys. The catalog is embedded once per run, by the first worker, into a
shared item-vector topic that every later worker loads; later workers get an empty
catalog topic of their own so they do not embed it again while being measured.

>>> from streams.settings import Settings
>>> base = Settings(kafka_bootstrap_servers="k:9092", redis_url="redis://r:6379/0")
>>> live = pipeline_settings(base, "ab12", "live", Path("/tmp/w"), embeds_catalog=True)
>>> later = pipeline_settings(base, "ab12", "catchup", Path("/tmp/w"), embeds_catalog=False)
>>> live.topic_clicks, live.app_id, live.redis_key_prefix
('events.clicks.bench-ab12-live', 'streamrec-bench-ab12-live', 'bench-ab12-live:')
>>> live.topic_item_vectors == later.topic_item_vectors, live.topic_catalog == later.topic_catalog
(True, False)
>>> echo = echo_settings(base, "ab12", "catchup-echo", clicks_topic=later.topic_clicks)
>>> echo.topic_clicks == later.topic_clicks, echo.app_id
(True, 'streamrec-bench-ab12-catchup-echo')
"""

from __future__ import annotations

from pathlib import Path

from streams.runtime import find_free_port
from streams.settings import Settings
from streams.topics import TopicSpec

#: Settings fields that hold topic names.
TOPIC_FIELDS: tuple[str, ...] = tuple(
    name for name, info in Settings.model_fields.items() if name.startswith("topic_") and isinstance(info.default, str)
)


def _phase(base: Settings, run_id: str, phase: str, **extra: object) -> Settings:
    suffix = f"bench-{run_id}-{phase}"
    update: dict[str, object] = {field: f"{getattr(base, field)}.{suffix}" for field in TOPIC_FIELDS}
    update.update(
        app_id=f"{base.app_id}-bench-{run_id}-{phase}",
        redis_key_prefix=f"{base.redis_key_prefix}bench-{run_id}-{phase}:",
        web_port=find_free_port(base.web_host),
    )
    update.update(extra)
    return base.model_copy(update=update)


def pipeline_settings(base: Settings, run_id: str, phase: str, work: Path, *, embeds_catalog: bool) -> Settings:
    """Worker settings for ``phase``; item vectors are shared by the run, the catalog topic too if ``embeds_catalog``."""
    shared = f"bench-{run_id}"
    extra: dict[str, object] = {
        "topic_item_vectors": f"{base.topic_item_vectors}.{shared}",
        "data_dir": work / phase,
    }
    if embeds_catalog:
        extra["topic_catalog"] = f"{base.topic_catalog}.{shared}"
    return _phase(base, run_id, phase, **extra)


def echo_settings(base: Settings, run_id: str, phase: str, clicks_topic: str | None = None) -> Settings:
    """Echo settings for ``phase``: its own group and key prefix; ``clicks_topic`` to share a backlog."""
    s = _phase(base, run_id, phase)
    return s.model_copy(update={"topic_clicks": clicks_topic}) if clicks_topic else s


def echo_topics(s: Settings) -> list[TopicSpec]:
    """The one topic the echo reads, with the pipeline's partition count."""
    return [TopicSpec(s.topic_clicks, s.partitions, s.replication_factor)]
