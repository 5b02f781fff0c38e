"""Prometheus metrics of one worker, on a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


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
        self.redis_pending = Gauge("streamrec_redis_pending_keys", "Keys waiting to be written to Redis", registry=r)
        self.image_errors = Counter(
            "streamrec_image_errors", "Item images that could not be loaded (embedded from text only)", registry=r
        )
        self.items = Gauge("streamrec_catalog_items", "Items in this worker's index", registry=r)
        self.provider = Gauge(
            "streamrec_execution_provider", "onnxruntime execution provider in use", ["model", "provider"], registry=r
        )

    def render(self) -> bytes:
        """Text exposition format for ``/metrics``."""
        return generate_latest(self.registry)
