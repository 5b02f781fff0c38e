"""Every phase of a run has its own topics, group and keys; only item vectors are shared."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from streams.bench.phases import (
    TOPIC_FIELDS,
    echo_settings,
    echo_topics,
    pipeline_settings,
)
from streams.settings import Settings
from streams.topics import topic_specs


def test_phases_never_share_what_they_measure(tmp_path: Path) -> None:
    base = Settings(kafka_bootstrap_servers="k:9092", redis_url=SecretStr("redis://r:6379/0"), partitions=6)
    live = pipeline_settings(base, "r1", "live", tmp_path, embeds_catalog=True)
    catchup = pipeline_settings(base, "r1", "catchup", tmp_path, embeds_catalog=False)
    echo_live = echo_settings(base, "r1", "live-echo")
    echo_catchup = echo_settings(base, "r1", "catchup-echo", clicks_topic=catchup.topic_clicks)
    phases = [live, catchup, echo_live, echo_catchup]

    assert len({s.app_id for s in phases}) == 4
    assert len({s.redis_key_prefix for s in phases}) == 4
    assert len({s.web_port for s in phases}) == 4
    assert live.data_dir != catchup.data_dir and live.data_dir.parent == tmp_path

    live_topics = {spec.name for spec in topic_specs(live)}
    catchup_topics = {spec.name for spec in topic_specs(catchup)}
    assert live_topics & catchup_topics == {live.topic_item_vectors}  # embedded once, loaded by both
    assert all("bench-r1" in name for name in live_topics | catchup_topics)
    assert echo_live.topic_clicks not in live_topics | catchup_topics
    assert echo_catchup.topic_clicks == catchup.topic_clicks  # the same backlog, another group
    assert [(s.name, s.partitions) for s in echo_topics(echo_live)] == [(echo_live.topic_clicks, 6)]
    for field in TOPIC_FIELDS:
        assert getattr(live, field) != getattr(base, field)
