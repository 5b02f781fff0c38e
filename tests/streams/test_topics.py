"""Explicit topic creation against the embedded broker."""

from __future__ import annotations

import pytest
from kafka.admin import KafkaAdminClient

from streams.kafka_config import kafka_python_kwargs
from streams.settings import Settings
from streams.topics import (
    USER_TABLES,
    TopicMismatch,
    TopicSpec,
    describe_topic_configs,
    describe_topics,
    ensure_topics,
    topic_specs,
)

# --------------------------------------------------------------------------- specs (no broker)


def test_topic_specs_follow_settings() -> None:
    s = Settings(partitions=6, catalog_partitions=3, dlq_partitions=2, replication_factor=3,
                 item_stats_retention_s=60, app_id="shop")
    specs = {spec.name: spec for spec in topic_specs(s, tables=("users", "bandit"))}
    assert {name: spec.partitions for name, spec in specs.items()} == {
        "catalog.items": 3,
        "events.clicks": 6,
        "events.searches": 6,
        "events.impressions": 6,
        "recommendations": 6,
        "recommendations.surfaces": 6,
        "events.dlq": 2,
        "streamrec.item-vectors": 3,
        "streamrec.item-stats": 1,
        "shop-users-changelog": 6,
        "shop-bandit-changelog": 6,
        "shop-__assignor-__leader": 6,
    }
    assert all(spec.replication == 3 for spec in specs.values())
    compacted = {name for name, spec in specs.items() if spec.config.get("cleanup.policy") == "compact"}
    assert compacted == {"catalog.items", "streamrec.item-vectors", "shop-users-changelog", "shop-bandit-changelog"}
    assert specs["streamrec.item-stats"].config == {"retention.ms": "60000"}
    assert specs["events.clicks"].config == {}


def test_default_tables_and_duplicate_names() -> None:
    names = [spec.name for spec in topic_specs(Settings())]
    assert [f"streamrec-{t}-changelog" for t in USER_TABLES] == [n for n in names if n.endswith("-changelog")]
    with pytest.raises(ValueError, match="configured twice"):
        topic_specs(Settings(topic_clicks="events.searches"))


def test_spec_names_match_faust() -> None:
    """Our changelog and leader topic names are the ones Faust itself uses."""
    faust = pytest.importorskip("faust")
    app = faust.App("namecheck", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    table = app.Table("users", default=dict, partitions=4)
    names = {spec.name for spec in topic_specs(Settings(app_id="namecheck"))}
    assert table.changelog_topic.get_topic_name() in names
    assert app._leader_assignor._leader_topic_name in names  # noqa: SLF001


def test_topic_spec_is_frozen_and_hashable() -> None:
    spec = TopicSpec("t", 2, 1, {"cleanup.policy": "compact"})
    with pytest.raises(AttributeError):
        spec.partitions = 3  # type: ignore[misc]
    assert spec == TopicSpec("t", 2, 1, {"cleanup.policy": "compact"}, partitions_setting=None)
    assert len({spec, TopicSpec("t", 2, 1, {"cleanup.policy": "compact"})}) == 1


# --------------------------------------------------------------------------- against the broker


def test_ensure_topics_creates_exact_counts_and_configs(settings: Settings) -> None:
    specs = topic_specs(settings)
    names = [spec.name for spec in specs]
    assert describe_topics(settings, names) == {}

    report = ensure_topics(settings)
    assert sorted(report.created) == sorted(names)
    assert report.present == ()

    assert describe_topics(settings, names) == {spec.name: spec.partitions for spec in specs}
    assert describe_topics(settings, names)[settings.topic_catalog] == settings.catalog_partitions == 2
    assert describe_topics(settings, names)[settings.topic_clicks] == settings.partitions == 4
    # describe_topics without names lists the whole cluster, ours included
    assert set(names) <= set(describe_topics(settings))

    configs = describe_topic_configs(settings, names)
    for spec in specs:
        for key, value in spec.config.items():
            assert configs[spec.name].get(key) == value, (spec.name, key, configs[spec.name])
    assert configs[f"{settings.app_id}-users-changelog"]["cleanup.policy"] == "compact"
    assert configs[settings.topic_item_stats]["retention.ms"] == str(settings.item_stats_retention_s * 1000)


def test_ensure_topics_is_idempotent(settings: Settings) -> None:
    first = ensure_topics(settings)
    second = ensure_topics(settings)
    assert second.created == ()
    assert sorted(second.present) == sorted(first.created)
    assert second.config_drift == ()
    assert second.existing == second.present
    # a partly created set: only the missing one is created
    extra = TopicSpec(f"extra.{settings.app_id}", 3)
    third = ensure_topics(settings, [*topic_specs(settings), extra])
    assert third.created == (extra.name,)
    assert describe_topics(settings, [extra.name]) == {extra.name: 3}


def test_mismatch_raises_a_helpful_error_and_creates_nothing(settings: Settings) -> None:
    admin = KafkaAdminClient(**kafka_python_kwargs(settings, client_id="topics-test"))
    try:
        admin.create_topics({settings.topic_clicks: {"num_partitions": 1, "replication_factor": 1}})
    finally:
        admin.close()

    with pytest.raises(TopicMismatch) as info:
        ensure_topics(settings)
    message = str(info.value)
    assert f"'{settings.topic_clicks}' has 1 partition(s) but 4 are expected" in message
    assert "STREAMREC_PARTITIONS" in message
    assert "delete and recreate" in message
    assert [(spec.name, actual) for spec, actual in info.value.mismatches] == [(settings.topic_clicks, 1)]
    # checked before creating: none of the other topics exist now
    others = [spec.name for spec in topic_specs(settings) if spec.name != settings.topic_clicks]
    assert describe_topics(settings, others) == {}


def test_mismatch_names_the_right_setting(settings: Settings) -> None:
    ensure_topics(settings, [TopicSpec(settings.topic_catalog, 5)])
    with pytest.raises(TopicMismatch, match=r"has 5 partition\(s\) but 2 are expected.*STREAMREC_CATALOG_PARTITIONS"):
        ensure_topics(settings)


def test_config_drift_is_reported(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    changelog = f"{settings.app_id}-users-changelog"
    ensure_topics(settings, [TopicSpec(changelog, settings.partitions, 1, {"cleanup.policy": "delete"})])
    report = ensure_topics(settings)
    assert report.config_drift == (changelog,)
    assert "cleanup.policy=delete" in caplog.text
