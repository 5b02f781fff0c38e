"""Everything one worker runs, wired together: app, topics, tables, models, sinks.

:func:`build_pipeline` is the factory; tests call it with their own settings and
encoders. Nothing here does I/O until the Faust worker starts the app.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import faust

from models.covisitation import CoVisitation
from models.fresh_items import FreshItems
from models.interest import KIND_WEIGHTS, InterestLearner, UserState
from models.item_activity import ItemActivity
from models.item_embedding import ItemEmbedder
from models.item_index import ItemIndex
from models.recommender import Recommender
from models.slate import SlateSettings
from streams.faust_app import StreamrecApp, create_app
from streams.metrics import Metrics
from streams.model_loading import RankerUnavailable, load_ranker, load_retrieval
from streams.redis_sink import RedisWriter, create_redis_client
from streams.settings import Settings
from streams.user_table import VersionedTable
from streams.validation import Limits

log = logging.getLogger(__name__)


@dataclass
class Topics:
    """The Faust topic objects of one app (all raw bytes; records are decoded by the agents)."""

    catalog: faust.TopicT
    events: faust.TopicT  # clicks, searches and impressions, consumed together
    recommendations: faust.TopicT
    dlq: faust.TopicT
    item_vectors: faust.TopicT
    item_stats: faust.TopicT


@dataclass
class Pipeline:
    """One worker's parts. State that must survive a crash lives in ``users`` (a changelog-backed table);
    the recommender's item-side state is rebuilt from compacted topics on start."""

    settings: Settings
    app: StreamrecApp
    topics: Topics
    users: VersionedTable
    embedder: ItemEmbedder
    recommender: Recommender
    metrics: Metrics
    redis: RedisWriter
    items_ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: Writes the "frequently bought together" keys (bundle:{item_id}), apart from the lists' latency.
    bundles: RedisWriter | None = None

    def load_user(self, user_id: str) -> UserState:
        """A user's state from the table (a fresh state for a new user)."""
        return UserState.from_bytes(self.users.get(user_id))

    def user_bytes(self, user_id: str) -> bytes | None:
        """A user's stored state as bytes, or None when this worker holds none."""
        raw = self.users.get(user_id)
        return None if raw is None else bytes(raw)

    async def send_impression(self, key: bytes, value: bytes) -> None:
        """Log a shown list on the impressions topic (the feedback loop reads it like the site's)."""
        await self.app.producer.send(self.settings.topic_impressions, key, value, None, None, None)

    def on_delivery(self, delivery: asyncio.Future[Any]) -> None:
        """Count and log a recommendation the producer failed to deliver (never silent)."""
        if delivery.cancelled() or delivery.exception() is None:
            return
        self.metrics.publish_errors.inc()
        log.error("a recommendation could not be published: %r", delivery.exception())

    def limits(self, catalog: bool = False) -> Limits:
        """Decoding limits right now (the upper time bound moves with the clock)."""
        s = self.settings
        return Limits(
            max_bytes=s.max_catalog_event_bytes if catalog else s.max_event_bytes,
            min_ts=s.min_event_ts,
            max_ts=s.max_event_ts(),
        )


def _topics(app: StreamrecApp, s: Settings) -> Topics:
    def t(*names: str, partitions: int) -> faust.TopicT:
        return app.topic(*names, partitions=partitions, key_type=bytes, value_type=bytes)

    return Topics(
        catalog=t(s.topic_catalog, partitions=s.catalog_partitions),
        events=t(s.topic_clicks, s.topic_searches, s.topic_impressions, partitions=s.partitions),
        recommendations=t(s.topic_recommendations, partitions=s.partitions),
        dlq=t(s.topic_dlq, partitions=s.dlq_partitions),
        item_vectors=t(s.topic_item_vectors, partitions=s.catalog_partitions),
        item_stats=t(s.topic_item_stats, partitions=1),
    )


def slate_settings(settings: Settings, k: int | None = None) -> SlateSettings:
    """The slate builder's settings from the worker's settings (``k``: list length, default top_k)."""
    return SlateSettings(
        k=k or settings.top_k, mmr_lambda=settings.mmr_lambda, category_cap=settings.category_cap,
        pool=settings.slate_pool, freq_free=settings.freq_free, freq_decay=settings.freq_decay,
        explore_slots=settings.explore_slots, fresh_slots=settings.fresh_slots,
    )


def build_recommender(settings: Settings, embedder: ItemEmbedder, metrics: Metrics) -> Recommender:
    """The recommender with empty item-side state and the newest usable ranker bundle (else the blend)."""
    learner = InterestLearner(
        long_half_life=settings.long_half_life_s,
        short_half_life=settings.short_half_life_s,
        query_half_life=settings.query_half_life_s,
        max_recent=settings.history_size,
    )
    try:
        ranker = load_ranker(settings, embedder.dim, embedder.version, metrics)
    except RankerUnavailable as exc:
        log.error("%s; ranking with the blend", exc)
        ranker = None
    if ranker is None:
        log.info("no learned ranker in %s: ranking with the transparent blend", settings.resolved_ranker_dir)
    return Recommender(
        ItemIndex(dim=embedder.dim),
        CoVisitation(),
        ItemActivity(half_life=settings.trending_half_life_s, view_weight=KIND_WEIGHTS["view"]),
        learner,
        ranker,
        top_k=settings.top_k,
        per_source=settings.candidates_per_source,
        exclude_recent=settings.exclude_recent,
        slate=slate_settings(settings),
        bandit_policy=settings.bandit_policy,
        feedback_window_s=settings.feedback_window_s,
        fresh=FreshItems(settings.fresh_informed_after, max_age_s=settings.fresh_max_age_s),
        bundle_size=settings.bundle_size,
        retrieval=load_retrieval(settings, metrics),
    )


def build_pipeline(settings: Settings, embedder: ItemEmbedder, metrics: Metrics | None = None) -> Pipeline:
    """Create the app, its topics and tables, the models and sinks, and register the agents."""
    from agents import register_all  # agents depend on this module; import late

    app = create_app(settings)
    metrics = metrics or Metrics()
    users = VersionedTable(  # app.Table, recovering only each user's newest state
        app,
        name="users",
        default=None,
        beacon=app.tables.beacon,
        partitions=settings.partitions,
        key_type=str,
        value_type=bytes,
        use_partitioner=True,  # lets agents write inside stream.take() batches
        help="Per-user interest state (UserState.to_bytes()), keyed by user_id",
        on_outdated=metrics.outdated_states.inc,
    )
    app.tables.add(users)
    recommender = build_recommender(settings, embedder, metrics)
    assert settings.redis_url is not None, "resolve addresses (embedded runtime) before building the pipeline"
    redis = RedisWriter(
        create_redis_client(settings.redis_url.get_secret_value(), cluster=settings.redis_cluster),
        ttl_s=settings.rec_ttl_s,
        on_written=metrics.latency.observe,
        on_error=metrics.on_redis_error,
    )
    pipeline = Pipeline(
        settings=settings,
        app=app,
        topics=_topics(app, settings),
        users=users,
        embedder=embedder,
        recommender=recommender,
        metrics=metrics,
        redis=redis,
        bundles=RedisWriter(
            create_redis_client(settings.redis_url.get_secret_value(), cluster=settings.redis_cluster),
            ttl_s=settings.rec_ttl_s,
            on_error=metrics.on_redis_error,
        ),
    )
    register_all(pipeline)
    from agents import model_swap

    model_swap.register(pipeline)
    from agents import diagnostics_signal, lag_monitor, offset_watch

    lag_monitor.register(pipeline)  # consumer-group lag on /metrics
    offset_watch.register(pipeline)  # re-reads input messages the consumer skipped
    diagnostics_signal.register(pipeline)  # kill -USR1 logs the tasks and the consumer's offsets
    return pipeline
