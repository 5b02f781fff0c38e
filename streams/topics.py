"""Explicit topic creation: every topic with its partition count and config.

Broker auto-creation gives every topic the broker's default partition count, and Faust
tables then crash with ``PartitionsMismatch`` because a changelog topic must have as many
partitions as the topics that feed the table. So streamrec creates all of its topics
itself, up front, and refuses to run against existing topics with other counts.

>>> from streams.settings import Settings
>>> specs = {s.name: s for s in topic_specs(Settings(partitions=8, catalog_partitions=4))}
>>> specs["catalog.items"].partitions, specs["catalog.items"].config["cleanup.policy"]
(4, 'compact')
>>> specs["streamrec-users-changelog"].partitions, specs["streamrec.item-stats"].partitions
(8, 1)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streams.kafka_config import kafka_python_kwargs

if TYPE_CHECKING:
    from kafka.admin import KafkaAdminClient

    from streams.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "TopicMismatch",
    "TopicReport",
    "TopicSpec",
    "USER_TABLES",
    "changelog_topic",
    "describe_topic_configs",
    "describe_topics",
    "ensure_topics",
    "leader_topic",
    "topic_specs",
]

#: Faust tables keyed by user_id; each has a changelog topic ``{app_id}-{table}-changelog``.
USER_TABLES: tuple[str, ...] = ("users",)

_COMPACT = {"cleanup.policy": "compact"}
#: Kafka error codes met while creating/describing topics.
_UNKNOWN_TOPIC = 3
_LEADER_NOT_AVAILABLE = 5
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    """A topic streamrec needs: name, partition count, replication factor, topic config."""

    name: str
    partitions: int
    replication: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    #: The setting that controls ``partitions`` (for error messages; None: fixed); not compared.
    partitions_setting: str | None = field(default="partitions", compare=False)

    def __hash__(self) -> int:
        return hash((self.name, self.partitions, self.replication, tuple(sorted(self.config.items()))))


@dataclass(frozen=True)
class TopicReport:
    """What :func:`ensure_topics` did: topics it created and topics already there."""

    created: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    #: Existing topics whose config differs from the spec (logged, not fatal).
    config_drift: tuple[str, ...] = ()

    @property
    def existing(self) -> tuple[str, ...]:
        """Alias of :attr:`present`."""
        return self.present

    def __str__(self) -> str:
        return f"created {len(self.created)} topic(s), {len(self.present)} already present"


class TopicMismatch(RuntimeError):
    """Existing topics have other partition counts than streamrec's settings expect."""

    def __init__(self, mismatches: Sequence[tuple[TopicSpec, int]]) -> None:
        self.mismatches = list(mismatches)
        lines = []
        for spec, actual in self.mismatches:
            if spec.partitions_setting:
                source = f"setting {spec.partitions_setting} / STREAMREC_{spec.partitions_setting.upper()}"
            else:
                source = "fixed by streamrec"
            lines.append(
                f"  topic {spec.name!r} has {actual} partition(s) but {spec.partitions} are expected ({source})"
            )
        names = ", ".join(spec.name for spec, _ in self.mismatches)
        super().__init__(
            "existing Kafka topics do not match the configured partition counts:\n"
            + "\n".join(lines)
            + "\nTo fix: either delete and recreate these topics with the expected counts "
            f"(this loses their data; e.g. `kafka-topics --delete --topic ...` for {names}, then "
            "run `streamrec topics` again), or set the partitions settings (STREAMREC_PARTITIONS, "
            "STREAMREC_CATALOG_PARTITIONS, STREAMREC_DLQ_PARTITIONS) to the topics' actual counts. "
            "Changelog topics must match the partitions of the topics feeding their table."
        )


def changelog_topic(settings: Settings, table: str) -> str:
    """Faust's changelog topic of ``table`` (``{app_id}-{table}-changelog``)."""
    return f"{settings.app_id}-{table}-changelog"


def leader_topic(settings: Settings) -> str:
    """Faust's leader-assignor topic (``{app_id}-__assignor-__leader``)."""
    return f"{settings.app_id}-__assignor-__leader"


def topic_specs(settings: Settings, tables: Iterable[str] = USER_TABLES) -> list[TopicSpec]:
    """Every topic streamrec uses, with partition counts and configs from ``settings``."""
    s = settings
    rf = s.replication_factor
    specs = [
        TopicSpec(s.topic_catalog, s.catalog_partitions, rf, dict(_COMPACT), "catalog_partitions"),
        TopicSpec(s.topic_clicks, s.partitions, rf),
        TopicSpec(s.topic_searches, s.partitions, rf),
        TopicSpec(s.topic_impressions, s.partitions, rf),
        TopicSpec(s.topic_recommendations, s.partitions, rf),
        TopicSpec(s.topic_surface_recommendations, s.partitions, rf),
        TopicSpec(s.topic_dlq, s.dlq_partitions, rf, {}, "dlq_partitions"),
        TopicSpec(s.topic_item_vectors, s.catalog_partitions, rf, dict(_COMPACT), "catalog_partitions"),
        TopicSpec(
            s.topic_item_stats, 1, rf, {"retention.ms": str(s.item_stats_retention_s * 1000)}, None
        ),
    ]
    specs += [TopicSpec(changelog_topic(s, t), s.partitions, rf, dict(_COMPACT)) for t in tables]
    specs.append(TopicSpec(leader_topic(s), s.partitions, rf))
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ValueError(f"topic {spec.name!r} is configured twice; give each topic its own name")
        seen.add(spec.name)
    return specs


# --------------------------------------------------------------------------- broker side


def _admin(settings: Settings) -> KafkaAdminClient:
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(**kafka_python_kwargs(settings, client_id=f"{settings.app_id}-topics"))


def _partition_counts(admin: KafkaAdminClient, names: Sequence[str] | None) -> dict[str, int | None]:
    """``{name: partitions}``, None for a topic that does not exist."""
    import kafka.errors as Errors

    out: dict[str, int | None] = {}
    for topic in admin.describe_topics(list(names) if names is not None else None):
        code = topic["error_code"]
        if code == _UNKNOWN_TOPIC:
            out[topic["name"]] = None
        elif code in (0, _LEADER_NOT_AVAILABLE) and topic["partitions"]:
            out[topic["name"]] = len(topic["partitions"])
        elif code == _LEADER_NOT_AVAILABLE:
            out[topic["name"]] = None
        else:
            raise Errors.for_code(code)(f"describing topic {topic['name']!r}")
    return out


def describe_topics(settings: Settings, names: Iterable[str] | None = None) -> dict[str, int]:
    """``{topic: partitions}`` for the topics that exist (all of the cluster's if ``names`` is None)."""
    admin = _admin(settings)
    try:
        counts = _partition_counts(admin, list(names) if names is not None else None)
    finally:
        admin.close()
    return {name: n for name, n in sorted(counts.items()) if n is not None}


def describe_topic_configs(settings: Settings, names: Iterable[str]) -> dict[str, dict[str, str]]:
    """``{topic: {config key: value}}`` as the broker reports it (all keys, defaults included)."""
    admin = _admin(settings)
    try:
        return _configs(admin, list(names))
    finally:
        admin.close()


def _configs(admin: KafkaAdminClient, names: Sequence[str]) -> dict[str, dict[str, str]]:
    from kafka.admin import ConfigResource, ConfigResourceType

    if not names:
        return {}
    # All keys (filter "all"): Tansu reports topic configs as DEFAULT_CONFIG, so the
    # default "modified" filter would hide them; and Tansu drops the connection when the
    # request names specific keys, so ask for everything.
    result = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names], config_filter="all"
    )
    topics = result.get("topic", {})
    return {name: {k: v.get("value") for k, v in topics.get(name, {}).items()} for name in names}


def ensure_topics(
    settings: Settings,
    specs: Sequence[TopicSpec] | None = None,
    *,
    timeout_s: float = 30.0,
) -> TopicReport:
    """Create the missing topics; check that the existing ones have the right partition counts.

    Idempotent. Raises :class:`TopicMismatch` (before creating anything) when an existing
    topic has another partition count than its spec. Config differences of existing topics
    (e.g. a changelog that is not compacted) are logged and reported, not fatal.
    """
    specs = list(specs) if specs is not None else topic_specs(settings)
    by_name = {spec.name: spec for spec in specs}
    admin = _admin(settings)
    try:
        counts = _partition_counts(admin, list(by_name))
        mismatches = [(by_name[n], c) for n, c in counts.items() if c is not None and c != by_name[n].partitions]
        if mismatches:
            raise TopicMismatch(mismatches)
        present = [name for name in by_name if counts.get(name) is not None]
        missing = [name for name in by_name if counts.get(name) is None]
        created: list[str] = []
        if missing:
            created, raced = _create(admin, [by_name[n] for n in missing], timeout_s)
            present += raced
            _wait_visible(admin, [by_name[n] for n in missing], timeout_s)
        drift = _config_drift(admin, [by_name[n] for n in present])
    finally:
        admin.close()
    report = TopicReport(created=tuple(created), present=tuple(present), config_drift=tuple(drift))
    log.info("topics: %s", report)
    return report


def _create(admin: KafkaAdminClient, specs: Sequence[TopicSpec], timeout_s: float) -> tuple[list[str], list[str]]:
    import kafka.errors as Errors

    request = {
        spec.name: {
            "num_partitions": spec.partitions,
            "replication_factor": spec.replication,
            "configs": dict(spec.config),
        }
        for spec in specs
    }
    result = admin.create_topics(request, timeout_ms=int(timeout_s * 1000), raise_errors=False)
    created, raced, failed = [], [], []
    for topic in result["topics"]:
        code = topic["error_code"]
        if code == 0:
            created.append(topic["name"])
        elif code == _TOPIC_ALREADY_EXISTS:  # created meanwhile by another worker: fine
            raced.append(topic["name"])
        else:
            error = Errors.for_code(code)
            failed.append(f"{topic['name']}: {error.__name__} ({topic.get('error_message') or 'no message'})")
    if failed:
        raise RuntimeError("could not create Kafka topics:\n  " + "\n  ".join(failed))
    for name in created:
        log.info("created topic %s", name)
    return created, raced


def _wait_visible(admin: KafkaAdminClient, specs: Sequence[TopicSpec], timeout_s: float) -> None:
    """Wait until the new topics show in metadata; check their partition counts again."""
    deadline = time.monotonic() + timeout_s
    names = [spec.name for spec in specs]
    while True:
        counts = _partition_counts(admin, names)
        if all(counts.get(n) is not None for n in names):
            break
        if time.monotonic() >= deadline:
            absent = [n for n in names if counts.get(n) is None]
            raise TimeoutError(f"topics not visible in metadata after {timeout_s:.0f}s: {absent}")
        time.sleep(0.1)
    mismatches = [(spec, counts[spec.name]) for spec in specs if counts[spec.name] != spec.partitions]
    if mismatches:  # e.g. a concurrent creator used other settings
        raise TopicMismatch(mismatches)  # type: ignore[arg-type]


def _config_drift(admin: KafkaAdminClient, specs: Sequence[TopicSpec]) -> list[str]:
    specs = [spec for spec in specs if spec.config]
    if not specs:
        return []
    try:
        actual = _configs(admin, [spec.name for spec in specs])
    except Exception as exc:  # noqa: BLE001 - describing configs is best effort
        log.debug("could not describe topic configs: %r", exc)
        return []
    drift = []
    for spec in specs:
        have: Mapping[str, Any] = actual.get(spec.name, {})
        for key, want in spec.config.items():
            if key in have and str(have[key]) != str(want):
                drift.append(spec.name)
                log.warning(
                    "topic %s has %s=%s, streamrec expects %s (alter it with kafka-configs)",
                    spec.name, key, have[key], want,
                )
                break
    return drift
