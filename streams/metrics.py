"""Prometheus metrics of one worker, on a registry of its own (no global state).

Counters and histograms are updated by the agents as events flow. Two collectors add
series computed at scrape time: the consumer group's lag (from the latest
:class:`~streams.lag.GroupLag` the lag monitor read, with kafka_exporter's metric
names and ``group``/``topic``/``partition`` labels, so existing Kafka lag alerts and
dashboards apply) and the worker's live state (model version, assigned partitions,
readiness).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from streams.lag import GroupLag

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: Names of the lag series (kafka_exporter's names; labels group, topic, partition).
LAG = "kafka_consumergroup_lag"
LAG_SECONDS = "kafka_consumergroup_lag_seconds"
COMMITTED_OFFSET = "kafka_consumergroup_current_offset"
END_OFFSET = "kafka_topic_partition_current_offset"


@dataclass(frozen=True)
class LiveState:
    """What the worker is doing right now, read at every scrape."""

    model_version: str
    embedding_space: str
    #: Partitions this worker owns, per input topic.
    assigned: Mapping[str, int] = field(default_factory=dict)
    #: Readiness checks by name (see ``/ready``).
    checks: Mapping[str, bool] = field(default_factory=dict)
    users_in_memory: int = 0


class LagCollector(Collector):
    """Exposes the latest lag reading (nothing until the first one)."""

    def __init__(self) -> None:
        self.latest: GroupLag | None = None

    def collect(self) -> Iterator[Metric]:
        lag = self.latest
        if lag is None:
            return
        labels = ["group", "topic", "partition"]
        messages = GaugeMetricFamily(LAG, "Records written to the partition but not yet processed by the group", labels=labels)
        seconds = GaugeMetricFamily(
            LAG_SECONDS, "Age of the oldest record the group has not processed (0 when caught up)", labels=labels
        )
        committed = GaugeMetricFamily(COMMITTED_OFFSET, "The group's committed offset", labels=labels)
        end = GaugeMetricFamily(END_OFFSET, "Log end offset of the partition", labels=["topic", "partition"])
        for p in lag.partitions:
            key = [lag.group, p.topic, str(p.partition)]
            messages.add_metric(key, p.lag)
            seconds.add_metric(key, p.lag_seconds(lag.measured_at))
            if p.committed is not None:
                committed.add_metric(key, p.committed)
            end.add_metric([p.topic, str(p.partition)], p.end)
        yield from (messages, seconds, committed, end)
        read_at = GaugeMetricFamily(
            "streamrec_lag_last_read_timestamp_seconds", "When the lag above was read (Unix time)", labels=["group"]
        )
        read_at.add_metric([lag.group], lag.measured_at)
        yield read_at


class LiveCollector(Collector):
    """Series read from the running worker at scrape time (set :attr:`source` once it runs)."""

    def __init__(self) -> None:
        self.source: Callable[[], LiveState] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.source is None:
            return
        st = self.source()
        info = GaugeMetricFamily(
            "streamrec_model_info", "Model version and embedding space in use (value 1)",
            labels=["model_version", "embedding_space"],
        )
        info.add_metric([st.model_version, st.embedding_space], 1)
        assigned = GaugeMetricFamily(
            "streamrec_assigned_partitions", "Input partitions this worker owns", labels=["topic"]
        )
        for topic, n in sorted(st.assigned.items()):
            assigned.add_metric([topic], n)
        ready = GaugeMetricFamily("streamrec_ready", "1 when every readiness check passes (see /ready)")
        ready.add_metric([], 1 if st.checks and all(st.checks.values()) else 0)
        checks = GaugeMetricFamily("streamrec_ready_check", "Readiness checks (1 passed)", labels=["check"])
        for name, ok in sorted(st.checks.items()):
            checks.add_metric([name], 1 if ok else 0)
        users = GaugeMetricFamily("streamrec_users_in_memory", "Users in this worker's table partitions")
        users.add_metric([], st.users_in_memory)
        yield from (info, assigned, ready, checks, users)


class Metrics:
    """The worker's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "streamrec_events", "Input events by topic and outcome (ok, dlq)", ["topic", "outcome"], registry=r
        )
        self.dlq = Counter("streamrec_dlq", "Events sent to the dead-letter topic", ["topic", "reason"], registry=r)
        self.refreshes = Counter("streamrec_refreshes", "Recommendation lists published", registry=r)
        self.latency = Histogram(
            "streamrec_event_to_recommendation_seconds",
            "From the triggering event's timestamp to its recommendation being written to Redis",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scoring_batch = Histogram(
            "streamrec_scoring_batch_size",
            "Users scored in one call",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.scoring_seconds = Histogram(
            "streamrec_scoring_seconds", "Time of one batched scoring call", buckets=LATENCY_BUCKETS, registry=r
        )
        self.publish_errors = Counter(
            "streamrec_publish_errors", "Recommendations the Kafka producer failed to deliver", registry=r
        )
        self.redis_errors = Counter("streamrec_redis_errors", "Failed Redis write attempts", registry=r)
        self.redis_retries = Counter(
            "streamrec_redis_write_retries",
            "Redis write batches put back for another attempt after a failure (the writer never drops a key)",
            registry=r,
        )
        self.redis_pending = Gauge("streamrec_redis_pending_keys", "Keys waiting to be written to Redis", registry=r)
        self.guarded = Counter(
            "streamrec_guarded_events",
            "Valid events that changed no state: reason duplicate (redelivered event_id) or rate_limited",
            ["reason"], registry=r,
        )
        self.feedback = Counter(
            "streamrec_feedback_events",
            "How impressions and clicks on published lists resolved in the reward join: outcome impressions, "
            "rewards_1, rewards_0, duplicate_impressions, duplicate_clicks, late_clicks, early_clicks, "
            "orphan_clicks, clicks_not_shown",
            ["outcome"], registry=r,
        )
        self.forgotten = Counter(
            "streamrec_users_forgotten", "User states erased: reason forget (a request) or ttl (expired)",
            ["reason"], registry=r,
        )
        self.image_errors = Counter(
            "streamrec_image_errors", "Item images that could not be loaded (embedded from text only)", registry=r
        )
        self.items = Gauge("streamrec_catalog_items", "Items in this worker's index", registry=r)
        self.provider = Gauge(
            "streamrec_execution_provider", "onnxruntime execution provider in use", ["model", "provider"], registry=r
        )
        self.ranker_loads = Counter(
            "streamrec_ranker_loads", "Ranker bundles loaded (ok) or refused (error, the current model kept)",
            ["outcome"], registry=r,
        )
        self.lag_read_errors = Counter(
            "streamrec_lag_read_errors", "Failed attempts to read the consumer group's lag", registry=r
        )
        self.lag_read_seconds = Histogram(
            "streamrec_lag_read_seconds", "Time to read the group's lag", buckets=LATENCY_BUCKETS, registry=r
        )
        self.reread = Counter(
            "streamrec_input_reread",
            "Input partitions read again from a message the consumer skipped (at the committed offset, or ahead "
            "of a micro-batch that would have overtaken it)",
            ["topic", "partition"], registry=r,
        )
        self.expired = Counter(
            "streamrec_input_expired",
            "Input messages the topic's retention deleted before this consumer group processed them: lost events, "
            "committed over from the log start",
            ["topic", "partition"], registry=r,
        )
        self.log_resets = Counter(
            "streamrec_input_log_resets",
            "Input partitions found ending below the group's committed offset (the topic was deleted and created "
            "again, or the broker truncated it), read again from their log start",
            ["topic", "partition"], registry=r,
        )
        self.fenced = Counter(
            "streamrec_fenced_events",
            "Input events left unprocessed and uncommitted (read again by the partition's owner) because the "
            "consumer group had not confirmed this worker's membership for a session timeout",
            registry=r,
        )
        self.outdated_states = Counter(
            "streamrec_outdated_state_records",
            "users changelog records not applied on recovery or standby because they reflect less input than the "
            "state held (a cut-off worker's late writes)",
            registry=r,
        )
        self.item_stats_sent = Counter(
            "streamrec_item_stats_sent", "Item-statistics increments this worker produced", registry=r
        )
        self.item_stats_applied = Counter(
            "streamrec_item_stats_applied",
            "Item-statistics increments (from every worker) applied to this worker's item state", registry=r,
        )
        self.started = Gauge("streamrec_start_time_seconds", "When this worker's metrics were created", registry=r)
        self.started.set(time.time())
        self.lag = LagCollector()
        self.live = LiveCollector()
        r.register(self.lag)
        r.register(self.live)

    def on_redis_error(self) -> None:
        """A Redis write attempt failed; the writer puts the batch back and retries."""
        self.redis_errors.inc()
        self.redis_retries.inc()

    def set_lag(self, lag: GroupLag) -> None:
        """Publish a new lag reading."""
        self.lag.latest = lag

    def render(self) -> bytes:
        """Text exposition format for ``/metrics``."""
        return generate_latest(self.registry)
